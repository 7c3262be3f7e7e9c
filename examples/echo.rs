//! TCP echo server on N share-nothing loops (one SO_REUSEPORT listener per thread).
//!
//! ```text
//! cargo run --release --example echo -- --port 8888 --threads 2 [--host 127.0.0.1]
//! EDDY_DRIVER=poll cargo run --example echo        # the poll(2) fallback
//! ```
//! Stops gracefully on SIGINT/SIGTERM: listeners close, queued echo flushes (5 s at most).

use eddy::core::{IoLoop, ListenOptions};
use eddy::drivers::{spawn_threads, DriverConfig, DEFAULT_GRACE};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

struct Args {
    host: IpAddr,
    port: u16,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        host: [127, 0, 0, 1].into(),
        port: 8888,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => args.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--threads" => {
                args.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?
            }
            "--host" => args.host = value()?.parse().map_err(|e| format!("--host: {e}"))?,
            "-h" | "--help" => {
                return Err("usage: echo [--host IP] [--port N] [--threads N]".into())
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let config = match DriverConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let setup = |io: &mut IoLoop, addr: SocketAddr| {
        let options = ListenOptions {
            reuse_port: true,
            ..ListenOptions::default()
        };
        eddy::echo::serve_with(io, addr, options);
    };
    let addr = SocketAddr::new(args.host, args.port);
    let server = match spawn_threads(&config, args.threads, addr, setup) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("echo: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "echo listening on {} ({} thread(s), driver {})",
        server.local_addr(),
        server.threads(),
        config.kind.name()
    );
    match server.wait_for_signals(DEFAULT_GRACE) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo: {e}");
            ExitCode::FAILURE
        }
    }
}
