//! HTTPS hello world: the `hello` example over TLS. `GET /` answers `Hello, World!`.
//!
//! The certificate is `EDDY_CERT`/`EDDY_KEY` (PEM files), else eddy's public test fixture
//! (for benchmarks and trials only).
//!
//! ```text
//! cargo run --release --example hello_tls -- --port 8443 --threads 1
//! curl -k https://127.0.0.1:8443/
//! ```

use bytes::Bytes;
use eddy::core::http::{HeaderBlock, HttpConfig, HttpServer, Request, Responder};
use eddy::core::tls::{fixture, TlsAcceptor};
use eddy::core::IoLoop;
use eddy::server_args::{run_server, shared_listen_options};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use std::process::ExitCode;

fn acceptor() -> Result<TlsAcceptor, String> {
    match (std::env::var_os("EDDY_CERT"), std::env::var_os("EDDY_KEY")) {
        (Some(cert), Some(key)) => {
            let read = |p| std::fs::read(&p).map_err(|e| format!("{p:?}: {e}"));
            TlsAcceptor::from_pem(&read(cert)?, &read(key)?).map_err(|e| e.to_string())
        }
        _ => Ok(fixture::acceptor()),
    }
}

fn main() -> ExitCode {
    let tls = match acceptor() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("hello_tls: {e}");
            return ExitCode::from(2);
        }
    };
    run_server("hello_tls", 8443, move |io, addr| {
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
        let config = HttpConfig {
            tls: Some(tls.clone()),
            ..HttpConfig::default()
        };
        HttpServer::with_config(config, handler).listen(io, addr, shared_listen_options());
    })
}
