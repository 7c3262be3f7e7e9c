//! A chat server: open http://127.0.0.1:8888/ in two browser tabs and type.
//!
//! ```text
//! cargo run --release --example chat -- --port 8888
//! ```
//! The page (plain JavaScript) and the room are in `eddy::chat`. One room per loop: run it
//! with the default single thread (`--threads 1`), or each thread has a room of its own.

use eddy::server_args::{run_server, shared_listen_options};
use std::process::ExitCode;

fn main() -> ExitCode {
    run_server("chat", 8888, |io, addr| {
        eddy::chat::app(None).listen(io, addr, shared_listen_options());
    })
}
