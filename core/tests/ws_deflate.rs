//! permessage-deflate (RFC 7692): the RFC's examples byte for byte, negotiation on both
//! sides, uncompressed sends when the window is too small for zlib, and the deflate bomb.

use bytes::BytesMut;
use eddy_core::ws::extension::parse_extension_list;
use eddy_core::ws::fuzz_entry::{
    client_frame, counter_mask, drive_all_splits, frame_bytes, Ev, Setup,
};
use eddy_core::ws::{
    DeflateConfig, DeflateParams, Message, MessageKind, ProtocolError, Role, WsConfig, WsConn,
    WsEvent,
};

fn params() -> DeflateParams {
    DeflateConfig::default()
        .negotiate(&parse_extension_list(b"permessage-deflate").unwrap())
        .unwrap()
}

fn output(conn: &mut WsConn) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = conn.poll_transmit() {
        out.extend_from_slice(&b);
    }
    out
}

fn client_reader() -> Setup {
    Setup {
        role: Role::Client,
        deflate: Some(params()),
        config: WsConfig::default(),
    }
}

fn hello() -> Ev {
    Ev::Message(MessageKind::Text, b"Hello".to_vec())
}

#[test]
fn rfc7692_7_2_3_1_hello_compresses_to_the_rfc_bytes_and_back() {
    let mut server = WsConn::server(WsConfig::default(), Some(&params()));
    server.send_text("Hello").unwrap();
    let frame = output(&mut server);
    assert_eq!(
        frame,
        [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
    );
    let t = drive_all_splits(&client_reader(), &frame, false);
    assert_eq!(t.events, vec![hello()]);
}

#[test]
fn rfc7692_7_2_3_1_fragmented_compressed_message() {
    let input = [
        0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(
        drive_all_splits(&client_reader(), &input, false).events,
        vec![hello()]
    );
}

#[test]
fn rfc7692_7_2_3_2_context_takeover_shrinks_the_second_hello() {
    let mut server = WsConn::server(WsConfig::default(), Some(&params()));
    server.send_text("Hello").unwrap();
    let first = output(&mut server);
    server.send_text("Hello").unwrap();
    let second = output(&mut server);
    assert_eq!(second, [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]);
    let both = [first, second].concat();
    assert_eq!(
        drive_all_splits(&client_reader(), &both, false).events,
        vec![hello(), hello()]
    );
}

#[test]
fn rfc7692_7_2_3_3_to_5_stored_final_and_two_block_messages_inflate() {
    let stored = [
        0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    let bfinal = [0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    let two_blocks = [
        0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    for input in [&stored[..], &bfinal, &two_blocks] {
        assert_eq!(
            drive_all_splits(&client_reader(), input, false).events,
            vec![hello()]
        );
    }
    // After a BFINAL message the next message starts a new stream.
    let then = [
        &bfinal[..],
        &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
    ]
    .concat();
    assert_eq!(
        drive_all_splits(&client_reader(), &then, false).events,
        vec![hello(), hello()]
    );
}

#[test]
fn rfc7692_7_2_3_6_an_empty_message_is_one_zero_byte() {
    let mut server = WsConn::server(WsConfig::default(), Some(&params()));
    for _ in 0..3 {
        server.send_binary(bytes::Bytes::new()).unwrap();
        assert_eq!(output(&mut server), [0xc2, 0x01, 0x00]);
    }
}

#[test]
fn a_deflate_bomb_stops_at_max_message_size_with_1009() {
    // 1 MiB of zeros deflates to about a kilobyte.
    let mut sender = WsConn::client(WsConfig::default(), Some(&params()), counter_mask(5));
    sender
        .send_binary(bytes::Bytes::from(vec![0u8; 1 << 20]))
        .unwrap();
    let wire = output(&mut sender);
    assert!(
        wire.len() < 4096,
        "bomb is small on the wire: {}",
        wire.len()
    );
    let setup = Setup {
        deflate: Some(params()),
        ..Setup::server(64 * 1024)
    };
    let t = eddy_core::ws::fuzz_entry::drive(&setup, &wire, &[100], false);
    assert_eq!(
        t.events,
        vec![
            Ev::Error(ProtocolError::MessageTooLarge { limit: 64 * 1024 }),
            Ev::Closed
        ]
    );
}

#[test]
fn a_message_of_exactly_max_message_size_inflates() {
    let mut sender = WsConn::client(WsConfig::default(), Some(&params()), counter_mask(5));
    sender
        .send_binary(bytes::Bytes::from(vec![1u8; 5000]))
        .unwrap();
    let wire = output(&mut sender);
    let setup = Setup {
        deflate: Some(params()),
        ..Setup::server(5000)
    };
    let t = drive_all_splits(&setup, &wire, false);
    assert_eq!(
        t.events,
        vec![Ev::Message(MessageKind::Binary, vec![1; 5000])]
    );
}

#[test]
fn uncompressed_messages_pass_through_a_deflate_connection() {
    let setup = Setup {
        deflate: Some(params()),
        ..Setup::server(1024)
    };
    let mut input = client_frame(1, b"plain", true);
    input.extend(frame_bytes(
        0xC1,
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        Some([9, 8, 7, 6]),
    ));
    let t = drive_all_splits(&setup, &input, false);
    assert_eq!(
        t.events,
        vec![Ev::Message(MessageKind::Text, b"plain".to_vec()), hello()]
    );
}

#[test]
fn server_answers_browser_offers_and_honours_its_own_limits() {
    let chrome = parse_extension_list(b"permessage-deflate; client_max_window_bits").unwrap();
    let default = DeflateConfig::default().negotiate(&chrome).unwrap();
    assert_eq!(default.answer_header(), "permessage-deflate");
    let limited = DeflateConfig {
        server_max_window_bits: Some(10),
        client_max_window_bits: Some(12),
        server_no_context_takeover: true,
        ..DeflateConfig::default()
    };
    assert_eq!(
        limited.negotiate(&chrome).unwrap().answer_header(),
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12"
    );
    // client_max_window_bits is only answered when offered (§7.1.2.2).
    let plain = parse_extension_list(b"permessage-deflate; client_no_context_takeover").unwrap();
    assert_eq!(
        limited.negotiate(&plain).unwrap().answer_header(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
    );
    let other = parse_extension_list(b"x-webkit-deflate-frame").unwrap();
    assert_eq!(DeflateConfig::default().negotiate(&other), None);
}

#[test]
fn an_8_bit_server_window_is_accepted_and_honoured_by_sending_uncompressed() {
    let offer = parse_extension_list(b"permessage-deflate; server_max_window_bits=8").unwrap();
    let p = DeflateConfig::default().negotiate(&offer).unwrap();
    assert_eq!(p.server_max_window_bits, Some(8));
    let mut server = WsConn::server(WsConfig::default(), Some(&p));
    server.send_text("Hello").unwrap();
    assert_eq!(
        output(&mut server),
        b"\x81\x05Hello",
        "RSV1 clear: not compressed"
    );
    // It still inflates what the client compresses.
    let mut input = BytesMut::from(
        &frame_bytes(
            0xC1,
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            Some([1, 1, 1, 1]),
        )[..],
    );
    assert_eq!(
        server.poll_event(&mut input),
        WsEvent::Message(Message::Text("Hello".into()))
    );
}

#[test]
fn client_offer_and_answer_round_trip_through_the_server() {
    let client_config = DeflateConfig {
        client_no_context_takeover: true,
        server_max_window_bits: Some(11),
        ..DeflateConfig::default()
    };
    let offer = client_config.offer();
    let rendered = eddy_core::ws::extension::render_extensions(&[offer]);
    assert_eq!(
        rendered,
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits"
    );
    let server_params = DeflateConfig::default()
        .negotiate(&parse_extension_list(rendered.as_bytes()).unwrap())
        .unwrap();
    let answer = parse_extension_list(server_params.answer_header().as_bytes()).unwrap();
    let client_params = client_config.accept_answer(&answer).unwrap().unwrap();
    assert_eq!(client_params, server_params);
    assert!(client_params.client_no_context_takeover);
    assert_eq!(client_params.server_max_window_bits, Some(11));
}
