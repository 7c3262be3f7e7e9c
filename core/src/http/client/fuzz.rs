//! Fuzz entry for the response parser (`fuzz/fuzz_targets/http_response.rs`), also replayed
//! over the committed corpus by `cargo test`: split and whole parsing must agree, never panic.

use bytes::BytesMut;
use http::{HeaderMap, Method};

use super::conn::{ClientConn, ClientConnConfig, ClientEvent, RequestBody, RequestLine};
use crate::http::fuzz_entry::split_sizes;

/// One observable step of a client connection, with body data merged per response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A request was sent (GET or HEAD).
    Sent(Method),
    /// A final response head: status and header count.
    Head(u16, usize),
    /// Body bytes since the head.
    Body(Vec<u8>),
    /// The response ended; whether the connection is reusable.
    End(bool),
    /// The response failed (error message).
    Error(String),
}

/// Small limits so the fuzzer reaches them.
pub fn fuzz_config() -> ClientConnConfig {
    ClientConnConfig {
        max_header_size: 512,
        max_body_size: 4096,
        max_chunk_line_size: 64,
        max_trailer_size: 256,
        max_informational: 4,
    }
}

/// Feeds `input` to a client connection in pieces of `sizes` (cycled), sending a new
/// request whenever the previous response ended on a reusable connection, then end of file.
/// `methods` picks GET or HEAD per request. Returns the steps.
pub fn drive(input: &[u8], sizes: &[usize], methods: &[u8]) -> Vec<Step> {
    let mut conn = ClientConn::new(fuzz_config());
    let mut steps = Vec::new();
    let mut buf = BytesMut::new();
    let mut pos = 0;
    let mut turn = 0;
    let mut requests = 0usize;
    let headers = HeaderMap::new();
    let send = |conn: &mut ClientConn, steps: &mut Vec<Step>, requests: &mut usize| {
        let head = methods
            .get(*requests % methods.len().max(1))
            .is_some_and(|b| b & 1 == 1);
        let method = if head { Method::HEAD } else { Method::GET };
        *requests += 1;
        let line = RequestLine {
            method: &method,
            target: "/",
            host: "fuzz",
            headers: &headers,
            body: RequestBody::Empty,
            keep_alive: true,
        };
        conn.send_request(&line, &mut Vec::new())
            .expect("a reusable connection accepts a request");
        steps.push(Step::Sent(method));
    };
    send(&mut conn, &mut steps, &mut requests);
    // Every iteration consumes input or ends the run, so the loop is bounded.
    for _ in 0..(input.len() * 4 + 64) {
        let mut progressed = false;
        loop {
            match conn.poll_event(&mut buf) {
                ClientEvent::Head(h) => {
                    steps.push(Step::Head(h.status.as_u16(), h.headers.len()));
                    steps.push(Step::Body(Vec::new()));
                }
                ClientEvent::Data(d) => {
                    assert!(!d.is_empty(), "empty Data event");
                    match steps.last_mut() {
                        Some(Step::Body(b)) => b.extend_from_slice(&d),
                        _ => panic!("Data without Head"),
                    }
                }
                ClientEvent::End(_) => {
                    steps.push(Step::End(conn.can_reuse()));
                    if conn.can_reuse() && requests < 8 {
                        send(&mut conn, &mut steps, &mut requests);
                    } else {
                        return steps;
                    }
                }
                ClientEvent::Error(e) => {
                    steps.push(Step::Error(e.to_string()));
                    return steps;
                }
                ClientEvent::NeedData | ClientEvent::Idle => break,
            }
        }
        if pos < input.len() {
            let n = sizes[turn % sizes.len()].min(input.len() - pos);
            turn += 1;
            buf.extend_from_slice(&input[pos..pos + n]);
            pos += n;
            progressed = true;
        } else if !conn_eof(&mut conn) {
            progressed = true;
        }
        if !progressed {
            return steps;
        }
    }
    panic!("client connection did not settle");
}

/// Hands in end of file once; false if it was already handed in.
fn conn_eof(conn: &mut ClientConn) -> bool {
    if conn.eof_seen() {
        return true;
    }
    conn.handle_eof();
    false
}

/// Fuzz target `http_response`: arbitrary response bytes in arbitrary splits give the same
/// steps as the whole input, and never panic.
pub fn http_response(data: &[u8]) {
    let (methods, rest) = match data.split_first() {
        Some((&m, rest)) => (vec![m, m >> 1, m >> 2, m >> 3], rest),
        None => (vec![0], data),
    };
    let (sizes, input) = split_sizes(rest);
    let whole = drive(input, &[input.len().max(1)], &methods);
    let split = drive(input, &sizes, &methods);
    assert_eq!(whole, split, "split run differs from whole run");
    let bytewise = drive(input, &[1], &methods);
    assert_eq!(whole, bytewise, "byte-at-a-time run differs from whole run");
}
