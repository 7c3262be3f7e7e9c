//! The demo web application: every feature of `eddy::web`, one route each.
//!
//! ```text
//! cargo run --release --example web -- --port 8888
//! curl -i http://127.0.0.1:8888/user/7
//! ```
//! The routes are listed in the README ("The web layer") and built in `eddy::web_demo`.
//! Cookies are signed with `EDDY_COOKIE_SECRET`, or with a secret generated at start-up
//! (then they do not survive a restart).

use eddy::server_args::{run_server, shared_listen_options};
use std::process::ExitCode;

fn main() -> ExitCode {
    let secret = match std::env::var("EDDY_COOKIE_SECRET") {
        Ok(s) if !s.is_empty() => s.into_bytes(),
        _ => {
            use rand::RngCore;
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            eprintln!("EDDY_COOKIE_SECRET not set: signing cookies with a fresh random secret");
            bytes.to_vec()
        }
    };
    run_server("web", 8888, move |io, addr| {
        eddy::web_demo::app(&secret).listen(io, addr, shared_listen_options());
    })
}
