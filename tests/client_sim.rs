//! HttpClient against HttpServer on the simulator: in a calm world every fetch succeeds on
//! one keep-alive connection; in hostile worlds (latency, short reads and writes, resets,
//! refusals, partitions) every fetch is answered exactly once, successful bodies are intact,
//! and once the world heals a fetch succeeds again.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use eddy::core::http::{
    ClientConfig, FetchResult, HttpClient, HttpError, HttpRequest, HttpServer, Request, Responder,
};
use eddy::core::{Duration, IoLoop, ListenOptions, ListenerId};
use eddy_sim::{assert_seeds, run_pair, FaultConfig};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const FETCHES: usize = 8;

fn app(io: &mut IoLoop, req: Request, resp: Responder) {
    let echo = format!("{} {} {}", req.method(), req.target(), req.body().len());
    match req.path() {
        "/slow" => {
            io.call_later(Duration::from_millis(200), move |io| {
                let _ = resp.respond(io, StatusCode::OK, &HeaderMap::new(), echo);
            });
        }
        "/redir" => {
            let mut h = HeaderMap::new();
            h.insert("location", HeaderValue::from_static("/target"));
            let _ = resp.respond(io, StatusCode::FOUND, &h, "");
        }
        _ => {
            let _ = resp.respond(io, StatusCode::OK, &HeaderMap::new(), echo);
        }
    }
}

fn server(io: &mut IoLoop, addr: SocketAddr) -> ListenerId {
    HttpServer::new(app).listen(io, addr, ListenOptions::default())
}

/// The i-th request and the body its success must carry.
fn request(addr: SocketAddr, i: usize) -> (HttpRequest, String) {
    let mut req = match i % 4 {
        0 => HttpRequest::get(format!("http://{addr}/get{i}")),
        1 => HttpRequest::new(Method::POST, format!("http://{addr}/post{i}"))
            .body(vec![b'p'; 1000 * i]),
        2 => HttpRequest::get(format!("http://{addr}/slow")),
        _ => HttpRequest::get(format!("http://{addr}/redir")),
    };
    let expected = match i % 4 {
        0 => format!("GET /get{i} 0"),
        1 => format!("POST /post{i} {}", 1000 * i),
        2 => "GET /slow 0".to_owned(),
        _ => "GET /target 0".to_owned(),
    };
    req.connect_timeout = Some(Duration::from_secs(1));
    req.request_timeout = Some(Duration::from_secs(3));
    (req, expected)
}

/// Checks one outcome: a success has the right body; a failure is a network failure.
fn check(i: usize, result: &FetchResult, expected: &str) -> bool {
    match result {
        Ok(resp) => {
            assert_eq!(
                String::from_utf8_lossy(&resp.body),
                expected,
                "fetch {i}: corrupted body"
            );
            true
        }
        Err(
            HttpError::Timeout { .. }
            | HttpError::ConnectionRefused
            | HttpError::ConnectionReset
            | HttpError::ConnectionClosed
            | HttpError::Connect(_),
        ) => false,
        Err(other) => panic!("fetch {i}: not a network failure: {other}"),
    }
}

/// Runs the fetches, then (after all are answered) fetches until one succeeds, then stops.
fn client(
    successes: Rc<Cell<usize>>,
    client: HttpClient,
) -> impl FnOnce(&mut IoLoop, SocketAddr) + 'static {
    move |io, addr| {
        let calls = Rc::new(RefCell::new(vec![0u32; FETCHES]));
        let left = Rc::new(Cell::new(FETCHES));
        for i in 0..FETCHES {
            let (req, expected) = request(addr, i);
            let calls = calls.clone();
            let left = left.clone();
            let successes = successes.clone();
            let c = client.clone();
            client.fetch(io, req, move |io, result| {
                calls.borrow_mut()[i] += 1;
                assert_eq!(calls.borrow()[i], 1, "fetch {i} answered twice");
                if check(i, &result, &expected) {
                    successes.set(successes.get() + 1);
                }
                left.set(left.get() - 1);
                if left.get() == 0 {
                    until_success(io, c, addr);
                }
            });
        }
    }
}

fn until_success(io: &mut IoLoop, client: HttpClient, addr: SocketAddr) {
    let (req, expected) = request(addr, 0);
    let c = client.clone();
    client.fetch(io, req, move |io, result| {
        if check(0, &result, &expected) {
            io.stop();
        } else {
            io.call_later(Duration::from_millis(500), move |io| {
                until_success(io, c, addr)
            });
        }
    });
}

#[test]
fn calm_world_all_fetches_succeed_over_few_connections() {
    let successes = Rc::new(Cell::new(0));
    let http = HttpClient::new(ClientConfig {
        max_clients: 2,
        ..ClientConfig::default()
    });
    let report = run_pair(
        1,
        FaultConfig::latency(Duration::from_millis(1), Duration::from_millis(5)),
        server,
        client(successes.clone(), http.clone()),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(successes.get(), FETCHES);
    assert_eq!(
        report.stats.accepts, 2,
        "two slots, two keep-alive connections"
    );
    let stats = http.stats();
    assert_eq!(stats.connections_opened, 2);
    assert!(stats.reused >= 7, "{stats:?}");
}

#[test]
fn hostile_worlds_answer_every_fetch_exactly_once() {
    worlds_answer_every_fetch_exactly_once(0..300, |_| FaultConfig::hostile());
}

#[test]
fn swarm_worlds_answer_every_fetch_exactly_once() {
    // Each seed draws its own fault probabilities, from calm to hostile.
    worlds_answer_every_fetch_exactly_once(1000..1300, |seed| {
        FaultConfig::swarm(&mut ChaCha8Rng::seed_from_u64(seed))
    });
}

fn worlds_answer_every_fetch_exactly_once(
    seeds: std::ops::Range<u64>,
    faults: impl Fn(u64) -> FaultConfig + Sync,
) {
    let ok = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let summary = assert_seeds(seeds, |seed| {
        let http = HttpClient::new(ClientConfig {
            max_clients: 3,
            ..ClientConfig::default()
        });
        let successes = Rc::new(Cell::new(0));
        let report = run_pair(
            seed,
            faults(seed),
            server,
            client(successes.clone(), http),
            Duration::from_secs(120),
        )?;
        ok.fetch_add(successes.get(), Ordering::Relaxed);
        failed.fetch_add(FETCHES - successes.get(), Ordering::Relaxed);
        Ok(report)
    });
    let (ok, failed) = (ok.into_inner(), failed.into_inner());
    eprintln!(
        "{} seeds: {ok} fetches succeeded, {failed} failed",
        summary.runs
    );
    // The faults must actually bite, and the client must still get most work done.
    assert!(
        failed > 0,
        "no fetch failed: the faults did not reach the client"
    );
    assert!(ok > failed, "{ok} succeeded, {failed} failed");
}
