//! Interoperability with an independent implementation, Python's `websockets`: its client
//! against eddy's server and eddy's client against its server — text and binary,
//! fragmented and 16 MiB messages, compression on and off, close codes both ways. Skips
//! itself (with a message) when python3 or `websockets` is missing.

use bytes::Bytes;
use eddy::core::ws::MessageKind;
use eddy::drivers::{spawn_threads, DriverConfig, DriverKind};
use eddy::web::websocket::{
    os_mask_source, websocket_connect_with, CloseStatus, DeflateConfig, Message, WebSocket,
    WebSocketHandler, WsConnect, WsOptions,
};
use eddy::web::{Application, Route};
use eddy_core::ws::WsConfig;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIG_LEN: usize = 16 * 1024 * 1024;

fn script() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ws_peer.py");
    path.to_str().expect("utf-8 path").to_owned()
}

/// True when python3 can import `websockets`; otherwise says why the test skips.
fn have_websockets() -> bool {
    match Command::new("python3")
        .args(["-c", "import websockets"])
        .output()
    {
        Ok(out) if out.status.success() => true,
        Ok(_) => {
            eprintln!("skipping: python3 cannot import websockets (pip install websockets)");
            false
        }
        Err(e) => {
            eprintln!("skipping: python3 not available ({e})");
            false
        }
    }
}

fn options() -> WsOptions {
    WsOptions {
        config: WsConfig {
            max_message_size: 32 << 20,
        },
        ..WsOptions::default()
    }
}

/// Echo; `close:N` closes with N and "eddy-bye"; records every close it sees.
struct Echo(Arc<Mutex<Vec<u16>>>);

impl WebSocketHandler for Echo {
    fn options(&self) -> WsOptions {
        options()
    }
    fn compression(&self) -> Option<DeflateConfig> {
        Some(DeflateConfig::default())
    }
    async fn on_message(&mut self, ws: &WebSocket, message: Message) {
        if let Message::Text(t) = &message {
            if let Some(code) = t.strip_prefix("close:").and_then(|c| c.parse().ok()) {
                ws.close(code, "eddy-bye");
                return;
            }
        }
        let _ = ws.send(message).await;
    }
    async fn on_close(&mut self, status: &CloseStatus) {
        self.0.lock().unwrap().push(status.code);
    }
}

#[test]
fn python_websockets_client_against_the_eddy_server() {
    if !have_websockets() {
        return;
    }
    for kind in [DriverKind::Mio, DriverKind::Poll] {
        let closes = Arc::new(Mutex::new(Vec::new()));
        let seen = closes.clone();
        let server = spawn_threads(
            &DriverConfig::with_kind(kind),
            1,
            ([127, 0, 0, 1], 0).into(),
            move |io, addr| {
                let seen = seen.clone();
                let app =
                    Application::new(vec![Route::websocket("/echo", move || Echo(seen.clone()))]);
                app.listen(io, addr, eddy::core::ListenOptions::default());
            },
        )
        .unwrap();
        let url = format!("ws://{}/echo", server.local_addr());
        let out = Command::new("timeout")
            .args(["120", "python3", &script(), "client", &url])
            .output()
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.trim() == "OK",
            "[{kind:?}] python client failed: {}\n{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        // The server's on_close: 4000 from each of the two client closes, then the peer's
        // answer to our own 4321.
        let deadline = Instant::now() + Duration::from_secs(5);
        while closes.lock().unwrap().len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            *closes.lock().unwrap(),
            vec![4000, 4000, 4321],
            "[{kind:?}]"
        );
        server.shutdown(Duration::from_secs(1));
        server.join().unwrap();
    }
}

struct PythonServer {
    child: Child,
    port: u16,
    lines: BufReader<std::process::ChildStdout>,
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_server() -> PythonServer {
    let mut child = Command::new("timeout")
        .args(["180", "python3", "-u", &script(), "server"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs");
    let mut lines = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    let port = line
        .strip_prefix("PORT ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    PythonServer { child, port, lines }
}

#[test]
fn the_eddy_client_against_a_python_websockets_server() {
    if !have_websockets() {
        return;
    }
    let mut peer = python_server();
    let url = format!("ws://127.0.0.1:{}/", peer.port);
    let statuses = eddy::run(async move {
        let big: Vec<u8> = (0..BIG_LEN).map(|i| (i * 7 + 3) as u8).collect();
        let big = Bytes::from(big);
        let mut statuses = Vec::new();
        for deflate in [Some(DeflateConfig::default()), None] {
            let mut request = WsConnect::new(&url);
            request.deflate = deflate.clone();
            request.options = options();
            let mut ws = websocket_connect_with(request, os_mask_source())
                .await
                .expect("connects");
            assert_eq!(ws.compressed(), deflate.is_some());
            let sent = [
                Message::Text("héllo ✓".into()),
                Message::Binary(Bytes::from_static(b"\x00\x01\xfe\xff")),
                Message::Binary(big.clone()),
            ];
            for m in &sent {
                ws.send(m.clone()).await.unwrap();
                assert_eq!(ws.recv().await.as_ref(), Some(m));
            }
            let tx = ws.sender();
            tx.send_fragment(MessageKind::Text, "frag", false).unwrap();
            ws.ping("between fragments").unwrap();
            tx.send_fragment(MessageKind::Text, "mented", true).unwrap();
            assert_eq!(ws.recv().await, Some(Message::Text("fragmented".into())));
            ws.close(4000, "eddy-bye");
            assert_eq!(ws.recv().await, None);
            statuses.push(ws.close_status().unwrap());
        }
        let mut ws = websocket_connect_with(WsConnect::new(&url), os_mask_source())
            .await
            .expect("connects");
        ws.send("close:4321").await.unwrap();
        assert_eq!(ws.recv().await, None);
        statuses.push(ws.close_status().unwrap());
        statuses
    })
    .unwrap();
    let codes: Vec<(u16, &str)> = statuses
        .iter()
        .map(|s| (s.code, s.reason.as_str()))
        .collect();
    assert_eq!(
        codes[..2],
        [(4000, "eddy-bye"), (4000, "eddy-bye")],
        "python echoes our code and reason"
    );
    assert_eq!(codes[2], (4321, "py-bye"));
    let mut seen = String::new();
    for _ in 0..3 {
        peer.lines.read_line(&mut seen).unwrap();
    }
    assert_eq!(
        seen, "closed 4000 eddy-bye\nclosed 4000 eddy-bye\nclosed 4321 \n",
        "the python server saw our close codes (and our echo of its 4321)"
    );
}
