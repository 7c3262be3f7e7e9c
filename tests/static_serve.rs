//! `eddy serve`'s application over real sockets on mio and poll (and the same requests on
//! the simulator): files, ranges and validators end to end, and a path-traversal corpus
//! (raw, percent-encoded, double-encoded, backslashes, NUL, absolute, symlinks out of the
//! root) that must never return a byte from outside the served directory.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{backends, Backend};
use eddy::drivers::{DriverConfig, OsFiles, ThreadServer};
use eddy::serve::{serve_application, serve_files, spawn_file_server};
use eddy::sim::{FileFaults, SimFiles};
use eddy::web::testing::TestClient;
use http::Method;

const SECRET: &str = "TOP-SECRET-CONTENT";

/// One raw response: status, head text, body.
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Sends `path` byte for byte (no client-side normalisation) and reads to end of file.
fn raw_get(addr: SocketAddr, path: &str, extra: &str) -> Raw {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let status = head[9..12].parse().unwrap();
    let mut body = all[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Raw { status, head, body }
}

/// The data of a chunked body (no extensions or trailers expected).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a size line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line]).unwrap(), 16).unwrap();
        raw = &raw[line + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// A served directory inside a temporary tree whose sibling holds the secret.
struct Tree {
    _top: tempfile::TempDir,
    root: std::path::PathBuf,
}

fn tree() -> Tree {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("www");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(top.path().join("secret.txt"), SECRET).unwrap();
    std::fs::create_dir(top.path().join("outside")).unwrap();
    std::fs::write(top.path().join("outside/secret.txt"), SECRET).unwrap();
    std::fs::write(root.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(root.join("sub/b.txt"), "beta\n").unwrap();
    std::fs::write(root.join(".hidden"), SECRET).unwrap();
    let digits: String = (0..5000u32)
        .map(|i| char::from(b'0' + (i % 10) as u8))
        .collect();
    std::fs::write(root.join("digits.txt"), digits).unwrap();
    std::fs::write(root.join("page.css"), page_css()).unwrap();
    std::os::unix::fs::symlink(top.path().join("secret.txt"), root.join("link_file")).unwrap();
    std::os::unix::fs::symlink(top.path().join("outside"), root.join("link_dir")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", root.join("rel_link")).unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("inside_link")).unwrap();
    Tree { _top: top, root }
}

fn start(kind: eddy::drivers::DriverKind, root: &std::path::Path) -> ThreadServer {
    let files = serve_files(Arc::new(OsFiles::new(root).unwrap()), false);
    spawn_file_server(&DriverConfig::with_kind(kind), files).unwrap()
}

/// Paths that try to leave the root, as sent on the wire.
const TRAVERSALS: &[&str] = &[
    "/../secret.txt",
    "/../../../../../../etc/passwd",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/.%2e/secret.txt",
    "/%2e%2e%2fsecret.txt",
    "/..%2fsecret.txt",
    "/sub/..%2f..%2fsecret.txt",
    "/sub/%2e%2e/%2e%2e/secret.txt",
    "/%252e%252e/secret.txt",
    "/%252e%252e%252fsecret.txt",
    "/..\\secret.txt",
    "/..%5csecret.txt",
    "/%5c..%5csecret.txt",
    "/sub\\..\\..\\secret.txt",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/%2F..%2Fsecret.txt",
    "/a.txt%00",
    "/a.txt%00/../../secret.txt",
    "/%00../secret.txt",
    "/.hidden",
    "/%2ehidden",
    "/sub/../../secret.txt",
    "/./../secret.txt",
    "/..;/secret.txt",
    "/%c0%ae%c0%ae/secret.txt",
    "/%uff0e%uff0e/secret.txt",
    "/C:/secret.txt",
    "/file:///etc/passwd",
];

/// Symlinks in the tree that point outside the root (real file systems only).
const SYMLINKS_OUT: &[&str] = &[
    "/link_file",
    "/link_dir/secret.txt",
    "/rel_link",
    "/link_dir/",
];

fn assert_refused(status: u16, body: &[u8], path: &str) {
    assert!(matches!(status, 400 | 403 | 404), "{path}: status {status}");
    assert!(
        !String::from_utf8_lossy(body).contains(SECRET) && !body.starts_with(b"root:"),
        "{path}: leaked"
    );
}

#[test]
fn files_ranges_and_validators_on_every_backend() {
    for backend in backends() {
        let mut get = getter(backend);
        let (status, head, body) = get("/a.txt", "");
        assert_eq!((status, &body[..]), (200, &b"alpha\n"[..]), "{backend:?}");
        assert!(
            head.contains("content-type: text/plain; charset=utf-8"),
            "{head}"
        );
        let etag = header(&head, "etag").expect("etag");
        let (status, _, body) = get("/a.txt", &format!("If-None-Match: {etag}\r\n"));
        assert_eq!((status, body.len()), (304, 0), "{backend:?}");
        let (status, head, body) = get("/digits.txt", "Range: bytes=4990-\r\n");
        assert_eq!(
            (status, &body[..]),
            (206, &b"0123456789"[..]),
            "{backend:?}"
        );
        assert_eq!(
            header(&head, "content-range").as_deref(),
            Some("bytes 4990-4999/5000")
        );
        let (status, head, _) = get("/digits.txt", "Range: bytes=9000-\r\n");
        assert_eq!(status, 416);
        assert_eq!(
            header(&head, "content-range").as_deref(),
            Some("bytes */5000")
        );
        let (status, _, body) = get("/sub/", "");
        assert_eq!(status, 200);
        assert!(String::from_utf8_lossy(&body).contains("href=\"./b.txt\""));
        let (status, _, body) = get("/hello", "");
        assert_eq!((status, &body[..]), (200, &b"Hello from eddy\n"[..]));
        // Several ranges: multipart/byteranges.
        let (status, head, body) = get("/digits.txt", "Range: bytes=0-1,10-11\r\n");
        assert_eq!(status, 206, "{backend:?}");
        let boundary = header(&head, "content-type")
            .and_then(|ct| {
                ct.strip_prefix("multipart/byteranges; boundary=")
                    .map(str::to_owned)
            })
            .expect("multipart");
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(text.matches(&format!("--{boundary}")).count(), 3, "{text}");
        assert!(
            text.contains("Content-Range: bytes 10-11/5000\r\n\r\n01"),
            "{text}"
        );
        // If-Range with a stale validator: the whole file.
        let (status, _, body) = get("/digits.txt", "Range: bytes=0-1\r\nIf-Range: \"old\"\r\n");
        assert_eq!((status, body.len()), (200, 5000), "{backend:?}");
        // Compressed when accepted, with Vary; identity otherwise.
        let (status, head, body) = get("/page.css", "Accept-Encoding: gzip\r\n");
        assert_eq!(status, 200);
        assert_eq!(
            header(&head, "content-encoding").as_deref(),
            Some("gzip"),
            "{backend:?}"
        );
        let vary = header(&head, "vary").map(|v| v.to_ascii_lowercase());
        assert_eq!(vary.as_deref(), Some("accept-encoding"));
        let mut css = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut css)
            .unwrap();
        assert_eq!(css, page_css());
        let (_, head, body) = get("/page.css", "");
        assert_eq!(header(&head, "content-encoding"), None);
        assert_eq!(body, page_css().as_bytes());
        // A failed precondition.
        let (status, _, _) = get("/a.txt", "If-Match: \"nope\"\r\n");
        assert_eq!(status, 412, "{backend:?}");
    }
}

fn page_css() -> String {
    "p { margin: 0 }\n".repeat(300)
}

#[test]
fn no_request_reads_outside_the_root_on_any_backend() {
    for backend in backends() {
        let mut get = getter(backend);
        for path in TRAVERSALS {
            let (status, _, body) = get(path, "");
            assert_refused(status, &body, &format!("{backend:?} {path}"));
        }
        if backend != Backend::Sim {
            for path in SYMLINKS_OUT {
                let (status, _, body) = get(path, "");
                assert_refused(status, &body, &format!("{backend:?} {path}"));
            }
            let (status, _, body) = get("/inside_link", "");
            assert_eq!(
                (status, &body[..]),
                (200, &b"alpha\n"[..]),
                "links inside are followed"
            );
        }
        // Still serving after all that.
        assert_eq!(get("/a.txt", "").0, 200);
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

type Getter = Box<dyn FnMut(&str, &str) -> (u16, String, Vec<u8>)>;

/// The same request function on every backend: raw sockets to a real server, or the test
/// client on the simulator (over a copy of the tree in memory).
fn getter(backend: Backend) -> Getter {
    match backend.driver_kind() {
        Some(kind) => {
            let t = tree();
            let server = start(kind, &t.root);
            let addr = server.local_addr();
            let keep = (t, server);
            Box::new(move |path, extra| {
                let _ = &keep;
                let r = raw_get(addr, path, extra);
                (r.status, r.head.to_ascii_lowercase(), r.body)
            })
        }
        None => {
            let fs = SimFiles::new(1, FileFaults::none());
            fs.write("a.txt", "alpha\n").unwrap();
            fs.write("sub/b.txt", "beta\n").unwrap();
            fs.write(".hidden", SECRET).unwrap();
            let digits: String = (0..5000u32)
                .map(|i| char::from(b'0' + (i % 10) as u8))
                .collect();
            fs.write("digits.txt", digits).unwrap();
            fs.write("page.css", page_css()).unwrap();
            let files = serve_files(Arc::new(fs), false);
            let mut client = TestClient::new(serve_application(&files, None, None));
            Box::new(move |path, extra| {
                let headers: Vec<(&str, &str)> = extra
                    .split("\r\n")
                    .filter_map(|l| l.split_once(": "))
                    .collect();
                match client.fetch(Method::GET, path, &headers, Bytes::new()) {
                    Ok(r) => {
                        let mut head = String::new();
                        for (n, v) in &r.headers {
                            head.push_str(&format!("{n}: {}\r\n", v.to_str().unwrap_or("")));
                        }
                        (r.status, head, r.body.to_vec())
                    }
                    // A target the client itself refuses to send is refused all the same.
                    Err(_) => (400, String::new(), Vec::new()),
                }
            })
        }
    }
}
