//! `eddy::testing::LiveServer` (Tornado's `AsyncHTTPTestCase` over real sockets): the demo
//! application on 127.0.0.1 on both drivers, cookies kept between requests, and the server
//! gone once the value is dropped.

use bytes::Bytes;
use eddy::drivers::DriverKind;
use eddy::testing::LiveServer;
use http::Method;

#[test]
fn a_live_server_serves_the_demo_and_keeps_cookies_on_both_drivers() {
    for kind in [DriverKind::Mio, DriverKind::Poll] {
        let mut s = LiveServer::start_on(kind, || eddy::web_demo::app(b"live test")).unwrap();
        assert!(s.addr().ip().is_loopback());
        assert_eq!(s.get("/").text(), "Hello, world", "{kind:?}");
        assert_eq!(s.get("/user/3").json()["name"], "user 3");
        for n in 1..=3 {
            assert_eq!(s.get("/counter").text(), n.to_string(), "{kind:?}");
        }
        assert_eq!(s.get("/private").status, 302);
        s.get("/login");
        assert_eq!(s.get("/private").text(), "Hello, demo");
        let token = s.get("/xsrf").text();
        let form = [("content-type", "application/x-www-form-urlencoded")];
        assert_eq!(s.post("/args", &form, "a=1").status, 403);
        let body = format!("a=1&_xsrf={}", eddy::web::escape::url_escape(&token, true));
        assert_eq!(s.post("/args", &form, body).json()["body"]["a"][0], "1");
        assert_eq!(s.get("/panic").status, 500);
        assert_eq!(s.get("/").status, 200, "still serving after a panic");
        let head = s.fetch(Method::HEAD, "/user/3", &[], Bytes::new()).unwrap();
        assert!(
            head.body.is_empty() && head.header("content-length") == Some("27"),
            "{head:?}"
        );
        let url = s.url("/");
        drop(s);
        let gone = eddy::fetch::fetch_blocking(eddy::core::http::HttpRequest::get(&url));
        assert!(
            !matches!(gone, Ok(Ok(_))),
            "{kind:?}: nothing answers after drop"
        );
    }
}
