//! The close handshake (RFC 6455 §5.5.1, §7): a received close is answered once, echoing
//! its code; nothing follows our close; the server closes TCP first. Also ping → pong.

use bytes::{Bytes, BytesMut};
use eddy_core::ws::fuzz_entry::{
    client_frame, counter_mask, drive_all_splits, frame_bytes, Ev, Setup,
};
use eddy_core::ws::{CloseCode, CloseFrame, Message, SendError, WsConfig, WsConn, WsEvent};

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

fn drain(conn: &mut WsConn) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = conn.poll_transmit() {
        out.extend_from_slice(&b);
    }
    out
}

#[test]
fn server_answers_a_close_once_echoing_the_code_and_may_close_tcp() {
    let mut input = client_frame(8, &close_payload(1001, "going"), true);
    input.extend(client_frame(8, &close_payload(1000, ""), true));
    input.extend(client_frame(1, b"ignored", true));
    let t = drive_all_splits(&Setup::server(1024), &input, false);
    assert_eq!(
        t.events,
        vec![Ev::Close(Some((1001, "going".into()))), Ev::Closed]
    );
    assert_eq!(
        t.output,
        vec![0x88, 0x02, 0x03, 0xe9],
        "one unmasked close echoing 1001"
    );
    assert_eq!(t.close_state, (true, true, true));
}

#[test]
fn an_empty_close_is_answered_with_an_empty_close() {
    let t = drive_all_splits(&Setup::server(1024), &client_frame(8, b"", true), false);
    assert_eq!(t.events, vec![Ev::Close(None), Ev::Closed]);
    assert_eq!(t.output, vec![0x88, 0x00]);
}

#[test]
fn a_client_answers_masked_and_waits_for_the_server_to_close_tcp() {
    let mut client = WsConn::client(WsConfig::default(), None, counter_mask(7));
    let mut buf = BytesMut::from(&frame_bytes(0x88, &close_payload(1000, "bye"), None)[..]);
    assert_eq!(
        client.poll_event(&mut buf),
        WsEvent::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: "bye".into()
        }))
    );
    let out = drain(&mut client);
    assert_eq!(
        &out[..2],
        &[0x88, 0x82],
        "masked close with a 2-byte payload"
    );
    assert!(client.close_sent() && client.close_received());
    assert!(
        !client.should_close_tcp(),
        "the server closes TCP first (§7.1.1)"
    );
    client.handle_eof();
    assert_eq!(client.poll_event(&mut buf), WsEvent::Closed);
    assert!(client.should_close_tcp());
}

#[test]
fn after_sending_close_nothing_more_is_sent_but_messages_still_arrive() {
    let mut server = WsConn::server(WsConfig::default(), None);
    server.close(CloseCode::GOING_AWAY, "restart").unwrap();
    assert_eq!(
        drain(&mut server),
        [&[0x88, 9, 0x03, 0xe9][..], b"restart"].concat()
    );
    assert!(!server.is_open());
    assert_eq!(server.send_text("late"), Err(SendError::Closed));
    assert_eq!(server.send_ping(Bytes::new()), Err(SendError::Closed));
    assert_eq!(server.close(CloseCode::NORMAL, ""), Err(SendError::Closed));

    let mut input = client_frame(1, b"in flight", true);
    input.extend(client_frame(9, b"ping", true));
    input.extend(client_frame(8, &close_payload(1001, ""), true));
    let mut buf = BytesMut::from(&input[..]);
    assert_eq!(
        server.poll_event(&mut buf),
        WsEvent::Message(Message::Text("in flight".into()))
    );
    assert_eq!(
        server.poll_event(&mut buf),
        WsEvent::Ping(Bytes::from_static(b"ping"))
    );
    assert!(matches!(
        server.poll_event(&mut buf),
        WsEvent::Close(Some(_))
    ));
    assert!(
        drain(&mut server).is_empty(),
        "no pong and no second close after our close"
    );
    assert!(server.should_close_tcp());
}

#[test]
fn send_close_refuses_reserved_codes_and_long_reasons() {
    let mut server = WsConn::server(WsConfig::default(), None);
    for code in [999, 1004, 1005, 1006, 1015, 2000, 5000] {
        assert_eq!(
            server.close(CloseCode(code), ""),
            Err(SendError::InvalidCloseCode(code))
        );
    }
    assert_eq!(
        server.close(CloseCode::NORMAL, &"x".repeat(124)),
        Err(SendError::ControlPayloadTooLong)
    );
    assert!(server.is_open(), "a refused close changes nothing");
    assert_eq!(server.send_close(None), Ok(()));
    assert_eq!(drain(&mut server), vec![0x88, 0x00]);
}

#[test]
fn pings_are_answered_with_the_same_payload_and_reported() {
    let mut input = client_frame(9, b"are you there", true);
    input.extend(client_frame(10, b"unsolicited", true));
    let t = drive_all_splits(&Setup::server(1024), &input, false);
    assert_eq!(
        t.events,
        vec![
            Ev::Ping(b"are you there".to_vec()),
            Ev::Pong(b"unsolicited".to_vec())
        ]
    );
    assert_eq!(t.output, [&[0x8a, 13][..], b"are you there"].concat());
}

#[test]
fn control_frames_interleave_with_fragments_of_a_message() {
    let mut input = client_frame(2, b"ab", false);
    input.extend(client_frame(9, b"1", true));
    input.extend(client_frame(0, b"", false));
    input.extend(client_frame(10, b"2", true));
    input.extend(client_frame(0, b"cd", true));
    let t = drive_all_splits(&Setup::server(1024), &input, false);
    assert_eq!(
        t.events,
        vec![
            Ev::Ping(b"1".to_vec()),
            Ev::Pong(b"2".to_vec()),
            Ev::Message(eddy_core::ws::MessageKind::Binary, b"abcd".to_vec()),
        ]
    );
}

#[test]
fn a_close_in_the_middle_of_a_message_drops_the_fragments() {
    let mut input = client_frame(1, b"half", false);
    input.extend(client_frame(8, &close_payload(1000, ""), true));
    let t = drive_all_splits(&Setup::server(1024), &input, false);
    assert_eq!(
        t.events,
        vec![Ev::Close(Some((1000, String::new()))), Ev::Closed]
    );
}

#[test]
fn control_payloads_over_125_bytes_are_refused_on_send() {
    let mut server = WsConn::server(WsConfig::default(), None);
    assert_eq!(
        server.send_ping(Bytes::from(vec![0; 126])),
        Err(SendError::ControlPayloadTooLong)
    );
    assert_eq!(server.send_pong(Bytes::from(vec![0; 125])), Ok(()));
}
