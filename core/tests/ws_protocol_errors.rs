//! Every way a peer can break RFC 6455 fails the connection with the right close code, the
//! close frame goes out, reading stops, and the outcome is the same however input is split
//! (each case is fed whole, byte by byte and split at every point).

use eddy_core::ws::fuzz_entry::{
    check_output, client_frame, drive, drive_all_splits, frame_bytes, Ev, Setup, Transcript,
};
use eddy_core::ws::{DeflateParams, ProtocolError, Role, WsConfig};

const KEY: Option<[u8; 4]> = Some([1, 2, 3, 4]);

fn server() -> Setup {
    Setup::server(1 << 16)
}

fn with_deflate(mut setup: Setup) -> Setup {
    setup.deflate = Some(DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: None,
        client_max_window_bits: None,
        level: 6,
    });
    setup
}

/// Asserts `input` makes `setup` fail with `expected` after the events in `before`,
/// that the close with its code went out, and that nothing after it was read.
fn assert_fails(setup: &Setup, input: &[u8], before: &[Ev], expected: ProtocolError) -> Transcript {
    let t = drive_all_splits(setup, input, false);
    let mut want = before.to_vec();
    want.push(Ev::Error(expected.clone()));
    want.push(Ev::Closed);
    assert_eq!(t.events, want);
    let seen = drive(&setup.peer(), &t.output, &[t.output.len().max(1)], false);
    let last = seen.events.iter().rev().find(|e| !matches!(e, Ev::Closed));
    assert!(
        matches!(last, Some(Ev::Close(Some((code, _)))) if *code == expected.close_code().0),
        "close frame with the code goes out last: {:?}",
        seen.events
    );
    check_output(setup, &t);
    assert_eq!(
        t.close_state,
        (true, false, true),
        "failed connection may close TCP"
    );
    t
}

fn error_only(setup: &Setup, input: &[u8], expected: ProtocolError) {
    assert_fails(setup, input, &[], expected);
}

#[test]
fn reserved_opcodes_are_1002() {
    for op in (3..=7).chain(0xB..=0xF) {
        error_only(
            &server(),
            &client_frame(op, b"x", true),
            ProtocolError::ReservedOpcode(op),
        );
    }
}

#[test]
fn reserved_bits_without_an_extension_are_1002() {
    for rsv in [0x40, 0x20, 0x10] {
        let frame = frame_bytes(0x81 | rsv, b"x", KEY);
        error_only(&server(), &frame, ProtocolError::ReservedBits);
    }
}

#[test]
fn rsv2_rsv3_and_rsv1_outside_first_data_frames_are_1002_even_with_deflate() {
    let s = with_deflate(server());
    error_only(
        &s,
        &frame_bytes(0xA1, b"x", KEY),
        ProtocolError::ReservedBits,
    );
    error_only(
        &s,
        &frame_bytes(0x91, b"x", KEY),
        ProtocolError::ReservedBits,
    );
    error_only(
        &s,
        &frame_bytes(0xC9, b"", KEY),
        ProtocolError::ReservedBits,
    );
    let mut input = frame_bytes(0x41, &[0xf2, 0x48, 0xcd], KEY);
    input.extend(frame_bytes(0xC0, &[0xc9, 0xc9, 0x07, 0x00], KEY));
    error_only(&s, &input, ProtocolError::ReservedBits);
}

#[test]
fn masking_follows_the_role() {
    error_only(
        &server(),
        &frame_bytes(0x81, b"hi", None),
        ProtocolError::UnmaskedFrame,
    );
    let client = Setup {
        role: Role::Client,
        ..server()
    };
    error_only(
        &client,
        &frame_bytes(0x81, b"hi", KEY),
        ProtocolError::MaskedFrame,
    );
}

#[test]
fn non_minimal_lengths_and_the_64_bit_high_bit_are_1002() {
    let mut sixteen = vec![0x82, 0x80 | 126, 0, 5, 1, 2, 3, 4];
    sixteen.extend_from_slice(b"abcde");
    error_only(&server(), &sixteen, ProtocolError::NonMinimalLength);
    let mut sixty_four = vec![0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4];
    sixty_four.extend_from_slice(b"x");
    error_only(&server(), &sixty_four, ProtocolError::NonMinimalLength);
    let high = [0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    error_only(&server(), &high, ProtocolError::LengthHighBit);
}

#[test]
fn long_or_fragmented_control_frames_are_1002() {
    let mut long_ping = vec![0x89, 0x80 | 126, 0, 126, 1, 2, 3, 4];
    long_ping.extend_from_slice(&[0; 126]);
    error_only(&server(), &long_ping, ProtocolError::ControlFrameTooLong);
    for op in [0x8, 0x9, 0xA] {
        error_only(
            &server(),
            &client_frame(op, b"", false),
            ProtocolError::FragmentedControlFrame,
        );
    }
}

#[test]
fn fragment_order_violations_are_1002() {
    error_only(
        &server(),
        &client_frame(0, b"orphan", true),
        ProtocolError::ContinuationWithoutStart,
    );
    for second in [1, 2] {
        let mut input = client_frame(1, b"a", false);
        input.extend(client_frame(9, b"p", true));
        input.extend(client_frame(second, b"b", true));
        assert_fails(
            &server(),
            &input,
            &[Ev::Ping(b"p".to_vec())],
            ProtocolError::DataFrameInsideMessage,
        );
    }
}

#[test]
fn bad_close_payloads_are_1002_or_1007() {
    error_only(
        &server(),
        &client_frame(8, b"\x03", true),
        ProtocolError::CloseFrameOneByte,
    );
    for code in [
        0u16,
        999,
        1004,
        1005,
        1006,
        1015,
        1016,
        1100,
        2000,
        2999,
        5000,
        u16::MAX,
    ] {
        let payload = code.to_be_bytes();
        error_only(
            &server(),
            &client_frame(8, &payload, true),
            ProtocolError::InvalidCloseCode(code),
        );
    }
    let mut bad_reason = 1000u16.to_be_bytes().to_vec();
    bad_reason.extend_from_slice(b"ok\xc3");
    error_only(
        &server(),
        &client_frame(8, &bad_reason, true),
        ProtocolError::CloseReasonNotUtf8,
    );
}

#[test]
fn invalid_utf8_text_is_1007_whole_fragmented_and_truncated() {
    error_only(
        &server(),
        &client_frame(1, b"caf\xc3(", true),
        ProtocolError::InvalidUtf8,
    );
    let mut fragmented = client_frame(1, b"good", false);
    fragmented.extend(client_frame(0, b"\xed\xa0\x80", false));
    fragmented.extend(client_frame(0, b"end", true));
    error_only(&server(), &fragmented, ProtocolError::InvalidUtf8);
    let mut truncated = client_frame(1, b"\xe2\x82", false);
    truncated.extend(client_frame(0, b"", true));
    error_only(&server(), &truncated, ProtocolError::InvalidUtf8);
}

#[test]
fn invalid_utf8_fails_at_the_bad_byte_before_the_frame_is_complete() {
    let frame = client_frame(
        1,
        &[b'a'; 200]
            .iter()
            .copied()
            .chain([0xff])
            .chain([b'b'; 300])
            .collect::<Vec<_>>(),
        true,
    );
    // Header (8 bytes) plus 201 payload bytes: the rest of the frame never arrives.
    let t = drive(&server(), &frame[..8 + 201], &[50], false);
    assert_eq!(
        t.events,
        vec![Ev::Error(ProtocolError::InvalidUtf8), Ev::Closed]
    );
    let t = drive(&server(), &frame[..8 + 200], &[50], false);
    assert_eq!(t.events, vec![], "nothing wrong yet");
}

#[test]
fn messages_over_max_message_size_are_1009_before_their_payload_arrives() {
    let small = Setup::server(100);
    let frame = client_frame(2, &[7; 101], true);
    error_only(
        &small,
        &frame[..8],
        ProtocolError::MessageTooLarge { limit: 100 },
    );
    let mut fragmented = client_frame(2, &[7; 60], false);
    fragmented.extend(client_frame(0, &[7; 41], true));
    error_only(
        &small,
        &fragmented,
        ProtocolError::MessageTooLarge { limit: 100 },
    );
    // Exactly at the limit is fine.
    let t = drive_all_splits(&small, &client_frame(2, &[7; 100], true), false);
    assert_eq!(
        t.events,
        vec![Ev::Message(
            eddy_core::ws::MessageKind::Binary,
            vec![7; 100]
        )]
    );
}

#[test]
fn compressed_data_that_does_not_inflate_is_1007() {
    let s = with_deflate(server());
    error_only(
        &s,
        &frame_bytes(0xC1, &[0xff, 0xff, 0xff, 0xff], KEY),
        ProtocolError::BadCompressedData,
    );
}

#[test]
fn eof_before_the_close_handshake_is_connection_lost_and_sends_nothing() {
    let frame = client_frame(2, b"partial", true);
    let t = drive_all_splits(&server(), &frame[..5], true);
    assert_eq!(
        t.events,
        vec![Ev::Error(ProtocolError::ConnectionLost), Ev::Closed]
    );
    assert!(t.output.is_empty(), "1006 is never sent");
    assert_eq!(ProtocolError::ConnectionLost.close_code().0, 1006);
}

#[test]
fn bytes_after_an_error_are_not_read() {
    let mut input = client_frame(3, b"", true);
    input.extend(client_frame(9, b"ignored", true));
    let t = drive_all_splits(&server(), &input, true);
    assert_eq!(
        t.events,
        vec![Ev::Error(ProtocolError::ReservedOpcode(3)), Ev::Closed]
    );
}

#[test]
fn the_error_close_reason_fits_a_control_frame_and_the_limit_defaults_to_10_mib() {
    assert_eq!(WsConfig::default().max_message_size, 10 * 1024 * 1024);
    let t = error_case(
        &client_frame(8, &[0xff, 0xff], true),
        ProtocolError::InvalidCloseCode(65535),
    );
    assert!(t.output.len() <= 2 + 125);
}

fn error_case(input: &[u8], expected: ProtocolError) -> Transcript {
    assert_fails(&server(), input, &[], expected)
}
