//! The web layer through the test client on eddy-sim: routing, 404/405/Allow, HEAD,
//! arguments, redirects, cookies and signed cookies, ETag/304, errors, panics, the handler
//! time-out, flushed responses, and virtual hosts.

use eddy_core::task::sleep;
use eddy_core::Duration;
use eddy_web::signed::SigningKeys;
use eddy_web::testing::TestClient;
use eddy_web::{Application, Exchange, HttpError, RequestHandler, Route, Settings};
use http::Method;

struct Hello;
impl RequestHandler for Hello {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.write("Hello, world");
        Ok(())
    }
}

struct User;
impl RequestHandler for User {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let id: u64 = ex
            .path_arg(0)
            .unwrap_or("")
            .parse()
            .map_err(|_| HttpError::new(404))?;
        ex.write_json(&serde_json::json!({"id": id, "name": format!("user {id}")}))
    }
}

struct Args;
impl RequestHandler for Args {
    const METHODS: &'static [Method] = &[Method::GET, Method::HEAD, Method::POST];
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let name = ex.argument("name")?;
        ex.write(format!("name={name}"));
        Ok(())
    }
    async fn post(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let all = ex.arguments("v")?;
        ex.write(all.join(","));
        Ok(())
    }
}

struct Counter;
impl RequestHandler for Counter {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let n: u64 = ex
            .signed_cookie("count")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
            + 1;
        ex.set_signed_cookie("count", &n.to_string())?;
        ex.write(n.to_string());
        Ok(())
    }
}

struct Old;
impl RequestHandler for Old {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.redirect("/", true)
    }
}

struct Panics;
impl RequestHandler for Panics {
    async fn get(&mut self, _ex: &mut Exchange) -> Result<(), HttpError> {
        panic!("handler bug");
    }
}

struct Status;
impl RequestHandler for Status {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let code: u16 = ex
            .path_arg(0)
            .unwrap_or("")
            .parse()
            .map_err(|_| HttpError::new(400))?;
        ex.send_error(code);
        Ok(())
    }
}

struct Slow;
impl RequestHandler for Slow {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let ms: u64 = ex
            .argument("ms")?
            .parse()
            .map_err(|_| HttpError::new(400))?;
        sleep(Duration::from_millis(ms)).await;
        ex.write(format!("slept {ms}"));
        Ok(())
    }
}

struct Stream;
impl RequestHandler for Stream {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        for i in 0..3 {
            ex.write(format!("chunk {i}\n"));
            ex.flush().await?;
        }
        Ok(())
    }
}

struct Injects;
impl RequestHandler for Injects {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.set_header("x-evil", "a\r\nSet-Cookie: pwned=1")?;
        Ok(())
    }
}

fn app() -> Application {
    let settings = Settings {
        cookie_secret: Some(SigningKeys::Single(b"test secret".to_vec())),
        handler_timeout: Duration::from_secs(10),
        ..Settings::default()
    };
    Application::try_new(
        vec![
            Route::new("/", || Hello),
            Route::new(r"/user/(\d+)", || User).named("user"),
            Route::new("/args", || Args),
            Route::new("/counter", || Counter),
            Route::new("/old", || Old),
            Route::new("/panic", || Panics),
            Route::new(r"/status/(\d+)", || Status),
            Route::new("/sleep", || Slow),
            Route::new("/stream", || Stream),
            Route::new("/inject", || Injects),
        ],
        settings,
    )
    .unwrap()
}

#[test]
fn routes_captures_json_and_404() {
    let mut c = TestClient::new(app());
    let r = c.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello, world"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"));
    assert!(r.header("date").is_some() && r.header("server").is_some());
    let r = c.get("/user/42");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"id": 42, "name": "user 42"}));
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=UTF-8")
    );
    let r = c.get("/user/x");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text(),
        "<html><title>404: Not Found</title><body>404: Not Found</body></html>"
    );
    assert_eq!(c.get("/user/1/more").status, 404);
    assert_eq!(app().reverse_url("user", &["42"]).unwrap(), "/user/42");
}

#[test]
fn unimplemented_and_unknown_methods_get_405_with_allow_and_head_runs_get() {
    let mut c = TestClient::new(app());
    let r = c.post("/", &[], "x");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = c
        .fetch(Method::DELETE, "/args", &[], Default::default())
        .unwrap();
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    let odd = Method::from_bytes(b"BREW").unwrap();
    assert_eq!(
        c.fetch(odd, "/", &[], Default::default()).unwrap().status,
        405
    );
    let r = c.fetch(Method::HEAD, "/", &[], Default::default()).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some("12"));
}

#[test]
fn arguments_from_query_and_body_and_a_missing_one_is_400() {
    let mut c = TestClient::new(app());
    assert_eq!(c.get("/args?name=a%20b").text(), "name=a b");
    let r = c.get("/args");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Missing argument name"), "{}", r.text());
    let form = [("content-type", "application/x-www-form-urlencoded")];
    assert_eq!(c.post("/args?v=q", &form, "v=1&v=2").text(), "q,1,2");
    // As Tornado's get_argument: surrounding whitespace stripped, control characters spaces.
    assert_eq!(c.get("/args?name=+%09a%01b%0A+").text(), "name=a b");
    assert_eq!(c.post("/args?v=+x+", &form, "v=%00y").text(), "x,y");
}

/// The values as sent, but for control characters.
struct Unstripped;
impl RequestHandler for Unstripped {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let values = ex.arguments_unstripped("v")?;
        ex.write(format!("{values:?}"));
        Ok(())
    }
}

#[test]
fn unstripped_arguments_keep_their_whitespace() {
    let app = Application::try_new(vec![Route::new("/", || Unstripped)], Settings::default());
    let mut c = TestClient::new(app.unwrap());
    assert_eq!(c.get("/?v=+a+&v=%07").text(), r#"[" a ", " "]"#);
}

#[test]
fn signed_cookies_count_up_and_a_tampered_one_starts_again() {
    let mut c = TestClient::new(app());
    assert_eq!(c.get("/counter").text(), "1");
    assert_eq!(c.get("/counter").text(), "2");
    assert_eq!(c.get("/counter").text(), "3");
    let good = c.cookies()["count"].clone();
    assert!(good.starts_with("2|1:0|"), "{good}");
    c.set_cookie("count", &good.replace("4:Mw==", "4:OQ=="));
    assert_eq!(
        c.get("/counter").text(),
        "1",
        "a tampered cookie reads as absent"
    );
    // Signed with another secret: also absent.
    let mut other = TestClient::new(app());
    let foreign = eddy_web::signed::create_signed_value(
        &SigningKeys::Single(b"another".to_vec()),
        "count",
        b"41",
        1,
    )
    .unwrap();
    other.set_cookie("count", &foreign);
    assert_eq!(other.get("/counter").text(), "1");
}

#[test]
fn redirects_etags_and_error_pages() {
    let mut c = TestClient::new(app());
    let r = c.get("/old");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/"));
    let r = c.get("/");
    let etag = r.header("etag").unwrap().to_owned();
    let r = c
        .fetch(
            Method::GET,
            "/",
            &[("if-none-match", &etag)],
            Default::default(),
        )
        .unwrap();
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let inm = |c: &mut TestClient, value: &str| {
        c.fetch(
            Method::GET,
            "/",
            &[("if-none-match", value)],
            Default::default(),
        )
        .unwrap()
        .status
    };
    let weak_in_list = format!("\"nope\", W/{etag}");
    assert_eq!(
        inm(&mut c, &weak_in_list),
        304,
        "weak comparison, any of a list"
    );
    assert_eq!(inm(&mut c, "*"), 304);
    assert_eq!(inm(&mut c, "\"nope\""), 200);
    assert_eq!(
        inm(&mut c, &etag[..etag.len() - 2]),
        200,
        "a prefix is not the tag"
    );
    let r = c.get("/status/503");
    assert_eq!(r.status, 503);
    assert_eq!(
        r.text(),
        "<html><title>503: Service Unavailable</title><body>503: Service Unavailable</body></html>"
    );
    assert_eq!(c.get("/status/599").status, 599);
    let r = c.get("/inject");
    assert_eq!(r.status, 500);
    assert!(r.header("x-evil").is_none() && r.header("set-cookie").is_none());
}

#[test]
fn a_panicking_handler_is_a_500_and_the_server_keeps_serving() {
    let mut c = TestClient::new(app());
    let r = c.get("/panic");
    assert_eq!(r.status, 500);
    assert_eq!(
        r.text(),
        "<html><title>500: Internal Server Error</title><body>500: Internal Server Error</body></html>"
    );
    assert_eq!(c.get("/").status, 200);
}

#[test]
fn timers_do_not_block_and_the_handler_timeout_cuts_a_slow_one() {
    let mut c = TestClient::new(app());
    let before = c.sim().now();
    assert_eq!(c.get("/sleep?ms=250").text(), "slept 250");
    assert!(c.sim().now() - before >= Duration::from_millis(250));
    let r = c.get("/sleep?ms=20000");
    assert_eq!(r.status, 503, "cut at the 10 s handler timeout");
    assert_eq!(c.get("/").status, 200);
}

#[test]
fn flushed_pieces_arrive_as_a_chunked_body() {
    let mut c = TestClient::new(app());
    let r = c.get("/stream");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "chunk 0\nchunk 1\nchunk 2\n");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.header("etag").is_none(), "no ETag for a flushed body");
}

#[test]
fn virtual_hosts_are_matched_before_the_default_routes() {
    struct Api;
    impl RequestHandler for Api {
        async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
            ex.write("api");
            Ok(())
        }
    }
    let app = app();
    app.add_handlers(r"api\.example\.com", vec![Route::new("/", || Api)])
        .unwrap();
    let mut c = TestClient::new(app);
    let host = [("host", "API.example.com:8080")];
    assert_eq!(
        c.fetch(Method::GET, "/", &host, Default::default())
            .unwrap()
            .text(),
        "api"
    );
    assert_eq!(c.get("/").text(), "Hello, world");
}

#[test]
fn the_same_app_works_under_network_faults() {
    let faults = eddy_sim::FaultConfig {
        ..eddy_sim::FaultConfig::latency(Duration::from_millis(1), Duration::from_millis(30))
    };
    for seed in 0..20 {
        let mut c = TestClient::with_faults(app(), seed, faults.clone());
        assert_eq!(c.get("/user/7").json()["id"], 7, "seed {seed}");
        assert_eq!(c.get("/counter").text(), "1");
        assert_eq!(c.get("/counter").text(), "2");
    }
}

struct Big;
impl RequestHandler for Big {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let n: usize = ex.argument("n")?.parse().map_err(|_| HttpError::new(400))?;
        if ex.argument("flush").is_ok() {
            for i in 0..n {
                ex.write(format!("line {i}\n"));
                ex.flush().await?;
            }
        } else {
            ex.write("x".repeat(n));
        }
        Ok(())
    }
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn compress_response_gzips_what_is_worth_it_for_clients_that_accept_it() {
    let settings = Settings {
        compress_response: true,
        ..Settings::default()
    };
    let app = Application::try_new(vec![Route::new("/big", || Big)], settings).unwrap();
    let mut c = TestClient::new(app);
    let gz = [("accept-encoding", "gzip, deflate")];
    let r = c
        .fetch(Method::GET, "/big?n=5000", &gz, Default::default())
        .unwrap();
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r.body.len() < 200, "5000 x compress well: {}", r.body.len());
    assert_eq!(gunzip(&r.body), "x".repeat(5000).as_bytes());
    let plain = c.get("/big?n=5000");
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert_eq!(plain.body.len(), 5000);
    let refused = [("accept-encoding", "gzip;q=0")];
    let r = c
        .fetch(Method::GET, "/big?n=5000", &refused, Default::default())
        .unwrap();
    assert_eq!(r.header("content-encoding"), None);
    let small = c
        .fetch(Method::GET, "/big?n=100", &gz, Default::default())
        .unwrap();
    assert_eq!(
        small.header("content-encoding"),
        None,
        "under 1 KiB stays plain"
    );
    let streamed = c
        .fetch(Method::GET, "/big?n=50&flush=1", &gz, Default::default())
        .unwrap();
    assert_eq!(streamed.header("content-encoding"), Some("gzip"));
    let expected: String = (0..50).map(|i| format!("line {i}\n")).collect();
    assert_eq!(gunzip(&streamed.body), expected.as_bytes());
}

#[test]
fn on_connection_close_runs_when_the_client_leaves_not_on_a_timeout() {
    use std::cell::Cell;
    use std::rc::Rc;
    thread_local! {
        static CLOSED: Rc<Cell<u32>> = Rc::default();
    }
    struct Waits;
    impl RequestHandler for Waits {
        async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
            sleep(Duration::from_secs(60)).await;
            ex.write("late");
            Ok(())
        }
        fn on_connection_close(&mut self) {
            CLOSED.with(|c| c.set(c.get() + 1));
        }
    }
    let settings = Settings {
        handler_timeout: Duration::from_secs(30),
        ..Settings::default()
    };
    let app = Application::try_new(vec![Route::new("/wait", || Waits)], settings).unwrap();
    // The connection dies (a reset) while the handler waits.
    let mut io = eddy_core::IoLoop::default();
    let mut net = eddy_core::testing::FakeNet::new();
    let (_, listener) = app.clone().listen(
        &mut io,
        "127.0.0.1:80".parse().unwrap(),
        eddy_core::ListenOptions::default(),
    );
    net.run_until_idle(&mut io, false, 10);
    let id = net.accept(&mut io, listener, "127.0.0.1:9".parse().unwrap());
    net.peer_send(id, b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(net.run_until_idle(&mut io, false, 100));
    assert_eq!(io.task_count(), 1, "the handler waits");
    io.handle_error(id, std::io::ErrorKind::ConnectionReset);
    assert!(net.run_until_idle(&mut io, false, 100));
    assert_eq!(io.task_count(), 0);
    assert_eq!(
        CLOSED.with(|c| c.get()),
        1,
        "the client left: the handler was told"
    );
    let mut c = TestClient::new(app);
    assert_eq!(c.get("/wait").status, 503, "the handler timed out");
    assert_eq!(
        CLOSED.with(|c| c.get()),
        1,
        "a timeout is not a closed connection"
    );
}

/// A value serde_json refuses half-way (a map whose key is not a string), then text.
struct HalfJson;
impl RequestHandler for HalfJson {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.write("before ");
        let mut bad = std::collections::BTreeMap::new();
        bad.insert(vec![1u8], 2u8);
        let e = ex.write_json(&bad).unwrap_err();
        assert_eq!(e.status(), 500);
        ex.write("after");
        Ok(())
    }
}

#[test]
fn json_that_fails_to_encode_leaves_nothing_in_the_body() {
    let app = Application::try_new(vec![Route::new("/", || HalfJson)], Settings::default());
    let r = TestClient::new(app.unwrap()).get("/");
    assert_eq!(r.text(), "before after");
    assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"));
}

/// Shows the captures it got.
struct Captures;
impl RequestHandler for Captures {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let args = ex.path_args();
        ex.write(format!("{:?} {:?}", args.positional, args.named));
        Ok(())
    }
}

#[test]
fn recycled_captures_never_leak_into_the_next_request() {
    let app = Application::try_new(
        vec![
            Route::new("/plain", || Captures),
            Route::new(r"/one/([^/]+)", || Captures),
            Route::new(r"/two/([^/]+)/(\d+)?", || Captures),
            Route::new(r"/named/(?P<id>\d+)", || Captures),
        ],
        Settings::default(),
    );
    let app = app.unwrap().with_default_handler(|| Captures);
    let mut c = TestClient::new(app);
    for _ in 0..3 {
        assert_eq!(
            c.get("/two/a%20b/12").text(),
            r#"[Some("a b"), Some("12")] []"#
        );
        assert_eq!(
            c.get("/elsewhere").text(),
            "[] []",
            "the default handler gets none"
        );
        assert_eq!(c.get("/one/x").text(), r#"[Some("x")] []"#);
        assert_eq!(c.get("/plain").text(), "[] []");
        assert_eq!(
            c.get("/two/long-long-long/").text(),
            r#"[Some("long-long-long"), None] []"#
        );
        assert_eq!(c.get("/named/5").text(), r#"[] [("id", Some("5"))]"#);
        assert_eq!(c.get("/one/%FF").status, 400, "not UTF-8 once decoded");
        assert_eq!(
            c.get("/nowhere").text(),
            "[] []",
            "the default handler gets none"
        );
    }
}

/// An API handler whose errors are JSON (Tornado's `write_error` override).
struct JsonApi;
impl RequestHandler for JsonApi {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.write("partial output that the error page replaces");
        match ex.query_arguments("fail")?.pop().as_deref() {
            Some("panic") => panic!("the handler broke"),
            Some("own") => {
                ex.send_error(418);
                Ok(())
            }
            Some(code) => Err(HttpError::new(code.parse().unwrap_or(500)).with_reason("Nope")),
            None => Ok(()),
        }
    }
    fn write_error(&mut self, ex: &mut Exchange, error: &HttpError, traceback: Option<&str>) {
        let body = serde_json::json!({"code": error.status(), "reason": error.reason(), "traceback": traceback});
        let _ = ex.write_json(&body);
    }
}

/// A `write_error` that panics itself.
struct BrokenPage;
impl RequestHandler for BrokenPage {
    async fn get(&mut self, _ex: &mut Exchange) -> Result<(), HttpError> {
        Err(HttpError::new(409))
    }
    fn write_error(&mut self, ex: &mut Exchange, _error: &HttpError, _traceback: Option<&str>) {
        ex.write("half a page");
        panic!("write_error broke");
    }
}

fn error_app(settings: Settings) -> TestClient {
    let app = Application::try_new(
        vec![
            Route::new("/api", || JsonApi),
            Route::new("/broken", || BrokenPage),
            Route::new("/hello", || Hello),
        ],
        settings,
    );
    TestClient::new(app.unwrap())
}

#[test]
fn a_handler_writes_its_own_error_pages() {
    let mut c = error_app(Settings::default());
    let r = c.get("/api?fail=404");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=UTF-8")
    );
    assert_eq!(
        r.json(),
        serde_json::json!({"code": 404, "reason": "Nope", "traceback": null})
    );
    let r = c.get("/api?fail=panic");
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json()["traceback"],
        serde_json::Value::Null,
        "no traceback without debug"
    );
    // `send_error` from inside the handler is the application's page, not the handler's.
    let r = c.get("/api?fail=own");
    assert_eq!(
        (r.status, r.header("content-type")),
        (418, Some("text/html; charset=UTF-8"))
    );
    assert!(r
        .text()
        .starts_with("<html><title>418: I&#39;m a teapot</title>"));
    let r = c.get("/broken");
    assert_eq!(r.status, 409);
    assert_eq!(
        r.text(),
        "<html><title>409: Conflict</title><body>409: Conflict</body></html>"
    );
    assert_eq!(
        c.get("/api").text(),
        "partial output that the error page replaces"
    );
}

#[test]
fn tracebacks_reach_write_error_only_when_allowed() {
    let mut c = error_app(Settings {
        serve_traceback: true,
        ..Settings::default()
    });
    let r = c.get("/api?fail=panic");
    assert_eq!(r.json()["traceback"], "the handler broke");
}

#[test]
fn the_application_write_error_serves_every_other_page() {
    let settings = Settings {
        write_error: Some(std::sync::Arc::new(
            |ex: &mut Exchange, error: &HttpError, _traceback: Option<&str>| {
                ex.write(format!("custom {} {}", error.status(), error.reason()));
            },
        )),
        ..Settings::default()
    };
    let mut c = error_app(settings);
    let r = c.get("/nowhere");
    assert_eq!(
        (r.status, r.text()),
        (404, "custom 404 Not Found".to_owned())
    );
    let r = c.post("/hello", &[], "");
    assert_eq!(
        (r.status, r.text()),
        (405, "custom 405 Method Not Allowed".to_owned())
    );
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(c.get("/api?fail=own").text(), "custom 418 I'm a teapot");
    // A handler's own write_error comes first.
    assert_eq!(c.get("/api?fail=400").json()["code"], 400);
}

/// Sets things, then `clear`s them; clears every cookie the request had.
struct Cleared;
impl RequestHandler for Cleared {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.set_status(201);
        ex.set_header("x-gone", "1")?;
        ex.write("gone");
        ex.clear();
        ex.clear_all_cookies();
        ex.write("fresh");
        Ok(())
    }
}

#[test]
fn clear_forgets_the_response_and_clear_all_cookies_deletes_each() {
    let app = Application::try_new(vec![Route::new("/", || Cleared)], Settings::default());
    let mut c = TestClient::new(app.unwrap());
    c.set_cookie("a", "1");
    c.set_cookie("b", "2");
    let r = c.get("/");
    assert_eq!((r.status, r.text()), (200, "fresh".to_owned()));
    assert_eq!(r.header("x-gone"), None);
    assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"));
    let deleted: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    assert!(
        c.cookies().is_empty(),
        "the client dropped both: {:?}",
        c.cookies()
    );
}

/// Sets a cookie, then fails (or answers with `?status`, bodiless ones included).
struct CookieThenStatus;
impl RequestHandler for CookieThenStatus {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.set_cookie(eddy_web::cookie::SetCookie::new("seen", "1"))
            .unwrap();
        ex.set_header("content-language", "en")?;
        ex.write("some body");
        match ex.query_arguments("status")?.pop() {
            Some(code) => {
                ex.set_status(code.parse().unwrap());
                Ok(())
            }
            None => Err(HttpError::new(400)),
        }
    }
}

#[test]
fn bodiless_statuses_error_pages_and_vary_follow_tornado() {
    let settings = Settings {
        compress_response: true,
        ..Settings::default()
    };
    let app = Application::try_new(
        vec![
            Route::new("/c", || CookieThenStatus),
            Route::new(r"/status/(\d+)", || Status),
            Route::new("/", || Hello),
        ],
        settings,
    );
    let mut c = TestClient::new(app.unwrap());
    // Cookies set before an error still go out with its page.
    let r = c.get("/c");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("set-cookie"), Some("seen=1; Path=/"));
    assert!(r.text().starts_with("<html><title>400: Bad Request"));
    for code in ["204", "304"] {
        let r = c.get(&format!("/c?status={code}"));
        assert_eq!(r.status.to_string(), code);
        assert!(r.body.is_empty(), "{code}");
        for gone in ["content-type", "content-language", "content-encoding"] {
            assert_eq!(r.header(gone), None, "{code}: {gone}");
        }
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{code}");
        let r = c.get(&format!("/status/{code}"));
        assert!(
            r.body.is_empty() && r.header("content-type").is_none(),
            "{code}"
        );
    }
    // The 304 of a conditional GET varies as its 200 did.
    let etag = c.get("/").header("etag").unwrap().to_owned();
    let r = c
        .fetch(
            Method::GET,
            "/",
            &[("if-none-match", &etag)],
            Default::default(),
        )
        .unwrap();
    assert_eq!((r.status, r.header("vary")), (304, Some("Accept-Encoding")));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(c.get("/status/302").header("vary"), Some("Accept-Encoding"));
}

/// Sets `a` twice and `ab` once.
struct TwoCookies;
impl RequestHandler for TwoCookies {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        use eddy_web::cookie::SetCookie;
        ex.set_cookie(SetCookie::new("a", "1")).unwrap();
        ex.set_cookie(SetCookie::new("ab", "x")).unwrap();
        ex.set_cookie(SetCookie::new("a", "2")).unwrap();
        Ok(())
    }
}

#[test]
fn a_cookie_set_twice_is_sent_once_with_the_last_value() {
    let app = Application::try_new(vec![Route::new("/", || TwoCookies)], Settings::default());
    let r = TestClient::new(app.unwrap()).get("/");
    let set: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
    assert_eq!(set, ["ab=x; Path=/", "a=2; Path=/"]);
}
