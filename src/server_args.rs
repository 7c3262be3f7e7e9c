//! `ServerArgs`: the command-line flags every example server takes (`--host`, `--port`,
//! `--threads`), parsed in one place.

use std::net::{IpAddr, SocketAddr};

/// Where and how widely a server listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerArgs {
    /// Address to bind (default 127.0.0.1: loopback only).
    pub host: IpAddr,
    /// Port to bind (0 picks an ephemeral port).
    pub port: u16,
    /// Loops (threads) to run, each with its own SO_REUSEPORT listener.
    pub threads: usize,
}

impl ServerArgs {
    /// Parses `args` (without the program name); `default_port` applies when `--port` is absent.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        default_port: u16,
    ) -> Result<ServerArgs, String> {
        let mut parsed = ServerArgs {
            host: [127, 0, 0, 1].into(),
            port: default_port,
            threads: 1,
        };
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--port" => parsed.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
                "--threads" => {
                    parsed.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?
                }
                "--host" => parsed.host = value()?.parse().map_err(|e| format!("--host: {e}"))?,
                "-h" | "--help" => return Err("usage: [--host IP] [--port N] [--threads N]".into()),
                other => return Err(format!("unknown argument {other:?} (try --help)")),
            }
        }
        if parsed.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        Ok(parsed)
    }

    /// The socket address to listen on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

/// The `main` of an example server: parses flags, runs `setup` on `threads` share-nothing
/// loops (each with its own SO_REUSEPORT listener at the address), prints where it listens and
/// waits for SIGINT/SIGTERM, then stops gracefully.
pub fn run_server<F>(name: &str, default_port: u16, setup: F) -> std::process::ExitCode
where
    F: Fn(&mut eddy_core::IoLoop, SocketAddr) + Send + Sync + 'static,
{
    use std::process::ExitCode;
    let args = match ServerArgs::parse(std::env::args().skip(1), default_port) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match eddy_drivers::DriverConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match eddy_drivers::spawn_threads(&config, args.threads, args.addr(), setup) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{name} listening on {} ({} thread(s), driver {})",
        server.local_addr(),
        server.threads(),
        config.kind.name()
    );
    match server.wait_for_signals(eddy_drivers::DEFAULT_GRACE) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Listen options for one of several loops sharing an address (SO_REUSEPORT).
pub fn shared_listen_options() -> eddy_core::ListenOptions {
    eddy_core::ListenOptions {
        reuse_port: true,
        ..eddy_core::ListenOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServerArgs, String> {
        ServerArgs::parse(args.iter().map(|s| s.to_string()), 8888)
    }

    #[test]
    fn defaults_bind_loopback_on_the_default_port_with_one_thread() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.addr(), "127.0.0.1:8888".parse().unwrap());
        assert_eq!(a.threads, 1);
    }

    #[test]
    fn flags_override_and_bad_values_are_reported() {
        let a = parse(&["--port", "0", "--threads", "2", "--host", "::1"]).unwrap();
        assert_eq!(a.addr(), "[::1]:0".parse().unwrap());
        assert_eq!(a.threads, 2);
        assert!(parse(&["--threads", "0"]).is_err());
        assert!(parse(&["--port"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--bogus"])
            .unwrap_err()
            .contains("unknown argument"));
    }
}
