//! Out of file descriptors: the server must not spin on a readable backlog it cannot accept
//! (a known Tornado failure), and must accept again once descriptors free up.
//!
//! The server runs in a child process (this test binary re-executed with an environment
//! variable) under a low RLIMIT_NOFILE; the parent opens the connections and watches the
//! child's CPU time in /proc.
#![cfg(target_os = "linux")]

mod common;

use common::{real_backends as backends, Backend};
use eddy::core::{Duration as CoreDuration, IoLoop};
use eddy::drivers::{new_driver, DriverConfig};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "EDDY_EMFILE_CHILD";
const FD_LIMIT: u64 = 48;
const CLIENTS: usize = 100;

/// The child's body: an echo server under a low descriptor limit, bounded to 30 s.
#[test]
fn emfile_child_process() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // only meaningful when re-executed by the parent test below
    }
    eddy::drivers::os::set_open_files_limit(FD_LIMIT).expect("lower RLIMIT_NOFILE");
    let config = DriverConfig::from_env().expect("EDDY_DRIVER");
    let mut driver = new_driver(&config).expect("driver");
    let mut io = IoLoop::default();
    let l = eddy::echo::serve(&mut io, ([127, 0, 0, 1], 0).into());
    driver.perform_actions(&mut io).unwrap();
    let port = io.listener_addr(l).expect("bound").port();
    println!("EDDY_PORT {port}");
    std::io::stdout().flush().unwrap();
    io.call_later(CoreDuration::from_secs(30), |io| io.stop());
    driver.run_until_stopped(&mut io).unwrap();
}

/// CPU time (user + system) of process `pid`, from /proc/PID/stat.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    let after_comm = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the comm field.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = eddy::drivers::os::clock_ticks_per_second();
    Duration::from_millis(ticks * 1000 / hz)
}

fn run_parent(backend: Backend) {
    let kind = backend.driver_kind().expect("real backend");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "emfile_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env("EDDY_DRIVER", kind.name())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = loop {
        let line = lines.next().expect("child printed its port").unwrap();
        // libtest prints "test NAME ... " before the body's output, on the same line.
        if let Some(at) = line.find("EDDY_PORT ") {
            break line[at + 10..].trim().parse().unwrap();
        }
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();

    let mut conns = Vec::new();
    for _ in 0..CLIENTS {
        let mut s = TcpStream::connect(addr).expect("connect (the backlog takes it)");
        s.write_all(b"x").unwrap();
        conns.push(s);
    }
    std::thread::sleep(Duration::from_millis(300)); // let the child hit EMFILE
    let before = cpu_time(pid);
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_time(pid) - before;
    assert!(
        spent < Duration::from_millis(250),
        "[{backend:?}] server burned {spent:?} of CPU in 1 s while out of descriptors"
    );

    let mut echoed = 0;
    for s in &mut conns {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        if matches!(s.read(&mut b), Ok(1)) {
            echoed += 1;
        }
    }
    assert!(echoed > 0, "[{backend:?}] some clients are served");
    assert!(
        echoed < CLIENTS,
        "[{backend:?}] all {CLIENTS} were served: the fd limit was never hit"
    );
    drop(conns);

    // Descriptors free up; the server must accept again (after its back-off).
    let mut s = TcpStream::connect(addr).expect("connect after the storm");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    s.write_all(b"ping").unwrap();
    let mut echo = [0u8; 4];
    s.read_exact(&mut echo)
        .unwrap_or_else(|e| panic!("[{backend:?}] no echo after descriptors freed: {e}"));
    assert_eq!(&echo, b"ping");
    eprintln!(
        "[{backend:?}] cpu while stalled {spent:?}, {echoed} served, recovered in {:?}",
        started.elapsed()
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn out_of_descriptors_does_not_spin_and_accepting_resumes() {
    for backend in backends() {
        run_parent(backend);
    }
}
