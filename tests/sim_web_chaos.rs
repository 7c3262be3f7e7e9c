//! The `web_chaos` scenario: clients browse the demo web app under faults on the simulator.
//! Every answer is right for its request, the signed counter only goes up, every script
//! finishes after healing; in a calm world every visit is answered; seeds replay exactly.

use eddy::scenarios::{web_chaos, ScenarioOptions};
use eddy_sim::{assert_seeds, check_determinism, FaultConfig};
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn web_chaos_swarm_and_hostile_seeds_keep_every_invariant() {
    assert_seeds(0..60, |seed| {
        web_chaos::run(seed, &ScenarioOptions::default())
    });
    let hostile = ScenarioOptions {
        faults: Some(FaultConfig::hostile()),
        ..ScenarioOptions::default()
    };
    assert_seeds(0..20, |seed| web_chaos::run(seed, &hostile));
}

#[test]
fn web_chaos_calm_world_answers_every_visit_and_replays_exactly() {
    let calm = ScenarioOptions {
        faults: Some(FaultConfig::none()),
        ..ScenarioOptions::default()
    };
    let answered = AtomicUsize::new(0);
    let summary = assert_seeds(0..5, |seed| {
        let (report, n) = web_chaos::run_counted(seed, &calm)?;
        answered.fetch_add(n, Ordering::Relaxed);
        Ok(report)
    });
    let expected = summary.runs as usize * calm.clients * web_chaos::VISITS;
    assert_eq!(answered.into_inner(), expected);
    for seed in [1, 42] {
        check_determinism(seed, |s| web_chaos::run(s, &ScenarioOptions::default())).unwrap();
    }
}
