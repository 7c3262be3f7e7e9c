//! TLS on every backend and against real peers: handshake + echo on mio, poll and the
//! simulator; curl and Python's `ssl` against eddy's HTTPS server; eddy's client against
//! `openssl s_server`; plain HTTP and silent peers on the TLS port.
//!
//! A test whose peer tool is missing says so and passes without checking (.ci/run installs
//! curl, python3 and openssl).

mod common;

use bytes::Bytes;
use common::{backends, pattern, run_pair, Backend};
use eddy::core::http::HttpConfig;
use eddy::core::tls::{fixture, TlsAcceptor};
use eddy::core::{IoLoop, ListenOptions, ListenerId, StreamId};
use eddy::drivers::{spawn_threads, DriverConfig, DriverKind, ThreadServer};
use eddy::server_args::shared_listen_options;
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

const KINDS: [DriverKind; 2] = [DriverKind::Mio, DriverKind::Poll];

fn echo(io: &mut IoLoop, s: StreamId) {
    let _ = io.read_some(s, 64 * 1024, move |io, r| {
        if let Ok(data) = r {
            let _ = io.write(s, data);
            echo(io, s);
        }
    });
}

fn tls_echo_server(io: &mut IoLoop, addr: SocketAddr) -> ListenerId {
    // Built on the loop (in the simulator: inside the seeded world).
    let acceptor = fixture::acceptor();
    io.listen(addr, ListenOptions::default(), move |io, s, _| {
        io.start_tls(s, acceptor.session()).expect("start TLS");
        echo(io, s);
    })
}

#[test]
fn tls_handshake_and_echo_on_mio_poll_and_the_simulator() {
    for backend in backends() {
        let data = Bytes::from(pattern(7, 300_000));
        let got: Rc<RefCell<Option<Bytes>>> = Rc::default();
        let g = got.clone();
        let d = data.clone();
        run_pair(
            backend,
            tls_echo_server,
            move |io, addr| {
                let id = io.connect(addr, Some(eddy::core::Duration::from_secs(5)), |_, r| {
                    r.expect("connect");
                });
                let name = addr.ip().to_string();
                let name = if backend == Backend::Sim {
                    name
                } else {
                    "localhost".into()
                };
                io.start_tls(id, fixture::connector().session(&name).unwrap())
                    .unwrap();
                io.write(id, d.clone()).unwrap();
                io.read_bytes(id, d.len(), move |io, r| {
                    *g.borrow_mut() = Some(r.expect("echo over TLS"));
                    io.stop();
                })
                .unwrap();
            },
            Duration::from_secs(30),
        );
        assert_eq!(got.borrow_mut().take(), Some(data), "{backend:?}");
    }
}

/// The fixture PKI written to a temporary directory, for tools that read files.
struct PkiFiles {
    dir: PathBuf,
}

impl PkiFiles {
    fn new(tag: &str) -> PkiFiles {
        let dir = std::env::temp_dir().join(format!("eddy-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), fixture::CA_PEM).unwrap();
        std::fs::write(dir.join("server.pem"), fixture::SERVER_CHAIN_PEM).unwrap();
        std::fs::write(dir.join("server.key"), fixture::SERVER_KEY_PEM).unwrap();
        PkiFiles { dir }
    }
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for PkiFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn have(tool: &str, version_arg: &str) -> bool {
    Command::new(tool)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn https_server(kind: DriverKind, acceptor: TlsAcceptor) -> ThreadServer {
    let config = HttpConfig {
        tls: Some(acceptor),
        ..HttpConfig::default()
    };
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    spawn_threads(&DriverConfig::with_kind(kind), 1, addr, move |io, addr| {
        eddy::http_echo::serve(io, addr, config.clone(), shared_listen_options());
    })
    .expect("server starts")
}

fn stop(server: ThreadServer) {
    server.shutdown(Duration::from_secs(2));
    server.join().expect("server loop exits cleanly");
}

#[test]
fn curl_with_cacert_fetches_over_https_and_reuses_the_connection() {
    if !have("curl", "--version") {
        eprintln!("curl not installed: skipped");
        return;
    }
    let pki = PkiFiles::new("curl");
    for kind in KINDS {
        let server = https_server(kind, fixture::acceptor());
        let port = server.local_addr().port();
        let url = format!("https://localhost:{port}/p?q=1");
        let resolve = format!("localhost:{port}:127.0.0.1");
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert", &pki.path("ca.pem")])
            .args(["--resolve", &resolve, "-w", "|%{num_connects}|%{scheme}\n"])
            .args([&url, &url])
            .output()
            .expect("curl runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{kind:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("|1|HTTPS"), "{kind:?}: {stdout}");
        assert!(
            stdout.contains("|0|HTTPS"),
            "{kind:?}: keep-alive: {stdout}"
        );
        // Without the CA, curl refuses the certificate.
        let refused = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--resolve", &resolve, &url])
            .output()
            .expect("curl runs");
        assert!(
            !refused.status.success(),
            "{kind:?}: an untrusted CA passed"
        );
        stop(server);
    }
}

const PY_CLIENT: &str = r#"
import socket, ssl, sys
port, cafile, version = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
if version == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
ctx.set_alpn_protocols(["http/1.1"])
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        version, alpn = s.version(), s.selected_alpn_protocol()
        s.sendall(b"GET /py HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ssl.SSLError as e:
                break
            if not chunk:
                break
            data += chunk
        print(version, alpn, data.split(b"\r\n")[0].decode())
"#;

#[test]
fn python_ssl_speaks_tls13_and_tls12_with_eddy() {
    if !have("python3", "--version") {
        eprintln!("python3 not installed: skipped");
        return;
    }
    let pki = PkiFiles::new("py");
    for kind in KINDS {
        let server = https_server(kind, fixture::acceptor());
        let port = server.local_addr().port().to_string();
        for (version, want) in [("1.3", "TLSv1.3"), ("1.2", "TLSv1.2")] {
            let out = Command::new("timeout")
                .args([
                    "20",
                    "python3",
                    "-c",
                    PY_CLIENT,
                    &port,
                    &pki.path("ca.pem"),
                    version,
                ])
                .output()
                .expect("python3 runs");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{kind:?} {version}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                stdout.trim(),
                format!("{want} http/1.1 HTTP/1.1 200 OK"),
                "{kind:?}"
            );
        }
        stop(server);
    }
}

#[test]
fn plain_http_to_the_tls_port_is_answered_with_an_alert_and_closed_at_once() {
    for kind in KINDS {
        let server = https_server(kind, fixture::acceptor());
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{kind:?}: slow close"
        );
        assert_eq!(
            got.first(),
            Some(&0x15),
            "{kind:?}: an alert record, got {got:?}"
        );
        stop(server);
    }
}

#[test]
fn a_silent_client_is_cut_by_the_handshake_timeout_and_a_scan_closes_quietly() {
    let p = fixture::SERVER_CHAIN_PEM.as_bytes();
    let k = fixture::SERVER_KEY_PEM.as_bytes();
    let acceptor = TlsAcceptor::builder()
        .certificate(p, k)
        .handshake_timeout(Some(eddy::core::Duration::from_millis(300)))
        .build()
        .unwrap();
    for kind in KINDS {
        let server = https_server(kind, acceptor.clone());
        // A port scan: connect, close. The server must stay up and serve the next client.
        drop(TcpStream::connect(server.local_addr()).unwrap());
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap_or(0);
        let waited = started.elapsed();
        assert_eq!(n, 0, "{kind:?}: closed without a word");
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
            "{kind:?}: closed after {waited:?}"
        );
        stop(server);
    }
}

/// `openssl s_server` on a free loopback port, bounded by `timeout`.
fn s_server(pki: &PkiFiles, extra: &[&str]) -> Option<(Child, u16)> {
    for _ in 0..20 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let accept = format!("127.0.0.1:{port}");
        let mut child = Command::new("timeout")
            .args([
                "60", "openssl", "s_server", "-quiet", "-www", "-accept", &accept,
            ])
            .args([
                "-cert",
                &pki.path("server.pem"),
                "-key",
                &pki.path("server.key"),
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some((child, port));
            }
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}

fn eddy_fetch(args: &[&str]) -> (u8, String, String) {
    let out = Rc::new(RefCell::new(Vec::new()));
    let mut err = Vec::new();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let code = eddy::fetch::run_with(&args, out.clone(), &mut err);
    let out = String::from_utf8_lossy(&out.borrow()).into_owned();
    (code, out, String::from_utf8_lossy(&err).into_owned())
}

#[test]
fn eddy_fetch_against_openssl_s_server_verifies_and_names_failures() {
    if !have("openssl", "version") {
        eprintln!("openssl not installed: skipped");
        return;
    }
    let pki = PkiFiles::new("s_server");
    for (versions, want) in [(&[][..], "TLSv1.3"), (&["-tls1_2"][..], "TLSv1.2")] {
        let Some((mut child, port)) = s_server(&pki, versions) else {
            eprintln!("openssl s_server did not start: skipped");
            return;
        };
        let url = format!("https://localhost:{port}/");
        for driver in ["mio", "poll"] {
            std::env::set_var("EDDY_DRIVER", driver);
            let (code, out, err) = eddy_fetch(&["--cacert", &pki.path("ca.pem"), &url]);
            assert_eq!(code, 0, "{driver}: {err}");
            assert!(
                out.contains(want),
                "{driver}: s_server's page names {want}: {out}"
            );
        }
        std::env::remove_var("EDDY_DRIVER");
        // The default roots do not know the fixture CA: a typed error naming the cause.
        let (code, _, err) = eddy_fetch(&[&url]);
        assert_eq!(code, 1);
        assert!(err.contains("unknown issuer"), "{err}");
        // --insecure is the explicit opt-out.
        let (code, _, err) = eddy_fetch(&["--insecure", &url]);
        assert_eq!(code, 0, "{err}");
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn the_client_reports_a_closed_handshake_as_a_tls_or_connection_error() {
    // A "server" that accepts and closes at once: the client's handshake cannot finish.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        if let Ok((s, _)) = listener.accept() {
            drop(s);
        }
    });
    let (code, _, err) = eddy_fetch(&["--timeout", "5", &format!("https://127.0.0.1:{port}/")]);
    t.join().unwrap();
    assert_eq!(code, 1);
    // The peer closed (or reset, having unread bytes) mid-handshake: a connection error.
    assert!(err.contains("closed") || err.contains("reset"), "{err}");
}

#[test]
fn eddy_serve_with_cert_and_key_serves_the_application_over_https() {
    use std::io::BufRead;
    let pki = PkiFiles::new("serve");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "over TLS\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["serve", "--quiet", "--port", "0"])
        .args([
            "--cert",
            &pki.path("server.pem"),
            "--key",
            &pki.path("server.key"),
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("eddy serve starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("Serving HTTPS on 127.0.0.1 port "),
        "{line}"
    );
    let port = line.split_whitespace().nth(5).unwrap().to_owned();
    let url = format!("https://localhost:{port}/a.txt");
    let (code, out, err) = eddy_fetch(&["--cacert", &pki.path("ca.pem"), &url]);
    let (plain_code, _, _) = eddy_fetch(&["--timeout", "5", &url.replace("https", "http")]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "over TLS\n");
    assert_eq!(plain_code, 1, "plain HTTP to the HTTPS port fails");
}

#[test]
fn eddy_serve_refuses_a_key_that_is_not_a_key() {
    let pki = PkiFiles::new("serve-bad");
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["serve", "--port", "0", "--cert", &pki.path("server.pem")])
        .args(["--key", &pki.path("server.pem")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no private key"), "{err}");
}

#[test]
fn wss_reaches_a_websocket_route_over_tls_on_the_simulator() {
    use eddy::web::websocket::{seeded_mask_source, websocket_connect_with, Message, WebSocket};
    use eddy::web::websocket::{WebSocketHandler, WsConnect};
    use eddy::web::{testing::TestClient, Application, Route, Settings};
    struct Echo;
    impl WebSocketHandler for Echo {
        async fn on_message(&mut self, ws: &WebSocket, message: Message) {
            let _ = ws.send(message).await;
        }
    }
    let settings = Settings {
        http: HttpConfig {
            tls: Some(fixture::acceptor()),
            ..HttpConfig::default()
        },
        ..Settings::default()
    };
    let app = Application::try_new(vec![Route::websocket(r"/ws", || Echo)], settings).unwrap();
    let mut client = TestClient::new(app);
    let (echo, refused) = client.run_task(|addr| async move {
        let mut request = WsConnect::new(&format!("wss://{addr}/ws"));
        request.tls = Some(fixture::connector());
        let mut ws = websocket_connect_with(request, seeded_mask_source(3))
            .await
            .expect("wss connects");
        ws.send("over TLS").await.unwrap();
        let echo = ws.recv().await;
        // Without the fixture CA the default roots refuse the certificate.
        let untrusted = WsConnect::new(&format!("wss://{addr}/ws"));
        let refused = websocket_connect_with(untrusted, seeded_mask_source(4))
            .await
            .err()
            .map(|e| e.to_string());
        (echo, refused)
    });
    assert_eq!(echo, Some(Message::Text("over TLS".into())));
    let refused = refused.expect("an untrusted server is refused");
    assert!(refused.contains("unknown issuer"), "{refused}");
}
