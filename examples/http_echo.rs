//! HTTP echo: any method and path → 200 with `X-Method`, `X-Path` (the raw request target),
//! `X-Body-Length`, and the received body (de-chunked) as the response body.
//!
//! ```text
//! cargo run --release --example http_echo -- --port 8889
//! curl -i -X PUT --data-binary @Cargo.toml http://127.0.0.1:8889/any/path?x=1
//! ```

use eddy::core::http::{HttpServer, Request, Responder};
use eddy::core::IoLoop;
use eddy::server_args::{run_server, shared_listen_options};
use http::header::{HeaderName, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use std::process::ExitCode;

fn echo(io: &mut IoLoop, req: Request, resp: Responder) {
    let mut headers = HeaderMap::with_capacity(4);
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("x-method", req.method.as_str());
    put("x-path", &req.target());
    put("x-body-length", &req.body.len().to_string());
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let _ = resp.respond(io, StatusCode::OK, &headers, req.body.clone());
}

fn main() -> ExitCode {
    run_server("http_echo", 8889, |io, addr| {
        HttpServer::new(echo).listen(io, addr, shared_listen_options());
    })
}
