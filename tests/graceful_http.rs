//! A graceful stop of an HTTP server on mio and poll: listeners close, an idle keep-alive
//! connection is closed at once, a request in flight is answered in full (with
//! `Connection: close`) before its connection closes, a WebSocket session is closed with
//! 1001 (going away), and the loop then exits well within the grace period.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use eddy::drivers::{spawn_threads, DriverConfig, DriverKind};
use eddy::web::{Application, Exchange, HttpError, RequestHandler, Route};

struct Slow;
impl RequestHandler for Slow {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        eddy::core::task::sleep(eddy::core::Duration::from_millis(300)).await;
        ex.write("slept");
        Ok(())
    }
}

struct Fast;
impl RequestHandler for Fast {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.write("fast");
        Ok(())
    }
}

fn read_response(s: &mut TcpStream) -> String {
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") || !ends_body(&got) {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed before the response: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// True once the body announced by Content-Length has arrived.
fn ends_body(got: &[u8]) -> bool {
    let text = String::from_utf8_lossy(got);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    body.len() >= len
}

#[test]
fn a_graceful_stop_finishes_requests_in_flight_and_closes_idle_connections() {
    for kind in [DriverKind::Mio, DriverKind::Poll] {
        let server = spawn_threads(
            &DriverConfig::with_kind(kind),
            1,
            ([127, 0, 0, 1], 0).into(),
            |io, addr| {
                let app =
                    Application::new(vec![Route::new("/slow", || Slow), Route::new("/", || Fast)]);
                app.listen(io, addr, eddy::server_args::shared_listen_options());
            },
        )
        .unwrap();
        let addr = server.local_addr();
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert!(read_response(&mut idle).ends_with("fast"));
        let mut busy = TcpStream::connect(addr).unwrap();
        busy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(50)); // the slow handler is running
        let stopping = Instant::now();
        server.shutdown(Duration::from_secs(5));
        // The idle connection is closed promptly.
        let mut rest = Vec::new();
        idle.read_to_end(&mut rest).unwrap();
        assert!(
            rest.is_empty(),
            "[{kind:?}] nothing more on the idle connection"
        );
        assert!(
            stopping.elapsed() < Duration::from_millis(250),
            "[{kind:?}] idle closed late"
        );
        // The request in flight is answered in full, then its connection closes.
        let answer = read_response(&mut busy);
        assert!(answer.starts_with("HTTP/1.1 200"), "[{kind:?}] {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        assert!(answer.ends_with("slept"), "{answer}");
        let mut after = Vec::new();
        busy.read_to_end(&mut after).unwrap();
        assert!(after.is_empty());
        server.join().expect("clean exit");
        assert!(
            stopping.elapsed() < Duration::from_secs(2),
            "[{kind:?}] the loop exits once its connections are done, not at the grace's end"
        );
        assert!(TcpStream::connect(addr).is_err(), "listener closed");
    }
}

#[test]
fn a_graceful_stop_closes_websockets_with_going_away() {
    for kind in [DriverKind::Mio, DriverKind::Poll] {
        let server = spawn_threads(
            &DriverConfig::with_kind(kind),
            1,
            ([127, 0, 0, 1], 0).into(),
            |io, addr| {
                eddy::web_demo::app(b"graceful ws secret").listen(
                    io,
                    addr,
                    eddy::server_args::shared_listen_options(),
                );
            },
        )
        .unwrap();
        let mut ws = TcpStream::connect(server.local_addr()).unwrap();
        ws.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        ws.write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            ws.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        let stopping = Instant::now();
        server.shutdown(Duration::from_secs(5));
        // The server starts the close handshake: a close frame with 1001.
        let mut frame = [0u8; 2];
        ws.read_exact(&mut frame).unwrap();
        assert_eq!(frame[0], 0x88, "[{kind:?}] a final close frame");
        let len = usize::from(frame[1] & 0x7f);
        let mut payload = vec![0u8; len];
        ws.read_exact(&mut payload).unwrap();
        assert_eq!(
            &payload[..2],
            &1001u16.to_be_bytes(),
            "[{kind:?}] going away"
        );
        // Answer it (masked, as a client must); the server then closes and exits.
        ws.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9]).unwrap();
        let mut rest = Vec::new();
        let _ = ws.read_to_end(&mut rest);
        server.join().expect("clean exit");
        assert!(
            stopping.elapsed() < Duration::from_secs(2),
            "[{kind:?}] done when the handshake is, not at the grace's end"
        );
    }
}
