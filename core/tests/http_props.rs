//! Property: valid pipelined requests, split anywhere, give the same events as unsplit and
//! as a simple model; the responses the machine writes read back through
//! `httparse::Response` with the headers we asked for and the bodies we sent.

use std::str::FromStr;
use std::sync::Arc;

use bytes::BytesMut;
use eddy_core::http::fuzz_entry::{drive, Ev};
use eddy_core::http::{ChunkedDecoder, Decoded, HttpConfig};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Version};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Body {
    None,
    Length(Vec<u8>),
    Chunked(Vec<u8>, Vec<usize>, bool),
}

#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    target: String,
    fields: Vec<(String, String)>,
    body: Body,
}

fn req_strategy() -> impl Strategy<Value = Req> {
    let method = prop::sample::select(vec![
        "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND",
    ]);
    let target = (
        "(/[a-z0-9._~-]{0,6}){1,3}",
        prop::option::of("[a-z0-9=&%]{0,12}"),
    )
        .prop_map(|(p, q)| match q {
            Some(q) => format!("{p}?{}", q.replace('%', "%25")),
            None => p,
        });
    let fields = prop::collection::vec(("x-[a-z]{1,8}", "[!-~]([ !-~]{0,20}[!-~])?"), 0..5);
    let body = prop_oneof![
        Just(Body::None),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Body::Length),
        (
            prop::collection::vec(any::<u8>(), 0..200),
            prop::collection::vec(1usize..50, 1..8),
            any::<bool>()
        )
            .prop_map(|(b, sizes, ext)| Body::Chunked(b, sizes, ext)),
    ];
    (method, target, fields, body).prop_map(|(method, target, fields, body)| Req {
        method,
        target,
        fields,
        body,
    })
}

fn body_bytes(req: &Req) -> &[u8] {
    match &req.body {
        Body::None => b"",
        Body::Length(b) | Body::Chunked(b, _, _) => b,
    }
}

/// Serialises the request and returns the header map the machine should report.
fn serialise(req: &Req, wire: &mut Vec<u8>) -> HeaderMap {
    let mut map = HeaderMap::new();
    let mut field = |wire: &mut Vec<u8>, name: &str, value: &str| {
        wire.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        map.append(
            HeaderName::from_str(name).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    };
    wire.extend_from_slice(format!("{} {} HTTP/1.1\r\n", req.method, req.target).as_bytes());
    field(wire, "Host", "example.com");
    for (n, v) in &req.fields {
        field(wire, n, v);
    }
    match &req.body {
        Body::None => {}
        Body::Length(b) => field(wire, "Content-Length", &b.len().to_string()),
        Body::Chunked(..) => field(wire, "Transfer-Encoding", "chunked"),
    }
    wire.extend_from_slice(b"\r\n");
    match &req.body {
        Body::None => {}
        Body::Length(b) => wire.extend_from_slice(b),
        Body::Chunked(b, sizes, ext) => {
            let mut start = 0;
            for &size in sizes.iter().cycle() {
                if start >= b.len() {
                    break;
                }
                let end = (start + size).min(b.len());
                let size_text = if *ext {
                    format!("{:X};name=value", end - start)
                } else {
                    format!("{:x}", end - start)
                };
                wire.extend_from_slice(format!("{size_text}\r\n").as_bytes());
                wire.extend_from_slice(&b[start..end]);
                wire.extend_from_slice(b"\r\n");
                start = end;
            }
            wire.extend_from_slice(b"0\r\n\r\n");
        }
    }
    map
}

fn model_events(req: &Req, map: &HeaderMap) -> Vec<Ev> {
    let mut text = format!("{} {} {:?}", req.method, req.target, Version::HTTP_11);
    for (n, v) in map {
        text.push_str(&format!(" {}={:?}", n, v));
    }
    let mut events = vec![Ev::Head(text)];
    if !body_bytes(req).is_empty() {
        events.push(Ev::Data(body_bytes(req).to_vec()));
    }
    events.push(Ev::End(None));
    events
}

/// Reads the responses back: status, the headers we set, framing, and de-chunked bodies.
fn check_responses(reqs: &[Req], mut out: &[u8]) -> Result<(), TestCaseError> {
    for (i, req) in reqs.iter().enumerate() {
        let mut fields = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut fields);
        let n = match resp.parse(out) {
            Ok(httparse::Status::Complete(n)) => n,
            other => {
                return Err(TestCaseError::fail(format!(
                    "response {i} does not parse: {other:?}"
                )))
            }
        };
        prop_assert_eq!(resp.code, Some(200));
        prop_assert_eq!(resp.version, Some(1));
        let get = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value.to_vec())
        };
        prop_assert_eq!(
            get("content-type"),
            Some(b"application/octet-stream".to_vec())
        );
        prop_assert_eq!(get("server"), Some(b"eddy".to_vec()));
        prop_assert_eq!(get("connection"), None);
        let expected = body_bytes(req);
        out = &out[n..];
        if i % 2 == 0 {
            prop_assert_eq!(
                get("content-length"),
                Some(expected.len().to_string().into_bytes())
            );
            prop_assert_eq!(get("transfer-encoding"), None);
            prop_assert_eq!(&out[..expected.len()], expected);
            out = &out[expected.len()..];
        } else {
            prop_assert_eq!(get("transfer-encoding"), Some(b"chunked".to_vec()));
            let mut buf = BytesMut::from(out);
            let mut dec = ChunkedDecoder::new(64, 64);
            let mut body = Vec::new();
            loop {
                match dec.decode(&mut buf, u64::MAX) {
                    Ok(Decoded::Data(d)) => body.extend_from_slice(&d),
                    Ok(Decoded::End(None)) => break,
                    other => {
                        return Err(TestCaseError::fail(format!(
                            "bad chunked response: {other:?}"
                        )))
                    }
                }
            }
            prop_assert_eq!(&body[..], expected);
            out = &out[out.len() - buf.len()..];
        }
    }
    prop_assert!(out.is_empty(), "unexpected trailing output");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn pipelined_requests_split_anywhere_match_the_model_and_responses_read_back(
        reqs in prop::collection::vec(req_strategy(), 1..5),
        sizes in prop::collection::vec(1usize..40, 1..6),
    ) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for req in &reqs {
            let map = serialise(req, &mut wire);
            expected.extend(model_events(req, &map));
        }
        expected.push(Ev::Closed);
        let config = Arc::new(HttpConfig::default());
        let whole = drive(&config, &wire, &[wire.len()]);
        let split = drive(&config, &wire, &sizes);
        prop_assert_eq!(&whole, &split);
        prop_assert_eq!(&whole.events, &expected);
        prop_assert_eq!(whole.leftover, 0);
        check_responses(&reqs, &whole.output)?;
    }

    #[test]
    fn chunked_decoding_is_independent_of_input_splits(
        body in prop::collection::vec(any::<u8>(), 0..300),
        chunk_sizes in prop::collection::vec(1usize..64, 1..8),
        split_sizes in prop::collection::vec(1usize..20, 1..6),
    ) {
        let req = Req { method: "POST", target: "/".into(), fields: vec![], body: Body::Chunked(body.clone(), chunk_sizes, true) };
        let mut wire = Vec::new();
        serialise(&req, &mut wire);
        let start = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let (decoded, outcome) = eddy_core::http::fuzz_entry::decode_chunked(&wire[start..], &split_sizes, u64::MAX);
        prop_assert_eq!(decoded, body);
        prop_assert_eq!(outcome, Ok(0));
    }
}
