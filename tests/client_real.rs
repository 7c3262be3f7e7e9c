//! HttpClient on every backend against eddy's own HttpServer (keep-alive reuse; mio, poll and
//! the simulator), and on real sockets (mio, poll) against Python's http.server (HTTP/1.0, close-delimited), a Python HTTP/1.1
//! peer (chunked, redirects, silence, resets, early close, gzip), refused ports, and the
//! `eddy fetch` command.

mod common;

use std::cell::{Cell, RefCell};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{backends, real_backends, run_pair, run_pair_at, run_single, Backend};
use eddy::core::http::{
    ClientConfig, FetchResult, HttpClient, HttpError, HttpRequest, HttpServer, Request, Responder,
    TimeoutPhase,
};
use eddy::core::{IoLoop, ListenOptions};
use http::{HeaderMap, Method, StatusCode, Version};

const LIMIT: Duration = Duration::from_secs(20);

/// A child process killed on drop.
struct Peer {
    child: Child,
    port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// Starts `python3 args...` and reads the port from its first line (the last number after
/// "PORT" or "port"); `None` (test skipped) when python3 is missing.
fn spawn_python(args: &[&str]) -> Option<Peer> {
    let mut child = match Command::new("python3")
        .arg("-u")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipping: python3 not available ({e})");
            return None;
        }
    };
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "PORT 1234" (our script) or "Serving HTTP on 127.0.0.1 port 1234 (...)" (http.server).
    let port = line
        .split_whitespace()
        .skip_while(|w| !w.eq_ignore_ascii_case("port"))
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    Some(Peer { child, port })
}

fn peer_script() -> Option<Peer> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/client_peer.py");
    spawn_python(&[script.to_str().unwrap()])
}

/// Python's `http.server` serving a fresh directory holding `hello.txt`.
fn python_http_server() -> Option<(Peer, PathBuf)> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("eddy-client-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("hello.txt"),
        "hello from python http.server\n".repeat(100),
    )
    .unwrap();
    let peer = spawn_python(&[
        "-m",
        "http.server",
        "0",
        "--bind",
        "127.0.0.1",
        "--directory",
        dir.to_str().unwrap(),
    ])?;
    Some((peer, dir))
}

/// Runs every request concurrently on one loop of `backend`; results in request order.
fn fetch_all(backend: Backend, client: &HttpClient, reqs: Vec<HttpRequest>) -> Vec<FetchResult> {
    let n = reqs.len();
    let results: Rc<RefCell<Vec<Option<FetchResult>>>> = Rc::new(RefCell::new(vec![None; n]));
    let r = results.clone();
    let client = client.clone();
    run_single(
        backend,
        move |io| {
            let left = Rc::new(Cell::new(n));
            for (i, req) in reqs.into_iter().enumerate() {
                let r = r.clone();
                let left = left.clone();
                client.fetch(io, req, move |io, res| {
                    assert!(r.borrow()[i].is_none(), "fetch {i} answered twice");
                    r.borrow_mut()[i] = Some(res);
                    left.set(left.get() - 1);
                    if left.get() == 0 {
                        io.stop();
                    }
                });
            }
        },
        LIMIT,
    );
    let v = results.borrow_mut().drain(..).map(Option::unwrap).collect();
    v
}

fn text(r: &FetchResult) -> String {
    String::from_utf8_lossy(&r.as_ref().expect("fetch succeeded").body).into_owned()
}

fn app(io: &mut IoLoop, req: Request, resp: Responder) {
    if req.path() == "/stream" {
        let mut resp = resp;
        resp.start(io, StatusCode::OK, &HeaderMap::new()).unwrap();
        resp.write(io, Bytes::from(vec![b's'; 100_000])).unwrap();
        resp.write(io, Bytes::from_static(b"end")).unwrap();
        resp.finish(io).unwrap();
        return;
    }
    let body = format!("{} {} {}", req.method(), req.target(), req.body().len());
    resp.respond(io, StatusCode::OK, &HeaderMap::new(), body)
        .unwrap();
}

#[test]
fn eddy_server_sees_one_connection_for_sequential_keep_alive_fetches() {
    for backend in backends() {
        let server = HttpServer::new(app);
        let client = HttpClient::new(ClientConfig::default());
        let bodies = Rc::new(RefCell::new(Vec::new()));
        let b = bodies.clone();
        let s = server.clone();
        run_pair(
            backend,
            move |io, addr| s.listen(io, addr, ListenOptions::default()),
            move |io, addr| chain(io, client, addr, 0, b),
            LIMIT,
        );
        let bodies = bodies.borrow();
        assert_eq!(bodies.len(), 7, "[{backend:?}]");
        for (i, body) in bodies.iter().take(5).enumerate() {
            assert_eq!(body, &format!("GET /n{i} 0"), "[{backend:?}]");
        }
        assert_eq!(bodies[5], "POST /post 100000", "[{backend:?}]");
        assert_eq!(bodies[6].len(), 100_003, "[{backend:?}] chunked stream");
        assert_eq!(
            server.stats().connections,
            1,
            "[{backend:?}] keep-alive reuse"
        );
        assert_eq!(server.stats().requests, 7, "[{backend:?}]");
    }
}

/// Five GETs, a POST with a large body, and a chunked response, one after another.
fn chain(
    io: &mut IoLoop,
    client: HttpClient,
    addr: SocketAddr,
    i: usize,
    out: Rc<RefCell<Vec<String>>>,
) {
    let req = match i {
        0..=4 => HttpRequest::get(format!("http://{addr}/n{i}")),
        5 => {
            HttpRequest::new(Method::POST, format!("http://{addr}/post")).body(vec![b'p'; 100_000])
        }
        6 => HttpRequest::get(format!("http://{addr}/stream")),
        _ => {
            io.stop();
            return;
        }
    };
    let c = client.clone();
    client.fetch(io, req, move |io, result| {
        let resp = result.expect("fetch from eddy's server");
        assert_eq!(resp.reused_connection, i > 0);
        out.borrow_mut()
            .push(String::from_utf8_lossy(&resp.body).into_owned());
        chain(io, c, addr, i + 1, out);
    });
}

#[test]
fn python_http_server_http10_close_delimited_bodies() {
    let Some((peer, dir)) = python_http_server() else {
        return;
    };
    let expected = std::fs::read_to_string(dir.join("hello.txt")).unwrap();
    for backend in real_backends() {
        let client = HttpClient::new(ClientConfig::default());
        let mut missing = HttpRequest::get(peer.url("/missing"));
        missing.error_for_status = true;
        let results = fetch_all(
            backend,
            &client,
            vec![
                HttpRequest::get(peer.url("/hello.txt")),
                HttpRequest::get(peer.url("/hello.txt")),
                missing,
            ],
        );
        for r in &results[..2] {
            let resp = r.as_ref().unwrap();
            assert_eq!(resp.version, Version::HTTP_10, "[{backend:?}]");
            assert_eq!(text(r), expected, "[{backend:?}]");
            assert!(!resp.reused_connection);
        }
        match &results[2] {
            Err(HttpError::Status(code, _)) => assert_eq!(*code, StatusCode::NOT_FOUND),
            other => panic!("[{backend:?}] {other:?}"),
        }
        let stats = client.stats();
        assert_eq!(
            stats.idle, 0,
            "[{backend:?}] HTTP/1.0 connections are not pooled"
        );
        assert_eq!(stats.connections_opened, 3, "[{backend:?}]");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn python_peer_chunked_redirects_and_gzip() {
    let Some(peer) = peer_script() else { return };
    for backend in real_backends() {
        let client = HttpClient::new(ClientConfig::default());
        let mut loop_req = HttpRequest::get(peer.url("/loop"));
        loop_req.max_redirects = 4;
        let results = fetch_all(
            backend,
            &client,
            vec![
                HttpRequest::get(peer.url("/chunked")),
                HttpRequest::get(peer.url("/redirect-rel")),
                HttpRequest::get(peer.url("/redirect-abs")),
                HttpRequest::new(Method::POST, peer.url("/see-other")).body("data"),
                loop_req,
                HttpRequest::get(peer.url("/gzip")),
            ],
        );
        assert_eq!(text(&results[0]), "first,second,third", "[{backend:?}]");
        assert_eq!(text(&results[1]), "target GET 0", "[{backend:?}]");
        assert_eq!(results[1].as_ref().unwrap().redirects, 1);
        assert_eq!(text(&results[2]), "target GET 0", "[{backend:?}]");
        assert_eq!(text(&results[3]), "target GET 0", "[{backend:?}] 303 → GET");
        assert_eq!(results[4], Err(HttpError::TooManyRedirects { max: 4 }));
        assert_eq!(
            text(&results[5]),
            "compressed ".repeat(1000),
            "[{backend:?}]"
        );
    }
}

#[test]
fn python_peer_silence_resets_and_early_close_are_errors() {
    let Some(peer) = peer_script() else { return };
    for backend in real_backends() {
        let client = HttpClient::new(ClientConfig::default());
        let mut never = HttpRequest::get(peer.url("/never"));
        never.request_timeout = Some(Duration::from_millis(300));
        let started = Instant::now();
        let results = fetch_all(
            backend,
            &client,
            vec![
                never,
                HttpRequest::get(peer.url("/reset")),
                HttpRequest::get(peer.url("/close-early")),
            ],
        );
        let phase = TimeoutPhase::Request;
        assert_eq!(
            results[0],
            Err(HttpError::Timeout { phase }),
            "[{backend:?}]"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(
                results[1],
                Err(HttpError::ConnectionReset | HttpError::ConnectionClosed)
            ),
            "[{backend:?}] {:?}",
            results[1]
        );
        assert_eq!(
            results[2],
            Err(HttpError::ConnectionClosed),
            "[{backend:?}]"
        );
    }
}

#[test]
fn refused_ports_and_silent_listeners_fail_with_the_right_error() {
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // Accepted by the kernel (backlog) but never read or answered.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    for backend in real_backends() {
        let client = HttpClient::new(ClientConfig::default());
        let mut slow = HttpRequest::get(format!("http://127.0.0.1:{silent_port}/"));
        slow.request_timeout = Some(Duration::from_millis(200));
        let results = fetch_all(
            backend,
            &client,
            vec![
                HttpRequest::get(format!("http://127.0.0.1:{closed_port}/")),
                slow,
            ],
        );
        assert_eq!(
            results[0],
            Err(HttpError::ConnectionRefused),
            "[{backend:?}]"
        );
        let phase = TimeoutPhase::Request;
        assert_eq!(
            results[1],
            Err(HttpError::Timeout { phase }),
            "[{backend:?}]"
        );
    }
    drop(silent);
}

#[test]
fn eddy_fetch_command_prints_bodies_heads_and_one_line_errors() {
    let Some((peer, dir)) = python_http_server() else {
        return;
    };
    let expected = std::fs::read(dir.join("hello.txt")).unwrap();
    let run = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = Rc::new(RefCell::new(Vec::new()));
        let mut err = Vec::new();
        let code = eddy::fetch::run_with(&args, out.clone(), &mut err);
        let out = out.take();
        (code, out, String::from_utf8(err).unwrap())
    };
    let (code, out, _) = run(&[&peer.url("/hello.txt")]);
    assert_eq!((code, out), (0, expected.clone()));
    let (code, out, _) = run(&[
        "--include",
        &peer.url("/hello.txt").replace("127.0.0.1", "localhost"),
    ]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(b"HTTP/1.0 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(out.ends_with(&expected));
    let (code, out, err) = run(&["--fail", &peer.url("/missing")]);
    assert_eq!(code, 1);
    assert!(out.is_empty(), "--fail prints no error page");
    assert_eq!(err.lines().count(), 1, "{err}");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, out, err) = run(&[&format!("http://127.0.0.1:{port}/")]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("connection refused") && err.lines().count() == 1,
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn ipv6_literal_urls_reach_an_ipv6_server() {
    for backend in real_backends() {
        let server = HttpServer::new(app);
        let s = server.clone();
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        run_pair_at(
            backend,
            "[::1]:0".parse().unwrap(),
            move |io, addr| s.listen(io, addr, ListenOptions::default()),
            move |io, addr| {
                let client = HttpClient::new(ClientConfig::default());
                let url = format!("http://[::1]:{}/v6", addr.port());
                client.fetch(io, HttpRequest::get(url), move |io, r| {
                    *g.borrow_mut() = Some(r);
                    io.stop();
                });
            },
            LIMIT,
        );
        let r = got.borrow_mut().take().unwrap();
        assert_eq!(text(&r), "GET /v6 0", "[{backend:?}]");
    }
}

/// A writer that fails once `limit` bytes were written (a closed pipe).
struct ClosedPipe {
    written: usize,
    limit: usize,
}

impl std::io::Write for ClosedPipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written >= self.limit {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        let n = buf.len().min(self.limit - self.written);
        self.written += n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn eddy_fetch_stops_when_its_output_closes() {
    let Some((peer, dir)) = python_http_server() else {
        return;
    };
    let out = Rc::new(RefCell::new(ClosedPipe {
        written: 0,
        limit: 10,
    }));
    let mut err = Vec::new();
    let args = vec![peer.url("/hello.txt")];
    let code = eddy::fetch::run_with(&args, out.clone(), &mut err);
    let err = String::from_utf8(err).unwrap();
    assert_eq!(code, 1);
    assert!(err.starts_with("eddy fetch: writing output:"), "{err}");
    assert_eq!(out.borrow().written, 10);
    let _ = std::fs::remove_dir_all(dir);
}
