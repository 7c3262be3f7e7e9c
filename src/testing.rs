//! `LiveServer`: an application served over real sockets for a test (Tornado's
//! `AsyncHTTPTestCase`): on 127.0.0.1 at a free port, by a real driver on a thread of its
//! own, with a blocking client that keeps cookies like a browser. For deterministic tests
//! with virtual time and faults, use [`eddy_web::testing::TestClient`] on the simulator; the
//! two answer with the same [`TestResponse`].

use std::net::SocketAddr;
use std::time::Duration as StdDuration;

use bytes::Bytes;
use eddy_core::http::{ClientConfig, HttpClient, HttpError as ClientError};
use eddy_core::{Duration, ListenOptions};
use eddy_drivers::{run_sync, spawn_threads, DriverConfig, DriverError, DriverKind, ThreadServer};
use eddy_web::testing::{test_request, CookieJar, TestResponse};
use eddy_web::Application;
use http::Method;

/// How long a request may take before the client gives up (the server keeps running).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An application served on 127.0.0.1 for the life of the value; see the module docs.
pub struct LiveServer {
    server: Option<ThreadServer>,
    cookies: CookieJar,
    client: DriverConfig,
}

impl LiveServer {
    /// Serves the application `app` makes (once, on the server's loop thread) on the driver
    /// `EDDY_DRIVER` names (mio by default).
    pub fn start(
        app: impl Fn() -> Application + Send + Sync + 'static,
    ) -> Result<LiveServer, DriverError> {
        LiveServer::start_on(DriverKind::from_env()?, app)
    }

    /// [`LiveServer::start`] on the driver `kind`.
    pub fn start_on(
        kind: DriverKind,
        app: impl Fn() -> Application + Send + Sync + 'static,
    ) -> Result<LiveServer, DriverError> {
        let config = DriverConfig::with_kind(kind);
        let server = spawn_threads(&config, 1, ([127, 0, 0, 1], 0).into(), move |io, addr| {
            app().listen(io, addr, ListenOptions::default());
        })?;
        Ok(LiveServer {
            server: Some(server),
            cookies: CookieJar::default(),
            client: config,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.as_ref().expect("running").local_addr()
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// Cookies kept so far (name → value).
    pub fn cookies(&self) -> &std::collections::BTreeMap<String, String> {
        self.cookies.cookies()
    }

    /// Sets a cookie to send, as if the browser had it.
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.set(name, value);
    }

    /// `GET path`; panics on a transport failure.
    pub fn get(&mut self, path: &str) -> TestResponse {
        self.fetch(Method::GET, path, &[], Bytes::new())
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `POST path` with `body` and header fields; panics on a transport failure.
    pub fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        self.fetch(Method::POST, path, headers, body.into())
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Any request, on a connection of its own; a transport failure (refused, reset,
    /// time-out) is an error value.
    pub fn fetch(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<TestResponse, ClientError> {
        let url = self.url(path);
        let request =
            self.cookies
                .add_to(test_request(method, &url, headers, body, REQUEST_TIMEOUT));
        let client = HttpClient::new(ClientConfig::default());
        let result = run_sync(&self.client, None, move |io, done| {
            client.fetch(io, request, move |io, result| done.complete(io, result));
        })
        .unwrap_or_else(|e| panic!("the test client's loop failed: {e}"));
        let response = result.map(TestResponse::from)?;
        self.cookies.keep(&response.headers);
        Ok(response)
    }
}

impl Drop for LiveServer {
    /// Stops the server (open connections get a second to finish) and waits for its thread.
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown(StdDuration::from_secs(1));
            let _ = server.join();
        }
    }
}
