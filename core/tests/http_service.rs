//! HttpServer on the scripted FakeNet driver: the connection cycle around `ServerConn`.

use bytes::Bytes;
use eddy_core::http::{HttpConfig, HttpServer, Request, Responder};
use eddy_core::testing::FakeNet;
use eddy_core::{Duration, IoLoop, ListenOptions, StreamId};
use http::{HeaderMap, StatusCode};
use std::net::SocketAddr;

fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// Echoes method, target and body length; `/slow` answers after a (virtual) second.
fn app(io: &mut IoLoop, req: Request, resp: Responder) {
    let body = format!("{} {} {}", req.method(), req.target(), req.body().len());
    if req.path() == "/slow" {
        io.call_later(Duration::from_secs(1), move |io| {
            resp.respond(io, StatusCode::OK, &HeaderMap::new(), body)
                .unwrap();
        });
    } else if req.path() == "/drop" {
        drop(resp);
    } else if req.path() == "/stream" {
        let mut resp = resp;
        resp.start(io, StatusCode::OK, &HeaderMap::new()).unwrap();
        resp.write(io, Bytes::from_static(b"part1,")).unwrap();
        resp.write(io, Bytes::from_static(b"part2")).unwrap();
        resp.finish(io).unwrap();
    } else {
        resp.respond(io, StatusCode::OK, &HeaderMap::new(), body)
            .unwrap();
    }
}

fn serve(config: HttpConfig) -> (IoLoop, FakeNet, HttpServer, StreamId) {
    let mut io = IoLoop::default();
    let mut net = FakeNet::new();
    let server = HttpServer::with_config(config, app);
    let l = server.listen(&mut io, addr(80), ListenOptions::default());
    net.step(&mut io);
    let id = net.accept(&mut io, l, addr(5000));
    (io, net, server, id)
}

/// One parsed response: status, body, headers (lower-cased names).
type Parsed = (u16, String, Vec<(String, String)>);

/// Splits a byte stream of responses into parsed responses using httparse.
fn responses(mut bytes: &[u8]) -> Vec<Parsed> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut headers);
        let n = match r.parse(bytes).expect("valid response") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => {
                panic!("partial response: {:?}", String::from_utf8_lossy(bytes))
            }
        };
        let code = r.code.unwrap();
        let hs: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).to_string(),
                )
            })
            .collect();
        let get = |name: &str| hs.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        bytes = &bytes[n..];
        let body = if let Some(len) = get("content-length") {
            let len: usize = len.parse().unwrap();
            let b = String::from_utf8_lossy(&bytes[..len]).to_string();
            bytes = &bytes[len..];
            b
        } else if get("transfer-encoding").as_deref() == Some("chunked") {
            let mut body = String::new();
            loop {
                let line_end = bytes.windows(2).position(|w| w == b"\r\n").unwrap();
                let size =
                    usize::from_str_radix(std::str::from_utf8(&bytes[..line_end]).unwrap(), 16)
                        .unwrap();
                bytes = &bytes[line_end + 2..];
                body.push_str(&String::from_utf8_lossy(&bytes[..size]));
                bytes = &bytes[size + 2..];
                if size == 0 {
                    break;
                }
            }
            body
        } else {
            String::new()
        };
        out.push((code, body, hs));
    }
    out
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let (mut io, mut net, server, id) = serve(HttpConfig::default());
    net.peer_send(id, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    net.run_until_idle(&mut io, false, 1000);
    net.peer_send(
        id,
        b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    );
    net.run_until_idle(&mut io, false, 1000);
    let rs = responses(&net.take_output(id));
    assert_eq!(rs.len(), 2);
    assert_eq!((rs[0].0, rs[0].1.as_str()), (200, "GET /a 0"));
    assert_eq!((rs[1].0, rs[1].1.as_str()), (200, "POST /b 3"));
    assert!(rs[0].2.iter().any(|(n, _)| n == "date"));
    assert_eq!(server.stats().connections, 1);
    assert_eq!(server.stats().requests, 2);
    assert!(net.conn(id).closed.is_none());
}

#[test]
fn pipelined_requests_are_answered_in_order_even_when_the_first_is_slow() {
    let (mut io, mut net, _server, id) = serve(HttpConfig::default());
    net.read_sizes = vec![7];
    net.peer_send(
        id,
        b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\nGET /last HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(net.run_until_idle(&mut io, true, 10_000));
    let rs = responses(&net.take_output(id));
    let bodies: Vec<&str> = rs.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(bodies, vec!["GET /slow 0", "GET /fast 0", "GET /last 0"]);
}

#[test]
fn malformed_request_gets_400_and_the_connection_closes() {
    let (mut io, mut net, server, id) = serve(HttpConfig::default());
    net.peer_send(id, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    net.run_until_idle(&mut io, false, 1000);
    let rs = responses(&net.take_output(id));
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].0, 400);
    assert!(net.conn(id).closed.is_some());
    assert_eq!(server.stats().bad_requests, 1);
    assert_eq!(server.stats().open_connections, 0);
}

#[test]
fn expect_100_continue_is_answered_before_the_body_arrives() {
    let (mut io, mut net, _server, id) = serve(HttpConfig::default());
    net.peer_send(
        id,
        b"PUT /u HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    );
    net.run_until_idle(&mut io, false, 1000);
    assert_eq!(net.take_output(id), b"HTTP/1.1 100 Continue\r\n\r\n");
    net.peer_send(id, b"data");
    net.run_until_idle(&mut io, false, 1000);
    let rs = responses(&net.take_output(id));
    assert_eq!(rs[0].1, "PUT /u 4");
}

#[test]
fn a_dropped_responder_sends_500_and_closes() {
    let (mut io, mut net, _server, id) = serve(HttpConfig::default());
    net.peer_send(id, b"GET /drop HTTP/1.1\r\nHost: x\r\n\r\n");
    net.run_until_idle(&mut io, false, 1000);
    let rs = responses(&net.take_output(id));
    assert_eq!(rs[0].0, 500);
    assert!(net.conn(id).closed.is_some());
}

#[test]
fn idle_connection_times_out_in_virtual_time() {
    let config = HttpConfig {
        idle_connection_timeout: Duration::from_secs(30),
        ..HttpConfig::default()
    };
    let (mut io, mut net, _server, id) = serve(config);
    net.peer_send(id, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    net.run_until_idle(&mut io, false, 1000);
    net.advance(Duration::from_secs(20));
    net.peer_send(id, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    net.run_until_idle(&mut io, false, 1000);
    assert!(
        net.conn(id).closed.is_none(),
        "a request restarts the idle clock"
    );
    assert!(net.run_until_idle(&mut io, true, 1000));
    assert!(net.conn(id).closed.is_some());
    assert_eq!(
        io.now().as_nanos(),
        50_000_000_000,
        "closed 30 s after the last request"
    );
    assert_eq!(responses(&net.take_output(id)).len(), 2);
}

#[test]
fn slowloris_header_timeout_closes_a_half_sent_head() {
    let config = HttpConfig {
        header_timeout: Some(Duration::from_secs(5)),
        ..HttpConfig::default()
    };
    let (mut io, mut net, _server, id) = serve(config);
    net.peer_send(id, b"GET / HTTP/1.1\r\nHo");
    assert!(net.run_until_idle(&mut io, true, 1000));
    assert!(net.conn(id).closed.is_some());
    assert_eq!(io.now().as_nanos(), 5_000_000_000);
}

#[test]
fn a_trickled_head_is_cut_off_after_a_minute_by_default() {
    let (mut io, mut net, _server, id) = serve(HttpConfig::default());
    net.peer_send(id, b"GET / HTTP/1.1\r\nHo");
    assert!(net.run_until_idle(&mut io, true, 1000));
    assert!(net.conn(id).closed.is_some());
    assert_eq!(io.now().as_nanos(), 60_000_000_000);
}

#[test]
fn head_gets_headers_without_body_and_streaming_is_chunked() {
    let (mut io, mut net, _server, id) = serve(HttpConfig::default());
    net.peer_send(
        id,
        b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\nGET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    net.run_until_idle(&mut io, false, 1000);
    let out = net.take_output(id);
    let text = String::from_utf8_lossy(&out);
    let head_end = text.find("\r\n\r\n").unwrap() + 4;
    assert!(text[..head_end]
        .to_ascii_lowercase()
        .contains("content-length: 9"));
    let rs = responses(&out[head_end..]);
    assert_eq!(rs[0].1, "part1,part2");
    assert!(rs[0]
        .2
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v == "chunked"));
}

#[test]
fn http10_without_keep_alive_closes_after_the_response() {
    let (mut io, mut net, _server, id) = serve(HttpConfig::default());
    net.peer_send(id, b"GET /a HTTP/1.0\r\n\r\n");
    net.run_until_idle(&mut io, false, 1000);
    let rs = responses(&net.take_output(id));
    assert_eq!(rs[0].1, "GET /a 0");
    assert!(net.conn(id).closed.is_some());
}

#[test]
fn client_half_close_after_request_still_gets_the_response() {
    let (mut io, mut net, _server, id) = serve(HttpConfig::default());
    net.peer_send(id, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    net.peer_shutdown(id);
    net.run_until_idle(&mut io, false, 1000);
    let rs = responses(&net.take_output(id));
    assert_eq!(rs.len(), 1);
    assert!(net.conn(id).closed.is_some());
}

#[test]
fn a_client_that_never_reads_its_answers_cannot_grow_server_memory() {
    let (mut io, mut net, server, id) = serve(HttpConfig::default());
    net.conn(id).write_blocked = true;
    let requests = 20_000;
    let one = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    net.peer_send(id, &one.repeat(requests));
    assert!(net.run_until_idle(&mut io, false, 100_000));
    let queued = io.stream(id).unwrap().write_queued();
    let buffered = io.stream(id).unwrap().buffered();
    assert!(
        queued <= 128 * 1024,
        "{queued} bytes of answers queued for a client that reads none"
    );
    assert!(
        buffered <= 64 * 1024,
        "{buffered} bytes of requests buffered"
    );
    assert!(!net.conn(id).interest.readable, "reading paused");
    assert!(server.stats().requests < requests as u64 / 4);
    // The client starts reading: every request is answered, in order.
    net.conn(id).write_blocked = false;
    assert!(net.run_until_idle(&mut io, false, 1_000_000));
    assert_eq!(server.stats().requests, requests as u64);
    assert_eq!(responses(&net.take_output(id)).len(), requests);
}

/// Steps until idle (jumping timers), returning the most request bytes the server held.
fn most_buffered_until_idle(io: &mut IoLoop, net: &mut FakeNet, id: StreamId) -> usize {
    let mut most = 0;
    for _ in 0..5_000_000 {
        most = most.max(io.stream(id).map_or(0, |s| s.buffered()));
        if net.step(io) {
            continue;
        }
        match io.poll_timeout() {
            Some(deadline) => net.now = net.now.max(deadline),
            None => return most,
        }
    }
    panic!("did not go idle");
}

#[test]
fn a_client_that_reads_its_answers_slowly_cannot_make_the_server_buffer_its_requests() {
    let (mut io, mut net, server, id) = serve(HttpConfig::default());
    // Answers drain 1 KiB per turn while a large pipeline waits to be read: resuming after a
    // drain must not read far more requests than it answers.
    net.write_sizes = vec![1024];
    let requests = 20_000;
    net.peer_send(id, &b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n".repeat(requests));
    let most = most_buffered_until_idle(&mut io, &mut net, id);
    assert!(most <= 128 * 1024, "{most} bytes of requests buffered");
    assert_eq!(server.stats().requests, requests as u64);
    assert_eq!(responses(&net.take_output(id)).len(), requests);
}

#[test]
fn pipelined_requests_answered_later_are_read_as_they_are_answered() {
    let (mut io, mut net, server, id) = serve(HttpConfig::default());
    let requests = 3_000;
    net.peer_send(
        id,
        &b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n".repeat(requests),
    );
    let most = most_buffered_until_idle(&mut io, &mut net, id);
    assert!(most <= 128 * 1024, "{most} bytes of requests buffered");
    assert_eq!(server.stats().requests, requests as u64);
    assert_eq!(responses(&net.take_output(id)).len(), requests);
}
