//! `eddy serve [DIR]`: serve a directory over HTTP, like `python -m http.server`, with
//! eddy-web's `StaticFileHandler` (ranges, validators, gzip, `sendfile(2)`) and a directory
//! page for directories without an `index.html`.
//!
//! It owns the options, the start-up line, the access log (one line per request on stderr)
//! and the wiring: one [`OsFiles`] shared by `--threads` share-nothing loops, each with its
//! own application and SO_REUSEPORT listener (or the socket systemd passed in, see
//! `eddy_drivers::activation`); SIGINT/SIGTERM stop it gracefully.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use eddy_core::file::FileSystem;
use eddy_core::tls::TlsAcceptor;
use eddy_drivers::{DriverConfig, OsFiles};
use eddy_web::{
    Application, Exchange, HttpError, LogFunction, Metrics, RequestHandler, RequestLog, Route,
    Settings, StaticFiles,
};

use crate::server_args::shared_listen_options;

/// The options of `eddy serve`.
#[derive(Debug, Clone, clap::Args)]
#[command(about = "Serve a directory over HTTP (like `python -m http.server`)")]
pub struct ServeArgs {
    /// The directory to serve.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The port to listen on (0 picks a free one).
    #[arg(short, long, default_value_t = 8888)]
    pub port: u16,
    /// The address to bind (loopback unless you say otherwise).
    #[arg(short, long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Loops (threads) to run, each with its own SO_REUSEPORT listener.
    #[arg(short, long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Serve names starting with a dot (never listed either way).
    #[arg(long)]
    pub hidden: bool,
    /// No access log.
    #[arg(short, long)]
    pub quiet: bool,
    /// Also answer `/healthz` and `/metrics` (Prometheus text).
    #[arg(long)]
    pub metrics: bool,
    /// Listen on a unix domain socket at PATH instead of TCP (behind a local proxy).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["port", "bind"])]
    pub unix: Option<String>,
    /// The unix socket's permission bits, in octal.
    #[arg(long, default_value = "660", value_parser = parse_mode, requires = "unix")]
    pub unix_mode: u32,
    /// Behind a proxy: take the client's address and scheme from `X-Real-IP`,
    /// `X-Forwarded-For` and `X-Forwarded-Proto`.
    #[arg(long)]
    pub xheaders: bool,
    /// A proxy allowed to set those headers (repeatable); with none listed, any peer may.
    #[arg(long, value_name = "IP", requires = "xheaders")]
    pub trusted_proxy: Vec<IpAddr>,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The PEM private key of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
}

/// The TLS options of `--cert`/`--key`, read and checked (`None` without them).
pub fn tls_options(args: &ServeArgs) -> Result<Option<TlsAcceptor>, String> {
    let (Some(cert), Some(key)) = (&args.cert, &args.key) else {
        return Ok(None);
    };
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let acceptor = TlsAcceptor::from_pem(&read(cert)?, &read(key)?)
        .map_err(|e| format!("--cert/--key: {e}"))?;
    Ok(Some(acceptor))
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("wants octal permission bits such as 660, got {s:?}"))
}

/// `GET /hello`: a quick check that the server answers.
struct Hello;

impl RequestHandler for Hello {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.set_header("Content-Type", "text/plain; charset=utf-8")?;
        ex.write("Hello from eddy\n");
        Ok(())
    }
}

/// The application `eddy serve` runs on each loop: `/hello`, with `metrics` `/healthz` and
/// `/metrics`, then every file below `files`.
pub fn serve_application(
    files: &StaticFiles,
    log: Option<LogFunction>,
    metrics: Option<&Metrics>,
) -> Application {
    serve_application_with(files, log, metrics, eddy_core::http::HttpConfig::default())
}

/// [`serve_application`] with the HTTP server's settings (xheaders, limits).
pub fn serve_application_with(
    files: &StaticFiles,
    log: Option<LogFunction>,
    metrics: Option<&Metrics>,
    http: eddy_core::http::HttpConfig,
) -> Application {
    let settings = Settings {
        log_function: log,
        metrics: metrics.cloned(),
        http,
        ..Settings::default()
    };
    let mut routes = vec![Route::new("/hello", || Hello)];
    routes.extend(metrics.map(Metrics::routes).unwrap_or_default());
    routes.push(files.route("/"));
    Application::try_new(routes, settings).expect("the routes compile")
}

/// The static files of `eddy serve` over `fs`: `index.html` for directories, else a listing.
pub fn serve_files(fs: Arc<dyn FileSystem>, hidden: bool) -> StaticFiles {
    StaticFiles::new(fs)
        .default_filename("index.html")
        .list_directories(true)
        .serve_hidden(hidden)
        .cache_control("no-cache")
}

/// Starts `eddy serve`'s application over `files` on one loop of `config`'s driver at
/// 127.0.0.1 on a free port, without an access log (for tests and embedding).
pub fn spawn_file_server(
    config: &DriverConfig,
    files: StaticFiles,
) -> Result<eddy_drivers::ThreadServer, eddy_drivers::DriverError> {
    eddy_drivers::spawn_threads(config, 1, ([127, 0, 0, 1], 0).into(), move |io, addr| {
        serve_application(&files, None, None).listen(io, addr, shared_listen_options());
    })
}

/// One access-log line, in `python -m http.server`'s shape plus the time taken.
pub fn access_line(entry: &RequestLog<'_>, unix_secs: u64) -> String {
    let date = eddy_core::http::HttpDate::from_unix_secs(unix_secs);
    format!(
        "{} - - [{}] \"{} {} {:?}\" {} {:.2}ms",
        entry.remote_ip,
        date.as_str(),
        entry.method,
        entry.uri.escape_debug(),
        entry.version,
        entry.status,
        entry.duration.as_secs_f64() * 1e3,
    )
}

/// The start-up line, as `python -m http.server` prints it.
pub fn banner(addr: SocketAddr) -> String {
    let host = addr.ip();
    let url_host = match host {
        IpAddr::V6(_) => format!("[{host}]"),
        IpAddr::V4(_) => host.to_string(),
    };
    format!(
        "Serving HTTP on {host} port {} (http://{url_host}:{}/) ...",
        addr.port(),
        addr.port()
    )
}

/// Runs `eddy serve` until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> ExitCode {
    let fs = match OsFiles::new(&args.dir) {
        Ok(fs) => Arc::new(fs),
        Err(e) => {
            eprintln!("eddy serve: {}: {e}", args.dir.display());
            return ExitCode::from(2);
        }
    };
    let mut config = match DriverConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("eddy serve: {e}");
            return ExitCode::from(2);
        }
    };
    // A socket passed in by systemd or a supervisor replaces --bind/--port.
    let inherited = eddy_drivers::activation::listen_fds();
    let passed_addr = inherited.first().map(|l| l.addr);
    config.inherited_listeners = inherited;
    let log: Option<LogFunction> = (!args.quiet).then(|| {
        let log: LogFunction = Arc::new(|entry: &RequestLog<'_>| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            eprintln!("{}", access_line(entry, secs));
        });
        log
    });
    let tls = match tls_options(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("eddy serve: {e}");
            return ExitCode::from(2);
        }
    };
    let https = tls.is_some();
    let files = serve_files(fs, args.hidden);
    let addr = passed_addr.unwrap_or_else(|| SocketAddr::new(args.bind, args.port));
    let metrics = args.metrics.then(Metrics::new);
    if args.unix.is_some() && args.threads > 1 {
        eprintln!("eddy serve: --unix serves one loop (a unix socket has one accept queue)");
        return ExitCode::from(2);
    }
    let http = eddy_core::http::HttpConfig {
        xheaders: args.xheaders,
        trusted_downstream: args.trusted_proxy.clone(),
        tls,
        ..eddy_core::http::HttpConfig::default()
    };
    let unix = args.unix.clone().map(|path| (path, args.unix_mode));
    let setup = move |io: &mut eddy_core::IoLoop, addr: SocketAddr| {
        let app = serve_application_with(&files, log.clone(), metrics.as_ref(), http.clone());
        match &unix {
            Some((path, mode)) => {
                app.listen_unix(io, path, *mode, eddy_core::ListenOptions::default());
            }
            None => {
                app.listen(io, addr, shared_listen_options());
            }
        }
    };
    let server = match eddy_drivers::spawn_threads(&config, usize::from(args.threads), addr, setup)
    {
        Ok(s) => s,
        Err(e) => {
            match (&args.unix, e) {
                (Some(path), eddy_drivers::DriverError::Bind { kind, .. }) => {
                    eprintln!("eddy serve: cannot listen on unix socket {path}: {kind}");
                }
                (_, e) => eprintln!("eddy serve: {e}"),
            }
            return ExitCode::FAILURE;
        }
    };
    match &args.unix {
        Some(path) => println!("Serving HTTP on unix socket {path} ..."),
        None if https => {
            let line = banner(server.local_addr());
            println!(
                "{}",
                line.replace("HTTP", "HTTPS").replace("http://", "https://")
            );
        }
        None => println!("{}", banner(server.local_addr())),
    }
    match server.wait_for_signals(eddy_drivers::DEFAULT_GRACE) {
        Ok(()) => {
            eprintln!("Stopped: requests in flight were finished.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("eddy serve: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_reads_like_python_http_server() {
        assert_eq!(
            banner("127.0.0.1:8888".parse().unwrap()),
            "Serving HTTP on 127.0.0.1 port 8888 (http://127.0.0.1:8888/) ..."
        );
        assert_eq!(
            banner("[::1]:80".parse().unwrap()),
            "Serving HTTP on ::1 port 80 (http://[::1]:80/) ..."
        );
    }

    #[test]
    fn access_lines_name_client_request_status_and_time() {
        let entry = RequestLog {
            status: 206,
            method: "GET",
            uri: "/a b\n",
            version: http::Version::HTTP_11,
            remote_ip: [127, 0, 0, 1].into(),
            duration: eddy_core::Duration::from_micros(1500),
        };
        assert_eq!(
            access_line(&entry, 784_111_777),
            "127.0.0.1 - - [Sun, 06 Nov 1994 08:49:37 GMT] \"GET /a b\\n HTTP/1.1\" 206 1.50ms"
        );
    }
}
