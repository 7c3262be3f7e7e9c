//! HttpClient against nginx (skipped when `nginx` is not installed): keep-alive reuse,
//! gzip over chunked transfer coding, redirects and 404s from a production server.

mod common;

use std::cell::RefCell;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{real_backends, run_single, Backend};
use eddy::core::http::{ClientConfig, FetchResult, HttpClient, HttpError, HttpRequest};
use eddy::core::IoLoop;
use http::StatusCode;

const LIMIT: Duration = Duration::from_secs(20);

struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Starts nginx in the foreground on a free port with a config of its own; `None` (skip)
/// when nginx is missing or does not come up.
fn start_nginx() -> Option<Nginx> {
    let Some(bin) = nginx_binary() else {
        eprintln!("skipping: nginx not installed (apt-get install nginx-light)");
        return None;
    };
    let dir = std::env::temp_dir().join(format!("eddy-nginx-{}", std::process::id()));
    let root = dir.join("root");
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello.txt"), "hello from nginx\n".repeat(500)).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log stderr warn;\n\
         pid {dir}/nginx.pid;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  default_type text/plain;\n\
           client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
           fastcgi_temp_path {dir}/fcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n\
           scgi_temp_path {dir}/scgi;\n  keepalive_requests 1000;\n\
           server {{\n    listen 127.0.0.1:{port};\n    root {root};\n\
             location = /gz {{ gzip on; gzip_types text/plain; gzip_min_length 1; \
                              try_files /hello.txt =404; }}\n\
             location = /old {{ return 301 /hello.txt; }}\n  }}\n}}\n",
        dir = dir.display(),
        root = root.display(),
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(bin)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let nginx = Nginx { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            eprintln!("skipping: nginx did not start");
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(nginx)
}

/// Runs the requests one after another (so keep-alive reuse is visible).
fn fetch_seq(backend: Backend, client: &HttpClient, urls: Vec<HttpRequest>) -> Vec<FetchResult> {
    let out = Rc::new(RefCell::new(Vec::new()));
    let o = out.clone();
    let client = client.clone();
    run_single(backend, move |io| next(io, client, urls, o), LIMIT);
    let v = out.borrow_mut().drain(..).collect();
    v
}

fn next(
    io: &mut IoLoop,
    client: HttpClient,
    mut reqs: Vec<HttpRequest>,
    out: Rc<RefCell<Vec<FetchResult>>>,
) {
    if reqs.is_empty() {
        io.stop();
        return;
    }
    let req = reqs.remove(0);
    let c = client.clone();
    client.fetch(io, req, move |io, r| {
        out.borrow_mut().push(r);
        next(io, c, reqs, out);
    });
}

#[test]
fn nginx_keep_alive_gzip_chunked_redirects_and_404() {
    let Some(nginx) = start_nginx() else { return };
    let expected = std::fs::read(Path::new(&nginx.dir).join("root/hello.txt")).unwrap();
    let url = |p: &str| format!("http://127.0.0.1:{}{p}", nginx.port);
    for backend in real_backends() {
        let client = HttpClient::new(ClientConfig::default());
        let results = fetch_seq(
            backend,
            &client,
            vec![
                HttpRequest::get(url("/hello.txt")),
                HttpRequest::get(url("/gz")),
                HttpRequest::get(url("/old")),
                HttpRequest::get(url("/missing")),
                HttpRequest::get(url("/hello.txt")),
            ],
        );
        let plain = results[0].as_ref().unwrap();
        assert_eq!(plain.body, expected, "[{backend:?}]");
        let gz = results[1].as_ref().unwrap();
        assert_eq!(gz.headers["x-consumed-content-encoding"], "gzip");
        assert_eq!(gz.headers["transfer-encoding"], "chunked", "[{backend:?}]");
        assert_eq!(gz.body, expected, "[{backend:?}] gunzipped");
        let redirected = results[2].as_ref().unwrap();
        assert_eq!(
            (redirected.redirects, &redirected.body),
            (1, &expected.clone().into())
        );
        match &results[3] {
            Err(HttpError::Status(code, _)) => assert_eq!(*code, StatusCode::NOT_FOUND),
            other => panic!("[{backend:?}] {other:?}"),
        }
        assert!(results[4].as_ref().unwrap().reused_connection);
        let stats = client.stats();
        assert_eq!(stats.connections_opened, 1, "[{backend:?}] {stats:?}");
    }
}
