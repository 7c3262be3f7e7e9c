//! TCP echo server on N share-nothing loops (one SO_REUSEPORT listener per thread).
//!
//! ```text
//! cargo run --release --example echo -- --port 8888 --threads 2 [--host 127.0.0.1]
//! EDDY_DRIVER=poll cargo run --example echo        # the poll(2) fallback
//! ```
//! Stops gracefully on SIGINT/SIGTERM: listeners close, queued echo flushes (5 s at most).

use eddy::server_args::{run_server, shared_listen_options};
use std::process::ExitCode;

fn main() -> ExitCode {
    run_server("echo", 8888, |io, addr| {
        eddy::echo::serve_with(io, addr, shared_listen_options());
    })
}
