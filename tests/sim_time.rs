//! Virtual time: a day of hour-long timers finishes in well under a second of wall time.

use eddy::scenarios::{timers, ScenarioOptions};
use std::time::{Duration, Instant};

#[test]
fn hour_long_timers_complete_in_under_a_second_of_wall_time() {
    let started = Instant::now();
    let report = timers::run(1, &ScenarioOptions::default()).unwrap();
    assert!(report.virtual_time >= Duration::from_secs(25 * 3600));
    let wall = started.elapsed();
    assert!(wall < Duration::from_secs(1), "took {wall:?}");
}
