//! ServerConn behaviour: every bad-input class (raw bytes → status + close), request
//! smuggling vectors, keep-alive, pipelining, 100-continue, response framing, time-outs.
//!
//! Every input is fed whole, one byte at a time, split at every point, and with trailing
//! data (h11's habit); all runs must agree.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use eddy_core::http::fuzz_entry::{check_responses_parse, drive, Ev, Transcript};
use eddy_core::http::{
    AfterResponse, BodyFraming, HeaderBlock, HttpConfig, HttpDate, RequestError, SendError,
    ServerConn, ServerEvent, TimeoutKind,
};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};

fn config() -> Arc<HttpConfig> {
    Arc::new(HttpConfig::default())
}

/// Runs `input` whole, byte by byte and split at every point; all runs must agree.
fn run_all_ways_with(config: &Arc<HttpConfig>, input: &[u8]) -> Transcript {
    let whole = drive(config, input, &[input.len().max(1)]);
    assert_eq!(
        whole,
        drive(config, input, &[1]),
        "byte-at-a-time run differs"
    );
    for split in 1..input.len() {
        let t = drive(config, input, &[split, input.len()]);
        assert_eq!(whole, t, "run split at {split} differs");
    }
    check_responses_parse(&whole.output, &whole.head_responses);
    whole
}

fn run_all_ways(input: &[u8]) -> Transcript {
    run_all_ways_with(&config(), input)
}

/// The input is refused with `status`: an error event, an answer with that status and
/// `Connection: close`, no request after it, also when a valid request follows.
fn assert_rejected_with(config: &Arc<HttpConfig>, input: &[u8], status: StatusCode) {
    let check = |t: &Transcript, what: &str| {
        let at = t
            .events
            .iter()
            .position(|e| *e == Ev::Error(status))
            .unwrap_or_else(|| panic!("{what}: no Error({status}) in {:?}", t.events));
        assert!(
            !t.events[at..].iter().any(|e| matches!(e, Ev::Head(_))),
            "{what}: a request was parsed after the error: {:?}",
            t.events
        );
        let text = String::from_utf8_lossy(&t.output);
        let line = format!("HTTP/1.1 {} ", status.as_str());
        assert!(
            text.contains(&line),
            "{what}: output lacks {line:?}: {text:?}"
        );
        assert!(
            text.ends_with("Connection: close\r\n\r\n"),
            "{what}: error answer must close: {text:?}"
        );
    };
    check(&run_all_ways_with(config, input), "input");
    let mut trailing = input.to_vec();
    trailing.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    check(
        &drive(config, &trailing, &[trailing.len()]),
        "with trailing data",
    );
    check(
        &drive(config, &trailing, &[1]),
        "with trailing data, byte by byte",
    );
}

fn assert_rejected(input: &[u8], status: StatusCode) {
    assert_rejected_with(&config(), input, status);
}

fn assert_bad_request(input: &[u8]) {
    assert_rejected(input, StatusCode::BAD_REQUEST);
}

fn heads(t: &Transcript) -> Vec<&str> {
    t.events
        .iter()
        .filter_map(|e| match e {
            Ev::Head(h) => Some(h.as_str()),
            _ => None,
        })
        .collect()
}

fn body_of(t: &Transcript) -> Vec<u8> {
    t.events
        .iter()
        .filter_map(|e| match e {
            Ev::Data(d) => Some(d.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

// ----- smuggling vectors -------------------------------------------------------------------

#[test]
fn content_length_with_transfer_encoding_is_400() {
    assert_bad_request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_bad_request(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n");
}

#[test]
fn transfer_encoding_chunked_then_identity_is_400() {
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    );
    assert_bad_request(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n");
}

#[test]
fn transfer_encoding_xchunked_is_400() {
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    );
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n",
    );
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n",
    );
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    );
}

#[test]
fn transfer_encoding_whitespace_tricks_are_400() {
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    );
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chun ked\r\n\r\n0\r\n\r\n",
    );
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n",
    );
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    );
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
}

#[test]
fn transfer_encoding_with_harmless_whitespace_is_chunked() {
    let t = run_all_ways(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \t chunked \t\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(body_of(&t), b"abc");
    assert!(t.events.contains(&Ev::End(None)));
}

#[test]
fn transfer_encoding_gzip_chunked_is_501() {
    assert_rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        StatusCode::NOT_IMPLEMENTED,
    );
}

#[test]
fn transfer_encoding_on_http10_is_400() {
    assert_bad_request(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
}

#[test]
fn content_length_with_sign_hex_or_space_is_400() {
    for cl in ["+5", "-1", "0x5", "5 5", "five", "", "5;", "1_0"] {
        let req = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {cl}\r\n\r\nhello");
        assert_bad_request(req.as_bytes());
    }
}

#[test]
fn content_length_overflow_is_400() {
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
    );
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999999\r\n\r\n",
    );
}

#[test]
fn content_length_conflicting_duplicates_and_lists_are_400() {
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    );
    assert_bad_request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!");
}

#[test]
fn content_length_identical_duplicates_are_accepted() {
    let t = run_all_ways(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\nhello",
    );
    assert_eq!(body_of(&t), b"hello");
}

#[test]
fn chunk_size_overflow_is_400() {
    assert_bad_request(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nx\r\n0\r\n\r\n");
}

#[test]
fn chunk_size_with_0x_prefix_is_400() {
    assert_bad_request(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n");
}

#[test]
fn chunk_data_without_crlf_is_400() {
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    );
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\rX0\r\n\r\n",
    );
}

#[test]
fn chunked_framing_with_lf_only_is_400() {
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
    );
    assert_bad_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
    );
    assert_bad_request(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n");
}

#[test]
fn chunk_extension_too_long_is_400_and_short_ones_are_ignored() {
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;".to_vec();
    req.extend(std::iter::repeat(b'x').take(5000));
    req.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
    assert_bad_request(&req);
    let t = run_all_ways(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b;c=\"d\"\r\nz\r\n0;e\r\nTrailer-Field: v\r\n\r\n");
    assert_eq!(body_of(&t), b"z");
    assert!(
        matches!(t.events.iter().find(|e| matches!(e, Ev::End(_))), Some(Ev::End(Some(tr))) if tr.contains("trailer-field"))
    );
}

// ----- header syntax -----------------------------------------------------------------------

#[test]
fn nul_in_header_value_is_400() {
    assert_bad_request(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n");
    assert_bad_request(b"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n");
    assert_bad_request(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n");
}

#[test]
fn whitespace_before_colon_is_400() {
    assert_bad_request(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n");
    assert_bad_request(b"GET / HTTP/1.1\r\nHost: a\r\nX-Y : z\r\n\r\n");
}

#[test]
fn obs_fold_is_400() {
    assert_bad_request(b"GET / HTTP/1.1\r\nHost: a\r\nX: one\r\n two\r\n\r\n");
    assert_bad_request(b"GET / HTTP/1.1\r\nHost: a\r\nX: one\r\n\ttwo\r\n\r\n");
}

#[test]
fn bare_lf_and_bare_cr_are_400() {
    assert_bad_request(b"GET / HTTP/1.1\nHost: a\n\n");
    assert_bad_request(b"GET / HTTP/1.1\r\nHost: a\n\r\n");
    assert_bad_request(b"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n");
    assert_bad_request(b"GET / HTTP/1.1\rHost: a\r\n\r\n");
    assert_bad_request(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn invalid_header_names_are_400() {
    assert_bad_request(b"GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n");
    assert_bad_request(b"GET / HTTP/1.1\r\nHost: a\r\n: z\r\n\r\n");
    assert_bad_request(b"GET / HTTP/1.1\r\nHost: a\r\nX\0: z\r\n\r\n");
}

#[test]
fn multiple_host_headers_are_400() {
    assert_bad_request(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_bad_request(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n");
}

#[test]
fn missing_host_on_http11_is_400_but_fine_on_http10() {
    assert_bad_request(b"GET / HTTP/1.1\r\nX: y\r\n\r\n");
    let t = run_all_ways(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(heads(&t), ["GET / HTTP/1.0"]);
}

#[test]
fn invalid_host_value_is_400() {
    assert_bad_request(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n");
    assert_bad_request(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n");
    // RFC 9112 §3.2: Host is uri-host [":" port]; port is digits, IPv6 needs brackets.
    for host in [
        "example.com:abc",
        "a:b:c",
        "a:80:80",
        "[::1",
        "::1",
        "[::1]x",
        "[::1]:x",
        "[not-ipv6]:80",
        "user@example.com",
        "a%zz",
        "a%4",
    ] {
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_bad_request(req.as_bytes());
    }
}

#[test]
fn valid_host_values_are_accepted() {
    for host in [
        "example.com",
        "example.com:8080",
        "example.com:",
        "127.0.0.1:80",
        "[::1]",
        "[::1]:8080",
        "[v1.fe80::a+en1]",
        "a%41b",
        "xn--nxasmq6b.example",
        "",
    ] {
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let t = run_all_ways(req.as_bytes());
        let heads = heads(&t);
        assert_eq!(heads.len(), 1, "Host: {host}");
        assert!(heads[0].starts_with("GET / HTTP/1.1 "), "Host: {host}");
    }
}

#[test]
fn absolute_form_authority_must_be_host_and_port() {
    for target in [
        "http://example.com:abc/",
        "http://user:pw@example.com/",
        "http://a b/",
        "http:///path",
    ] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_bad_request(req.as_bytes());
    }
    let t = run_all_ways(b"GET http://example.com:8080/x?y HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(heads(&t).len(), 1);
}

#[test]
fn a_malformed_request_line_is_400_even_when_it_ends_in_a_version() {
    for line in [
        "GET /  HTTP/1.1",
        "GET  / HTTP/1.1",
        "GET /a b HTTP/1.1",
        "GET / HTTP/1.1 ",
        "GET / HTTP/1",
        "GET / HTTP/2",
        " GET / HTTP/1.1",
    ] {
        let req = format!("{line}\r\nHost: a\r\n\r\n");
        assert_bad_request(req.as_bytes());
    }
}

#[test]
fn a_higher_http1_minor_version_is_served_as_http11() {
    // RFC 9110 §2.5: processed as the highest minor version implemented.
    for v in ["HTTP/1.2", "HTTP/1.9"] {
        let req = format!("GET /x {v}\r\nHost: a\r\n\r\n");
        for input in [req.clone(), format!("\r\n{req}")] {
            let t = run_all_ways(input.as_bytes());
            let heads = heads(&t);
            assert_eq!(heads.len(), 1, "{v}");
            assert!(heads[0].starts_with("GET /x HTTP/1.1 "), "{v}: {heads:?}");
        }
    }
}

#[test]
fn too_many_header_fields_is_431() {
    let mut req = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..200 {
        req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    assert_rejected(&req, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[test]
fn head_larger_than_max_header_size_is_431() {
    let config = Arc::new(HttpConfig {
        max_header_size: 256,
        ..HttpConfig::default()
    });
    let mut req = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
    req.extend(std::iter::repeat(b'v').take(300));
    req.extend_from_slice(b"\r\n\r\n");
    assert_rejected_with(&config, &req, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // Without a blank line ever coming, the bound still holds; when not even the request line
    // ends within the limit, the target is what is too long (414).
    let endless = vec![b'a'; 400];
    let t = drive(&config, &endless, &[1]);
    assert!(t.events.contains(&Ev::Error(StatusCode::URI_TOO_LONG)));
    assert!(t.leftover <= 400);
}

#[test]
fn leading_empty_lines_are_ignored_up_to_a_bound() {
    let t = run_all_ways(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(heads(&t).len(), 1);
    assert_bad_request(b"\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
}

// ----- request line ------------------------------------------------------------------------

#[test]
fn absolute_form_target_is_accepted() {
    let t = run_all_ways(b"GET http://example.com:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(heads(&t).len(), 1);
    assert!(heads(&t)[0].starts_with("GET http://example.com:8080/p?q=1 HTTP/1.1"));
    assert_bad_request(b"GET ftp://example.com/ HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn invalid_request_targets_are_400() {
    assert_bad_request(b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_bad_request(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_bad_request(b"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_bad_request(b"GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_bad_request(b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_bad_request(b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_bad_request(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_bad_request(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn asterisk_form_is_accepted_for_options_and_connect_is_not_implemented() {
    let t = run_all_ways(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(heads(&t).len(), 1);
    // A 2xx to CONNECT would make the connection a tunnel: not implemented (501); a
    // CONNECT whose target is not authority-form is malformed (400).
    assert_rejected(
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        StatusCode::NOT_IMPLEMENTED,
    );
    assert_bad_request(b"CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_bad_request(b"CONNECT / HTTP/1.1\r\nHost: example.com\r\n\r\n");
}

#[test]
fn other_http_versions_are_505() {
    for v in ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9"] {
        let req = format!("GET / {v}\r\nHost: a\r\n\r\n");
        assert_rejected(req.as_bytes(), StatusCode::HTTP_VERSION_NOT_SUPPORTED);
    }
}

#[test]
fn http2_preface_is_505() {
    assert_rejected(
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        StatusCode::HTTP_VERSION_NOT_SUPPORTED,
    );
}

#[test]
fn malformed_versions_are_400() {
    for v in ["HTTX/1.1", "http/1.1", "HTTP/1.1x", "HTTP/11", ""] {
        let req = format!("GET / {v}\r\nHost: a\r\n\r\n");
        assert_bad_request(req.as_bytes());
    }
    assert_bad_request(b"GET /\r\nHost: a\r\n\r\n");
}

// ----- body limits -------------------------------------------------------------------------

#[test]
fn declared_body_over_max_body_size_is_413_before_any_data() {
    let config = Arc::new(HttpConfig {
        max_body_size: 10,
        ..HttpConfig::default()
    });
    let req = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world";
    assert_rejected_with(&config, req, StatusCode::PAYLOAD_TOO_LARGE);
    let t = drive(&config, req, &[req.len()]);
    assert!(
        body_of(&t).is_empty(),
        "no body byte may be delivered past the limit"
    );
}

#[test]
fn chunked_body_over_max_body_size_is_413() {
    let config = Arc::new(HttpConfig {
        max_body_size: 10,
        ..HttpConfig::default()
    });
    assert_rejected_with(
        &config,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
        StatusCode::PAYLOAD_TOO_LARGE,
    );
}

#[test]
fn per_request_max_body_size_override_applies() {
    let mut conn = ServerConn::new(Arc::new(HttpConfig {
        max_body_size: 4,
        ..HttpConfig::default()
    }));
    let mut buf =
        BytesMut::from(&b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"[..]);
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::Head(_)));
    conn.set_max_body_size(5);
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::Data(d) if d == "hello"));
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::End(None)));
}

// ----- end of input ------------------------------------------------------------------------

#[test]
fn eof_when_idle_closes_and_eof_mid_request_is_an_error() {
    let t = run_all_ways(b"");
    assert_eq!(t.events, [Ev::Closed]);
    let t = run_all_ways(b"GET / HTTP/1.1\r\nHost");
    assert_eq!(t.events[0], Ev::Error(StatusCode::BAD_REQUEST));
    let t = run_all_ways(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel");
    assert!(t.events.contains(&Ev::Error(StatusCode::BAD_REQUEST)));
    let mut conn = ServerConn::new(config());
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHo"[..]);
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::NeedData));
    conn.handle_eof();
    assert!(matches!(
        conn.poll_event(&mut buf),
        ServerEvent::Error(RequestError::Incomplete)
    ));
}

// ----- keep-alive and pipelining -----------------------------------------------------------

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

fn respond(
    conn: &mut ServerConn,
    out: &mut BytesMut,
    headers: &HeaderMap,
    body: &'static [u8],
) -> AfterResponse {
    conn.send_response(StatusCode::OK, headers, None, out)
        .unwrap();
    conn.send_data(Bytes::from_static(body), out).unwrap();
    conn.send_end(out).unwrap()
}

fn expect_head(conn: &mut ServerConn, buf: &mut BytesMut) -> eddy_core::http::RequestHead {
    match conn.poll_event(buf) {
        ServerEvent::Head(h) => h,
        other => panic!("expected a head, got {other:?}"),
    }
}

#[test]
fn pipelined_requests_wait_until_the_response_ends() {
    let mut conn = ServerConn::new(config());
    let mut input = Vec::new();
    input.extend_from_slice(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n");
    input.extend_from_slice(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut buf = BytesMut::from(&input[..]);
    let mut out = BytesMut::new();
    assert_eq!(expect_head(&mut conn, &mut buf).target(), "/1");
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::End(None)));
    let before = buf.len();
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::Paused));
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::Paused));
    assert_eq!(buf.len(), before, "pipelined bytes must stay in the buffer");
    assert!(!conn.wants_read());
    assert_eq!(
        respond(&mut conn, &mut out, &HeaderMap::new(), b"one"),
        AfterResponse::KeepAlive
    );
    assert_eq!(expect_head(&mut conn, &mut buf).target(), "/2");
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::End(None)));
    assert_eq!(
        respond(&mut conn, &mut out, &HeaderMap::new(), b"two"),
        AfterResponse::KeepAlive
    );
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::NeedData));
    let text = String::from_utf8(out.to_vec()).unwrap();
    let first = text.find("3\r\none\r\n").unwrap();
    let second = text.find("3\r\ntwo\r\n").unwrap();
    assert!(first < second, "responses must be in request order");
}

#[test]
fn pipelined_run_all_ways_answers_every_request_in_order() {
    let mut input = Vec::new();
    for i in 0..3 {
        input.extend_from_slice(
            format!("POST /{i} HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n{i}").as_bytes(),
        );
    }
    let t = run_all_ways(&input);
    assert_eq!(heads(&t).len(), 3);
    assert_eq!(body_of(&t), b"012");
    assert_eq!(
        String::from_utf8_lossy(&t.output)
            .matches("HTTP/1.1 200 OK")
            .count(),
        3
    );
}

#[test]
fn http11_keeps_alive_unless_connection_close() {
    let mut conn = ServerConn::new(config());
    let mut out = BytesMut::new();
    let mut buf =
        BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n"[..]);
    let head = expect_head(&mut conn, &mut buf);
    assert!(!head.keep_alive());
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::End(None)));
    assert_eq!(
        respond(&mut conn, &mut out, &HeaderMap::new(), b"x"),
        AfterResponse::Close
    );
    assert!(String::from_utf8_lossy(&out).contains("Connection: close\r\n"));
    assert!(conn.is_closed());
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::Closed));
}

#[test]
fn response_connection_close_closes() {
    let mut conn = ServerConn::new(config());
    let mut out = BytesMut::new();
    let mut buf = BytesMut::from(GET);
    expect_head(&mut conn, &mut buf);
    let mut headers = HeaderMap::new();
    headers.insert(CONNECTION, HeaderValue::from_static("Close"));
    assert_eq!(
        respond(&mut conn, &mut out, &headers, b"x"),
        AfterResponse::Close
    );
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("Connection").count(), 1, "{text}");
}

#[test]
fn http10_closes_by_default() {
    let mut conn = ServerConn::new(config());
    let mut out = BytesMut::new();
    let mut buf = BytesMut::from(&b"GET / HTTP/1.0\r\n\r\n"[..]);
    assert!(!expect_head(&mut conn, &mut buf).keep_alive());
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("1"));
    assert_eq!(
        respond(&mut conn, &mut out, &headers, b"x"),
        AfterResponse::Close
    );
    assert!(String::from_utf8_lossy(&out).contains("Connection: close\r\n"));
}

#[test]
fn http10_keep_alive_needs_a_length_and_says_keep_alive() {
    let req = b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    let mut conn = ServerConn::new(config());
    let mut out = BytesMut::new();
    let mut buf = BytesMut::from(&req[..]);
    assert!(expect_head(&mut conn, &mut buf).keep_alive());
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::End(None)));
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("1"));
    assert_eq!(
        respond(&mut conn, &mut out, &headers, b"x"),
        AfterResponse::KeepAlive
    );
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.contains("Connection: keep-alive\r\n"), "{text}");
    assert!(!text.contains("Transfer-Encoding"), "{text}");

    // Without a length the body is close-delimited: no chunked for HTTP/1.0.
    let mut buf = BytesMut::from(&req[..]);
    let mut out = BytesMut::new();
    expect_head(&mut conn, &mut buf);
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::End(None)));
    assert_eq!(
        respond(&mut conn, &mut out, &HeaderMap::new(), b"xyz"),
        AfterResponse::Close
    );
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(
        text.contains("Connection: close\r\n") && text.ends_with("\r\n\r\nxyz"),
        "{text}"
    );
}

#[test]
fn no_keep_alive_config_forces_close() {
    let mut conn = ServerConn::new(Arc::new(HttpConfig {
        no_keep_alive: true,
        ..HttpConfig::default()
    }));
    let mut out = BytesMut::new();
    let mut buf = BytesMut::from(GET);
    expect_head(&mut conn, &mut buf);
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::End(None)));
    assert_eq!(
        respond(&mut conn, &mut out, &HeaderMap::new(), b"x"),
        AfterResponse::Close
    );
    assert!(String::from_utf8_lossy(&out).contains("Connection: close\r\n"));
}

#[test]
fn response_before_end_of_empty_body_keeps_alive_and_still_reports_end() {
    let mut conn = ServerConn::new(config());
    let mut out = BytesMut::new();
    let mut buf = BytesMut::from(&[GET, GET].concat()[..]);
    expect_head(&mut conn, &mut buf);
    assert_eq!(
        respond(&mut conn, &mut out, &HeaderMap::new(), b"x"),
        AfterResponse::KeepAlive
    );
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::End(None)));
    expect_head(&mut conn, &mut buf);
}

#[test]
fn response_finished_before_body_was_read_closes() {
    let mut conn = ServerConn::new(config());
    let mut out = BytesMut::new();
    let mut buf =
        BytesMut::from(&b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\npartial"[..]);
    expect_head(&mut conn, &mut buf);
    assert_eq!(
        respond(&mut conn, &mut out, &HeaderMap::new(), b"early"),
        AfterResponse::Close
    );
    assert!(conn.is_closed());
}

// ----- 100-continue ------------------------------------------------------------------------

const EXPECT: &[u8] =
    b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";

#[test]
fn continue_is_sent_only_when_the_body_is_accepted() {
    let mut conn = ServerConn::new(config());
    let mut out = BytesMut::new();
    let mut buf = BytesMut::from(EXPECT);
    let head = expect_head(&mut conn, &mut buf);
    assert!(head.expect_continue());
    assert!(conn.expects_continue());
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::NeedData));
    assert!(
        out.is_empty(),
        "no 100 before the application asks for the body"
    );
    assert!(conn.accept_body(&mut out));
    assert_eq!(&out[..], b"HTTP/1.1 100 Continue\r\n\r\n");
    assert!(!conn.accept_body(&mut out), "100 is sent once");
    buf.extend_from_slice(b"hello");
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::Data(_)));
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::End(None)));
    assert_eq!(
        respond(&mut conn, &mut out, &HeaderMap::new(), b"ok"),
        AfterResponse::KeepAlive
    );
}

#[test]
fn continue_is_not_sent_after_the_response_started_and_the_connection_closes() {
    let mut conn = ServerConn::new(config());
    let mut out = BytesMut::new();
    let mut buf = BytesMut::from(EXPECT);
    expect_head(&mut conn, &mut buf);
    conn.send_response(StatusCode::FORBIDDEN, &HeaderMap::new(), None, &mut out)
        .unwrap();
    assert!(!conn.accept_body(&mut out));
    assert_eq!(conn.send_end(&mut out), Ok(AfterResponse::Close));
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains("100 Continue"));
    assert!(text.contains("Connection: close\r\n"));
}

#[test]
fn continue_is_not_sent_when_the_declared_body_is_too_large() {
    let mut conn = ServerConn::new(Arc::new(HttpConfig {
        max_body_size: 4,
        ..HttpConfig::default()
    }));
    let mut out = BytesMut::new();
    let mut buf = BytesMut::from(EXPECT);
    expect_head(&mut conn, &mut buf);
    assert!(!conn.accept_body(&mut out));
    assert!(matches!(
        conn.poll_event(&mut buf),
        ServerEvent::Error(RequestError::BodyTooLarge { limit: 4 })
    ));
}

#[test]
fn expect_continue_is_ignored_on_http10() {
    let mut conn = ServerConn::new(config());
    let mut buf = BytesMut::from(
        &b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"[..],
    );
    assert!(!expect_head(&mut conn, &mut buf).expect_continue());
    assert!(!conn.accept_body(&mut BytesMut::new()));
}

// ----- response framing --------------------------------------------------------------------

fn one_response(
    request: &[u8],
    status: StatusCode,
    headers: HeaderMap,
    body: &'static [u8],
) -> (String, Result<AfterResponse, SendError>) {
    let mut conn = ServerConn::new(config());
    let mut buf = BytesMut::from(request);
    let mut out = BytesMut::new();
    expect_head(&mut conn, &mut buf);
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::End(None)));
    conn.send_response(status, &headers, None, &mut out)
        .unwrap();
    let sent = conn.send_data(Bytes::from_static(body), &mut out);
    let end = sent.and_then(|()| conn.send_end(&mut out));
    (String::from_utf8(out.to_vec()).unwrap(), end)
}

#[test]
fn unknown_length_on_http11_is_chunked() {
    let (text, end) = one_response(GET, StatusCode::OK, HeaderMap::new(), b"hello");
    assert_eq!(text, "HTTP/1.1 200 OK\r\nServer: eddy\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    assert_eq!(end, Ok(AfterResponse::KeepAlive));
}

#[test]
fn head_response_keeps_content_length_and_sends_no_body() {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("5"));
    let (text, end) = one_response(
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
        StatusCode::OK,
        headers,
        b"hello",
    );
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nServer: eddy\r\n\r\n"
    );
    assert_eq!(end, Ok(AfterResponse::KeepAlive));
}

#[test]
fn no_content_and_not_modified_get_no_framing_headers_and_no_body() {
    let (text, end) = one_response(GET, StatusCode::NO_CONTENT, HeaderMap::new(), b"");
    assert_eq!(text, "HTTP/1.1 204 No Content\r\nServer: eddy\r\n\r\n");
    assert_eq!(end, Ok(AfterResponse::KeepAlive));
    let (text, _) = one_response(GET, StatusCode::NOT_MODIFIED, HeaderMap::new(), b"");
    assert_eq!(text, "HTTP/1.1 304 Not Modified\r\nServer: eddy\r\n\r\n");
    let (_, end) = one_response(GET, StatusCode::NO_CONTENT, HeaderMap::new(), b"body");
    assert_eq!(end, Err(SendError::BodyNotAllowed(StatusCode::NO_CONTENT)));
}

#[test]
fn content_length_mismatch_is_an_error_and_short_bodies_close() {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("3"));
    let (_, end) = one_response(GET, StatusCode::OK, headers.clone(), b"toolong");
    assert_eq!(end, Err(SendError::BodyTooLong { declared: 3 }));
    let mut conn = ServerConn::new(config());
    let mut buf = BytesMut::from(GET);
    let mut out = BytesMut::new();
    expect_head(&mut conn, &mut buf);
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::End(None)));
    conn.send_response(StatusCode::OK, &headers, None, &mut out)
        .unwrap();
    conn.send_data(Bytes::from_static(b"ab"), &mut out).unwrap();
    assert_eq!(
        conn.send_end(&mut out),
        Err(SendError::BodyTooShort { missing: 1 })
    );
    assert!(conn.is_closed());
}

#[test]
fn invalid_response_framing_headers_are_refused() {
    let mut conn = ServerConn::new(config());
    let mut buf = BytesMut::from(GET);
    let mut out = BytesMut::new();
    expect_head(&mut conn, &mut buf);
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("-1"));
    assert_eq!(
        conn.send_response(StatusCode::OK, &headers, None, &mut out),
        Err(SendError::InvalidContentLength)
    );
    let mut headers = HeaderMap::new();
    headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("gzip"));
    assert_eq!(
        conn.send_response(StatusCode::OK, &headers, None, &mut out),
        Err(SendError::UnsupportedTransferEncoding)
    );
    assert!(out.is_empty());
}

#[test]
fn date_and_server_headers_are_added_unless_set() {
    let mut conn = ServerConn::new(config());
    let mut buf = BytesMut::from(GET);
    let mut out = BytesMut::new();
    expect_head(&mut conn, &mut buf);
    let date = HttpDate::from_unix_secs(784_111_777);
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    conn.send_response(StatusCode::OK, &headers, Some(&date), &mut out)
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(
        text.contains("Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"),
        "{text}"
    );
    assert!(text.contains("Server: eddy\r\n"));

    let mut headers = HeaderMap::new();
    headers.insert(DATE, HeaderValue::from_static("custom"));
    headers.insert(http::header::SERVER, HeaderValue::from_static("other"));
    let (text, _) = one_response(GET, StatusCode::OK, headers, b"");
    assert!(
        !text.contains("Server: eddy") && text.contains("server: other"),
        "{text}"
    );
}

#[test]
fn send_calls_out_of_order_are_errors() {
    let mut conn = ServerConn::new(config());
    let mut out = BytesMut::new();
    assert_eq!(
        conn.send_response(StatusCode::OK, &HeaderMap::new(), None, &mut out),
        Err(SendError::NotReady)
    );
    assert_eq!(
        conn.send_data(Bytes::new(), &mut out),
        Err(SendError::NoResponseStarted)
    );
    assert_eq!(conn.send_end(&mut out), Err(SendError::NoResponseStarted));
    let mut buf = BytesMut::from(GET);
    expect_head(&mut conn, &mut buf);
    conn.send_response(StatusCode::OK, &HeaderMap::new(), None, &mut out)
        .unwrap();
    assert_eq!(
        conn.send_response(StatusCode::OK, &HeaderMap::new(), None, &mut out),
        Err(SendError::NotReady)
    );
}

#[test]
fn informational_response_then_final_response() {
    let mut conn = ServerConn::new(config());
    let mut buf = BytesMut::from(GET);
    let mut out = BytesMut::new();
    expect_head(&mut conn, &mut buf);
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::End(None)));
    conn.send_response(
        StatusCode::from_u16(103).unwrap(),
        &HeaderMap::new(),
        None,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        respond(&mut conn, &mut out, &HeaderMap::new(), b""),
        AfterResponse::KeepAlive
    );
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{text}"
    );
}

#[test]
fn switching_protocols_hands_the_buffer_over() {
    let mut conn = ServerConn::new(config());
    let mut buf = BytesMut::from(&b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00"[..]);
    let mut out = BytesMut::new();
    expect_head(&mut conn, &mut buf);
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::End(None)));
    let mut headers = HeaderMap::new();
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    conn.send_response(StatusCode::SWITCHING_PROTOCOLS, &headers, None, &mut out)
        .unwrap();
    assert!(conn.is_upgraded());
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::Upgraded));
    assert_eq!(&buf[..], b"\x81\x00");
    assert_eq!(
        &out[..],
        b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\n\r\n"
    );
}

// ----- time-outs ---------------------------------------------------------------------------

#[test]
fn read_timeout_follows_idle_header_body_phases() {
    let config = Arc::new(HttpConfig {
        header_timeout: Some(std::time::Duration::from_secs(5)),
        body_timeout: Some(std::time::Duration::from_secs(7)),
        ..HttpConfig::default()
    });
    let mut conn = ServerConn::new(config);
    let mut buf = BytesMut::new();
    let idle = conn.read_timeout().unwrap();
    assert_eq!((idle.kind, idle.after.as_secs()), (TimeoutKind::Idle, 3600));
    buf.extend_from_slice(b"POST / HTTP/1.1\r\n");
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::NeedData));
    let header = conn.read_timeout().unwrap();
    assert_eq!(
        (header.kind, header.after.as_secs()),
        (TimeoutKind::Header, 5)
    );
    assert_ne!(header.phase, idle.phase);
    buf.extend_from_slice(b"Host: a\r\nContent-Length: 2\r\n\r\n");
    expect_head(&mut conn, &mut buf);
    let body = conn.read_timeout().unwrap();
    assert_eq!((body.kind, body.after.as_secs()), (TimeoutKind::Body, 7));
    assert!(
        !conn.handle_timeout(header.phase),
        "a stale time-out is a no-op"
    );
    buf.extend_from_slice(b"ab");
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::Data(_)));
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::End(None)));
    assert_eq!(
        conn.read_timeout(),
        None,
        "no read time-out while the application answers"
    );
    let mut out = BytesMut::new();
    respond(&mut conn, &mut out, &HeaderMap::new(), b"");
    let next = conn.read_timeout().unwrap();
    assert_eq!(next.kind, TimeoutKind::Idle);
    assert!(conn.handle_timeout(next.phase));
    assert!(conn.is_closed());
    assert!(matches!(conn.poll_event(&mut buf), ServerEvent::Closed));
}

// ----- head details ------------------------------------------------------------------------

#[test]
fn head_fields_share_the_read_buffer_and_framing_is_reported() {
    let mut conn = ServerConn::new(config());
    let mut buf = BytesMut::from(&b"PUT /x?y=1 HTTP/1.1\r\nHost: h\r\nX-Multi: 1\r\nX-Multi: 2\r\nTransfer-Encoding: chunked\r\n\r\n"[..]);
    let head = expect_head(&mut conn, &mut buf);
    assert_eq!(head.method(), Method::PUT);
    assert_eq!(head.version(), Version::HTTP_11);
    assert_eq!(head.path(), "/x");
    assert_eq!(head.query(), Some("y=1"));
    assert_eq!(head.framing(), BodyFraming::Chunked);
    assert_eq!(
        head.header_all("x-multi").collect::<Vec<_>>(),
        [&b"1"[..], b"2"]
    );
    let start = buf.as_ptr() as usize;
    let value = head.header("host").unwrap().as_ptr() as usize;
    assert!(
        value < start && start - value < 128,
        "the value is not a copy"
    );
    assert!(buf.is_empty());
}

// ----- pre-built header blocks --------------------------------------------------------------

/// One response to `request` with `fields` given as a map and as a block: the bytes.
fn response_both_ways(request: &[u8], status: StatusCode, fields: &HeaderMap) -> [Vec<u8>; 2] {
    let date = HttpDate::from_unix_secs(1_700_000_000);
    let block = HeaderBlock::new(fields.clone());
    let mut outs = [Vec::new(), Vec::new()];
    for (i, out) in outs.iter_mut().enumerate() {
        let mut conn = ServerConn::new(config());
        let mut buf = BytesMut::from(request);
        let _ = expect_head(&mut conn, &mut buf);
        assert!(matches!(conn.poll_event(&mut buf), ServerEvent::End(None)));
        let body = Bytes::from_static(b"hello");
        let result = if i == 0 {
            conn.send_full_response(status, fields, body, Some(&date), out)
        } else {
            conn.send_full_response(status, &block, body, Some(&date), out)
        };
        let _ = result;
    }
    outs
}

#[test]
fn header_block_writes_the_same_head_as_the_map_it_was_built_from() {
    let mut fields = HeaderMap::new();
    fields.insert("content-type", HeaderValue::from_static("text/plain"));
    fields.append("x-multi", HeaderValue::from_static("1"));
    fields.append("x-multi", HeaderValue::from_static("2"));
    fields.insert(CONNECTION, HeaderValue::from_static("close"));
    let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let head = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
    let old = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    for request in [&get[..], head, old] {
        for status in [
            StatusCode::OK,
            StatusCode::NO_CONTENT,
            StatusCode::IM_A_TEAPOT,
        ] {
            let [map, block] = response_both_ways(request, status, &fields);
            assert_eq!(
                String::from_utf8_lossy(&map),
                String::from_utf8_lossy(&block)
            );
            assert!(map.windows(17).any(|w| w == b"Connection: close"));
        }
    }
    // Framing fields the application set: a 204 drops them, from a block too.
    fields.remove(CONNECTION);
    fields.insert(CONTENT_LENGTH, HeaderValue::from_static("5"));
    fields.insert(
        DATE,
        HeaderValue::from_static("Tue, 14 Nov 2023 22:13:20 GMT"),
    );
    for status in [StatusCode::OK, StatusCode::NO_CONTENT] {
        let [map, block] = response_both_ways(get, status, &fields);
        assert_eq!(
            String::from_utf8_lossy(&map),
            String::from_utf8_lossy(&block)
        );
        let has_length = map.windows(15).any(|w| w == b"content-length:");
        assert_eq!(has_length, status == StatusCode::OK);
    }
}
