//! Streamed request bodies: a handler that asks for them (`Handler::body_limit`) runs at the
//! head and reads pieces as they come; the connection stops reading while it lags
//! (memory stays bounded), limits still give 413, and keep-alive goes on afterwards.

use std::cell::Cell;
use std::rc::Rc;

use eddy_core::http::{
    spawn_response_task, BodyError, Handler, HttpServer, Request, Responder, Response,
    BODY_HIGH_WATER,
};
use eddy_core::task::yield_now;
use eddy_core::testing::FakeNet;
use eddy_core::{IoLoop, ListenOptions};

/// Counts the body's bytes, yielding between pieces (a slow consumer), then answers.
struct Counter {
    limit: u64,
    errors: Rc<Cell<u32>>,
}

impl Handler for Counter {
    fn handle(&self, io: &mut IoLoop, mut request: Request, responder: Responder) {
        let errors = self.errors.clone();
        let body = request.take_body_stream();
        spawn_response_task(io, responder, move |writer| async move {
            let Some(mut body) = body else {
                let _ = writer.respond(Response::ok(format!("whole {}", request.body().len())));
                return;
            };
            let mut n = 0usize;
            while let Some(piece) = body.chunk().await {
                match piece {
                    Ok(data) => n += data.len(),
                    Err(BodyError::Rejected(_) | BodyError::Closed) => {
                        errors.set(errors.get() + 1);
                        return;
                    }
                }
                yield_now().await;
            }
            let _ = writer.respond(Response::ok(format!("streamed {n}")));
        });
    }

    fn body_limit(&self, request: &Request) -> Option<u64> {
        (request.path() == "/upload").then_some(self.limit)
    }
}

fn setup(limit: u64) -> (IoLoop, FakeNet, eddy_core::StreamId, Rc<Cell<u32>>) {
    let mut io = IoLoop::default();
    let mut net = FakeNet::new();
    let errors = Rc::new(Cell::new(0));
    let server = HttpServer::new(Counter {
        limit,
        errors: errors.clone(),
    });
    let listener = server.listen(
        &mut io,
        "127.0.0.1:80".parse().unwrap(),
        ListenOptions::default(),
    );
    net.run_until_idle(&mut io, false, 10);
    let id = net.accept(&mut io, listener, "127.0.0.1:5000".parse().unwrap());
    (io, net, id, errors)
}

fn response_text(net: &mut FakeNet, id: eddy_core::StreamId) -> String {
    String::from_utf8_lossy(&net.take_output(id)).into_owned()
}

#[test]
fn a_large_body_streams_through_a_slow_handler_in_bounded_memory() {
    let (mut io, mut net, id, _) = setup(1 << 30);
    let size = 8 << 20;
    net.peer_send(
        id,
        format!("PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n").as_bytes(),
    );
    net.peer_send(id, &vec![7u8; size]);
    let mut most = 0;
    for _ in 0..200_000 {
        if !net.step(&mut io) && io.poll_timeout().is_none() {
            break;
        }
        most = most.max(io.stream(id).map_or(0, |s| s.buffered()));
    }
    let out = response_text(&mut net, id);
    assert!(out.ends_with(&format!("streamed {size}")), "{out}");
    assert!(
        most <= 2 * BODY_HIGH_WATER + 128 * 1024,
        "stream buffered up to {most} bytes"
    );
    // Keep-alive goes on, and other paths read bodies whole.
    net.peer_send(
        id,
        b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert!(net.run_until_idle(&mut io, false, 1000));
    assert!(response_text(&mut net, id).ends_with("whole 3"));
}

#[test]
fn a_chunked_body_streams_too() {
    let (mut io, mut net, id, _) = setup(1 << 20);
    net.peer_send(
        id,
        b"PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for _ in 0..50 {
        net.peer_send(id, b"400\r\n");
        net.peer_send(id, &[1u8; 0x400]);
        net.peer_send(id, b"\r\n");
    }
    net.peer_send(id, b"0\r\n\r\n");
    assert!(net.run_until_idle(&mut io, false, 100_000));
    assert!(response_text(&mut net, id).ends_with("streamed 51200"));
}

#[test]
fn a_streamed_body_over_its_limit_is_413_and_the_handler_sees_the_error() {
    let (mut io, mut net, id, errors) = setup(1000);
    net.peer_send(
        id,
        b"PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
    );
    net.peer_send(id, &[0u8; 5000]);
    assert!(net.run_until_idle(&mut io, false, 1000));
    let out = response_text(&mut net, id);
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert_eq!(errors.get(), 1);
    assert_eq!(io.task_count(), 0);
}

#[test]
fn a_client_gone_mid_body_ends_the_stream_with_an_error() {
    let (mut io, mut net, id, errors) = setup(1 << 20);
    net.peer_send(
        id,
        b"PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
    );
    net.peer_send(id, &[0u8; 100]);
    net.run_until_idle(&mut io, false, 1000);
    io.handle_error(id, std::io::ErrorKind::ConnectionReset);
    assert!(net.run_until_idle(&mut io, false, 1000));
    assert!(
        errors.get() == 1 || io.task_count() == 0,
        "the task ended one way or the other"
    );
    assert_eq!(
        io.task_count(),
        0,
        "no task left waiting for a body that will never come"
    );
}
