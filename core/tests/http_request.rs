//! `Request`: query and body arguments, cookies, host, xheaders and gzip bodies.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use eddy_core::http::{HttpConfig, Protocol, Request, RequestError, ServerConn, ServerEvent};

const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 5555);

fn request_with(config: &HttpConfig, raw: &[u8]) -> Request {
    request_from(config, raw, PEER)
}

fn request_from(config: &HttpConfig, raw: &[u8], peer: SocketAddr) -> Request {
    let mut conn = ServerConn::new(Arc::new(config.clone()));
    let mut buf = BytesMut::from(raw);
    let ServerEvent::Head(head) = conn.poll_event(&mut buf) else {
        panic!("no head")
    };
    let mut request = Request::new(head, peer, false, config);
    let mut body = BytesMut::new();
    loop {
        match conn.poll_event(&mut buf) {
            ServerEvent::Data(d) => body.extend_from_slice(&d),
            ServerEvent::End(_) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    request.set_body(body.freeze(), config).unwrap();
    request
}

fn request(raw: &[u8]) -> Request {
    request_with(&HttpConfig::default(), raw)
}

#[test]
fn path_query_and_query_arguments() {
    let r = request(b"GET /a%20b/c+d?x=1&y=%E2%9C%93&x=2&flag HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(r.path(), "/a%20b/c+d");
    assert_eq!(r.decoded_path(), "/a b/c+d");
    assert_eq!(r.query(), "x=1&y=%E2%9C%93&x=2&flag");
    assert_eq!(r.target(), "/a%20b/c+d?x=1&y=%E2%9C%93&x=2&flag");
    let q = r.query_arguments();
    assert_eq!(q.get_all("x").collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(q.get_str("y").unwrap(), "✓");
    assert_eq!(q.get("flag").unwrap(), "");
}

#[test]
fn invalid_utf8_in_path_and_query_does_not_panic() {
    let r = request(b"GET /%FF%00?%FF=%FE HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(r.decoded_path(), "/\u{fffd}\0");
    assert_eq!(
        r.query_arguments().get("\u{fffd}").unwrap().as_ref(),
        b"\xfe"
    );
}

#[test]
fn host_comes_from_absolute_target_then_host_header() {
    let r = request(b"GET http://example.com:81/x HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(r.host(), "example.com:81");
    assert_eq!(r.host_name(), "example.com");
    assert_eq!(r.path(), "/x");
    assert_eq!(r.full_url(), "http://example.com:81/x");
    let r = request(b"GET /y HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
    assert_eq!(r.host_name(), "[::1]");
    assert_eq!(r.full_url(), "http://[::1]:8080/y");
    let r = request(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.host(), "127.0.0.1");
}

#[test]
fn cookies_are_parsed_leniently() {
    let r = request(
        b"GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1; b=\"two\";  c = 3 ;junk\r\nCookie: a=4\r\n\r\n",
    );
    let all: Vec<_> = r.cookies().collect();
    assert_eq!(
        all,
        [
            ("a", "1"),
            ("b", "two"),
            ("c", "3"),
            ("", "junk"),
            ("a", "4")
        ]
    );
    assert_eq!(r.cookie("a"), Some("4"));
    assert_eq!(r.cookie("zz"), None);
}

#[test]
fn remote_ip_ignores_forwarding_headers_without_xheaders() {
    let r = request(
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\nX-Scheme: https\r\n\r\n",
    );
    assert_eq!(r.remote_ip(), PEER.ip());
    assert_eq!(r.protocol(), Protocol::Http);
}

#[test]
fn xheaders_take_last_untrusted_forwarded_for_hop() {
    let config = HttpConfig {
        xheaders: true,
        // The proxy the request comes through, and one further in.
        trusted_downstream: vec![PEER.ip(), "192.168.0.1".parse().unwrap()],
        ..HttpConfig::default()
    };
    let r = request_with(&config, b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 192.168.0.1\r\nX-Forwarded-Proto: http, https\r\n\r\n");
    assert_eq!(r.remote_ip(), "2.2.2.2".parse::<IpAddr>().unwrap());
    assert_eq!(r.protocol(), Protocol::Https);
    let r = request_with(&config, b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\nX-Real-IP: 3.3.3.3\r\nX-Scheme: https\r\n\r\n");
    assert_eq!(r.remote_ip(), "3.3.3.3".parse::<IpAddr>().unwrap());
    assert_eq!(r.protocol(), Protocol::Https);
    let r = request_with(
        &config,
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Real-IP: not-an-ip\r\nX-Scheme: gopher\r\n\r\n",
    );
    assert_eq!(r.remote_ip(), PEER.ip());
    assert_eq!(r.protocol(), Protocol::Http);
}

#[test]
fn with_listed_proxies_only_they_may_set_the_client_address() {
    let config = HttpConfig {
        xheaders: true,
        trusted_downstream: vec!["10.9.9.9".parse().unwrap()],
        ..HttpConfig::default()
    };
    let forged =
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\r\n";
    // A client connecting directly: its forged headers are ignored.
    let r = request_with(&config, forged);
    assert_eq!(r.remote_ip(), PEER.ip());
    assert_eq!(r.protocol(), Protocol::Http);
    // The listed proxy, or a local process on a unix socket (peer 0.0.0.0), is believed.
    for proxy in ["10.9.9.9:4000", "0.0.0.0:0"] {
        let r = request_from(&config, forged, proxy.parse().unwrap());
        assert_eq!(
            r.remote_ip(),
            "6.6.6.6".parse::<IpAddr>().unwrap(),
            "{proxy}"
        );
        assert_eq!(r.protocol(), Protocol::Https);
    }
    // Without a list, every peer is believed (Tornado's `xheaders`).
    let open = HttpConfig {
        xheaders: true,
        ..HttpConfig::default()
    };
    assert_eq!(
        request_with(&open, forged).remote_ip(),
        "6.6.6.6".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn urlencoded_body_arguments() {
    let r = request(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nContent-Length: 13\r\n\r\na=1&b=x+y&a=2");
    let form = r.form().unwrap();
    assert_eq!(form.arguments.get_all("a").collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(form.arguments.get("b").unwrap(), "x y");
}

#[test]
fn multipart_body_fields_and_files() {
    let body = b"--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n--b\r\nContent-Disposition: form-data; name=\"up\"; filename=\"x.bin\"\r\n\r\n\x00\x01\r\n--b--\r\n";
    let mut raw = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    raw.extend_from_slice(body);
    let form = request(&raw).form().unwrap();
    assert_eq!(form.arguments.get("f").unwrap(), "v");
    assert_eq!(form.files[0].0, "up");
    assert_eq!(form.files[0].1.filename, "x.bin");
    assert_eq!(form.files[0].1.content_type, "application/unknown");
    assert_eq!(form.files[0].1.body.as_ref(), b"\x00\x01");
}

#[test]
fn malformed_multipart_is_an_error() {
    let raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 9\r\n\r\n--b\r\nnope";
    assert!(matches!(request(raw).form(), Err(RequestError::BadForm(_))));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn gzip_request(config: &HttpConfig, plain: &[u8]) -> (Request, Bytes) {
    let gz = gzip(plain);
    let mut conn = ServerConn::new(Arc::new(config.clone()));
    let mut raw = format!(
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        gz.len()
    )
    .into_bytes();
    raw.extend_from_slice(&gz);
    let mut buf = BytesMut::from(&raw[..]);
    let ServerEvent::Head(head) = conn.poll_event(&mut buf) else {
        panic!()
    };
    (Request::new(head, PEER, true, config), Bytes::from(gz))
}

#[test]
fn gzip_body_is_decompressed_when_enabled() {
    let config = HttpConfig {
        decompress_request: true,
        ..HttpConfig::default()
    };
    let (mut r, gz) = gzip_request(&config, b"a=1&b=2");
    r.set_body(gz, &config).unwrap();
    assert_eq!(r.body(), "a=1&b=2");
    assert!(r.header("content-encoding").is_none());
    assert_eq!(r.header("x-consumed-content-encoding"), Some(&b"gzip"[..]));
    assert_eq!(r.header("Content-Length"), Some(&b"7"[..]));
    assert_eq!(r.header_map()["content-length"], "7");
    assert!(r
        .headers()
        .any(|(n, v)| n == "x-consumed-content-encoding" && v == b"gzip"));
    assert_eq!(r.protocol(), Protocol::Https);
}

#[test]
fn gzip_body_is_kept_when_disabled() {
    let config = HttpConfig::default();
    let (mut r, gz) = gzip_request(&config, b"a=1");
    r.set_body(gz.clone(), &config).unwrap();
    assert_eq!(r.body(), &gz);
}

#[test]
fn gzip_bomb_is_413() {
    let config = HttpConfig {
        decompress_request: true,
        max_body_size: 64 * 1024,
        ..HttpConfig::default()
    };
    let (mut r, gz) = gzip_request(&config, &vec![0u8; 10 * 1024 * 1024]);
    assert!(gz.len() < 64 * 1024);
    let err = r.set_body(gz, &config).unwrap_err();
    assert_eq!(err, RequestError::BodyTooLarge { limit: 64 * 1024 });
    assert_eq!(err.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn corrupt_gzip_is_400() {
    let config = HttpConfig {
        decompress_request: true,
        ..HttpConfig::default()
    };
    let (mut r, _) = gzip_request(&config, b"x");
    let err = r
        .set_body(Bytes::from_static(b"\x1f\x8bgarbage"), &config)
        .unwrap_err();
    assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
}
