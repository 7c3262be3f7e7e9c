//! The HTTP echo service: any method and path → 200 with `X-Method`, `X-Path` (the raw
//! request target), `X-Body-Length` and the received body (de-chunked) as the response body.
//!
//! Written against the IoLoop API only, so the example, the driver tests and the simulator
//! run this same code.

use eddy_core::http::{HttpConfig, HttpServer, Request, Responder, Response};
use eddy_core::{IoLoop, ListenOptions, ListenerId};
use http::header::{HeaderName, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use std::net::SocketAddr;

/// The echo's header fields for `req`: its method, raw target and body length.
fn echo_headers(req: &Request) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(4);
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("x-method", req.method().as_str());
    put("x-path", req.target());
    put("x-body-length", &req.body().len().to_string());
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers
}

/// Answers one request with its own method, target and body.
pub fn handle(io: &mut IoLoop, req: Request, resp: Responder) {
    let headers = echo_headers(&req);
    let _ = resp.respond(io, StatusCode::OK, &headers, req.body().clone());
}

/// The same answer from an async handler.
pub async fn answer(req: Request) -> Response {
    Response {
        status: StatusCode::OK,
        headers: echo_headers(&req),
        body: req.body().clone(),
    }
}

/// Serves the echo service with the async handler [`answer`] (one task per request).
pub fn serve_async(
    io: &mut IoLoop,
    addr: SocketAddr,
    config: HttpConfig,
    options: ListenOptions,
) -> (HttpServer, ListenerId) {
    let server = HttpServer::with_config_async(config, answer);
    let listener = server.listen(io, addr, options);
    (server, listener)
}

/// Serves the echo service at `addr`; returns the server (for its stats) and its listener.
pub fn serve(
    io: &mut IoLoop,
    addr: SocketAddr,
    config: HttpConfig,
    options: ListenOptions,
) -> (HttpServer, ListenerId) {
    let server = HttpServer::with_config(config, handle);
    let listener = server.listen(io, addr, options);
    (server, listener)
}
