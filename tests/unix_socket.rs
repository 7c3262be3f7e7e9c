//! Unix domain socket listeners on mio and poll (Tornado's `bind_unix_socket`): HTTP over
//! the socket, the file's mode, a stale socket file replaced, a live one refused, and the
//! peer reported as `0.0.0.0`.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use eddy::drivers::{spawn_threads, DriverConfig, DriverKind, ThreadServer};
use eddy::web::{Application, Exchange, HttpError, RequestHandler, Route};

struct Peer;
impl RequestHandler for Peer {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let ip = ex.remote_ip();
        ex.write(ip.to_string());
        Ok(())
    }
}

fn serve_unix(kind: DriverKind, path: &str) -> Result<ThreadServer, eddy::drivers::DriverError> {
    let path = path.to_owned();
    spawn_threads(
        &DriverConfig::with_kind(kind),
        1,
        ([127, 0, 0, 1], 0).into(),
        move |io, _| {
            Application::new(vec![Route::new("/peer", || Peer)]).listen_unix(
                io,
                &path,
                0o600,
                eddy::core::ListenOptions::default(),
            );
        },
    )
}

fn get(path: &str) -> String {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn http_over_a_unix_socket_with_stale_and_live_files_handled() {
    for kind in [DriverKind::Mio, DriverKind::Poll] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eddy.sock");
        let path = path.to_str().unwrap();
        // A stale socket file (bound, then its listener gone) is replaced.
        drop(std::os::unix::net::UnixListener::bind(path).unwrap());
        let server = serve_unix(kind, path).expect("the stale file is replaced");
        let answer = get(path);
        assert!(answer.starts_with("HTTP/1.1 200"), "[{kind:?}] {answer}");
        assert!(
            answer.ends_with("0.0.0.0"),
            "[{kind:?}] the peer of a unix socket: {answer}"
        );
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "[{kind:?}]");
        // A live socket is not taken over.
        let err = serve_unix(kind, path).expect_err("a live socket is refused");
        assert!(
            err.to_string().contains("address in use"),
            "[{kind:?}] {err}"
        );
        assert!(
            get(path).ends_with("0.0.0.0"),
            "the first server still serves"
        );
        server.shutdown(Duration::from_secs(1));
        server.join().unwrap();
        // Something that is not a socket is never removed.
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "keep").unwrap();
        assert!(serve_unix(kind, plain.to_str().unwrap()).is_err());
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "keep");
    }
}
