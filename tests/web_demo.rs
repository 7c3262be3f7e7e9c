//! The demo application (`examples/web.rs`, built by `eddy::web_demo`) route by route: on the
//! simulator through the test client, and over real sockets on mio and poll.

use bytes::Bytes;
use eddy::core::http::{HttpRequest, HttpResponse};
use eddy::core::ListenOptions;
use eddy::drivers::{spawn_threads, DriverConfig, DriverKind};
use eddy::web::testing::TestClient;
use http::Method;
use sha2::{Digest, Sha256};
use std::time::Duration;

const SECRET: &[u8] = b"demo test secret";

#[test]
fn every_route_behaves_on_the_simulator() {
    let mut c = TestClient::new(eddy::web_demo::app(SECRET));
    assert_eq!(c.get("/").text(), "Hello, world");
    assert_eq!(
        c.get("/user/5").json(),
        serde_json::json!({"id": 5, "name": "user 5"})
    );
    assert_eq!(c.get("/user/abc").status, 404);
    assert_eq!(c.get("/user/").status, 404);
    assert_eq!(
        c.get("/greet?name=%3Cb%3E%26").text(),
        "<p>Hello, &lt;b&gt;&amp;</p>"
    );
    assert_eq!(c.get("/greet").status, 400);
    let r = c.get("/args?a=1&a=2&b=x");
    assert_eq!(
        r.json(),
        serde_json::json!({"query": {"a": ["1", "2"], "b": ["x"]}, "body": {}})
    );
    let form = [("content-type", "application/x-www-form-urlencoded")];
    assert_eq!(
        c.post("/args", &form, "a=1").status,
        403,
        "POST needs the XSRF token"
    );
    let token = c.get("/xsrf").text();
    assert!(c.cookies().contains_key("_xsrf"));
    let with_token = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("x-xsrftoken", &token),
    ];
    let r = c.post("/args?q=z", &with_token, "a=1&a=2");
    assert_eq!(
        r.json(),
        serde_json::json!({"query": {"q": ["z"]}, "body": {"a": ["1", "2"]}})
    );
    let multipart = "--XX\r\nContent-Disposition: form-data; name=\"m\"\r\n\r\nv\r\n--XX--\r\n";
    let mp = [
        ("content-type", "multipart/form-data; boundary=XX"),
        ("x-xsrftoken", &token),
    ];
    assert_eq!(
        c.post("/args", &mp, multipart).json()["body"],
        serde_json::json!({"m": ["v"]})
    );
    for n in 1..=3 {
        assert_eq!(c.get("/counter").text(), n.to_string());
    }
    c.set_cookie("count", "2|1:0|10:1700000000|5:count|4:OTk=|00");
    assert_eq!(
        c.get("/counter").text(),
        "1",
        "a tampered counter starts again"
    );
    let r = c.get("/private");
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("/login?next=%2Fprivate"))
    );
    let r = c.get("/login?next=%2Fprivate");
    assert_eq!((r.status, r.header("location")), (302, Some("/private")));
    assert_eq!(c.get("/private").text(), "Hello, demo");
    assert_eq!(
        c.get("/login?next=http://evil.com/").header("location"),
        Some("/")
    );
    assert_eq!(
        c.get("/login?next=//evil.com").header("location"),
        Some("/")
    );
    let r = c.get("/old");
    assert_eq!((r.status, r.header("location")), (301, Some("/")));
    assert_eq!(c.get("/sleep?ms=300").text(), "slept 300");
    assert_eq!(c.get("/sleep?ms=5001").status, 400);
    let lines: String = (0..5).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(c.get("/stream?n=5").text(), lines);
    assert_eq!(c.get("/stream?n=1001").status, 400);
    assert_eq!(c.get("/panic").status, 500);
    assert_eq!(c.get("/").status, 200, "serving goes on after a panic");
    let r = c.get("/status/404");
    assert_eq!(
        r.text(),
        "<html><title>404: Not Found</title><body>404: Not Found</body></html>"
    );
    assert_eq!(c.get("/status/599").status, 599);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
    let r = c
        .fetch(Method::PUT, "/upload", &[], Bytes::from(data.clone()))
        .unwrap();
    let hex: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        r.json(),
        serde_json::json!({"bytes": data.len(), "sha256": hex})
    );
    assert_eq!(c.get("/reverse").text(), "/user/42");
    let r = c.fetch(Method::DELETE, "/", &[], Bytes::new()).unwrap();
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(c.get("/upload").header("allow"), Some("PUT"));
}

fn fetch(method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    let mut req = HttpRequest::new(method, url);
    for (n, v) in headers {
        req = req.header(n, v);
    }
    req.body = Bytes::copy_from_slice(body.as_bytes());
    req.follow_redirects = false;
    req.error_for_status = false;
    req.request_timeout = Some(Duration::from_secs(10));
    eddy::fetch::fetch_blocking(req).unwrap().unwrap()
}

fn cookie_of(r: &HttpResponse, name: &str) -> String {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap().to_owned())
        })
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

#[test]
fn the_demo_serves_over_real_sockets_on_both_drivers() {
    for kind in [DriverKind::Mio, DriverKind::Poll] {
        let server = spawn_threads(
            &DriverConfig::with_kind(kind),
            1,
            ([127, 0, 0, 1], 0).into(),
            |io, addr| {
                let options = ListenOptions {
                    reuse_port: true,
                    ..ListenOptions::default()
                };
                eddy::web_demo::app(SECRET).listen(io, addr, options);
            },
        )
        .unwrap();
        let base = format!("http://{}", server.local_addr());
        let r = fetch(Method::GET, &format!("{base}/"), &[], "");
        assert_eq!(
            (r.status.as_u16(), &r.body[..]),
            (200, &b"Hello, world"[..]),
            "{kind:?}"
        );
        let r = fetch(Method::GET, &format!("{base}/user/9"), &[], "");
        assert_eq!(
            &r.body[..],
            br#"{"id": 9, "name": "user 9"}"#,
            "Tornado's json_encode"
        );
        let r = fetch(Method::GET, &format!("{base}/counter"), &[], "");
        let count = cookie_of(&r, "count");
        let r = fetch(
            Method::GET,
            &format!("{base}/counter"),
            &[("cookie", &format!("count={count}"))],
            "",
        );
        assert_eq!(&r.body[..], b"2");
        let r = fetch(Method::GET, &format!("{base}/xsrf"), &[], "");
        let (xsrf, token) = (
            cookie_of(&r, "_xsrf"),
            String::from_utf8(r.body.to_vec()).unwrap(),
        );
        let cookie = format!("_xsrf={xsrf}");
        let form = format!("a=1&_xsrf={}", eddy::web::escape::url_escape(&token, true));
        let h = [
            ("cookie", cookie.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        let r = fetch(Method::POST, &format!("{base}/args"), &h, &form);
        assert_eq!(r.status.as_u16(), 200);
        let r = fetch(Method::GET, &format!("{base}/stream?n=3"), &[], "");
        assert_eq!(&r.body[..], b"chunk 0\nchunk 1\nchunk 2\n");
        assert_eq!(
            fetch(Method::GET, &format!("{base}/panic"), &[], "")
                .status
                .as_u16(),
            500
        );
        assert_eq!(
            fetch(Method::PATCH, &format!("{base}/"), &[], "")
                .status
                .as_u16(),
            405
        );
        assert_eq!(
            fetch(Method::GET, &format!("{base}/sleep?ms=50"), &[], "")
                .status
                .as_u16(),
            200
        );
        server.shutdown(Duration::from_secs(1));
        server.join().unwrap();
    }
}
