//! WebSocketHandler and websocket_connect on the simulator: echo, close codes both ways,
//! handshake refusals, subprotocols, compression, back-pressure, ping time-out, the bounded
//! close wait and message limits.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use eddy_core::task::{sleep, with_loop, TcpStream};
use eddy_core::ws::{DeflateConfig, WsConfig};
use eddy_core::Duration;
use eddy_sim::FaultConfig;
use eddy_web::testing::TestClient;
use eddy_web::websocket::{
    seeded_mask_source, websocket_connect_with, CloseStatus, Message, WebSocket, WebSocketHandler,
    WsConnect, WsOptions,
};
use eddy_web::{Application, Exchange, Route};
use http::Method;

type Log = Rc<RefCell<Vec<String>>>;

/// Echoes messages; "close" makes it close with 4001; logs open and close.
struct Echo {
    log: Log,
    options: WsOptions,
    compression: Option<DeflateConfig>,
}

impl WebSocketHandler for Echo {
    fn options(&self) -> WsOptions {
        self.options.clone()
    }

    fn compression(&self) -> Option<DeflateConfig> {
        self.compression.clone()
    }

    fn select_subprotocol(&mut self, protocols: &[String]) -> Option<String> {
        protocols.iter().find(|p| p.as_str() == "chat.v2").cloned()
    }

    async fn open(&mut self, ex: &mut Exchange, ws: &WebSocket) {
        let who = ex.argument("name").unwrap_or_default();
        self.log
            .borrow_mut()
            .push(format!("open {who} {:?}", ws.subprotocol()));
    }

    async fn on_message(&mut self, ws: &WebSocket, message: Message) {
        if message == Message::Text("close".into()) {
            ws.close(4001, "done");
            return;
        }
        let _ = ws.send(message).await;
    }

    async fn on_close(&mut self, status: &CloseStatus) {
        self.log
            .borrow_mut()
            .push(format!("close {} {}", status.code, status.reason));
    }
}

fn echo_app(log: &Log, options: WsOptions, compression: Option<DeflateConfig>) -> Application {
    let log = log.clone();
    Application::new(vec![Route::websocket(r"/ws", move || Echo {
        log: log.clone(),
        options: options.clone(),
        compression: compression.clone(),
    })])
}

/// Slow, split and coalesced segments and small buffers, never a cut connection.
fn choppy() -> FaultConfig {
    FaultConfig {
        latency_min: Duration::from_micros(50),
        latency_max: Duration::from_millis(5),
        socket_buffer_min: 4 * 1024,
        socket_buffer_max: 64 * 1024,
        p_short_read: 0.3,
        p_short_write: 0.3,
        p_split: 0.3,
        p_coalesce: 0.3,
        coalesce_delay_max: Duration::from_millis(5),
        ..FaultConfig::none()
    }
}

fn connect_request(addr: SocketAddr, path: &str) -> WsConnect {
    WsConnect::new(&format!("ws://{addr}{path}"))
}

async fn connect(request: WsConnect) -> WebSocket {
    websocket_connect_with(request, seeded_mask_source(7))
        .await
        .expect("connects")
}

#[test]
fn echo_text_binary_and_a_client_close_code_reach_the_handler() {
    let log = Log::default();
    let mut client = TestClient::new(echo_app(&log, WsOptions::default(), None));
    let (answers, status) = client.run_task(|addr| async move {
        let mut ws = connect(connect_request(addr, "/ws?name=ann")).await;
        ws.send("hello").await.unwrap();
        ws.send(Bytes::from_static(b"\x00\xffbin")).await.unwrap();
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        ws.send(big.clone()).await.unwrap();
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(ws.recv().await.expect("an echo"));
        }
        assert_eq!(answers[2], Message::Binary(Bytes::from(big)));
        ws.close(4000, "bye");
        assert_eq!(ws.recv().await, None);
        (answers[..2].to_vec(), ws.close_status())
    });
    assert_eq!(
        answers,
        vec![
            Message::Text("hello".into()),
            Message::Binary(Bytes::from_static(b"\x00\xffbin"))
        ]
    );
    // The server echoes our close code (RFC 6455 §5.5.1).
    assert_eq!(status.map(|s| s.code), Some(4000));
    assert_eq!(*log.borrow(), vec!["open ann None", "close 4000 bye"]);
}

#[test]
fn a_server_close_code_reaches_the_client() {
    let log = Log::default();
    let mut client = TestClient::new(echo_app(&log, WsOptions::default(), None));
    let status = client.run_task(|addr| async move {
        let mut ws = connect(connect_request(addr, "/ws")).await;
        ws.send("close").await.unwrap();
        assert_eq!(ws.recv().await, None);
        ws.close_status()
    });
    let status = status.expect("closed");
    assert_eq!((status.code, status.reason.as_str()), (4001, "done"));
    // The handler sees the peer's answering close: our code, echoed without a reason.
    assert_eq!(log.borrow().last().map(String::as_str), Some("close 4001 "));
}

#[test]
fn handshake_refusals_answer_405_400_426_and_403() {
    let log = Log::default();
    let mut client = TestClient::new(echo_app(&log, WsOptions::default(), None));
    let upgrade = [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut h: Vec<(&str, &str)> = upgrade.to_vec();
        h.extend_from_slice(extra);
        h
    };
    let r = client
        .fetch(
            Method::POST,
            "/ws",
            &with(&[("sec-websocket-version", "13")]),
            Bytes::new(),
        )
        .unwrap();
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    let r = client
        .fetch(
            Method::GET,
            "/ws",
            &[("sec-websocket-version", "13")],
            Bytes::new(),
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "Can \"Upgrade\" only to \"WebSocket\".");
    let r = client
        .fetch(
            Method::GET,
            "/ws",
            &with(&[("sec-websocket-version", "8")]),
            Bytes::new(),
        )
        .unwrap();
    assert_eq!(
        (r.status, r.header("sec-websocket-version")),
        (426, Some("13"))
    );
    let r = client
        .fetch(
            Method::GET,
            "/ws",
            &with(&[
                ("sec-websocket-version", "13"),
                ("origin", "http://evil.example"),
            ]),
            Bytes::new(),
        )
        .unwrap();
    assert_eq!(r.status, 403);
    assert!(
        log.borrow().is_empty(),
        "no session was opened: {:?}",
        log.borrow()
    );
}

#[test]
fn same_origin_pages_connect_and_a_subprotocol_is_selected() {
    let log = Log::default();
    let mut client = TestClient::new(echo_app(&log, WsOptions::default(), None));
    let protocol = client.run_task(|addr| async move {
        let mut request = connect_request(addr, "/ws");
        request.protocols = vec!["chat.v1".into(), "chat.v2".into()];
        let origin = format!("http://{addr}");
        request
            .headers
            .insert("origin", origin.parse().expect("a header value"));
        let ws = connect(request).await;
        ws.subprotocol()
    });
    assert_eq!(protocol.as_deref(), Some("chat.v2"));
}

#[test]
fn permessage_deflate_is_negotiated_and_messages_round_trip() {
    let log = Log::default();
    let app = echo_app(&log, WsOptions::default(), Some(DeflateConfig::default()));
    let mut client = TestClient::with_faults(app, 3, choppy());
    let ok = client.run_task(|addr| async move {
        let mut request = connect_request(addr, "/ws");
        request.deflate = Some(DeflateConfig::default());
        let mut ws = connect(request).await;
        assert!(ws.compressed());
        for i in 0..50 {
            let text = format!("message {i} ").repeat(i * 10 + 1);
            ws.send(text.clone()).await.unwrap();
            assert_eq!(ws.recv().await, Some(Message::Text(text)));
        }
        true
    });
    assert!(ok);
}

/// Sends `count` messages of 64 KiB as fast as the peer allows, logging the backlog.
struct Flood {
    count: usize,
    backlog_max: Rc<RefCell<(usize, usize)>>,
}

impl WebSocketHandler for Flood {
    async fn open(&mut self, _ex: &mut Exchange, ws: &WebSocket) {
        let ws = ws.sender();
        let (count, backlog) = (self.count, self.backlog_max.clone());
        with_loop(|io| {
            io.spawn_detached(async move {
                let piece = Bytes::from(vec![7u8; 64 * 1024]);
                for sent in 0..count {
                    if ws.send(piece.clone()).await.is_err() {
                        return;
                    }
                    let mut b = backlog.borrow_mut();
                    b.0 = b.0.max(ws.buffered_amount());
                    b.1 = sent + 1;
                }
            })
        });
    }

    async fn on_message(&mut self, _ws: &WebSocket, _message: Message) {}
}

#[test]
fn a_slow_reader_makes_the_writer_wait_with_a_bounded_buffer() {
    let backlog = Rc::new(RefCell::new((0usize, 0usize)));
    let b = backlog.clone();
    let app = Application::new(vec![Route::websocket(r"/flood", move || Flood {
        count: 200,
        backlog_max: b.clone(),
    })]);
    let mut client = TestClient::new(app);
    let b = backlog.clone();
    let (sent_while_asleep, received) = client.run_task(|addr| async move {
        let mut ws = connect(connect_request(addr, "/flood")).await;
        sleep(Duration::from_secs(10)).await;
        let sent_while_asleep = b.borrow().1;
        let mut received = 0;
        while received < 200 {
            match ws.recv().await {
                Some(Message::Binary(data)) => {
                    assert_eq!(data.len(), 64 * 1024);
                    received += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        (sent_while_asleep, received)
    });
    assert_eq!(received, 200);
    assert!(
        sent_while_asleep < 100,
        "the writer waited for the reader ({sent_while_asleep} of 200 sent while it slept)"
    );
    let (max_backlog, _) = *backlog.borrow();
    let bound = WsOptions::default().write_high_water + 64 * 1024 + 16;
    assert!(max_backlog <= bound, "backlog {max_backlog} over {bound}");
}

/// Performs the handshake over a raw stream and returns it (for peers that misbehave).
async fn raw_handshake(addr: SocketAddr, path: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connects");
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write(head.into_bytes()).unwrap();
    let answer = tcp.read_until(&b"\r\n\r\n"[..], Some(4096)).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 101 "), "{answer:?}");
    tcp
}

#[test]
fn a_peer_that_never_answers_pings_is_closed_after_the_pong_timeout() {
    let log = Log::default();
    let options = WsOptions {
        ping_interval: Some(Duration::from_secs(1)),
        ping_timeout: Some(Duration::from_secs(3)),
        ..WsOptions::default()
    };
    let mut client = TestClient::new(echo_app(&log, options, None));
    let waited = client.run_task(|addr| async move {
        let mut tcp = raw_handshake(addr, "/ws").await;
        let start = with_loop(|io| io.now());
        // Read the pings but never answer: the stream ends when the server gives up.
        while tcp.read_some(1024).await.is_ok() {}
        with_loop(|io| io.now()) - start
    });
    assert!(
        waited >= Duration::from_secs(3) && waited <= Duration::from_secs(5),
        "closed after {waited:?}"
    );
    assert_eq!(
        log.borrow().last().map(String::as_str),
        Some("close 1006 ping timeout")
    );
}

#[test]
fn the_wait_for_the_peer_close_frame_is_bounded() {
    let log = Log::default();
    let mut client = TestClient::new(echo_app(&log, WsOptions::default(), None));
    let (waited, close_frame) = client.run_task(|addr| async move {
        let mut tcp = raw_handshake(addr, "/ws").await;
        // A masked text frame "close": the server starts the close handshake.
        let key = [1u8, 2, 3, 4];
        let mut frame = vec![0x81, 0x80 | 5, 1, 2, 3, 4];
        frame.extend(b"close".iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        tcp.write(frame).unwrap();
        let start = with_loop(|io| io.now());
        let mut got = Vec::new();
        while let Ok(data) = tcp.read_some(1024).await {
            got.extend_from_slice(&data);
        }
        (with_loop(|io| io.now()) - start, got)
    });
    assert_eq!(&close_frame[..2], &[0x88, 6]);
    assert_eq!(&close_frame[2..4], &4001u16.to_be_bytes());
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "TCP closed after {waited:?}"
    );
    assert_eq!(
        log.borrow().last().map(String::as_str),
        Some("close 1006 close timed out")
    );
}

#[test]
fn a_frame_sent_with_the_handshake_is_not_lost() {
    let log = Log::default();
    let mut client = TestClient::new(echo_app(&log, WsOptions::default(), None));
    let echoed = client.run_task(|addr| async move {
        let mut tcp = TcpStream::connect(addr).await.expect("connects");
        let mut bytes = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .into_bytes();
        // "Hi" masked, in the same write as the head.
        bytes.extend_from_slice(&[0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2]);
        tcp.write(bytes).unwrap();
        let head = tcp.read_until(&b"\r\n\r\n"[..], Some(4096)).await.unwrap();
        assert!(head.starts_with(b"HTTP/1.1 101 "));
        tcp.read_exact(4).await.unwrap()
    });
    assert_eq!(&echoed[..], b"\x81\x02Hi");
}

#[test]
fn a_message_over_the_limit_closes_with_1009() {
    let log = Log::default();
    let options = WsOptions {
        config: WsConfig {
            max_message_size: 1000,
        },
        ..WsOptions::default()
    };
    let mut client = TestClient::new(echo_app(&log, options, None));
    let status = client.run_task(|addr| async move {
        let mut ws = connect(connect_request(addr, "/ws")).await;
        ws.send(vec![0u8; 1001]).await.unwrap();
        assert_eq!(ws.recv().await, None);
        ws.close_status()
    });
    assert_eq!(status.map(|s| s.code), Some(1009));
    assert!(log.borrow().last().unwrap().starts_with("close 1009"));
}
