//! HTTP hello world: `GET /` answers `Hello, World!`; any other path is a 404.
//!
//! ```text
//! cargo run --release --example hello -- --port 8888 --threads 1
//! curl -i http://127.0.0.1:8888/
//! ```

use bytes::Bytes;
use eddy::core::http::{HeaderBlock, HttpServer, Request, Responder};
use eddy::core::IoLoop;
use eddy::server_args::{run_server, shared_listen_options};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use std::process::ExitCode;

fn main() -> ExitCode {
    run_server("hello", 8888, |io, addr| {
        // Serialised once per loop: answering copies it whole and allocates nothing.
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let headers = HeaderBlock::new(headers);
        let handler = move |io: &mut IoLoop, req: Request, resp: Responder| {
            let (status, body) = if req.path() == "/" {
                (StatusCode::OK, Bytes::from_static(b"Hello, World!"))
            } else {
                (StatusCode::NOT_FOUND, Bytes::from_static(b"Not Found"))
            };
            let _ = resp.respond(io, status, &headers, body);
        };
        HttpServer::new(handler).listen(io, addr, shared_listen_options());
    })
}
