//! Scenario `http_chaos`: clients (20 by default), each on its own host with its own
//! [`HttpClient`], make 50 requests each against [`crate::http_echo`] on an [`HttpServer`]
//! while faults run (latency, short reads and writes, splitting, resets, partitions, server
//! crashes and restarts, clock jumps).
//!
//! Safety, checked as results arrive: every request ends with exactly one result (a response
//! or a typed error), never two; a response belongs to its own request (the echo carries the
//! request's method, path and body back); and no request takes longer than its time-outs
//! allow. Liveness: once the world heals, every request has its result within a bounded
//! virtual time. With no fault that can cut a connection, every request succeeds or (in a
//! world slow enough — swarm seeds draw socket buffers down to one byte) times out.
//!
//! [`HttpClient`]: crate::core::http::HttpClient
//! [`HttpServer`]: crate::core::http::HttpServer

use super::ScenarioOptions;
use crate::core::http::{
    ClientConfig, FetchResult, HttpClient, HttpConfig, HttpError, HttpRequest,
};
use crate::core::task;
use crate::core::{Duration, Instant, IoLoop, ListenOptions};
use bytes::Bytes;
use eddy_sim::{RunReport, Sim, SimError};
use http::Method;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

/// Requests each client makes.
pub const REQUESTS_PER_CLIENT: usize = 50;
/// Request chains a client runs side by side (its requests are spread over them).
pub const CHAINS_PER_CLIENT: usize = 3;
/// Each request's `connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Each request's `request_timeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Virtual time with faults running, before the world heals.
pub const FAULT_PHASE: Duration = Duration::from_secs(60);
/// Virtual time the clients get to finish after the world heals.
pub const LIVENESS_LIMIT: Duration = Duration::from_secs(600);

/// One request of a client's workload, as data.
#[derive(Clone, Debug)]
struct Planned {
    method: Method,
    path: String,
    body: Bytes,
    pause: Duration,
}

/// What happened to one request.
#[derive(Clone, Debug, Default)]
struct Record {
    started: Option<Instant>,
    /// How many results it got (must end at exactly 1).
    results: u32,
    ok: bool,
    error: Option<String>,
    /// The error was a time-out (legitimate in a slow world: tiny socket buffers, long tails).
    timed_out: bool,
}

fn workload(rng: &mut ChaCha8Rng, client: usize) -> Vec<Planned> {
    (0..REQUESTS_PER_CLIENT)
        .map(|i| {
            let method = match rng.gen_range(0..4) {
                0 => Method::POST,
                1 => Method::PUT,
                _ => Method::GET,
            };
            let len = if method == Method::GET {
                0
            } else {
                rng.gen_range(0..6000)
            };
            let body: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let pause = match rng.gen_range(0..10) {
                0 => Duration::from_millis(rng.gen_range(1000..3000)),
                1..=5 => Duration::ZERO,
                _ => Duration::from_millis(rng.gen_range(0..100)),
            };
            Planned {
                method,
                path: format!("/c{client}/r{i}?k={}", rng.gen::<u16>()),
                body: Bytes::from(body),
                pause,
            }
        })
        .collect()
}

/// How the requests of one run ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Requests answered with their own echo.
    pub ok: u64,
    /// Requests that ended with a typed error (time-out, reset, refused...).
    pub failed: u64,
}

/// How the server and the clients are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Callbacks: `HttpServer::with_config` and `HttpClient::fetch`.
    Callback,
    /// Tasks: an async handler, and clients as tasks awaiting `fetch_async` and `sleep`.
    Async,
}

/// Runs one seed.
pub fn run(seed: u64, opts: &ScenarioOptions) -> Result<RunReport, SimError> {
    run_counted(seed, opts).map(|(report, _)| report)
}

/// Runs one seed with an async server and async clients.
pub fn run_async(seed: u64, opts: &ScenarioOptions) -> Result<RunReport, SimError> {
    run_styled(seed, opts, Style::Async).map(|(report, _)| report)
}

/// Runs one seed and also says how its requests ended.
pub fn run_counted(seed: u64, opts: &ScenarioOptions) -> Result<(RunReport, Outcomes), SimError> {
    run_styled(seed, opts, Style::Callback)
}

/// Runs one seed in the given style and says how its requests ended.
pub fn run_styled(
    seed: u64,
    opts: &ScenarioOptions,
    style: Style,
) -> Result<(RunReport, Outcomes), SimError> {
    run_with(seed, opts, style, false)
}

/// Runs one seed over HTTPS (the fixture certificate, verified by every client).
pub fn run_tls(seed: u64, opts: &ScenarioOptions) -> Result<RunReport, SimError> {
    run_with(seed, opts, Style::Callback, true).map(|(report, _)| report)
}

/// [`run_tls`], also saying how its requests ended.
pub fn run_tls_counted(
    seed: u64,
    opts: &ScenarioOptions,
) -> Result<(RunReport, Outcomes), SimError> {
    run_with(seed, opts, Style::Callback, true)
}

fn run_with(
    seed: u64,
    opts: &ScenarioOptions,
    style: Style,
    tls: bool,
) -> Result<(RunReport, Outcomes), SimError> {
    let scheme = if tls { "https" } else { "http" };
    let mut sim = match &opts.faults {
        Some(f) => Sim::with_faults(seed, f.clone()),
        None => Sim::new(seed),
    };
    sim.record_trace(opts.trace);
    let addr = SocketAddr::new(Sim::ip_of_nth_host(0), if tls { 443 } else { 80 });
    sim.host("server", move |io| {
        let config = HttpConfig {
            idle_connection_timeout: Duration::from_secs(30),
            header_timeout: Some(Duration::from_secs(10)),
            body_timeout: Some(Duration::from_secs(10)),
            // Built here, inside the world, so its randomness is the seed's.
            tls: tls.then(crate::core::tls::fixture::acceptor),
            ..HttpConfig::default()
        };
        match style {
            Style::Callback => crate::http_echo::serve(io, addr, config, ListenOptions::default()),
            Style::Async => {
                crate::http_echo::serve_async(io, addr, config, ListenOptions::default())
            }
        };
    });
    let mut app_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5851_f42d_4c95_7f2d);
    let clients = if opts.clients == ScenarioOptions::default().clients {
        20
    } else {
        opts.clients
    };
    let mut all_records = Vec::new();
    for c in 0..clients {
        let plan = Rc::new(workload(&mut app_rng, c));
        let records = Rc::new(RefCell::new(vec![Record::default(); plan.len()]));
        all_records.push(records.clone());
        let h = sim.host(&format!("client{c}"), move |io| {
            let client = HttpClient::new(ClientConfig {
                max_clients: CHAINS_PER_CLIENT,
                tls: tls.then(crate::core::tls::fixture::connector),
                ..ClientConfig::default()
            });
            for chain in 0..CHAINS_PER_CLIENT {
                match style {
                    Style::Callback => next(
                        io,
                        &client,
                        (scheme, addr),
                        plan.clone(),
                        chain,
                        records.clone(),
                    ),
                    Style::Async => {
                        let chain_task = run_chain(
                            client.clone(),
                            (scheme, addr),
                            plan.clone(),
                            chain,
                            records.clone(),
                        );
                        io.spawn_detached(chain_task);
                    }
                }
            }
        });
        // A client crash would lose its own bookkeeping; the server is the one that crashes.
        sim.set_crashable(h, false);
    }
    let done = {
        let all = all_records.clone();
        move |_: &Sim| {
            all.iter()
                .all(|r| r.borrow().iter().all(|rec| rec.results > 0))
        }
    };
    sim.run_faults_then_heal(FAULT_PHASE, LIVENESS_LIMIT, done)?;
    let stats = sim.stats();
    let cutting = stats.crashes + stats.injected_resets + stats.partitions + stats.refused;
    let mut outcomes = Outcomes::default();
    for (c, records) in all_records.iter().enumerate() {
        for (i, rec) in records.borrow().iter().enumerate() {
            if rec.ok {
                outcomes.ok += 1;
            } else {
                outcomes.failed += 1;
            }
            if rec.results != 1 {
                return Err(invariant(
                    seed,
                    format!("client{c} request {i} got {} results", rec.results),
                ));
            }
            // Without a fault that cuts connections, a request succeeds or, in a slow world,
            // times out; a reset, early close or protocol error would be a bug.
            if !rec.ok && !rec.timed_out && cutting == 0 && stats.clock_jumps == 0 {
                return Err(invariant(
                    seed,
                    format!(
                        "client{c} request {i} failed ({}) though no fault could cut it",
                        rec.error.as_deref().unwrap_or("?")
                    ),
                ));
            }
        }
    }
    Ok((sim.report(), outcomes))
}

fn invariant(seed: u64, message: String) -> SimError {
    SimError::Invariant { seed, message }
}

/// Starts request `i` of the client's plan (chains take every `CHAINS_PER_CLIENT`-th one).
fn next(
    io: &mut IoLoop,
    client: &HttpClient,
    (scheme, addr): (&'static str, SocketAddr),
    plan: Rc<Vec<Planned>>,
    i: usize,
    records: Rc<RefCell<Vec<Record>>>,
) {
    let Some(p) = plan.get(i).cloned() else {
        return;
    };
    let client = client.clone();
    io.call_later(p.pause, move |io| {
        records.borrow_mut()[i].started = Some(io.now());
        let mut request =
            HttpRequest::new(p.method.clone(), format!("{scheme}://{addr}{}", p.path));
        request.body = p.body.clone();
        request.connect_timeout = Some(CONNECT_TIMEOUT);
        request.request_timeout = Some(REQUEST_TIMEOUT);
        let chain_client = client.clone();
        client.fetch(io, request, move |io, result| {
            check(io, &p, &mut records.borrow_mut()[i], result);
            next(
                io,
                &chain_client,
                (scheme, addr),
                plan,
                i + CHAINS_PER_CLIENT,
                records,
            );
        });
    });
}

/// A chain of requests as one task: pause, fetch, check, and on to the chain's next request.
async fn run_chain(
    client: HttpClient,
    (scheme, addr): (&'static str, SocketAddr),
    plan: Rc<Vec<Planned>>,
    first: usize,
    records: Rc<RefCell<Vec<Record>>>,
) {
    for i in (first..plan.len()).step_by(CHAINS_PER_CLIENT) {
        let p = &plan[i];
        task::sleep(p.pause).await;
        records.borrow_mut()[i].started = Some(task::with_loop(|io| io.now()));
        let mut request =
            HttpRequest::new(p.method.clone(), format!("{scheme}://{addr}{}", p.path));
        request.body = p.body.clone();
        request.connect_timeout = Some(CONNECT_TIMEOUT);
        request.request_timeout = Some(REQUEST_TIMEOUT);
        let result = client.fetch_async(request).await;
        task::with_loop(|io| check(io, p, &mut records.borrow_mut()[i], result));
    }
}

/// The safety checks on one result; a violation panics, failing the seed on the spot.
fn check(io: &IoLoop, p: &Planned, rec: &mut Record, result: FetchResult) {
    rec.results += 1;
    assert_eq!(rec.results, 1, "{} {} answered twice", p.method, p.path);
    let took = io.now() - rec.started.expect("started");
    // Queued at most min(connect, request) time-out, then at most the request time-out.
    let bound = CONNECT_TIMEOUT.min(REQUEST_TIMEOUT) + REQUEST_TIMEOUT + Duration::from_secs(1);
    assert!(
        took <= bound,
        "{} {} took {took:?}, past its time-outs",
        p.method,
        p.path
    );
    match result {
        Ok(resp) => {
            let header = |name: &str| {
                resp.headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            assert_eq!(resp.status, 200);
            assert_eq!(header("x-path"), p.path, "response of another request");
            assert_eq!(header("x-method"), p.method.as_str());
            assert!(
                resp.body == p.body,
                "{} {}: echoed body differs",
                p.method,
                p.path
            );
            rec.ok = true;
        }
        Err(e) => {
            // A handshake cut by its time-out is a time-out too (a world of 1-byte buffers).
            rec.timed_out = matches!(
                e,
                HttpError::Timeout { .. }
                    | HttpError::Tls(crate::core::tls::TlsFailure::HandshakeTimeout)
            );
            rec.error = Some(e.to_string());
        }
    }
}
