//! HTTP echo: any method and path → 200 with `X-Method`, `X-Path` (the raw request target),
//! `X-Body-Length`, and the received body (de-chunked) as the response body.
//!
//! ```text
//! cargo run --release --example http_echo -- --port 8889
//! curl -i -X PUT --data-binary @Cargo.toml http://127.0.0.1:8889/any/path?x=1
//! ```

use eddy::core::http::HttpConfig;
use eddy::server_args::{run_server, shared_listen_options};
use std::process::ExitCode;

fn main() -> ExitCode {
    run_server("http_echo", 8889, |io, addr| {
        eddy::http_echo::serve(io, addr, HttpConfig::default(), shared_listen_options());
    })
}
