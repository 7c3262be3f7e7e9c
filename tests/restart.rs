//! A zero-downtime restart: `eddy serve` processes share one listening socket passed in
//! the systemd way (`eddy_drivers::activation::spawn_with_listeners`); while a client makes
//! 2,000 requests, a new process starts on the socket and the old one gets SIGTERM. Not one
//! request fails: the accept queue belongs to the socket, which never closes, and the old
//! process finishes what it accepted before it exits 0.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy::drivers::activation::spawn_with_listeners;

const REQUESTS: u64 = 2_000;

fn start(dir: &std::path::Path, listener: &TcpListener) -> Child {
    spawn_with_listeners(
        env!("CARGO_BIN_EXE_eddy"),
        &["serve", dir.to_str().unwrap(), "--quiet"],
        &[listener.as_fd()],
        |cmd| {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        },
    )
    .unwrap()
}

fn get(addr: SocketAddr) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    s.read_to_end(&mut got).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&got);
    if text.starts_with("HTTP/1.1 200") && text.ends_with("Hello from eddy\n") {
        Ok(())
    } else {
        Err(format!("bad answer: {text:?}"))
    }
}

fn sigterm(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits (bounded) until the server answers.
fn wait_ready(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(addr).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn replacing_the_server_mid_load_drops_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut old = start(dir.path(), &listener);
    wait_ready(addr);

    let done = Arc::new(AtomicU64::new(0));
    let client = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            for i in 0..REQUESTS {
                if let Err(e) = get(addr) {
                    failures.push(format!("request {i}: {e}"));
                }
                done.store(i + 1, Ordering::Relaxed);
            }
            failures
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::Relaxed) < REQUESTS / 3 {
        assert!(Instant::now() < deadline, "the client stalled");
        std::thread::sleep(Duration::from_millis(5));
    }
    let new = start(dir.path(), &listener);
    std::thread::sleep(Duration::from_millis(300)); // both serve for a while
    sigterm(&old);
    let status = old.wait().unwrap();
    assert!(
        status.success(),
        "the old server exits 0 on SIGTERM: {status}"
    );
    let at_stop = done.load(Ordering::Relaxed);
    let failures = client.join().unwrap();
    assert!(
        at_stop < REQUESTS,
        "the restart happened mid-load ({at_stop} done)"
    );
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let mut new = new;
    sigterm(&new);
    assert!(new.wait().unwrap().success());
}
