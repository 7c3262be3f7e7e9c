//! Load program for echo servers, on a tokio current-thread runtime (pin it with taskset).
//!
//! `load --addr 127.0.0.1:8888 --mode echo --conns 50 --secs 10 --size 64`
//!   N persistent connections, each doing write-then-read-back round trips; prints round trips/s.
//! `load --addr ... --mode accept --conns 8 --secs 10`
//!   N workers each looping connect, one 64-byte round trip, close (RST, no TIME_WAIT);
//!   prints connections/s (the server's accept rate).
//! Every loop stops at the deadline; prints one line `RESULT mode=.. ops=.. secs=.. rate=..`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    addr: SocketAddr,
    mode: String,
    conns: usize,
    secs: u64,
    size: usize,
}

fn parse() -> Args {
    let mut a = Args {
        addr: "127.0.0.1:8888".parse().unwrap(),
        mode: "echo".into(),
        conns: 50,
        secs: 10,
        size: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = v.parse().expect("--addr"),
            "--mode" => a.mode = v,
            "--conns" => a.conns = v.parse().expect("--conns"),
            "--secs" => a.secs = v.parse().expect("--secs"),
            "--size" => a.size = v.parse().expect("--size"),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

async fn echo_worker(addr: SocketAddr, size: usize, deadline: Instant) -> u64 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).unwrap();
    let msg = vec![7u8; size];
    let mut back = vec![0u8; size];
    let mut n = 0u64;
    while Instant::now() < deadline {
        if s.write_all(&msg).await.is_err() || s.read_exact(&mut back).await.is_err() {
            break;
        }
        n += 1;
    }
    n
}

async fn accept_worker(addr: SocketAddr, deadline: Instant) -> u64 {
    let msg = [7u8; 64];
    let mut back = [0u8; 64];
    let mut n = 0u64;
    while Instant::now() < deadline {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let _ = s.set_nodelay(true);
        if s.write_all(&msg).await.is_ok() && s.read_exact(&mut back).await.is_ok() {
            n += 1;
        }
        // Reset on close: no TIME_WAIT, so a 10 s run cannot exhaust ephemeral ports.
        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    }
    n
}

fn main() {
    let a = parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.secs);
    let total: u64 = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..a.conns {
            let (addr, size, mode) = (a.addr, a.size, a.mode.clone());
            tasks.push(tokio::spawn(async move {
                match mode.as_str() {
                    "echo" => echo_worker(addr, size, deadline).await,
                    "accept" => accept_worker(addr, deadline).await,
                    m => panic!("unknown mode {m}"),
                }
            }));
        }
        let mut sum = 0;
        for t in tasks {
            sum += t.await.unwrap_or(0);
        }
        sum
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "RESULT mode={} ops={} secs={:.2} rate={:.0}",
        a.mode,
        total,
        secs,
        total as f64 / secs
    );
}
