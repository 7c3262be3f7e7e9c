//! Client throughput: eddy's HttpClient against eddy's HttpServer, each on its own loop and
//! thread (pinned to CPU 0 and 1 when possible), N concurrent keep-alive request chains for
//! a fixed time; prints requests per second.
//!
//! `cargo run --release --example client_bench -- [--concurrency N] [--seconds S] [--body BYTES]`
//! (`EDDY_DRIVER=mio|poll` picks the driver of both loops).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use eddy::core::http::{ClientConfig, HttpClient, HttpRequest, HttpServer, Request, Responder};
use eddy::core::{IoLoop, ListenOptions, LoopConfig};
use eddy::drivers::{new_driver, DriverConfig};
use http::{HeaderMap, StatusCode};

struct Options {
    concurrency: usize,
    seconds: f64,
    body: usize,
}

const USAGE: &str = "usage: client_bench [--concurrency N] [--seconds S] [--body BYTES]";

/// The value after a flag, parsed; a missing or bad value exits with the usage.
fn value<T: std::str::FromStr>(flag: &str, v: Option<&String>) -> T {
    match v.and_then(|v| v.parse().ok()) {
        Some(x) => x,
        None => {
            eprintln!("{flag} needs a number\n{USAGE}");
            std::process::exit(2);
        }
    }
}

fn parse() -> Options {
    let mut o = Options {
        concurrency: 32,
        seconds: 5.0,
        body: 13,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1);
        match args[i].as_str() {
            "--concurrency" | "-c" => o.concurrency = value(&args[i], v),
            "--seconds" | "-t" => o.seconds = value(&args[i], v),
            "--body" => o.body = value(&args[i], v),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    o
}

/// Pins the calling thread to one CPU when the OS allows; the benchmark runs either way.
fn pin(cpu: usize) {
    let _ = eddy::drivers::os::pin_current_thread(cpu);
}

fn main() {
    let opts = parse();
    let config = DriverConfig::from_env().expect("EDDY_DRIVER");
    let body = vec![b'x'; opts.body];

    // Server thread: one loop, one listener; sends back its address and a stop handle.
    let (tx, rx) = mpsc::channel();
    let server_config = config.clone();
    let server = std::thread::spawn(move || {
        pin(0);
        let mut io = IoLoop::new(LoopConfig::default());
        let mut driver = new_driver(&server_config).expect("driver");
        let server = HttpServer::new(move |io: &mut IoLoop, _: Request, resp: Responder| {
            let _ = resp.respond(io, StatusCode::OK, &HeaderMap::new(), body.clone());
        });
        let l = server.listen(
            &mut io,
            ([127, 0, 0, 1], 0).into(),
            ListenOptions::default(),
        );
        driver.perform_actions(&mut io).expect("listen");
        let addr = io.listener_addr(l).expect("bound");
        tx.send((addr, io.remote())).unwrap();
        driver.run_until_stopped(&mut io).expect("server loop");
        server.stats()
    });
    let (addr, server_remote) = rx.recv().unwrap();

    // Client: this thread, one loop, `concurrency` chains of sequential keep-alive fetches.
    pin(1);
    let mut io = IoLoop::new(LoopConfig::default());
    let mut driver = new_driver(&config).expect("driver");
    let client = HttpClient::new(ClientConfig {
        max_clients: opts.concurrency,
        max_idle_per_host: opts.concurrency,
        ..ClientConfig::default()
    });
    let done = Rc::new(Cell::new(0u64));
    let errors = Rc::new(Cell::new(0u64));
    let stopping = Rc::new(Cell::new(false));
    let running = Rc::new(Cell::new(opts.concurrency));
    let url = format!("http://{addr}/");
    for _ in 0..opts.concurrency {
        chain(
            &mut io,
            &client,
            url.clone(),
            done.clone(),
            errors.clone(),
            stopping.clone(),
            running.clone(),
        );
    }
    let s = stopping.clone();
    let start_clock = driver.clock().now();
    io.call_at(
        start_clock + Duration::from_secs_f64(opts.seconds),
        move |_| s.set(true),
    );
    let started = Instant::now();
    driver.run_until_stopped(&mut io).expect("client loop");
    let elapsed = started.elapsed().as_secs_f64();

    server_remote.add_callback(|io| io.stop());
    let server_stats = server.join().unwrap();
    let stats = client.stats();
    println!(
        "driver={} concurrency={} seconds={:.2} requests={} errors={} req/s={:.0} \
         client_connections={} server_connections={}",
        config.kind.name(),
        opts.concurrency,
        elapsed,
        done.get(),
        errors.get(),
        done.get() as f64 / elapsed,
        stats.connections_opened,
        server_stats.connections,
    );
}

/// One chain: fetch, and on completion fetch again until told to stop.
fn chain(
    io: &mut IoLoop,
    client: &HttpClient,
    url: String,
    done: Rc<Cell<u64>>,
    errors: Rc<Cell<u64>>,
    stopping: Rc<Cell<bool>>,
    running: Rc<Cell<usize>>,
) {
    if stopping.get() {
        running.set(running.get() - 1);
        if running.get() == 0 {
            io.stop();
        }
        return;
    }
    let c = client.clone();
    let mut req = HttpRequest::get(url.clone());
    req.decompress_response = false;
    client.fetch(io, req, move |io, result| {
        match result {
            Ok(_) => done.set(done.get() + 1),
            Err(e) => {
                errors.set(errors.get() + 1);
                if errors.get() < 5 {
                    eprintln!("fetch failed: {e}");
                }
            }
        }
        chain(io, &c, url, done, errors, stopping, running);
    });
}
