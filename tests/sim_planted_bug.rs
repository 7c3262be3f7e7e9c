//! A planted bug is found: a server that corrupts a read of exactly 1 byte that comes after
//! a 3-second (virtual) pause is caught within 1,000 seeds, and the printed replay command
//! reproduces the failure.

use eddy::scenarios::{echo, ScenarioOptions};
use eddy_sim::{run_seeds, SeedRun, SimError};

#[test]
fn planted_bug_is_found_within_1000_seeds_and_its_seed_replays_it() {
    let opts = ScenarioOptions::default();
    let run = SeedRun {
        stop_on_failure: false,
        ..SeedRun::default()
    };
    let summary = run_seeds(0..1000, &run, |seed| echo::run_buggy(seed, &opts));
    let (err, cmd) = summary
        .first_failure()
        .expect("the planted bug is found within 1000 seeds");
    let seed = err.seed();
    match err {
        SimError::Panic { message, .. } => {
            assert!(message.contains("not a prefix"), "{message}")
        }
        other => panic!("expected the client's prefix assertion, got {other}"),
    }
    assert_eq!(
        cmd,
        &format!(
            "EDDY_SEED={seed} cargo test -p eddy --test sim_planted_bug -- \
             planted_bug_is_found_within_1000_seeds_and_its_seed_replays_it --exact"
        )
    );
    // Replaying the seed in-process: the same failure, to the nanosecond.
    for _ in 0..2 {
        assert_eq!(&echo::run_buggy(seed, &opts).unwrap_err(), err);
    }
    // And the correct server passes that seed.
    echo::run(seed, &opts).unwrap();
}

/// Replays one seed the way the printed command does: `EDDY_SEED=n` narrows the range.
#[test]
fn eddy_seed_replays_one_seed_in_a_child_process() {
    let failing = (0..1000)
        .find(|&s| echo::run_buggy(s, &ScenarioOptions::default()).is_err())
        .expect("a failing seed");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["replay_target", "--exact", "--ignored", "--nocapture"])
        .env("EDDY_SEED", failing.to_string())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the replay fails: {text}");
    assert!(text.contains(&format!("FAILED seed {failing}:")), "{text}");
    assert!(
        text.contains("1 of 1 seeds failed"),
        "only the one seed ran: {text}"
    );
}

#[test]
#[ignore = "run by eddy_seed_replays_one_seed_in_a_child_process with EDDY_SEED set"]
fn replay_target() {
    eddy_sim::assert_seeds(0..1000, |seed| {
        echo::run_buggy(seed, &ScenarioOptions::default())
    });
}
