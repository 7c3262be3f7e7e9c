//! `eddy fetch`: fetch a URL and print the body, like `python -m tornado.httpclient` (and a
//! little curl): `eddy fetch URL [-X METHOD] [-H 'Name: value']... [-d BODY] [--follow-redirects]
//! [--include] [--timeout S] [--fail]`.
//!
//! It owns argument parsing and printing; the client is `eddy_core::http::HttpClient` on the
//! default OS driver. Host names are resolved here, with `std::net::ToSocketAddrs` (blocking),
//! since the core has no DNS.

use eddy_core::tls::TlsConnector;
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use eddy_core::http::client::Resolver;
use eddy_core::http::{
    ClientConfig, FetchHandle, HttpClient, HttpError, HttpRequest, HttpResponse, ResponseHead,
};
use eddy_drivers::{run_sync, DriverConfig};
use http::{HeaderName, HeaderValue, Method};

/// Parsed command line of `eddy fetch`.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchArgs {
    /// The URL.
    pub url: String,
    /// The method (`-X`); GET, or POST when a body is given.
    pub method: Option<String>,
    /// Header fields (`-H 'Name: value'`).
    pub headers: Vec<(String, String)>,
    /// The body (`-d`).
    pub body: Option<Vec<u8>>,
    /// Follow redirects (`--follow-redirects`).
    pub follow_redirects: bool,
    /// Most redirects followed (`--max-redirects`, default 5).
    pub max_redirects: u32,
    /// Print the status line and headers before the body (`--include`).
    pub include: bool,
    /// Connect and request time-out (`--timeout`, seconds).
    pub timeout: Duration,
    /// Exit 1 on a 4xx/5xx status (`--fail`).
    pub fail: bool,
    /// TLS for `https://` (`--cacert`, `--insecure`); `None`: the built-in webpki roots.
    pub tls: Option<TlsConnector>,
}

/// The options of `eddy fetch`, as the command line spells them.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Fetch an http:// or https:// URL and print the body (like `python -m tornado.httpclient`)",
    after_help = "Exit status: 0 when a response arrived (any status; with --fail, only \
                  2xx/3xx), 1 on a network error, time-out or protocol error (one line on \
                  stderr), 2 on a usage error. The body is streamed as it arrives. \
                  EDDY_DRIVER=mio|poll picks the driver."
)]
pub struct FetchCli {
    /// The URL to fetch.
    pub url: String,
    /// The method (GET, or POST when a body is given).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,
    /// A header field to send, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "'Name: value'")]
    pub headers: Vec<String>,
    /// A body to send; `@FILE` reads it from a file.
    #[arg(short = 'd', long = "data", value_name = "BODY|@FILE")]
    pub data: Option<String>,
    /// Follow redirects.
    #[arg(short = 'L', long)]
    pub follow_redirects: bool,
    /// Most redirects followed.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub max_redirects: u32,
    /// Print the status line and headers before the body.
    #[arg(short = 'i', long)]
    pub include: bool,
    /// Bound on the connect and the whole request, in seconds.
    #[arg(long, default_value_t = 20.0, value_name = "SECONDS")]
    pub timeout: f64,
    /// Exit 1 on a 4xx or 5xx status.
    #[arg(long)]
    pub fail: bool,
    /// Verify https:// servers against the CA certificates in this PEM file (instead of
    /// the built-in webpki roots).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<std::path::PathBuf>,
    /// Do not verify the server's certificate (insecure; for tests only).
    #[arg(short = 'k', long)]
    pub insecure: bool,
}

#[derive(clap::Parser)]
#[command(name = "eddy fetch", disable_version_flag = true)]
struct FetchCommand {
    #[command(flatten)]
    cli: FetchCli,
}

impl FetchCli {
    /// Checks the options and reads `-d @FILE`.
    pub fn into_args(self) -> Result<FetchArgs, String> {
        let mut headers = Vec::with_capacity(self.headers.len());
        for h in &self.headers {
            let (name, v) = h
                .split_once(':')
                .ok_or_else(|| format!("header {h:?} is not 'Name: value'"))?;
            headers.push((name.trim().to_owned(), v.trim().to_owned()));
        }
        let body = match self.data {
            None => None,
            Some(d) => Some(match d.strip_prefix('@') {
                Some(path) => {
                    std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?
                }
                None => d.into_bytes(),
            }),
        };
        if !(self.timeout.is_finite() && self.timeout > 0.0) {
            return Err("--timeout must be positive".into());
        }
        let tls = match (&self.cacert, self.insecure) {
            (None, false) => None,
            (cacert, insecure) => {
                let mut b = TlsConnector::builder().danger_accept_invalid_certificates(insecure);
                if let Some(path) = cacert {
                    let pem = std::fs::read(path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    b = b.ca_pem(&pem);
                }
                Some(b.build().map_err(|e| format!("--cacert: {e}"))?)
            }
        };
        Ok(FetchArgs {
            url: self.url,
            method: self.method,
            headers,
            body,
            follow_redirects: self.follow_redirects,
            max_redirects: self.max_redirects,
            include: self.include,
            timeout: Duration::from_secs_f64(self.timeout),
            fail: self.fail,
            tls,
        })
    }
}

/// Parses the arguments that follow `fetch` (a leading `fetch` is skipped too).
pub fn parse_args(args: &[String]) -> Result<FetchArgs, String> {
    use clap::Parser as _;
    let args = match args.first() {
        Some(a) if a == "fetch" => &args[1..],
        _ => args,
    };
    let command = FetchCommand::try_parse_from(
        std::iter::once("eddy fetch").chain(args.iter().map(String::as_str)),
    )
    .map_err(|e| e.to_string().trim_end().to_owned())?;
    command.cli.into_args()
}

/// Builds the client request for parsed arguments.
pub fn build_request(args: &FetchArgs) -> Result<HttpRequest, String> {
    let method = match (&args.method, &args.body) {
        (Some(m), _) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("invalid method {m:?}"))?,
        (None, Some(_)) => Method::POST,
        (None, None) => Method::GET,
    };
    let mut req = HttpRequest::new(method, args.url.clone());
    for (name, value) in &args.headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let v =
            HeaderValue::from_str(value).map_err(|_| format!("invalid header value {value:?}"))?;
        req.headers.append(n, v);
    }
    if let Some(body) = &args.body {
        req.body = body.clone().into();
    }
    req.follow_redirects = args.follow_redirects;
    req.max_redirects = args.max_redirects;
    req.connect_timeout = Some(args.timeout);
    req.request_timeout = Some(args.timeout);
    // Like Tornado's command line: a 404 still prints its body.
    req.error_for_status = false;
    Ok(req)
}

/// A resolver for the client: IP literals are handled by the core; names go to the OS.
pub fn os_resolver() -> Resolver {
    Rc::new(|host: &str, port: u16| {
        let addrs: Vec<_> = (host, port).to_socket_addrs().ok()?.collect();
        // Prefer IPv4, as most local servers listen there.
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
    })
}

/// Fetches on a fresh loop of the default OS driver and returns the outcome.
pub fn fetch_blocking(req: HttpRequest) -> Result<Result<HttpResponse, HttpError>, String> {
    let config = DriverConfig::from_env().map_err(|e| e.to_string())?;
    let client = HttpClient::with_resolver(ClientConfig::default(), os_resolver());
    run_sync(&config, None, move |io, done| {
        client.fetch(io, req, move |io, result| done.complete(io, result));
    })
    .map_err(|e| e.to_string())
}

/// Writes the status line and header fields as received.
pub fn write_head(out: &mut dyn Write, head: &ResponseHead) -> std::io::Result<()> {
    write!(
        out,
        "{:?} {} {}\r\n",
        head.version,
        head.status.as_u16(),
        head.reason
    )?;
    for (name, value) in &head.headers {
        out.write_all(name.as_str().as_bytes())?;
        out.write_all(b": ")?;
        out.write_all(value.as_bytes())?;
        out.write_all(b"\r\n")?;
    }
    out.write_all(b"\r\n")
}

/// Runs `eddy fetch` with the arguments after `fetch`, streaming the response to `out` as it
/// arrives (head first with `--include`) and errors to `err`; returns the exit status.
pub fn run_with<W: Write + 'static>(
    args: &[String],
    out: Rc<RefCell<W>>,
    err: &mut dyn Write,
) -> u8 {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        use clap::CommandFactory as _;
        let _ = writeln!(
            out.borrow_mut(),
            "{}",
            FetchCommand::command().render_help()
        );
        return 0;
    }
    match parse_args(args) {
        Ok(parsed) => run_parsed(parsed, out, err),
        Err(e) => {
            let _ = writeln!(err, "eddy fetch: {e}");
            2
        }
    }
}

/// Runs `eddy fetch` for options already parsed (see [`run_with`]).
pub fn run_parsed<W: Write + 'static>(
    args: FetchArgs,
    out: Rc<RefCell<W>>,
    err: &mut dyn Write,
) -> u8 {
    let mut req = match build_request(&args) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "eddy fetch: {e}");
            return 2;
        }
    };
    // Streamed to the output, so no size limit applies.
    req.max_body_size = u64::MAX;
    let write_error: Rc<RefCell<Option<std::io::Error>>> = Rc::default();
    let handle: Rc<RefCell<Option<FetchHandle>>> = Rc::default();
    let silent = Rc::new(Cell::new(false));
    {
        let (out, write_error, handle, silent) = (
            out.clone(),
            write_error.clone(),
            handle.clone(),
            silent.clone(),
        );
        let (include, fail) = (args.include, args.fail);
        req.on_head = Some(Box::new(move |io, head| {
            // With --fail an error page is not printed (as curl does).
            silent.set(fail && head.status.as_u16() >= 400);
            if include && !silent.get() {
                if let Err(e) = write_head(&mut *out.borrow_mut(), head) {
                    stop(io, &handle, &write_error, e);
                }
            }
        }));
    }
    {
        let (out, write_error, handle) = (out.clone(), write_error.clone(), handle.clone());
        req.on_chunk = Some(Box::new(move |io, data| {
            if silent.get() {
                return;
            }
            if let Err(e) = out.borrow_mut().write_all(&data) {
                stop(io, &handle, &write_error, e);
            }
        }));
    }
    let result = fetch_streaming(req, args.tls.clone(), handle);
    let flushed = out.borrow_mut().flush();
    if let Some(e) = write_error.borrow_mut().take().or(flushed.err()) {
        let _ = writeln!(err, "eddy fetch: writing output: {e}");
        return 1;
    }
    match result {
        Ok(resp) if args.fail && resp.status.as_u16() >= 400 => {
            let _ = writeln!(err, "eddy fetch: {}: HTTP {}", args.url, resp.status);
            1
        }
        Ok(_) => 0,
        Err(e) => {
            let _ = writeln!(err, "eddy fetch: {}: {e}", args.url);
            1
        }
    }
}

/// Records an output error and cancels the fetch (e.g. `eddy fetch URL | head`).
fn stop(
    io: &mut eddy_core::IoLoop,
    handle: &Rc<RefCell<Option<FetchHandle>>>,
    slot: &Rc<RefCell<Option<std::io::Error>>>,
    e: std::io::Error,
) {
    slot.borrow_mut().get_or_insert(e);
    if let Some(h) = handle.borrow().as_ref() {
        h.cancel(io);
    }
}

/// Fetches on a fresh loop of the default OS driver, publishing the fetch's handle.
fn fetch_streaming(
    req: HttpRequest,
    tls: Option<TlsConnector>,
    handle: Rc<RefCell<Option<FetchHandle>>>,
) -> Result<HttpResponse, String> {
    let config = DriverConfig::from_env().map_err(|e| e.to_string())?;
    let client_config = ClientConfig {
        tls,
        ..ClientConfig::default()
    };
    let client = HttpClient::with_resolver(client_config, os_resolver());
    let result = run_sync(&config, None, move |io, done| {
        let h = client.fetch(io, req, move |io, result| done.complete(io, result));
        *handle.borrow_mut() = Some(h);
    })
    .map_err(|e| e.to_string())?;
    result.map_err(|e| e.to_string())
}

/// Runs `eddy fetch` with raw arguments on the process's stdout and stderr.
pub fn run_args(args: &[String]) -> ExitCode {
    let out = Rc::new(RefCell::new(std::io::BufWriter::new(
        std::io::stdout().lock(),
    )));
    ExitCode::from(run_with(args, out, &mut std::io::stderr().lock()))
}

/// Runs `eddy fetch` on the process's stdout and stderr (for `main`).
pub fn run(cli: FetchCli) -> ExitCode {
    let stderr = std::io::stderr();
    let args = match cli.into_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("eddy fetch: {e}");
            return ExitCode::from(2);
        }
    };
    let out = Rc::new(RefCell::new(std::io::BufWriter::new(
        std::io::stdout().lock(),
    )));
    let code = run_parsed(args, out, &mut stderr.lock());
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_curl_like_options() {
        let a = parse_args(&args(&[
            "fetch",
            "http://h/",
            "-X",
            "put",
            "-H",
            "X-A: 1",
            "-H",
            "X-B:2",
            "-d",
            "body",
            "--follow-redirects",
            "--include",
            "--timeout",
            "1.5",
        ]))
        .unwrap();
        assert_eq!(a.url, "http://h/");
        assert_eq!(
            a.headers,
            vec![("X-A".into(), "1".into()), ("X-B".into(), "2".into())]
        );
        assert!(a.follow_redirects && a.include);
        assert_eq!(a.timeout, Duration::from_millis(1500));
        let req = build_request(&a).unwrap();
        assert_eq!(req.method, Method::PUT);
        assert_eq!(&req.body[..], b"body");
        let post = build_request(&parse_args(&args(&["http://h/", "-d", "x"])).unwrap()).unwrap();
        assert_eq!(post.method, Method::POST);
    }

    #[test]
    fn rejects_bad_usage() {
        for bad in [
            &[][..],
            &["http://a/", "http://b/"],
            &["http://a/", "-H", "nocolon"],
            &["http://a/", "--timeout", "-1"],
            &["http://a/", "--bogus"],
            &["http://a/", "-X"],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
        let out = Rc::new(RefCell::new(Vec::new()));
        let mut err = Vec::new();
        assert_eq!(run_with(&args(&["--bogus"]), out, &mut err), 2);
    }
}
