//! The HTTP upgrade handoff: a handler answers 101 and takes the stream over, with the bytes
//! that followed the request head, both when it answers at once and later.

use bytes::BytesMut;
use eddy_core::http::{HttpConfig, HttpServer, Request, Responder};
use eddy_core::testing::FakeNet;
use eddy_core::{CloseReason, Duration, IoLoop, ListenOptions, StreamHandler, StreamId};
use http::header::UPGRADE;
use http::{HeaderMap, HeaderValue};
use std::net::SocketAddr;

/// The new protocol: echoes every byte it is given, upper-cased.
struct Shout;

impl StreamHandler for Shout {
    fn on_readable(&mut self, io: &mut IoLoop, stream: StreamId, buf: &mut BytesMut, _: bool) {
        let data = buf.split().freeze().to_ascii_uppercase();
        let _ = io.write(stream, data);
    }
    fn on_close(&mut self, _: &mut IoLoop, _: StreamId, _: CloseReason) {}
}

fn take_over(io: &mut IoLoop, resp: Responder) {
    let mut headers = HeaderMap::new();
    headers.insert(UPGRADE, HeaderValue::from_static("shout"));
    let stream = resp.upgrade(io, &headers).expect("upgrades");
    io.set_handler(stream, Box::new(Shout))
        .expect("takes the stream");
}

fn app(io: &mut IoLoop, req: Request, resp: Responder) {
    if req.path() == "/later" {
        io.call_later(Duration::from_millis(10), move |io| take_over(io, resp));
    } else {
        take_over(io, resp);
    }
}

fn run(path: &str) -> (String, HttpServer, bool) {
    let addr: SocketAddr = ([127, 0, 0, 1], 80).into();
    let mut io = IoLoop::default();
    let mut net = FakeNet::new();
    let server = HttpServer::with_config(HttpConfig::default(), app);
    let l = server.listen(&mut io, addr, ListenOptions::default());
    net.step(&mut io);
    let id = net.accept(&mut io, l, ([127, 0, 0, 1], 5000).into());
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: shout\r\n\r\nhello");
    net.peer_send(id, request.as_bytes());
    net.run_until_idle(&mut io, true, 1000);
    net.peer_send(id, b" again");
    net.run_until_idle(&mut io, true, 1000);
    let out = String::from_utf8(net.take_output(id)).expect("text");
    let open = net.conn(id).closed.is_none();
    (out, server, open)
}

#[test]
fn bytes_after_the_head_reach_the_new_protocol_when_the_handler_upgrades_at_once() {
    let (out, server, open) = run("/now");
    assert!(
        out.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{out}"
    );
    assert!(out.ends_with("\r\n\r\nHELLO AGAIN"), "{out:?}");
    // `run` jumps timers while idle: the HTTP idle time-out was cancelled by the upgrade.
    assert!(open, "the HTTP side does not close an upgraded stream");
    assert_eq!(
        (server.stats().upgrades, server.stats().open_connections),
        (1, 0)
    );
}

#[test]
fn bytes_after_the_head_reach_the_new_protocol_when_the_handler_upgrades_later() {
    let (out, server, open) = run("/later");
    assert!(out.ends_with("\r\n\r\nHELLO AGAIN"), "{out:?}");
    assert!(open);
    assert_eq!(
        (server.stats().upgrades, server.stats().open_connections),
        (1, 0)
    );
}
