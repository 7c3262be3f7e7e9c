//! The deployment Tornado recommends, with a real nginx (skipped when nginx is missing;
//! `.ci/run` installs it): nginx load-balances over two eddy backends, one on TCP and one
//! on a unix socket, with upstream keep-alive and the `proxy_set_header`s of
//! `deploy/nginx.conf`. Checked: requests reach both backends; the app sees the client's
//! address and scheme (xheaders), and forged headers from a peer that is not the proxy are
//! ignored; upstream connections are reused; a 50 MiB upload passes; a backend stopped
//! gracefully mid-load loses no request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy::core::http::HttpConfig;
use eddy::drivers::{spawn_threads, DriverConfig, DriverKind, ThreadServer};
use eddy::web::{Application, Exchange, HttpError, RequestHandler, Route};
use sha2::{Digest, Sha256};

/// Where nginx connects to the backends from: the only trusted proxy.
const PROXY_IP: &str = "127.0.0.1";
/// Where the test's clients connect from, so their address differs from the proxy's.
const CLIENT_IP: [u8; 4] = [127, 0, 0, 3];

struct WhoAmI {
    backend: &'static str,
}

impl RequestHandler for WhoAmI {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let request = ex.request();
        let body = serde_json::json!({
            "backend": self.backend,
            "remote_ip": ex.remote_ip().to_string(),
            "scheme": format!("{:?}", request.protocol()).to_lowercase(),
            "peer_port": request.remote_addr().port(),
        });
        ex.write_json(&body)
    }
}

/// The demo application plus `/whoami`, trusting only the proxy's address.
fn backend_app(backend: &'static str) -> Application {
    let app = eddy::web_demo::app(b"behind nginx test secret");
    let mut settings = app.settings().clone();
    settings.http = HttpConfig {
        xheaders: true,
        trusted_downstream: vec![PROXY_IP.parse().unwrap()],
        ..settings.http
    };
    let app = app.with_settings(settings);
    app.add_handlers(
        ".*",
        vec![Route::new("/whoami", move || WhoAmI { backend })],
    )
    .unwrap();
    app
}

fn start_tcp_backend() -> ThreadServer {
    spawn_threads(
        &DriverConfig::with_kind(DriverKind::Mio),
        1,
        ([127, 0, 0, 1], 0).into(),
        |io, addr| {
            backend_app("tcp").listen(io, addr, eddy::server_args::shared_listen_options());
        },
    )
    .unwrap()
}

fn start_unix_backend(path: &Path) -> ThreadServer {
    let path = path.to_str().unwrap().to_owned();
    spawn_threads(
        &DriverConfig::with_kind(DriverKind::Poll),
        1,
        ([127, 0, 0, 1], 0).into(),
        move |io, _| {
            backend_app("unix").listen_unix(io, &path, 0o600, eddy::core::ListenOptions::default());
        },
    )
    .unwrap()
}

struct Nginx {
    child: Child,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx on `port` (and `tls_port`, standing in for a TLS-terminating front that says
/// `X-Forwarded-Proto: https`) in front of both backends.
fn start_nginx(dir: &Path, port: u16, tls_port: u16, tcp: SocketAddr, unix: &Path) -> Nginx {
    let bin = nginx_binary().unwrap();
    let d = dir.display();
    let proxy = |proto: &str| {
        format!(
            "proxy_pass http://eddy; proxy_http_version 1.1; proxy_set_header Connection \"\"; \
             proxy_set_header Host $host; \
             proxy_set_header X-Real-IP $remote_addr; \
             proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; \
             proxy_set_header X-Forwarded-Proto {proto};"
        )
    };
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log warn;\n\
         pid {d}/nginx.pid;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
         scgi_temp_path {d}/scgi;\n  client_max_body_size 64m;\n\
         upstream eddy {{ server {tcp}; server unix:{unix}; keepalive 8; }}\n\
         server {{ listen 127.0.0.1:{port}; location / {{ {} }} }}\n\
         server {{ listen 127.0.0.1:{tls_port}; location / {{ {} }} }}\n}}\n",
        proxy("$scheme"),
        proxy("https"),
        unix = unix.display(),
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(bin)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {:?}",
            std::fs::read_to_string(dir.join("error.log"))
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Nginx { child }
}

/// One request on a new connection from [`CLIENT_IP`]; the status and body.
fn request(port: u16, head: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    sock.bind(&SocketAddr::from((CLIENT_IP, 0)).into())?;
    sock.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no response head"))?;
    let status = std::str::from_utf8(&all[9..12]).unwrap().parse().unwrap();
    let head_text = String::from_utf8_lossy(&all[..end]).to_ascii_lowercase();
    let mut body = all[end + 4..].to_vec();
    if head_text.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line) = raw.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..line]).unwrap().trim(), 16).unwrap();
        raw = &raw[line + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
    out
}

fn whoami(port: u16, extra: &str) -> serde_json::Value {
    let head = format!("GET /whoami HTTP/1.1\r\nHost: app\r\n{extra}Connection: close\r\n\r\n");
    let (status, body) = request(port, &head, b"").unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn nginx_in_front_of_a_tcp_and_a_unix_backend() {
    if nginx_binary().is_none() {
        eprintln!("skipped: nginx is not installed (apt-get install nginx-light)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("backend.sock");
    let tcp = start_tcp_backend();
    let unix = start_unix_backend(&sock);
    let (port, tls_port) = (free_port(), free_port());
    let _nginx = start_nginx(dir.path(), port, tls_port, tcp.local_addr(), &sock);

    // Both backends answer; the app sees the client's address and scheme, not nginx's.
    let mut seen = std::collections::BTreeSet::new();
    let mut tcp_peers = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let me = whoami(port, "X-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\n");
        assert_eq!(
            me["remote_ip"], "127.0.0.3",
            "forged headers do not pass nginx: {me}"
        );
        assert_eq!(me["scheme"], "http");
        if me["backend"] == "tcp" {
            tcp_peers.insert(me["peer_port"].as_u64().unwrap());
        }
        seen.insert(me["backend"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 2, "both backends get requests: {seen:?}");
    assert!(
        tcp_peers.len() <= 8,
        "upstream keep-alive: 20-odd requests over {} connections",
        tcp_peers.len()
    );
    let me = whoami(tls_port, "");
    assert_eq!(me["scheme"], "https", "the scheme the front says: {me}");
    // A client reaching the TCP backend directly cannot forge its address or scheme.
    let direct = whoami(
        tcp.local_addr().port(),
        "X-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n",
    );
    assert_eq!(direct["remote_ip"], "127.0.0.3", "{direct}");
    assert_eq!(direct["scheme"], "http", "{direct}");

    // A 50 MiB upload through nginx to a streaming handler.
    let body: Vec<u8> = (0..50u32 << 20).map(|i| (i % 251) as u8).collect();
    let head = format!(
        "PUT /upload HTTP/1.1\r\nHost: app\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (status, answer) = request(port, &head, &body).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["bytes"], body.len() as u64);
    assert_eq!(answer["sha256"], format!("{:x}", Sha256::digest(&body)));

    // Load through nginx while the TCP backend stops gracefully: no request is lost.
    let done = Arc::new(AtomicU64::new(0));
    let client = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            for i in 0..400u64 {
                let head = "GET /whoami HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n";
                match request(port, head, b"") {
                    Ok((200, _)) => {}
                    Ok((status, body)) => failures.push(format!(
                        "request {i}: {status} {}",
                        String::from_utf8_lossy(&body)
                    )),
                    Err(e) => failures.push(format!("request {i}: {e}")),
                }
                done.store(i + 1, Ordering::Relaxed);
            }
            failures
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::Relaxed) < 100 {
        assert!(Instant::now() < deadline, "the load stalled");
        std::thread::sleep(Duration::from_millis(5));
    }
    tcp.shutdown(Duration::from_secs(5));
    tcp.join().expect("the backend stops cleanly");
    let at_stop = done.load(Ordering::Relaxed);
    let failures = client.join().unwrap();
    assert!(at_stop < 400, "stopped mid-load");
    assert!(
        failures.is_empty(),
        "{} lost: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    unix.shutdown(Duration::from_secs(1));
    unix.join().unwrap();
}
