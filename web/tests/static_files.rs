//! StaticFileHandler on the simulator's file system: headers, conditional requests, ranges,
//! compression, directories, versioned URLs, and file-system faults.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use eddy_core::Duration;
use eddy_sim::{FaultConfig, FileFaults, SimFiles};
use eddy_web::testing::{TestClient, TestResponse};
use eddy_web::{Application, Exchange, HttpError, RequestHandler, Route, Settings, StaticFiles};
use http::Method;

fn sample_files() -> Arc<SimFiles> {
    let fs = SimFiles::new(7, FileFaults::none());
    fs.write("hello.txt", &b"Hello, static world!\n"[..])
        .unwrap();
    let digits: Vec<u8> = (0..10_000u32).map(|i| b'0' + (i % 10) as u8).collect();
    fs.write("digits.txt", digits).unwrap();
    fs.write("app.css", "body { color: red; }\n".repeat(200))
        .unwrap();
    fs.write("pre.js", "console.log('x');\n".repeat(100))
        .unwrap();
    fs.write("pre.js.gz", &b"not really gzip, but served as the .gz"[..])
        .unwrap();
    fs.write("img.png", vec![0x89u8; 300]).unwrap();
    fs.write("empty.bin", Vec::<u8>::new()).unwrap();
    fs.write("docs/index.html", &b"<h1>docs</h1>"[..]).unwrap();
    fs.write("list/a.txt", &b"a"[..]).unwrap();
    fs.write("list/B.txt", &b"b"[..]).unwrap();
    fs.write("list/.hidden", &b"h"[..]).unwrap();
    fs.write(".env", &b"SECRET=1"[..]).unwrap();
    fs.write("robots.txt", &b"User-agent: *\n"[..]).unwrap();
    fs.set_modified("hello.txt", 784_111_777).unwrap();
    Arc::new(fs)
}

fn client_for(files: StaticFiles) -> TestClient {
    let app = Application::new(vec![files.route("/s/")]);
    TestClient::new(app)
}

fn client() -> TestClient {
    client_for(
        StaticFiles::new(sample_files())
            .default_filename("index.html")
            .list_directories(true),
    )
}

fn get(c: &mut TestClient, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    c.fetch(Method::GET, path, headers, Bytes::new()).unwrap()
}

#[test]
fn a_file_comes_with_its_type_length_validators_and_ranges_advertised() {
    let mut c = client();
    let r = get(&mut c, "/s/hello.txt", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello, static world!\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("21"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        r.header("last-modified"),
        Some("Sun, 06 Nov 1994 08:49:37 GMT")
    );
    assert_eq!(r.header("etag"), Some("\"2ebc98a1-15\""));
    assert_eq!(r.header("cache-control"), None);
    let png = get(&mut c, "/s/img.png", &[]);
    assert_eq!(png.header("content-type"), Some("image/png"));
    assert_eq!(png.body.len(), 300);
    let empty = get(&mut c, "/s/empty.bin", &[]);
    assert_eq!((empty.status, empty.body.len()), (200, 0));
    assert_eq!(empty.header("content-length"), Some("0"));
}

#[test]
fn head_sends_the_headers_of_get_and_no_body() {
    let mut c = client();
    let r = c
        .fetch(Method::HEAD, "/s/digits.txt", &[], Bytes::new())
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("10000"));
    assert!(r.body.is_empty());
    let after = get(&mut c, "/s/hello.txt", &[]);
    assert_eq!(
        after.text(),
        "Hello, static world!\n",
        "the connection stays in step"
    );
}

#[test]
fn conditional_requests_answer_304_and_412() {
    let mut c = client();
    let tag = "\"2ebc98a1-15\"";
    let r = get(&mut c, "/s/hello.txt", &[("if-none-match", tag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(tag));
    let r = get(
        &mut c,
        "/s/hello.txt",
        &[("if-none-match", "\"x\", W/\"2ebc98a1-15\"")],
    );
    assert_eq!(r.status, 304, "weak comparison for If-None-Match");
    let r = get(&mut c, "/s/hello.txt", &[("if-none-match", "\"other\"")]);
    assert_eq!(r.status, 200);
    let r = get(&mut c, "/s/hello.txt", &[("if-none-match", "*")]);
    assert_eq!(r.status, 304);
    let date = "Sun, 06 Nov 1994 08:49:37 GMT";
    let r = get(&mut c, "/s/hello.txt", &[("if-modified-since", date)]);
    assert_eq!(r.status, 304);
    let earlier = "Sun, 06 Nov 1994 08:49:36 GMT";
    let r = get(&mut c, "/s/hello.txt", &[("if-modified-since", earlier)]);
    assert_eq!(r.status, 200);
    let r = get(
        &mut c,
        "/s/hello.txt",
        &[("if-none-match", "\"other\""), ("if-modified-since", date)],
    );
    assert_eq!(r.status, 200, "If-None-Match overrides If-Modified-Since");
    let r = get(&mut c, "/s/hello.txt", &[("if-modified-since", "garbage")]);
    assert_eq!(r.status, 200);
    let r = get(&mut c, "/s/hello.txt", &[("if-match", "\"other\"")]);
    assert_eq!(r.status, 412);
    let r = get(&mut c, "/s/hello.txt", &[("if-match", tag)]);
    assert_eq!(r.status, 200);
    let r = get(&mut c, "/s/hello.txt", &[("if-unmodified-since", earlier)]);
    assert_eq!(r.status, 412);
}

#[test]
fn ranges_single_suffix_open_and_unsatisfiable() {
    let mut c = client();
    let digits: String = (0..10_000u32)
        .map(|i| char::from(b'0' + (i % 10) as u8))
        .collect();
    let r = get(&mut c, "/s/digits.txt", &[("range", "bytes=10-19")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), &digits[10..20]);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/10000"));
    assert_eq!(r.header("content-length"), Some("10"));
    let r = get(&mut c, "/s/digits.txt", &[("range", "bytes=-5")]);
    assert_eq!((r.status, r.text().as_str()), (206, &digits[9995..]));
    let r = get(&mut c, "/s/digits.txt", &[("range", "bytes=9990-")]);
    assert_eq!(r.header("content-range"), Some("bytes 9990-9999/10000"));
    let r = get(&mut c, "/s/digits.txt", &[("range", "bytes=9990-20000")]);
    assert_eq!(r.text(), &digits[9990..]);
    let r = get(&mut c, "/s/digits.txt", &[("range", "bytes=10000-")]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */10000"));
    let r = get(&mut c, "/s/empty.bin", &[("range", "bytes=0-")]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */0"));
    for ignored in ["bytes=5-1", "lines=1-2", "bytes=x"] {
        let r = get(&mut c, "/s/digits.txt", &[("range", ignored)]);
        assert_eq!((r.status, r.body.len()), (200, 10_000), "{ignored}");
    }
}

#[test]
fn several_ranges_are_a_multipart_byteranges_body() {
    let mut c = client();
    let r = get(&mut c, "/s/digits.txt", &[("range", "bytes=0-2,100-103")]);
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap().to_owned();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .expect("multipart");
    assert_eq!(
        r.header("content-length").unwrap(),
        r.body.len().to_string()
    );
    let body = r.text();
    let expected = format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-2/10000\r\n\r\n012\
         \r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 100-103/10000\r\n\r\n0123\
         \r\n--{boundary}--\r\n"
    );
    assert_eq!(body, expected);
    // Overlapping ranges are coalesced into one part.
    let r = get(&mut c, "/s/digits.txt", &[("range", "bytes=0-9,5-14")]);
    assert_eq!(r.header("content-range"), Some("bytes 0-14/10000"));
}

#[test]
fn if_range_applies_the_range_only_to_the_same_file() {
    let mut c = client();
    let tag = get(&mut c, "/s/digits.txt", &[])
        .header("etag")
        .unwrap()
        .to_owned();
    let lm = get(&mut c, "/s/digits.txt", &[])
        .header("last-modified")
        .unwrap()
        .to_owned();
    let r = get(
        &mut c,
        "/s/digits.txt",
        &[("range", "bytes=0-0"), ("if-range", &tag)],
    );
    assert_eq!(r.status, 206);
    let r = get(
        &mut c,
        "/s/digits.txt",
        &[("range", "bytes=0-0"), ("if-range", &lm)],
    );
    assert_eq!(r.status, 206);
    for stale in [
        "\"old\"",
        "Sun, 06 Nov 1994 08:49:37 GMT",
        &format!("W/{tag}"),
    ] {
        let r = get(
            &mut c,
            "/s/digits.txt",
            &[("range", "bytes=0-0"), ("if-range", stale)],
        );
        assert_eq!((r.status, r.body.len()), (200, 10_000), "{stale}");
    }
}

fn gunzip(data: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(data)
        .read_to_string(&mut out)
        .unwrap();
    out
}

#[test]
fn compressible_files_are_gzipped_when_accepted_and_ranges_stay_identity() {
    let mut c = client();
    let css = "body { color: red; }\n".repeat(200);
    let r = get(&mut c, "/s/app.css", &[("accept-encoding", "gzip, br")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r.body.len() < css.len() / 4);
    assert_eq!(gunzip(&r.body), css);
    let gz_tag = r.header("etag").unwrap().to_owned();
    let plain = get(&mut c, "/s/app.css", &[]);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert_eq!(plain.text(), css);
    assert_ne!(
        plain.header("etag").unwrap(),
        gz_tag,
        "each encoding its own tag"
    );
    let r = get(
        &mut c,
        "/s/app.css",
        &[("accept-encoding", "gzip"), ("if-none-match", &gz_tag)],
    );
    assert_eq!(r.status, 304);
    let r = get(
        &mut c,
        "/s/app.css",
        &[("accept-encoding", "gzip"), ("range", "bytes=0-3")],
    );
    assert_eq!((r.status, r.text().as_str()), (206, "body"));
    assert_eq!(r.header("content-encoding"), None);
    // A precompressed FILE.gz is sent as it is.
    let r = get(&mut c, "/s/pre.js", &[("accept-encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.text(), "not really gzip, but served as the .gz");
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    // Images are not compressed; `gzip;q=0` refuses.
    let r = get(&mut c, "/s/img.png", &[("accept-encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), None);
    let r = get(&mut c, "/s/app.css", &[("accept-encoding", "gzip;q=0")]);
    assert_eq!(r.header("content-encoding"), None);
}

#[test]
fn directories_redirect_serve_their_index_or_are_listed() {
    let mut c = client();
    let r = get(&mut c, "/s/docs", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("./docs/"));
    let r = get(&mut c, "/s/docs/", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>docs</h1>"));
    let r = get(&mut c, "/s/list/", &[]);
    assert_eq!(r.status, 200);
    let page = r.text();
    assert!(page.contains("href=\"./a.txt\"") && page.contains("href=\"./B.txt\""));
    assert!(page.find("a.txt").unwrap() < page.find("B.txt").unwrap());
    assert!(!page.contains("hidden"));
    assert!(page.contains("Directory listing for /s/list/"));
    // Without listing, a directory is not a file.
    let mut c = client_for(StaticFiles::new(sample_files()));
    assert_eq!(get(&mut c, "/s/list/", &[]).status, 403);
    assert_eq!(get(&mut c, "/s/docs/", &[]).status, 403);
}

#[test]
fn paths_that_leave_the_root_or_name_hidden_files_are_refused() {
    let mut c = client();
    for path in [
        "/s/../hello.txt",
        "/s/%2e%2e/hello.txt",
        "/s/docs/%2E%2E/%2e%2e/hello.txt",
        "/s/..%2fhello.txt",
        "/s/%2fetc%2fpasswd",
        "/s//etc/passwd",
    ] {
        let r = get(&mut c, path, &[]);
        assert_eq!(r.status, 403, "{path}");
    }
    for path in [
        "/s/%252e%252e/hello.txt",
        "/s/..%5chello.txt",
        "/s/hello.txt%00.png",
        "/s/.env",
        "/s/list/.hidden",
        "/s/nope.txt",
        "/s/hello.txt/x",
    ] {
        let r = get(&mut c, path, &[]);
        assert_eq!(r.status, 404, "{path}");
    }
    let mut c = client_for(StaticFiles::new(sample_files()).serve_hidden(true));
    assert_eq!(get(&mut c, "/s/.env", &[]).text(), "SECRET=1");
}

struct Page;
impl RequestHandler for Page {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let url = ex.static_url("app.css")?;
        ex.write(url);
        Ok(())
    }
}

struct TemplatePage;
impl RequestHandler for TemplatePage {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.render_string(r#"<link href="{{ static_url('app.css') }}">"#, ())
    }
}

#[test]
fn templates_name_static_files_with_their_version() {
    let settings = Settings {
        static_files: Some(StaticFiles::new(sample_files())),
        ..Settings::default()
    };
    let app = Application::try_new(
        vec![Route::new("/", || Page), Route::new("/t", || TemplatePage)],
        settings,
    )
    .unwrap();
    let mut c = TestClient::new(app);
    let url = get(&mut c, "/", &[]).text();
    // The URL's `&`-free query needs no escaping; the template gives the same URL.
    assert_eq!(
        get(&mut c, "/t", &[]).text(),
        format!(r#"<link href="{url}">"#)
    );
}

#[test]
fn static_url_versions_and_the_versioned_cache_policy() {
    let files = StaticFiles::new(sample_files()).cache_control("no-cache");
    let settings = Settings {
        static_files: Some(files),
        ..Settings::default()
    };
    let app = Application::try_new(vec![Route::new("/", || Page)], settings).unwrap();
    let mut c = TestClient::new(app);
    let url = get(&mut c, "/", &[]).text();
    let v = url.strip_prefix("/static/app.css?v=").expect(&url);
    assert_eq!(v.len(), 32);
    let r = get(&mut c, &url, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert!(r.header("expires").is_some());
    let r = get(&mut c, "/static/app.css", &[]);
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(get(&mut c, "/robots.txt", &[]).text(), "User-agent: *\n");
    assert_eq!(get(&mut c, "/favicon.ico", &[]).status, 404);
}

/// Under disk and network faults, a response is either the file (possibly as changed after
/// its stat: one byte differs), an error status, or a failed transfer; never a body of the
/// announced length with other bytes, never a hang.
#[test]
fn file_system_faults_never_give_a_wrong_complete_body() {
    let digits: Vec<u8> = (0..200_000u32).map(|i| b'0' + (i % 10) as u8).collect();
    let (mut whole, mut failed) = (0, 0);
    for seed in 0..12u64 {
        let faults = FileFaults {
            read_error: 0.001, // per read call, and a response takes hundreds of them
            ..FileFaults::chaos()
        };
        let fs = SimFiles::new(seed, faults);
        fs.write("big.txt", digits.clone()).unwrap();
        let files = StaticFiles::new(Arc::new(fs)).gzip(false);
        let app = Application::new(vec![files.route("/s/")]);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        let mut c = TestClient::with_faults(app, seed, FaultConfig::swarm(&mut rng));
        c.set_timeout(Duration::from_secs(60));
        for _ in 0..8 {
            match c.fetch(Method::GET, "/s/big.txt", &[], Bytes::new()) {
                Ok(r) if r.status == 200 => {
                    assert_eq!(r.body.len(), digits.len(), "seed {seed}: short 200 body");
                    let differing = r.body.iter().zip(&digits).filter(|(a, b)| a != b).count();
                    assert!(differing <= 1, "seed {seed}: {differing} bytes differ");
                    whole += 1;
                }
                Ok(r) => {
                    assert!(r.status >= 500, "seed {seed}: status {}", r.status);
                    failed += 1;
                }
                Err(_) => failed += 1, // cut: the client knows it has no whole file
            }
        }
    }
    assert!(whole > 20 && failed > 5, "{whole} whole, {failed} failed");
}
