//! Property tests: the incremental UTF-8 validator agrees with `std::str::from_utf8`, and
//! messages sent by one machine arrive at its peer identical and in order, whatever the
//! fragmentation, interleaved pings, input splits and compression settings.

use bytes::{Bytes, BytesMut};
use eddy_core::ws::fuzz_entry::{counter_mask, pump, Ev, Transcript};
use eddy_core::ws::{DeflateParams, Message, MessageKind, Utf8Validator, WsConfig, WsConn};
use proptest::prelude::*;

/// Bytes that are mostly UTF-8 pieces, sometimes broken ones.
fn utf8ish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => any::<char>().prop_map(|c| c.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 1..4),
        1 => prop::sample::select(vec![
            vec![0xED, 0xA0, 0x80], vec![0xF4, 0x90, 0x80, 0x80], vec![0xE0, 0x9F, 0xBF],
            vec![0xC0, 0xAF], vec![0xF0, 0x8F, 0xBF, 0xBF], vec![0xE2, 0x82], vec![0x80],
        ]),
    ];
    prop::collection::vec(piece, 0..20).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn utf8_validator_matches_std_at_every_split(bytes in utf8ish(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4)) {
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort();
        let mut v = Utf8Validator::new();
        let mut start = 0;
        let mut failed_at = None;
        for end in points.into_iter().chain([bytes.len()]) {
            if let Err(e) = v.feed(&bytes[start..end]) {
                failed_at = Some(start + e.valid_up_to);
                break;
            }
            start = end;
        }
        match std::str::from_utf8(&bytes) {
            Ok(_) => {
                prop_assert_eq!(failed_at, None);
                prop_assert!(v.is_complete());
            }
            Err(e) if e.error_len().is_none() => {
                // Cut short at the end: fine so far, but not complete.
                prop_assert_eq!(failed_at, None);
                prop_assert!(!v.is_complete());
            }
            Err(_) => {
                // It fails at the first byte no valid text could continue with.
                let at = failed_at.expect("validator accepted invalid UTF-8");
                let before = std::str::from_utf8(&bytes[..at]);
                prop_assert!(before.is_ok() || before.unwrap_err().error_len().is_none());
                prop_assert!(std::str::from_utf8(&bytes[..=at]).unwrap_err().error_len().is_some());
                prop_assert!(!v.is_complete());
            }
        }
    }
}

/// One thing the sender does.
#[derive(Debug, Clone)]
enum Action {
    /// A message, sent as fragments cut at these (sorted) points, pings between them.
    Message {
        kind: MessageKind,
        payload: Vec<u8>,
        cuts: Vec<usize>,
        pings: Vec<Vec<u8>>,
    },
    /// A ping between messages.
    Ping(Vec<u8>),
}

fn action() -> impl Strategy<Value = Action> {
    let text = ".{0,40}".prop_map(String::into_bytes);
    let binary = prop::collection::vec(any::<u8>(), 0..300);
    let compressible = (1usize..2000, any::<u8>()).prop_map(|(n, b)| vec![b; n]);
    let payload = prop_oneof![
        text.prop_map(|p| (MessageKind::Text, p)),
        binary.prop_map(|p| (MessageKind::Binary, p)),
        compressible.prop_map(|p| (MessageKind::Binary, p)),
    ];
    let ping = prop::collection::vec(any::<u8>(), 0..20);
    prop_oneof![
        5 => (payload, prop::collection::vec(any::<prop::sample::Index>(), 0..4), prop::collection::vec(ping.clone(), 0..3))
            .prop_map(|((kind, payload), cuts, pings)| {
                let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(payload.len() + 1)).collect();
                cuts.sort();
                Action::Message { kind, payload, cuts, pings }
            }),
        1 => ping.prop_map(Action::Ping),
    ]
}

fn deflate_params() -> impl Strategy<Value = Option<DeflateParams>> {
    let bits = prop::option::of(8u8..=15);
    prop::option::of(
        (any::<bool>(), any::<bool>(), bits.clone(), bits, 0u32..=9).prop_map(
            |(snct, cnct, sbits, cbits, level)| DeflateParams {
                server_no_context_takeover: snct,
                client_no_context_takeover: cnct,
                server_max_window_bits: sbits,
                client_max_window_bits: cbits,
                level,
            },
        ),
    )
}

/// Sends `actions` from `sender`; returns its output and the events the receiver must see.
fn send_all(sender: &mut WsConn, actions: &[Action]) -> (Vec<u8>, Vec<Ev>) {
    let mut expected = Vec::new();
    for a in actions {
        match a {
            Action::Ping(p) => {
                sender.send_ping(Bytes::from(p.clone())).unwrap();
                expected.push(Ev::Ping(p.clone()));
            }
            Action::Message {
                kind,
                payload,
                cuts,
                pings,
            } => {
                let mut start = 0;
                for (i, &end) in cuts.iter().chain([&payload.len()]).enumerate() {
                    let fin = i == cuts.len();
                    let piece = Bytes::copy_from_slice(&payload[start..end]);
                    sender.send_fragment(*kind, piece, fin).unwrap();
                    if let Some(p) = pings.get(i).filter(|_| !fin) {
                        sender.send_ping(Bytes::from(p.clone())).unwrap();
                        expected.push(Ev::Ping(p.clone()));
                    }
                    start = end;
                }
                expected.push(Ev::Message(*kind, payload.clone()));
            }
        }
    }
    let mut out = Vec::new();
    while let Some(b) = sender.poll_transmit() {
        out.extend_from_slice(&b);
    }
    (out, expected)
}

/// Feeds `input` to `receiver` in pieces of `sizes` (cycled).
fn receive(receiver: &mut WsConn, input: &[u8], sizes: &[usize]) -> Transcript {
    let mut t = Transcript::default();
    let mut buf = BytesMut::new();
    let (mut pos, mut k) = (0, 0);
    while pos < input.len() {
        let end = (pos + sizes[k % sizes.len()].max(1)).min(input.len());
        buf.extend_from_slice(&input[pos..end]);
        pos = end;
        k += 1;
        assert!(
            pump(receiver, &mut buf, &mut t),
            "receiver stopped reading: {:?}",
            t.events
        );
    }
    assert!(buf.is_empty(), "all input consumed");
    t
}

fn round_trip(
    client_to_server: bool,
    deflate: Option<DeflateParams>,
    actions: &[Action],
    sizes: &[usize],
) -> Result<(), TestCaseError> {
    let config = WsConfig {
        max_message_size: 1 << 20,
    };
    let mut client = WsConn::client(config.clone(), deflate.as_ref(), counter_mask(3));
    let mut server = WsConn::server(config, deflate.as_ref());
    let (sender, receiver) = if client_to_server {
        (&mut client, &mut server)
    } else {
        (&mut server, &mut client)
    };
    let (wire, expected) = send_all(sender, actions);
    let got = receive(receiver, &wire, sizes);
    prop_assert_eq!(&got.events, &expected);
    // Every ping was answered, in order, with a pong the sender accepts.
    let pings: Vec<Ev> = expected
        .iter()
        .filter_map(|e| match e {
            Ev::Ping(p) => Some(Ev::Pong(p.clone())),
            _ => None,
        })
        .collect();
    let answers = receive(sender, &got.output, &[7]);
    prop_assert_eq!(answers.events, pings);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn messages_arrive_identical_and_in_order_without_compression(
        client_to_server in any::<bool>(),
        actions in prop::collection::vec(action(), 0..8),
        sizes in prop::collection::vec(1usize..64, 1..5),
    ) {
        round_trip(client_to_server, None, &actions, &sizes)?;
    }

    #[test]
    fn messages_arrive_identical_and_in_order_with_permessage_deflate(
        client_to_server in any::<bool>(),
        deflate in deflate_params().prop_filter("deflate on", Option::is_some),
        actions in prop::collection::vec(action(), 0..8),
        sizes in prop::collection::vec(1usize..64, 1..5),
    ) {
        round_trip(client_to_server, deflate, &actions, &sizes)?;
    }

    #[test]
    fn whole_messages_sent_with_send_arrive_as_sent(
        deflate in deflate_params(),
        texts in prop::collection::vec(".{0,30}", 0..6),
    ) {
        let config = WsConfig::default();
        let mut client = WsConn::client(config.clone(), deflate.as_ref(), counter_mask(9));
        let mut server = WsConn::server(config, deflate.as_ref());
        for t in &texts {
            client.send(Message::Text(t.clone())).unwrap();
        }
        let mut wire = Vec::new();
        while let Some(b) = client.poll_transmit() {
            wire.extend_from_slice(&b);
        }
        let got = receive(&mut server, &wire, &[wire.len().max(1)]);
        let want: Vec<Ev> = texts.iter().map(|t| Ev::Message(MessageKind::Text, t.clone().into_bytes())).collect();
        prop_assert_eq!(got.events, want);
    }
}

#[test]
fn context_takeover_makes_a_repeated_message_smaller_and_no_takeover_does_not() {
    for takeover in [true, false] {
        let params = DeflateParams {
            server_no_context_takeover: !takeover,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
            level: 6,
        };
        let mut server = WsConn::server(WsConfig::default(), Some(&params));
        let text = "a moderately long message that repeats itself ".repeat(3);
        let mut sizes = Vec::new();
        for _ in 0..2 {
            server.send_text(&text).unwrap();
            let mut frame = Vec::new();
            while let Some(b) = server.poll_transmit() {
                frame.extend_from_slice(&b);
            }
            assert_eq!(frame[0], 0xC1, "FIN, RSV1, text");
            sizes.push(frame.len());
        }
        assert_eq!(
            sizes[1] < sizes[0],
            takeover,
            "sizes {sizes:?}, takeover {takeover}"
        );
    }
}

#[test]
fn a_fragment_of_the_other_kind_mid_message_is_refused() {
    let mut server = WsConn::server(WsConfig::default(), None);
    server
        .send_fragment(MessageKind::Text, Bytes::from_static(b"a"), false)
        .unwrap();
    assert_eq!(
        server.send_fragment(MessageKind::Binary, Bytes::from_static(b"b"), true),
        Err(eddy_core::ws::SendError::MessageInProgress)
    );
    server
        .send_fragment(MessageKind::Text, Bytes::from_static(b"b"), true)
        .unwrap();
    let mut out = Vec::new();
    while let Some(b) = server.poll_transmit() {
        out.extend_from_slice(&b);
    }
    assert_eq!(out, b"\x01\x01a\x80\x01b");
}

#[test]
fn large_server_payloads_are_queued_without_a_copy() {
    let mut server = WsConn::server(WsConfig::default(), None);
    let big = Bytes::from(vec![5u8; 64 * 1024]);
    let ptr = big.as_ptr();
    server.send_binary(big).unwrap();
    let head = server.poll_transmit().unwrap();
    assert_eq!(&head[..], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(server.poll_transmit().unwrap().as_ptr(), ptr);
}
