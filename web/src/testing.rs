//! Testing support: [`TestClient`] runs an [`Application`] in-process on eddy-sim —
//! deterministic, with virtual time, optionally under network faults — and keeps cookies
//! between requests like a browser (Tornado's `AsyncHTTPTestCase`, without sockets).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use eddy_core::http::{
    ClientConfig, HttpClient, HttpError as ClientError, HttpRequest, HttpResponse,
};
use eddy_core::{Duration, ListenOptions};
use eddy_sim::{FaultConfig, HostId, Sim};
use http::{HeaderMap, Method};

use crate::application::Application;

/// A response as the test client saw it.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// The status code.
    pub status: u16,
    /// The header fields.
    pub headers: HeaderMap,
    /// The body (de-chunked).
    pub body: Bytes,
}

impl From<HttpResponse> for TestResponse {
    fn from(r: HttpResponse) -> TestResponse {
        TestResponse {
            status: r.status.as_u16(),
            headers: r.headers,
            body: r.body,
        }
    }
}

/// A request as the test clients send it: to `url`, with `headers` and `body`, following no
/// redirect, taking every status as an answer, decompressing nothing, given up after
/// `timeout`.
pub fn test_request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    timeout: Duration,
) -> HttpRequest {
    let mut request = HttpRequest::new(method, url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.body = body;
    request.follow_redirects = false;
    request.error_for_status = false;
    request.decompress_response = false;
    request.request_timeout = Some(timeout);
    request
}

impl TestResponse {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// The cookies a test client keeps between requests, as a browser would (by name; paths,
/// domains and expiry dates are not tracked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieJar(BTreeMap<String, String>);

impl CookieJar {
    /// The cookies, name → value.
    pub fn cookies(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Sets a cookie to send, as if the browser had it.
    pub fn set(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_owned(), value.to_owned());
    }

    /// `request` with the kept cookies in a `Cookie` field (unchanged when none is kept).
    pub fn add_to(&self, request: HttpRequest) -> HttpRequest {
        if self.0.is_empty() {
            return request;
        }
        let pairs: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
        request.header("cookie", &pairs.join("; "))
    }

    /// Stores a response's `Set-Cookie`s (an expired or `Max-Age=0` one deletes).
    pub fn keep(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(http::header::SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let mut parts = text.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let deleted = parts.any(|p| p.eq_ignore_ascii_case("max-age=0"));
            if deleted {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }
}

/// Runs an application on a simulated host and sends it requests from another.
pub struct TestClient {
    sim: Sim,
    client: HostId,
    addr: SocketAddr,
    cookies: CookieJar,
    timeout: Duration,
}

impl TestClient {
    /// A client of `app` on a calm simulated network (seed 0).
    pub fn new(app: Application) -> TestClient {
        TestClient::with_faults(app, 0, FaultConfig::none())
    }

    /// A client of `app` on a network with `faults`, reproducible from `seed`.
    pub fn with_faults(app: Application, seed: u64, faults: FaultConfig) -> TestClient {
        let mut sim = Sim::with_faults(seed, faults);
        let addr = SocketAddr::new(Sim::ip_of_nth_host(0), 80);
        let server = sim.host("app", move |io| {
            app.clone().listen(io, addr, ListenOptions::default());
        });
        sim.set_crashable(server, false);
        let client = sim.host("client", |_| {});
        sim.set_crashable(client, false);
        TestClient {
            sim,
            client,
            addr,
            cookies: CookieJar::default(),
            timeout: Duration::from_secs(600),
        }
    }

    /// Runs the task `make(app_addr)` on the client host until it finishes (e.g. a WebSocket
    /// session against the app) and returns its output.
    pub fn run_task<T: 'static, Fut: std::future::Future<Output = T> + 'static>(
        &mut self,
        make: impl FnOnce(SocketAddr) -> Fut,
    ) -> T {
        let slot: Rc<RefCell<Option<T>>> = Rc::default();
        let out = slot.clone();
        let task = make(self.addr);
        self.sim.with_loop(self.client, 0, move |io| {
            io.spawn_detached(async move {
                let value = task.await;
                *out.borrow_mut() = Some(value);
            });
        });
        let done = slot.clone();
        self.sim
            .run_until_done(self.timeout, move |_| done.borrow().is_some())
            .expect("the simulated task ends");
        let value = slot.borrow_mut().take();
        value.expect("finished")
    }

    /// The simulator, e.g. to read its clock or stats.
    pub fn sim(&mut self) -> &mut Sim {
        &mut self.sim
    }

    /// How long a request may take (virtual time) before the client gives up and closes
    /// its connection (default 600 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Cookies kept so far (name → value).
    pub fn cookies(&self) -> &BTreeMap<String, String> {
        self.cookies.cookies()
    }

    /// Sets a cookie to send, as if the browser had it.
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.set(name, value);
    }

    /// `GET path`.
    pub fn get(&mut self, path: &str) -> TestResponse {
        self.fetch(Method::GET, path, &[], Bytes::new())
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `POST path` with `body` and header fields.
    pub fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        self.fetch(Method::POST, path, headers, body.into())
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Any request; a transport failure (reset, time-out) is an error value.
    pub fn fetch(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<TestResponse, ClientError> {
        let url = format!("http://{}{path}", self.addr);
        let request = self
            .cookies
            .add_to(test_request(method, &url, headers, body, self.timeout));
        let slot: Rc<RefCell<Option<Result<TestResponse, ClientError>>>> = Rc::default();
        let out = slot.clone();
        self.sim.with_loop(self.client, 0, move |io| {
            let client = HttpClient::new(ClientConfig::default());
            client.fetch(io, request, move |_, result| {
                *out.borrow_mut() = Some(result.map(TestResponse::from));
            });
        });
        let done = slot.clone();
        self.sim
            .run_until_done(Duration::from_secs(3600), move |_| done.borrow().is_some())
            .expect("the simulated exchange ends");
        let result = slot.borrow_mut().take().expect("finished");
        if let Ok(response) = &result {
            self.cookies.keep(&response.headers);
        }
        result
    }
}
