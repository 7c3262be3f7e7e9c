//! Determinism: the same seed gives the same trace (hash and bytes), different seeds differ.

use eddy::scenarios::{echo, ScenarioOptions};
use eddy_sim::{check_determinism, FaultConfig};
use std::collections::BTreeSet;

fn busy() -> ScenarioOptions {
    ScenarioOptions {
        faults: Some(FaultConfig::hostile()),
        clients: 50,
        ..ScenarioOptions::default()
    }
}

#[test]
fn same_seed_same_trace_hash_in_a_busy_world_of_50_clients() {
    for seed in [1, 2, 3, 1234, u64::MAX] {
        let report = check_determinism(seed, |s| echo::run(s, &busy())).unwrap();
        assert!(
            report.stats.events > 1000,
            "a busy world: {:?}",
            report.stats
        );
    }
}

#[test]
fn same_seed_gives_byte_identical_json_traces() {
    let opts = ScenarioOptions {
        trace: true,
        ..busy()
    };
    let a = echo::run(7, &opts).unwrap().trace.unwrap().to_json_lines();
    let b = echo::run(7, &opts).unwrap().trace.unwrap().to_json_lines();
    assert!(a == b, "traces of seed 7 differ");
    assert!(a.lines().count() > 1000);
}

#[test]
fn different_seeds_give_different_trace_hashes() {
    let hashes: BTreeSet<u64> = (0..20)
        .map(|seed| echo::run(seed, &busy()).unwrap().trace_hash)
        .collect();
    assert_eq!(hashes.len(), 20);
}

#[test]
fn swarm_worlds_are_deterministic_too() {
    for seed in 0..20 {
        check_determinism(seed, |s| echo::run(s, &ScenarioOptions::default())).unwrap();
    }
}
