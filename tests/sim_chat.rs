//! The `chat` scenario: WebSocket clients broadcast through one `eddy::chat` server under
//! faults on the simulator. Every message reaches every session connected for its whole
//! span, once, in order, uncorrupted; broken connections are seen as closes; after healing
//! every client is back in the room and caught up; seeds replay exactly.

use eddy::scenarios::{chat, ScenarioOptions};
use eddy_sim::{assert_seeds, check_determinism, FaultConfig};

#[test]
fn chat_swarm_and_hostile_seeds_keep_every_invariant() {
    assert_seeds(0..40, |seed| chat::run(seed, &ScenarioOptions::default()));
    let hostile = ScenarioOptions {
        faults: Some(FaultConfig::hostile()),
        ..ScenarioOptions::default()
    };
    assert_seeds(0..15, |seed| chat::run(seed, &hostile));
}

#[test]
fn chat_calm_world_settles_and_replays_exactly() {
    let calm = ScenarioOptions {
        faults: Some(FaultConfig::none()),
        ..ScenarioOptions::default()
    };
    assert_seeds(0..5, |seed| chat::run(seed, &calm));
    for seed in [1, 42] {
        check_determinism(seed, |s| chat::run(s, &ScenarioOptions::default())).unwrap();
    }
}
