//! HttpClient on the scripted FakeNet driver, in virtual time: against eddy's own HttpServer
//! on the same loop, and against scripted peers for refused, reset, stale and slow servers.

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use eddy_core::http::{
    ClientConfig, FetchResult, HttpClient, HttpConfig, HttpError, HttpRequest, HttpServer, Request,
    Responder, TimeoutPhase,
};
use eddy_core::testing::FakeNet;
use eddy_core::{Duration, Instant, IoLoop, ListenOptions, StreamId};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

const PORT: u16 = 80;

fn base() -> String {
    format!("http://127.0.0.1:{PORT}")
}

thread_local! {
    /// Responders of `/never`, kept so the server never answers and never sends a 500.
    static NEVER: RefCell<Vec<Responder>> = const { RefCell::new(Vec::new()) };
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// The test application: echo by default, plus redirects, gzip, slow and silent paths.
fn app(io: &mut IoLoop, req: Request, resp: Responder) {
    let path = req.path().to_owned();
    let mut h = HeaderMap::new();
    let echo = format!("{} {} {}", req.method(), req.target(), req.body().len());
    match path.as_str() {
        "/redirect" => {
            let args = req.query_arguments();
            let to = args.get_str("to").unwrap_or("/".into()).into_owned();
            let code: u16 = args
                .get_str("code")
                .unwrap_or("302".into())
                .parse()
                .unwrap();
            h.insert("location", HeaderValue::from_str(&to).unwrap());
            let status = StatusCode::from_u16(code).unwrap();
            resp.respond(io, status, &h, "moved").unwrap();
        }
        "/loop" => {
            h.insert("location", HeaderValue::from_static("/loop"));
            resp.respond(io, StatusCode::FOUND, &h, "").unwrap();
        }
        "/gzip" => {
            let gz = req.header("accept-encoding") == Some(b"gzip");
            if gz {
                h.insert("content-encoding", HeaderValue::from_static("gzip"));
                resp.respond(io, StatusCode::OK, &h, gzip(&[b'z'; 10_000]))
                    .unwrap();
            } else {
                resp.respond(io, StatusCode::OK, &h, vec![b'z'; 10_000])
                    .unwrap();
            }
        }
        "/big" => resp
            .respond(io, StatusCode::OK, &h, vec![b'b'; 10_000])
            .unwrap(),
        "/missing" => resp.respond(io, StatusCode::NOT_FOUND, &h, "nope").unwrap(),
        "/nocontent" => resp.respond(io, StatusCode::NO_CONTENT, &h, "").unwrap(),
        "/slow" => {
            io.call_later(Duration::from_secs(1), move |io| {
                resp.respond(io, StatusCode::OK, &HeaderMap::new(), echo)
                    .unwrap();
            });
        }
        "/never" => NEVER.with(|n| n.borrow_mut().push(resp)),
        "/stream" => {
            let mut resp = resp;
            resp.start(io, StatusCode::OK, &h).unwrap();
            resp.write(io, Bytes::from_static(b"part1,")).unwrap();
            resp.write(io, Bytes::from_static(b"part2")).unwrap();
            resp.finish(io).unwrap();
        }
        _ => resp.respond(io, StatusCode::OK, &h, echo).unwrap(),
    }
}

struct World {
    io: IoLoop,
    net: FakeNet,
    server: HttpServer,
    client: HttpClient,
}

fn world_with(server_config: HttpConfig, client_config: ClientConfig) -> World {
    let mut io = IoLoop::default();
    let mut net = FakeNet::new();
    let server = HttpServer::with_config(server_config, app);
    let addr: SocketAddr = ([127, 0, 0, 1], PORT).into();
    server.listen(&mut io, addr, ListenOptions::default());
    net.step(&mut io);
    World {
        io,
        net,
        server,
        client: HttpClient::new(client_config),
    }
}

fn world() -> World {
    world_with(HttpConfig::default(), ClientConfig::default())
}

type Results = Rc<RefCell<Vec<(Instant, FetchResult)>>>;

impl World {
    /// Fetches and records the outcome (with the virtual time it arrived).
    fn fetch(&mut self, req: HttpRequest) -> Results {
        let results: Results = Rc::default();
        self.fetch_into(req, &results);
        results
    }

    fn fetch_into(&mut self, req: HttpRequest, results: &Results) {
        let r = results.clone();
        self.client.fetch(&mut self.io, req, move |io, result| {
            r.borrow_mut().push((io.now(), result));
        });
    }

    fn run(&mut self) {
        assert!(self.net.run_until_idle(&mut self.io, true, 100_000));
    }

    /// Runs without jumping the clock.
    fn settle(&mut self) {
        assert!(self.net.run_until_idle(&mut self.io, false, 100_000));
    }
}

fn one(results: &Results) -> FetchResult {
    let r = results.borrow();
    assert_eq!(r.len(), 1, "exactly one callback");
    r[0].1.clone()
}

fn body(result: &FetchResult) -> String {
    let resp = result.as_ref().expect("fetch succeeded");
    String::from_utf8(resp.body.to_vec()).unwrap()
}

#[test]
fn get_against_http_server_returns_status_headers_and_body() {
    let mut w = world();
    let r = w.fetch(HttpRequest::get(format!("{}/hello?x=1", base())));
    w.run();
    let result = one(&r);
    assert_eq!(body(&result), "GET /hello?x=1 0");
    let resp = result.unwrap();
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.headers["content-length"], "16");
    assert_eq!(resp.effective_url, format!("{}/hello?x=1", base()));
}

#[test]
fn sequential_fetches_reuse_one_keep_alive_connection() {
    let mut w = world();
    let results: Results = Rc::default();
    // Each fetch starts from the previous one's callback.
    fn chain(io: &mut IoLoop, client: HttpClient, results: Results, left: u32) {
        if left == 0 {
            return;
        }
        let url = format!("{}/n{left}", base());
        let r = results.clone();
        let c = client.clone();
        client.fetch(io, HttpRequest::get(url), move |io, result| {
            r.borrow_mut().push((io.now(), result));
            chain(io, c, r, left - 1);
        });
    }
    chain(&mut w.io, w.client.clone(), results.clone(), 5);
    w.run();
    let results = results.borrow();
    assert_eq!(results.len(), 5);
    for (i, (_, r)) in results.iter().enumerate() {
        let resp = r.as_ref().unwrap();
        assert_eq!(resp.reused_connection, i > 0, "fetch {i}");
    }
    assert_eq!(w.server.stats().connections, 1);
    assert_eq!(w.server.stats().requests, 5);
    let stats = w.client.stats();
    assert_eq!((stats.connections_opened, stats.reused), (1, 4));
}

#[test]
fn post_body_is_sent_with_content_length() {
    let mut w = world();
    let req = HttpRequest::new(Method::POST, format!("{}/p", base())).body("0123456789");
    let r = w.fetch(req);
    w.run();
    assert_eq!(body(&one(&r)), "POST /p 10");
}

#[test]
fn chunked_response_streams_to_on_chunk() {
    let mut w = world();
    let chunks = Rc::new(RefCell::new(Vec::new()));
    let c = chunks.clone();
    let heads = Rc::new(RefCell::new(Vec::new()));
    let h = heads.clone();
    let c2 = chunks.clone();
    let mut req = HttpRequest::get(format!("{}/stream", base()));
    req.on_chunk = Some(Box::new(move |_, data| c.borrow_mut().push(data)));
    req.on_head = Some(Box::new(move |_, head| {
        assert!(c2.borrow().is_empty(), "the head comes before the body");
        h.borrow_mut().push(head.status);
    }));
    let r = w.fetch(req);
    w.run();
    let resp = one(&r).unwrap();
    assert_eq!(*heads.borrow(), [StatusCode::OK]);
    assert!(resp.body.is_empty(), "streamed bodies are not buffered");
    assert_eq!(resp.headers["transfer-encoding"], "chunked");
    assert_eq!(chunks.borrow().concat(), b"part1,part2");
}

#[test]
fn relative_and_absolute_redirects_are_followed() {
    let mut w = world();
    let abs = format!("{}/final", base());
    let r1 = w.fetch(HttpRequest::get(format!("{}/redirect?to=/rel", base())));
    let r2 = w.fetch(HttpRequest::get(format!("{}/redirect?to={abs}", base())));
    let r3 = w.fetch(HttpRequest::get(format!("{}/redirect?to=sibling", base())));
    w.run();
    let resp = one(&r1).unwrap();
    assert_eq!(String::from_utf8_lossy(&resp.body), "GET /rel 0");
    assert_eq!(resp.redirects, 1);
    assert_eq!(resp.effective_url, format!("{}/rel", base()));
    assert_eq!(body(&one(&r2)), "GET /final 0");
    assert_eq!(body(&one(&r3)), "GET /sibling 0");
}

#[test]
fn redirect_codes_rewrite_or_keep_the_method_as_browsers_do() {
    let mut w = world();
    let post = |code: u16| {
        HttpRequest::new(
            Method::POST,
            format!("{}/redirect?to=/t&code={code}", base()),
        )
        .body("abc")
    };
    let cases = [
        (303, "GET /t 0"),
        (302, "GET /t 0"),
        (301, "GET /t 0"),
        (307, "POST /t 3"),
        (308, "POST /t 3"),
    ];
    let results: Vec<_> = cases.iter().map(|(c, _)| w.fetch(post(*c))).collect();
    let put = w.fetch(
        HttpRequest::new(Method::PUT, format!("{}/redirect?to=/t&code=302", base())).body("xy"),
    );
    w.run();
    for ((code, want), r) in cases.iter().zip(&results) {
        assert_eq!(body(&one(r)), *want, "{code}");
    }
    assert_eq!(body(&one(&put)), "PUT /t 2", "302 keeps non-POST methods");
}

#[test]
fn redirect_loops_stop_at_max_redirects() {
    let mut w = world();
    let mut req = HttpRequest::get(format!("{}/loop", base()));
    req.max_redirects = 3;
    let r = w.fetch(req);
    w.run();
    assert_eq!(one(&r), Err(HttpError::TooManyRedirects { max: 3 }));
    assert_eq!(
        w.server.stats().requests,
        4,
        "the first request and three redirects"
    );
}

#[test]
fn redirects_are_returned_when_not_followed() {
    let mut w = world();
    let mut req = HttpRequest::get(format!("{}/redirect?to=/x", base()));
    req.follow_redirects = false;
    req.error_for_status = false;
    let r = w.fetch(req);
    w.run();
    let resp = one(&r).unwrap();
    assert_eq!(resp.status, StatusCode::FOUND);
    assert_eq!(resp.headers["location"], "/x");
}

#[test]
fn non_2xx_is_an_error_by_default_and_a_response_on_request() {
    let mut w = world();
    let r1 = w.fetch(HttpRequest::get(format!("{}/missing", base())));
    let mut req = HttpRequest::get(format!("{}/missing", base()));
    req.error_for_status = false;
    let r2 = w.fetch(req);
    w.run();
    match one(&r1) {
        Err(HttpError::Status(code, resp)) => {
            assert_eq!(code, StatusCode::NOT_FOUND);
            assert_eq!(&resp.body[..], b"nope");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(one(&r2).unwrap().status, StatusCode::NOT_FOUND);
}

#[test]
fn head_and_204_have_no_body_and_keep_the_connection() {
    let mut w = world();
    let results: Results = Rc::default();
    let r = results.clone();
    let client = w.client.clone();
    let head = HttpRequest::new(Method::HEAD, format!("{}/big", base()));
    w.client.fetch(&mut w.io, head, move |io, result| {
        r.borrow_mut().push((io.now(), result));
        let r2 = r.clone();
        client.fetch(
            io,
            HttpRequest::get(format!("{}/nocontent", base())),
            move |io, result| r2.borrow_mut().push((io.now(), result)),
        );
    });
    w.run();
    let results = results.borrow();
    let head = results[0].1.as_ref().unwrap();
    assert_eq!(head.headers["content-length"], "10000");
    assert!(head.body.is_empty());
    let nc = results[1].1.as_ref().unwrap();
    assert_eq!(nc.status, StatusCode::NO_CONTENT);
    assert!(nc.reused_connection);
    assert_eq!(w.server.stats().connections, 1);
}

#[test]
fn gzip_bodies_are_decompressed_and_bounded() {
    let mut w = world();
    let r1 = w.fetch(HttpRequest::get(format!("{}/gzip", base())));
    let mut raw = HttpRequest::get(format!("{}/gzip", base()));
    raw.decompress_response = false;
    let r2 = w.fetch(raw);
    let mut small = HttpRequest::get(format!("{}/gzip", base()));
    small.max_body_size = 5_000;
    let r3 = w.fetch(small);
    w.run();
    let resp = one(&r1).unwrap();
    assert_eq!(resp.body.len(), 10_000);
    assert!(resp.body.iter().all(|&b| b == b'z'));
    assert_eq!(resp.headers["x-consumed-content-encoding"], "gzip");
    assert!(resp.headers.get("content-encoding").is_none());
    assert_eq!(
        one(&r2).unwrap().body.len(),
        10_000,
        "no Accept-Encoding sent"
    );
    assert_eq!(one(&r3), Err(HttpError::BodyTooLarge { limit: 5_000 }));
}

#[test]
fn body_over_max_body_size_fails() {
    let mut w = world();
    let mut req = HttpRequest::get(format!("{}/big", base()));
    req.max_body_size = 9_999;
    let r = w.fetch(req);
    w.run();
    assert_eq!(one(&r), Err(HttpError::BodyTooLarge { limit: 9_999 }));
}

#[test]
fn a_server_that_never_answers_times_out_in_virtual_time() {
    let mut w = world();
    let mut req = HttpRequest::get(format!("{}/never", base()));
    req.request_timeout = Some(Duration::from_secs(3));
    let r = w.fetch(req);
    w.run();
    let results = r.borrow();
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0].1,
        Err(HttpError::Timeout {
            phase: TimeoutPhase::Request
        })
    );
    assert_eq!(results[0].0, Instant::ZERO + Duration::from_secs(3));
    assert_eq!(
        w.client.stats().idle,
        0,
        "a timed-out connection is not pooled"
    );
}

#[test]
fn max_clients_queues_requests_and_reuses_the_connection() {
    let config = ClientConfig {
        max_clients: 1,
        ..ClientConfig::default()
    };
    let mut w = world_with(HttpConfig::default(), config);
    let results: Results = Rc::default();
    for i in 0..3 {
        w.fetch_into(HttpRequest::get(format!("{}/slow?i={i}", base())), &results);
    }
    assert_eq!(w.client.stats().queued, 2);
    w.run();
    let results = results.borrow();
    let times: Vec<u64> = results
        .iter()
        .map(|(t, _)| t.as_nanos() / 1_000_000_000)
        .collect();
    assert_eq!(times, [1, 2, 3], "one at a time");
    for (i, (_, r)) in results.iter().enumerate() {
        assert_eq!(body(r), format!("GET /slow?i={i} 0"));
    }
    assert_eq!(w.server.stats().connections, 1);
}

#[test]
fn queued_requests_time_out_in_the_queue() {
    let config = ClientConfig {
        max_clients: 1,
        ..ClientConfig::default()
    };
    let mut w = world_with(HttpConfig::default(), config);
    let mut first = HttpRequest::get(format!("{}/never", base()));
    first.request_timeout = Some(Duration::from_secs(10));
    let r1 = w.fetch(first);
    let mut second = HttpRequest::get(format!("{}/", base()));
    second.connect_timeout = Some(Duration::from_secs(1));
    let r2 = w.fetch(second);
    w.run();
    let phase = TimeoutPhase::Queue;
    assert_eq!(r2.borrow()[0].1, Err(HttpError::Timeout { phase }));
    assert_eq!(r2.borrow()[0].0, Instant::ZERO + Duration::from_secs(1));
    let phase = TimeoutPhase::Request;
    assert_eq!(one(&r1), Err(HttpError::Timeout { phase }));
}

#[test]
fn server_closing_an_idle_connection_evicts_it_from_the_pool() {
    let server_config = HttpConfig {
        idle_connection_timeout: std::time::Duration::from_secs(1),
        ..HttpConfig::default()
    };
    let mut w = world_with(server_config, ClientConfig::default());
    let r1 = w.fetch(HttpRequest::get(format!("{}/a", base())));
    w.settle();
    assert_eq!(w.client.stats().idle, 1);
    w.net.advance(Duration::from_secs(2));
    w.settle();
    assert_eq!(
        w.client.stats().idle,
        0,
        "closed by the server's idle timeout"
    );
    let r2 = w.fetch(HttpRequest::get(format!("{}/b", base())));
    w.settle();
    assert_eq!(body(&one(&r1)), "GET /a 0");
    let resp = one(&r2).unwrap();
    assert!(!resp.reused_connection);
    assert_eq!(w.server.stats().connections, 2);
}

#[test]
fn invalid_urls_and_unresolvable_hosts_fail_cleanly() {
    let mut w = world();
    let bad = w.fetch(HttpRequest::get("ftp://x/"));
    // https:// to a plain HTTP server: its 400 answer to the client hello is not TLS.
    let tls = w.fetch(HttpRequest::get(format!("https://127.0.0.1:{PORT}/")));
    let name = w.fetch(HttpRequest::get("http://example.invalid/"));
    w.run();
    assert!(matches!(one(&bad), Err(HttpError::InvalidUrl { .. })));
    assert_eq!(
        one(&tls),
        Err(HttpError::Tls(eddy_core::tls::TlsFailure::NotTls))
    );
    assert_eq!(
        one(&name),
        Err(HttpError::UnresolvedHost("example.invalid".into()))
    );
}

#[test]
fn a_resolver_maps_names_to_addresses() {
    let mut w = world();
    let resolver: eddy_core::http::client::Resolver = Rc::new(|host: &str, port| {
        (host == "eddy.test").then(|| SocketAddr::from(([127, 0, 0, 1], port)))
    });
    w.client = HttpClient::with_resolver(ClientConfig::default(), resolver);
    let r = w.fetch(HttpRequest::get(format!("http://eddy.test:{PORT}/named")));
    w.run();
    assert_eq!(body(&one(&r)), "GET /named 0");
}

// ===== scripted peers =====

/// The client's stream whose connect waits on the script (no listener at its address).
fn pending_connect(net: &FakeNet) -> StreamId {
    let ids: Vec<StreamId> = net
        .conns
        .iter()
        .filter(|(_, c)| c.connecting_to.is_some())
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(ids.len(), 1, "one connect pending");
    ids[0]
}

/// A client, a fake network, and a fetch to 10.0.0.1 (where nobody listens).
fn scripted(req: impl FnOnce(String) -> HttpRequest) -> (IoLoop, FakeNet, HttpClient, Results) {
    let mut io = IoLoop::default();
    let mut net = FakeNet::new();
    let client = HttpClient::new(ClientConfig::default());
    let results: Results = Rc::default();
    let r = results.clone();
    client.fetch(
        &mut io,
        req("http://10.0.0.1:8080/x".into()),
        move |io, res| r.borrow_mut().push((io.now(), res)),
    );
    net.run_until_idle(&mut io, false, 1000);
    (io, net, client, results)
}

#[test]
fn connect_timeout_fires_in_virtual_time() {
    let (mut io, mut net, _c, results) = scripted(|u| {
        let mut r = HttpRequest::get(u);
        r.connect_timeout = Some(Duration::from_secs(2));
        r
    });
    net.run_until_idle(&mut io, true, 1000);
    let phase = TimeoutPhase::Connect;
    assert_eq!(one(&results), Err(HttpError::Timeout { phase }));
    assert_eq!(
        results.borrow()[0].0,
        Instant::ZERO + Duration::from_secs(2)
    );
}

#[test]
fn refused_connections_are_reported() {
    let (mut io, mut net, _c, results) = scripted(HttpRequest::get);
    let id = pending_connect(&net);
    net.complete_connect(&mut io, id, Err(std::io::ErrorKind::ConnectionRefused));
    net.run_until_idle(&mut io, true, 1000);
    assert_eq!(one(&results), Err(HttpError::ConnectionRefused));
}

#[test]
fn reset_in_the_middle_of_a_response_is_reported_once() {
    let (mut io, mut net, _c, results) = scripted(HttpRequest::get);
    let id = pending_connect(&net);
    net.complete_connect(&mut io, id, Ok(()));
    net.run_until_idle(&mut io, false, 1000);
    let sent = String::from_utf8(net.take_output(id)).unwrap();
    assert!(
        sent.starts_with("GET /x HTTP/1.1\r\nHost: 10.0.0.1:8080\r\n"),
        "{sent}"
    );
    assert!(sent.contains("accept-encoding: gzip\r\n"), "{sent}");
    net.peer_send(id, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
    net.run_until_idle(&mut io, false, 1000);
    io.handle_error(id, std::io::ErrorKind::ConnectionReset);
    net.run_until_idle(&mut io, true, 1000);
    assert_eq!(one(&results), Err(HttpError::ConnectionReset));
}

#[test]
fn early_close_mid_body_and_garbage_are_errors() {
    let (mut io, mut net, _c, results) = scripted(HttpRequest::get);
    let id = pending_connect(&net);
    net.complete_connect(&mut io, id, Ok(()));
    net.peer_send(id, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
    net.peer_shutdown(id);
    net.run_until_idle(&mut io, true, 1000);
    assert_eq!(one(&results), Err(HttpError::ConnectionClosed));

    let (mut io, mut net, _c, results) = scripted(HttpRequest::get);
    let id = pending_connect(&net);
    net.complete_connect(&mut io, id, Ok(()));
    net.peer_send(id, b"SSH-2.0-OpenSSH\r\n\r\n");
    net.run_until_idle(&mut io, true, 1000);
    assert!(matches!(one(&results), Err(HttpError::Protocol(_))));
}

#[test]
fn http10_close_delimited_response_is_read_to_eof_and_not_pooled() {
    let (mut io, mut net, client, results) = scripted(HttpRequest::get);
    let id = pending_connect(&net);
    net.complete_connect(&mut io, id, Ok(()));
    net.peer_send(
        id,
        b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6\r\n\r\nhello ",
    );
    net.run_until_idle(&mut io, false, 1000);
    assert!(results.borrow().is_empty(), "waits for end of file");
    net.peer_send(id, b"world");
    net.peer_shutdown(id);
    net.run_until_idle(&mut io, true, 1000);
    let resp = one(&results).unwrap();
    assert_eq!(&resp.body[..], b"hello world");
    assert_eq!(resp.version, http::Version::HTTP_10);
    assert_eq!(client.stats().idle, 0);
}

#[test]
fn a_stale_pooled_connection_is_retried_once_on_a_fresh_one() {
    let (mut io, mut net, client, results) = scripted(HttpRequest::get);
    let first = pending_connect(&net);
    net.complete_connect(&mut io, first, Ok(()));
    net.peer_send(first, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    net.run_until_idle(&mut io, false, 1000);
    assert_eq!(client.stats().idle, 1);
    net.take_output(first);
    // The second request goes on the pooled connection; the server closes without answering.
    let r = results.clone();
    client.fetch(
        &mut io,
        HttpRequest::get("http://10.0.0.1:8080/y"),
        move |io, res| r.borrow_mut().push((io.now(), res)),
    );
    net.run_until_idle(&mut io, false, 1000);
    assert!(String::from_utf8(net.take_output(first))
        .unwrap()
        .starts_with("GET /y "));
    net.peer_shutdown(first);
    net.run_until_idle(&mut io, false, 1000);
    let second = pending_connect(&net);
    assert_ne!(second, first);
    net.complete_connect(&mut io, second, Ok(()));
    net.peer_send(second, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes");
    net.run_until_idle(&mut io, true, 1000);
    let results = results.borrow();
    assert_eq!(results.len(), 2);
    assert_eq!(&results[1].1.as_ref().unwrap().body[..], b"yes");
    assert_eq!(client.stats().retried, 1);
}

#[test]
fn interim_responses_are_skipped() {
    let (mut io, mut net, _c, results) = scripted(HttpRequest::get);
    let id = pending_connect(&net);
    net.complete_connect(&mut io, id, Ok(()));
    net.peer_send(
        id,
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n\
          HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    net.run_until_idle(&mut io, true, 1000);
    let resp = one(&results).unwrap();
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(&resp.body[..], b"ok");
}

#[test]
fn time_out_after_partial_response_delivers_one_callback() {
    let (mut io, mut net, _c, results) = scripted(|u| {
        let mut r = HttpRequest::get(u);
        r.request_timeout = Some(Duration::from_secs(5));
        r
    });
    let id = pending_connect(&net);
    net.complete_connect(&mut io, id, Ok(()));
    net.peer_send(id, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    net.run_until_idle(&mut io, true, 1000);
    // The rest arrives after the time-out: ignored, the connection is gone.
    net.peer_send(id, b"defghij");
    net.run_until_idle(&mut io, true, 1000);
    let phase = TimeoutPhase::Request;
    assert_eq!(one(&results), Err(HttpError::Timeout { phase }));
    assert!(net.conns[&id].closed.is_some());
}

#[test]
fn a_panicking_on_chunk_fails_the_fetch_once() {
    let mut w = world();
    let mut req = HttpRequest::get(format!("{}/stream", base()));
    req.on_chunk = Some(Box::new(|_, _| panic!("user bug")));
    req.request_timeout = None;
    let r = w.fetch(req);
    w.run();
    assert_eq!(one(&r), Err(HttpError::CallbackPanicked));
    assert_eq!(w.client.stats().active, 0);
}

#[test]
fn keep_alive_off_sends_connection_close_and_pools_nothing() {
    let config = ClientConfig {
        keep_alive: false,
        ..ClientConfig::default()
    };
    let mut w = world_with(HttpConfig::default(), config);
    let results: Results = Rc::default();
    let r = results.clone();
    let client = w.client.clone();
    w.client.fetch(
        &mut w.io,
        HttpRequest::get(format!("{}/a", base())),
        move |io, res| {
            r.borrow_mut().push((io.now(), res));
            let r2 = r.clone();
            client.fetch(
                io,
                HttpRequest::get(format!("{}/b", base())),
                move |io, res| r2.borrow_mut().push((io.now(), res)),
            );
        },
    );
    w.run();
    assert_eq!(results.borrow().len(), 2);
    assert_eq!(body(&results.borrow()[1].1), "GET /b 0");
    assert_eq!(w.server.stats().connections, 2);
    assert_eq!(w.client.stats().idle, 0);
}

#[test]
fn cancel_ends_a_fetch_once_frees_its_slot_and_closes_its_connection() {
    let config = ClientConfig {
        max_clients: 1,
        ..ClientConfig::default()
    };
    let mut w = world_with(HttpConfig::default(), config);
    let results: Results = Rc::default();
    let r = results.clone();
    let stuck = w.client.fetch(
        &mut w.io,
        HttpRequest::get(format!("{}/never", base())),
        move |io, res| r.borrow_mut().push((io.now(), res)),
    );
    let r = results.clone();
    let queued = w.client.fetch(
        &mut w.io,
        HttpRequest::get(format!("{}/queued", base())),
        move |io, res| r.borrow_mut().push((io.now(), res)),
    );
    let r = results.clone();
    let cancelled_in_queue = w.client.fetch(
        &mut w.io,
        HttpRequest::get(format!("{}/never-sent", base())),
        move |io, res| r.borrow_mut().push((io.now(), res)),
    );
    w.settle();
    assert!(cancelled_in_queue.cancel(&mut w.io));
    assert!(stuck.cancel(&mut w.io));
    assert!(!stuck.cancel(&mut w.io), "cancelling twice does nothing");
    w.run();
    let results = results.borrow();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].1, Err(HttpError::Cancelled));
    assert_eq!(results[1].1, Err(HttpError::Cancelled));
    assert_eq!(
        body(&results[2].1),
        "GET /queued 0",
        "the freed slot went to the queue"
    );
    assert!(queued.is_done() && stuck.is_done());
    assert_eq!(
        w.server.stats().requests,
        2,
        "/never-sent never reached the server"
    );
}

#[test]
fn close_idle_closes_pooled_connections() {
    let mut w = world();
    let r = w.fetch(HttpRequest::get(format!("{}/a", base())));
    w.settle();
    assert_eq!(body(&one(&r)), "GET /a 0");
    assert_eq!(w.client.stats().idle, 1);
    w.client.close_idle(&mut w.io);
    w.settle();
    assert_eq!(w.client.stats().idle, 0);
    assert_eq!(w.server.stats().open_connections, 0);
}
