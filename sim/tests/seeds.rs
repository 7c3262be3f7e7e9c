//! Running many seeds: parallel runs, failures ordered by seed with replay commands, and the
//! determinism self-check catching a run that is not a function of its seed.

use eddy_core::{Duration, IoLoop};
use eddy_sim::{check_determinism, run_seeds, FaultConfig, RunReport, SeedRun, Sim, SimError};
use std::sync::atomic::{AtomicU64, Ordering};

fn timer_world(seed: u64, delay_ms: u64) -> Result<RunReport, SimError> {
    let mut sim = Sim::with_faults(seed, FaultConfig::none());
    sim.host("h", move |io: &mut IoLoop| {
        io.call_later(Duration::from_millis(delay_ms), |io| io.stop());
    });
    sim.run_until_done(Duration::from_secs(10), |s| s.is_stopped("h"))?;
    Ok(sim.report())
}

#[test]
fn the_determinism_check_catches_a_run_that_depends_on_more_than_its_seed() {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    // Deterministic: passes.
    check_determinism(5, |seed| timer_world(seed, 100)).unwrap();
    // Reads hidden global state, as code iterating a HashMap or reading a clock would.
    let err = check_determinism(5, |seed| {
        timer_world(seed, 100 + CALLS.fetch_add(1, Ordering::Relaxed))
    })
    .unwrap_err();
    assert!(
        matches!(err, SimError::Nondeterministic { seed: 5, .. }),
        "{err}"
    );
}

#[test]
fn failures_come_back_ordered_by_seed_with_replay_commands() {
    let opts = SeedRun {
        threads: 2,
        replay: Box::new(|seed| format!("replay {seed}")),
        ..SeedRun::default()
    };
    let summary = run_seeds(0..200, &opts, |seed| {
        if seed % 50 == 7 {
            Err(SimError::Invariant {
                seed,
                message: "planted".into(),
            })
        } else {
            timer_world(seed, seed)
        }
    });
    if std::env::var("EDDY_SEED").is_ok() {
        return;
    }
    assert_eq!(summary.runs, 200);
    let seeds: Vec<u64> = summary.failures.iter().map(|(e, _)| e.seed()).collect();
    assert_eq!(seeds, vec![7, 57, 107, 157]);
    assert_eq!(summary.failures[1].1, "replay 57");
}

#[test]
fn the_default_replay_command_names_this_test() {
    let cmd = eddy_sim::replay_command(42);
    assert_eq!(
        cmd,
        "EDDY_SEED=42 cargo test -p eddy-sim --test seeds -- \
         the_default_replay_command_names_this_test --exact"
    );
}
