//! `https_chaos`: the http_chaos workload over TLS on the simulator — verified handshakes and
//! requests under latency, short reads and writes, splitting, resets, partitions and
//! crashes; and one seed still gives one trace.

use eddy::scenarios::{http_chaos, ScenarioOptions};
use eddy_sim::{assert_seeds, FaultConfig};
use std::sync::atomic::{AtomicU64, Ordering};

/// Swarm seeds run by `cargo test`; `eddy sim --scenario https_chaos --seeds 0..1000` (or
/// `EDDY_TLS_SEEDS=1000`) runs the thousand.
fn swarm_seeds() -> u64 {
    std::env::var("EDDY_TLS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

fn run(seeds: std::ops::Range<u64>, faults: Option<FaultConfig>) -> (u64, u64) {
    let opts = ScenarioOptions {
        faults,
        ..ScenarioOptions::default()
    };
    let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    assert_seeds(seeds, |seed| {
        let (report, outcomes) = http_chaos::run_tls_counted(seed, &opts)?;
        ok.fetch_add(outcomes.ok, Ordering::Relaxed);
        failed.fetch_add(outcomes.failed, Ordering::Relaxed);
        Ok(report)
    });
    (ok.into_inner(), failed.into_inner())
}

#[test]
fn https_chaos_swarm_seeds_every_request_gets_exactly_one_matching_result() {
    let (ok, failed) = run(0..swarm_seeds(), None);
    println!("https swarm: {ok} answered, {failed} failed");
    assert!(ok > 0);
}

#[test]
fn https_chaos_calm_world_answers_every_request() {
    let (ok, failed) = run(0..3, Some(FaultConfig::none()));
    assert_eq!(failed, 0);
    assert!(
        ok >= 3 * 20 * http_chaos::REQUESTS_PER_CLIENT as u64 || std::env::var("EDDY_SEED").is_ok()
    );
}

#[test]
fn https_chaos_hostile_world_still_ends_every_request_once() {
    let (ok, failed) = run(0..8, Some(FaultConfig::hostile()));
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
