//! The `http_chaos` scenario on the simulator: HttpClients against HttpServer under faults.
//! Every request ends with exactly one result that matches it, within its time-outs, and all
//! finish once the world heals; in a calm world every request succeeds. `https_chaos` runs
//! the same workload over TLS (verified handshakes), and one seed still gives one trace.

use eddy::scenarios::{http_chaos, ScenarioOptions};
use eddy_sim::{assert_seeds, FaultConfig};
use std::sync::atomic::{AtomicU64, Ordering};

/// Swarm seeds run by `cargo test` (what fits in well under a minute on two cores);
/// `EDDY_SEED=n` replays one, `eddy sim --scenario http_chaos --seeds 0..1000` runs more.
const SWARM_SEEDS: u64 = 120;

/// One world of the scenario: plain HTTP or over TLS.
type Runner = fn(
    u64,
    &ScenarioOptions,
) -> Result<(eddy_sim::RunReport, http_chaos::Outcomes), eddy_sim::SimError>;

/// Runs `seeds` with `faults`, returning (requests answered, requests failed) over all runs.
fn run(seeds: std::ops::Range<u64>, faults: Option<FaultConfig>) -> (u64, u64) {
    run_with(http_chaos::run_counted, seeds, faults)
}

fn run_with(
    runner: Runner,
    seeds: std::ops::Range<u64>,
    faults: Option<FaultConfig>,
) -> (u64, u64) {
    let opts = ScenarioOptions {
        faults,
        ..ScenarioOptions::default()
    };
    let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    assert_seeds(seeds, |seed| {
        let (report, outcomes) = runner(seed, &opts)?;
        ok.fetch_add(outcomes.ok, Ordering::Relaxed);
        failed.fetch_add(outcomes.failed, Ordering::Relaxed);
        Ok(report)
    });
    (ok.into_inner(), failed.into_inner())
}

#[test]
fn http_chaos_swarm_seeds_every_request_gets_exactly_one_matching_result() {
    let (ok, failed) = run(0..SWARM_SEEDS, None);
    println!("swarm: {ok} answered, {failed} failed");
    assert!(ok > 0);
}

#[test]
fn http_chaos_calm_world_answers_every_request() {
    let (ok, failed) = run(0..10, Some(FaultConfig::none()));
    assert_eq!(failed, 0);
    assert!(
        ok >= 10 * 20 * http_chaos::REQUESTS_PER_CLIENT as u64
            || std::env::var("EDDY_SEED").is_ok()
    );
}

#[test]
fn http_chaos_hostile_world_still_ends_every_request_once() {
    let (ok, failed) = run(0..30, Some(FaultConfig::hostile()));
    println!("hostile: {ok} answered, {failed} failed");
    if std::env::var("EDDY_SEED").is_err() {
        assert!(
            failed > 0,
            "hostile faults never failed a request: the faults are not reaching HTTP"
        );
        assert!(
            ok > failed,
            "most requests should still succeed under faults ({ok} ok, {failed} failed)"
        );
    }
}

/// The same workload with an async handler and clients written as tasks.
fn run_async(seeds: std::ops::Range<u64>, faults: Option<FaultConfig>) -> (u64, u64) {
    let opts = ScenarioOptions {
        faults,
        ..ScenarioOptions::default()
    };
    let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    assert_seeds(seeds, |seed| {
        let (report, outcomes) = http_chaos::run_styled(seed, &opts, http_chaos::Style::Async)?;
        ok.fetch_add(outcomes.ok, Ordering::Relaxed);
        failed.fetch_add(outcomes.failed, Ordering::Relaxed);
        Ok(report)
    });
    (ok.into_inner(), failed.into_inner())
}

#[test]
fn http_chaos_async_swarm_seeds_every_request_gets_exactly_one_matching_result() {
    let (ok, failed) = run_async(0..SWARM_SEEDS, None);
    println!("async swarm: {ok} answered, {failed} failed");
    assert!(ok > 0);
}

#[test]
fn http_chaos_async_calm_world_answers_every_request_and_replays_exactly() {
    let (ok, failed) = run_async(0..10, Some(FaultConfig::none()));
    assert_eq!(failed, 0);
    assert!(
        ok >= 10 * 20 * http_chaos::REQUESTS_PER_CLIENT as u64
            || std::env::var("EDDY_SEED").is_ok()
    );
    for seed in [3, 77] {
        eddy_sim::check_determinism(seed, |s| {
            http_chaos::run_async(s, &ScenarioOptions::default())
        })
        .unwrap();
    }
}

// ----- `https_chaos`: the same workload over verified TLS -----

/// Swarm seeds run by `cargo test`; `eddy sim --scenario https_chaos --seeds 0..1000` (or
/// `EDDY_TLS_SEEDS=1000`) runs the thousand.
fn swarm_seeds() -> u64 {
    std::env::var("EDDY_TLS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

#[test]
fn https_chaos_swarm_seeds_every_request_gets_exactly_one_matching_result() {
    let (ok, failed) = run_with(http_chaos::run_tls_counted, 0..swarm_seeds(), None);
    println!("https swarm: {ok} answered, {failed} failed");
    assert!(ok > 0);
}

#[test]
fn https_chaos_calm_world_answers_every_request() {
    let (ok, failed) = run_with(http_chaos::run_tls_counted, 0..3, Some(FaultConfig::none()));
    assert_eq!(failed, 0);
    assert!(
        ok >= 3 * 20 * http_chaos::REQUESTS_PER_CLIENT as u64 || std::env::var("EDDY_SEED").is_ok()
    );
}

#[test]
fn https_chaos_hostile_world_still_ends_every_request_once() {
    let (ok, failed) = run_with(
        http_chaos::run_tls_counted,
        0..8,
        Some(FaultConfig::hostile()),
    );
    println!("https hostile: {ok} answered, {failed} failed");
    assert!(ok > failed || std::env::var("EDDY_SEED").is_ok());
}

#[test]
fn https_chaos_one_seed_gives_one_trace() {
    let opts = ScenarioOptions::default();
    for seed in [3, 17] {
        let a = http_chaos::run_tls(seed, &opts).expect("passes");
        let b = http_chaos::run_tls(seed, &opts).expect("passes");
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}: two traces");
        let plain = http_chaos::run(seed, &opts).expect("passes");
        assert_ne!(
            a.trace_hash, plain.trace_hash,
            "TLS changed nothing on the wire?"
        );
    }
}
