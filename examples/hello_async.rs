//! HTTP hello world with an async handler: `GET /` answers `Hello, World!`, else 404.
//!
//! ```text
//! cargo run --release --example hello_async -- --port 8888 --threads 1
//! curl -i http://127.0.0.1:8888/
//! ```
//! The same server as `examples/hello.rs`, written as `async fn(Request) -> Response`: each
//! request runs as a task on the loop (see `benches/async.sh` for what that costs).

use eddy::core::http::{HttpServer, Request, Response};
use eddy::server_args::{run_server, shared_listen_options};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use std::process::ExitCode;

async fn hello(req: Request) -> Response {
    let (status, body) = if req.path() == "/" {
        (StatusCode::OK, &b"Hello, World!"[..])
    } else {
        (StatusCode::NOT_FOUND, &b"Not Found"[..])
    };
    Response::new(status)
        .with_body(body)
        .with_header(CONTENT_TYPE, HeaderValue::from_static("text/plain"))
}

fn main() -> ExitCode {
    run_server("hello_async", 8888, |io, addr| {
        HttpServer::new_async(hello).listen(io, addr, shared_listen_options());
    })
}
