//! Async HTTP: handlers as tasks on `HttpServer`, `fetch_async` on `HttpClient`, streaming
//! with back-pressure, and cancellation of a handler whose client went away.

use std::cell::Cell;
use std::rc::Rc;

use eddy_core::http::{
    ClientConfig, HttpClient, HttpConfig, HttpError, HttpRequest, HttpServer, Response,
};
use eddy_core::task::{sleep, timeout};
use eddy_core::testing::FakeNet;
use eddy_core::{Duration, IoLoop, ListenOptions};
use http::StatusCode;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn serve(io: &mut IoLoop, server: &HttpServer, port: u16) -> String {
    let addr = ([127, 0, 0, 1], port).into();
    server.listen(io, addr, ListenOptions::default());
    format!("http://127.0.0.1:{port}")
}

#[test]
fn an_async_handler_answers_after_awaiting_and_fetch_async_gets_it() {
    let mut io = IoLoop::default();
    let server = HttpServer::new_async(|req| async move {
        sleep(ms(5)).await;
        Response::ok(format!("hi {}", req.path()))
    });
    let base = serve(&mut io, &server, 8001);
    let client = HttpClient::new(ClientConfig::default());
    let handle = io.spawn(async move {
        let first = client
            .fetch_async(HttpRequest::get(format!("{base}/a")))
            .await;
        let second = client
            .fetch_async(HttpRequest::get(format!("{base}/b")))
            .await;
        (
            first.map(|r| r.body),
            second.map(|r| (r.body, r.reused_connection)),
        )
    });
    let mut net = FakeNet::new();
    assert!(net.run_until_idle(&mut io, true, 10_000));
    let (first, second) = handle.try_output().unwrap().unwrap();
    assert_eq!(&first.unwrap()[..], b"hi /a");
    let (body, reused) = second.unwrap();
    assert_eq!(&body[..], b"hi /b");
    assert!(reused, "keep-alive between async fetches");
    assert_eq!(server.stats().requests, 2);
    assert_eq!(io.task_count(), 0);
}

#[test]
fn a_streaming_handler_flushes_each_piece_as_a_chunk() {
    let mut io = IoLoop::default();
    let server =
        HttpServer::with_config_streaming(HttpConfig::default(), |_req, mut w| async move {
            w.start(StatusCode::OK, &http::HeaderMap::new()).unwrap();
            for i in 0..5 {
                w.write(format!("chunk {i}\n")).unwrap();
                w.flush().await.unwrap();
            }
            w.finish().unwrap();
        });
    let base = serve(&mut io, &server, 8002);
    let client = HttpClient::new(ClientConfig::default());
    let handle = io.spawn(async move { client.fetch_async(HttpRequest::get(base)).await });
    let mut net = FakeNet::new();
    net.write_sizes = vec![7];
    assert!(net.run_until_idle(&mut io, true, 10_000));
    let response = handle.try_output().unwrap().unwrap().unwrap();
    let expected: String = (0..5).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(response.body, expected.as_bytes());
    assert_eq!(
        response
            .headers
            .get("transfer-encoding")
            .map(|v| v.as_bytes()),
        Some(&b"chunked"[..])
    );
}

#[test]
fn a_pending_handler_is_cancelled_when_its_client_goes_away() {
    let mut io = IoLoop::default();
    let dropped = Rc::new(Cell::new(false));
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let d = dropped.clone();
    let server = HttpServer::new_async(move |_req| {
        let flag = Flag(d.clone());
        async move {
            let _flag = flag;
            sleep(Duration::from_secs(3600)).await;
            Response::ok("too late")
        }
    });
    let base = serve(&mut io, &server, 8003);
    let client = HttpClient::new(ClientConfig::default());
    let handle =
        io.spawn(async move { timeout(ms(20), client.fetch_async(HttpRequest::get(base))).await });
    let mut net = FakeNet::new();
    assert!(net.run_until_idle(&mut io, true, 10_000));
    let out = handle.try_output();
    assert!(
        matches!(out, Some(Ok(Err(_)))),
        "the client gave up: {out:?}"
    );
    assert!(
        dropped.get(),
        "the handler's future was dropped when the connection closed"
    );
    assert_eq!(io.task_count(), 0, "no task leaked");
    assert_eq!(
        io.poll_timeout(),
        None,
        "and no hour-long timer left behind"
    );
}

#[test]
fn fetch_async_reports_errors_as_values() {
    let mut io = IoLoop::default();
    let client = HttpClient::new(ClientConfig::default());
    let handle = io.spawn(async move {
        client
            .fetch_async(HttpRequest::get("not a url"))
            .await
            .map(|r| r.status)
    });
    let mut net = FakeNet::new();
    assert!(net.run_until_idle(&mut io, true, 1000));
    assert!(matches!(
        handle.try_output(),
        Some(Ok(Err(HttpError::InvalidUrl { .. })))
    ));
}
