//! HttpClient (mio, poll) against a raw loopback peer that answers with exact bytes: folded
//! header fields, non-ASCII and unusable redirect Locations, cross-origin redirects, non-ASCII
//! request URLs, gzip transfer coding, unknown transfer codings and `x-gzip` content coding.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{real_backends, run_single, Backend};
use eddy::core::http::{
    ClientConfig, FetchResult, HttpClient, HttpError, HttpRequest, ResponseError,
};
use http::StatusCode;

const LIMIT: Duration = Duration::from_secs(20);

/// A loopback HTTP peer on a thread: reads each request head, records it, writes the bytes
/// `respond` gives for its request-target, and closes once the client has closed.
struct RawPeer {
    port: u16,
    heads: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RawPeer {
    fn start(respond: impl Fn(&[u8], u16) -> Vec<u8> + Send + 'static) -> RawPeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let stop: Arc<AtomicBool> = Arc::default();
        let (h, s) = (heads.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let head = read_head(&mut stream);
                let target = head.split(|&b| b == b' ').nth(1).unwrap_or(b"").to_vec();
                h.lock().unwrap().push(head);
                let _ = stream.write_all(&respond(&target, port));
                let _ = stream.shutdown(Shutdown::Write);
                // Wait for the client to close (every answer says `Connection: close`).
                let _ = stream.read_to_end(&mut Vec::new());
            }
        });
        RawPeer {
            port,
            heads,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The request heads received since the last call.
    fn take_heads(&self) -> Vec<String> {
        let heads = std::mem::take(&mut *self.heads.lock().unwrap());
        heads
            .iter()
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .collect()
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads up to the end of a request head (GETs only: no body follows).
fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    head
}

/// A complete `Connection: close` response with a Content-Length body.
fn response(status_line: &str, fields: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status_line}\r\n").into_bytes();
    out.extend_from_slice(fields);
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

/// A redirect to `location` (raw bytes, as a server may send them).
fn redirect(location: &[u8]) -> Vec<u8> {
    let mut fields = b"Location: ".to_vec();
    fields.extend_from_slice(location);
    fields.extend_from_slice(b"\r\n");
    response("302 Found", &fields, b"")
}

/// `data` in chunked transfer coding, in 7-byte chunks.
fn chunked(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in data.chunks(7) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// CRC-32 (IEEE), for the gzip trailer.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// `data` as a gzip member holding one stored (uncompressed) deflate block.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("one stored block");
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0x01];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Runs one fetch on a fresh loop of `backend`.
fn fetch(backend: Backend, req: HttpRequest) -> FetchResult {
    let out: Rc<RefCell<Option<FetchResult>>> = Rc::default();
    let o = out.clone();
    let client = HttpClient::new(ClientConfig::default());
    run_single(
        backend,
        move |io| {
            client.fetch(io, req, move |io, r| {
                *o.borrow_mut() = Some(r);
                io.stop();
            });
        },
        LIMIT,
    );
    let r = out.borrow_mut().take().expect("fetch answered");
    r
}

fn body(r: &FetchResult) -> String {
    String::from_utf8_lossy(&r.as_ref().expect("fetch succeeded").body).into_owned()
}

/// Answers every request-target with a 200 whose body is that target.
fn echo_target(target: &[u8]) -> Vec<u8> {
    response("200 OK", b"", target)
}

#[test]
fn obs_folded_response_field_is_unfolded_into_spaces() {
    let peer = RawPeer::start(|_, _| {
        response(
            "200 OK",
            b"X-Folded: part1\r\n  part2\r\n\tpart3\r\nX-Plain: p\r\n",
            b"ok",
        )
    });
    for backend in real_backends() {
        let r = fetch(backend, HttpRequest::get(peer.url("/")));
        let resp = r.as_ref().unwrap_or_else(|e| panic!("[{backend:?}] {e}"));
        assert_eq!(
            resp.headers["x-folded"], "part1 part2 part3",
            "[{backend:?}]"
        );
        assert_eq!(resp.headers["x-plain"], "p", "[{backend:?}]");
        assert_eq!(body(&r), "ok", "[{backend:?}]");
    }
}

#[test]
fn non_ascii_locations_are_percent_encoded_and_followed() {
    let peer = RawPeer::start(|target, _| match target {
        b"/utf8" => redirect("/café?q=é".as_bytes()),
        b"/latin1" => redirect(b"/\xe9t\xe9"),
        b"/space" => redirect(b"/a b?c d"),
        b"/relative" => redirect(b"sub/caf\xc3\xa9"),
        other => echo_target(other),
    });
    for backend in real_backends() {
        for (path, expected) in [
            ("/utf8", "/caf%C3%A9?q=%C3%A9"),
            ("/latin1", "/%E9t%E9"),
            ("/space", "/a%20b?c%20d"),
            ("/relative", "/sub/caf%C3%A9"),
        ] {
            let r = fetch(backend, HttpRequest::get(peer.url(path)));
            assert_eq!(body(&r), expected, "[{backend:?}] {path}");
            let resp = r.unwrap();
            assert_eq!(resp.redirects, 1, "[{backend:?}] {path}");
            assert_eq!(resp.effective_url, peer.url(expected), "[{backend:?}]");
        }
        let heads = peer.take_heads();
        assert_eq!(
            heads.len(),
            8,
            "[{backend:?}] one hop per redirect: {heads:?}"
        );
        assert!(
            heads.iter().all(|h| h.is_ascii()),
            "[{backend:?}] {heads:?}"
        );
    }
}

#[test]
fn unusable_locations_end_the_redirect_chain_instead_of_looping() {
    let peer = RawPeer::start(|target, _| match target {
        b"/empty" => redirect(b""),
        b"/bad-host" => redirect(b"http://[::1/x"),
        b"/ftp" => redirect(b"ftp://127.0.0.1/x"),
        other => echo_target(other),
    });
    for backend in real_backends() {
        match fetch(backend, HttpRequest::get(peer.url("/empty"))) {
            Err(HttpError::Status(StatusCode::FOUND, resp)) => assert_eq!(resp.redirects, 0),
            other => panic!("[{backend:?}] empty Location: {other:?}"),
        }
        for path in ["/bad-host", "/ftp"] {
            let r = fetch(backend, HttpRequest::get(peer.url(path)));
            assert!(
                matches!(r, Err(HttpError::InvalidUrl { .. })),
                "[{backend:?}] {path}: {r:?}"
            );
        }
        assert_eq!(
            peer.take_heads().len(),
            3,
            "[{backend:?}] no request repeated"
        );
    }
}

#[test]
fn cross_origin_redirects_drop_credentials_and_cookies() {
    let other = RawPeer::start(|target, _| echo_target(target));
    let other_url = other.url("/landing");
    let peer = RawPeer::start(move |target, _| match target {
        b"/cross" => redirect(other_url.as_bytes()),
        b"/same" => redirect(b"/landing"),
        t => echo_target(t),
    });
    let request = |url: String| {
        HttpRequest::get(url)
            .header("Authorization", "Bearer secret")
            .header("Cookie", "session=secret")
            .header("Proxy-Authorization", "Basic c2VjcmV0")
            .header("X-Custom", "kept")
    };
    for backend in real_backends() {
        let r = fetch(backend, request(peer.url("/cross")));
        assert_eq!(body(&r), "/landing", "[{backend:?}]");
        let heads = other.take_heads();
        assert_eq!(heads.len(), 1, "[{backend:?}]");
        let head = heads[0].to_ascii_lowercase();
        for gone in [
            "\r\nauthorization:",
            "\r\ncookie:",
            "\r\nproxy-authorization:",
            "secret",
        ] {
            assert!(!head.contains(gone), "[{backend:?}] {gone} leaked: {head}");
        }
        assert!(head.contains("x-custom: kept\r\n"), "[{backend:?}] {head}");
        peer.take_heads();

        // A same-origin redirect keeps them.
        let r = fetch(backend, request(peer.url("/same")));
        assert_eq!(body(&r), "/landing", "[{backend:?}]");
        let heads = peer.take_heads();
        assert_eq!(heads.len(), 2, "[{backend:?}]");
        let head = heads[1].to_ascii_lowercase();
        for kept in [
            "authorization: bearer secret\r\n",
            "cookie: session=secret\r\n",
            "proxy-authorization: basic c2vjcmv0\r\n",
        ] {
            assert!(head.contains(kept), "[{backend:?}] {kept} dropped: {head}");
        }
    }
}

#[test]
fn non_ascii_request_urls_are_percent_encoded_on_the_wire() {
    let peer = RawPeer::start(|target, _| echo_target(target));
    for backend in real_backends() {
        let r = fetch(backend, HttpRequest::get(peer.url("/café/ü?q=é&k=%41/?:@")));
        assert_eq!(
            body(&r),
            "/caf%C3%A9/%C3%BC?q=%C3%A9&k=%41/?:@",
            "[{backend:?}]"
        );
        let heads = peer.take_heads();
        assert!(
            heads[0].starts_with("GET /caf%C3%A9/%C3%BC?q=%C3%A9&k=%41/?:@ HTTP/1.1\r\n"),
            "[{backend:?}] {heads:?}"
        );
    }
}

#[test]
fn gzip_transfer_coding_is_decoded_and_unknown_codings_fail() {
    let plain = "transfer-coded ".repeat(40);
    let gz = gzip_stored(plain.as_bytes());
    let peer = RawPeer::start(move |target, _| {
        let mut out = b"HTTP/1.1 200 OK\r\nConnection: close\r\n".to_vec();
        match target {
            b"/gzip-chunked" => {
                out.extend_from_slice(b"Transfer-Encoding: gzip, chunked\r\n\r\n");
                out.extend_from_slice(&chunked(&gz));
            }
            b"/x-gzip-chunked" => {
                out.extend_from_slice(b"Transfer-Encoding: x-gzip\r\n");
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                out.extend_from_slice(&chunked(&gz));
            }
            b"/gzip-close" => {
                out.extend_from_slice(b"Transfer-Encoding: gzip\r\n\r\n");
                out.extend_from_slice(&gz);
            }
            b"/twice" => {
                // Transfer-coded gzip over a gzip content coding.
                out.extend_from_slice(b"Content-Encoding: gzip\r\n");
                out.extend_from_slice(b"Transfer-Encoding: gzip, chunked\r\n\r\n");
                out.extend_from_slice(&chunked(&gzip_stored(&gz)));
            }
            b"/bad-gzip" => {
                out.extend_from_slice(b"Transfer-Encoding: gzip, chunked\r\n\r\n");
                out.extend_from_slice(&chunked(b"not gzip at all"));
            }
            _ => {
                out.extend_from_slice(b"Transfer-Encoding: compress, chunked\r\n\r\n");
                out.extend_from_slice(&chunked(&gz));
            }
        }
        out
    });
    for backend in real_backends() {
        for path in ["/gzip-chunked", "/x-gzip-chunked", "/gzip-close", "/twice"] {
            let r = fetch(backend, HttpRequest::get(peer.url(path)));
            assert_eq!(body(&r), plain, "[{backend:?}] {path}");
        }
        let r = fetch(backend, HttpRequest::get(peer.url("/bad-gzip")));
        assert_eq!(r, Err(HttpError::Decompress), "[{backend:?}]");
        let r = fetch(backend, HttpRequest::get(peer.url("/compress")));
        assert_eq!(
            r,
            Err(HttpError::Protocol(ResponseError::BadFraming(
                "unsupported transfer coding"
            ))),
            "[{backend:?}]"
        );
    }
}

#[test]
fn x_gzip_content_coding_is_decoded_like_gzip() {
    let plain = "content-coded ".repeat(30);
    let gz = gzip_stored(plain.as_bytes());
    let peer = RawPeer::start(move |_, _| response("200 OK", b"Content-Encoding: x-gzip\r\n", &gz));
    for backend in real_backends() {
        let r = fetch(backend, HttpRequest::get(peer.url("/")));
        assert_eq!(body(&r), plain, "[{backend:?}]");
        let resp = r.unwrap();
        assert_eq!(resp.headers["x-consumed-content-encoding"], "x-gzip");
        assert!(!resp.headers.contains_key("content-encoding"));
    }
}
