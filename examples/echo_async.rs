//! The TCP echo server written with async/await, on N share-nothing loops.
//!
//! ```text
//! cargo run --release --example echo_async -- --port 8888 --threads 2 [--host 127.0.0.1]
//! EDDY_DRIVER=poll cargo run --example echo_async   # the poll(2) fallback
//! ```
//! The service is `eddy::echo_async`: an accept loop and one task per connection
//! (`read_some(..).await`, `write`, `flush().await`). Stops gracefully on SIGINT/SIGTERM.

use eddy::server_args::{run_server, shared_listen_options};
use std::process::ExitCode;

fn main() -> ExitCode {
    run_server("echo_async", 8888, |io, addr| {
        eddy::echo_async::serve_with(io, addr, shared_listen_options());
    })
}
