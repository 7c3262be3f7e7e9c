//! Scenario `timers`: hour-long timers and periodic callbacks on several hosts fire exactly
//! when due in virtual time, so a day of timers runs in milliseconds of wall time.

use super::ScenarioOptions;
use crate::core::{Duration, Instant};
use eddy_sim::{FaultConfig, RunReport, Sim, SimError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::rc::Rc;

/// Runs one seed: three hosts, each with random 1-24 hour timers and an hourly periodic.
pub fn run(seed: u64, opts: &ScenarioOptions) -> Result<RunReport, SimError> {
    let mut sim = Sim::with_faults(seed, opts.faults.clone().unwrap_or_else(FaultConfig::none));
    sim.record_trace(opts.trace);
    let late: Rc<RefCell<Vec<String>>> = Rc::new(RefCell::new(Vec::new()));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for h in 0..3 {
        let hours: Vec<u64> = (0..5).map(|_| rng.gen_range(1..=24)).collect();
        let late = late.clone();
        sim.host(&format!("host{h}"), move |io| {
            for &hour in &hours {
                let due = io.now() + Duration::from_secs(hour * 3600);
                let late = late.clone();
                io.call_at(due, move |io| {
                    if io.now() != due {
                        late.borrow_mut()
                            .push(format!("timer due {due:?} ran at {:?}", io.now()));
                    }
                });
            }
            let mut ticks = 0u64;
            let late = late.clone();
            let id = io.add_periodic(Duration::from_secs(3600), move |io| {
                ticks += 1;
                let due = Instant::ZERO + Duration::from_secs(ticks * 3600);
                if io.now() != due {
                    late.borrow_mut()
                        .push(format!("tick {ticks} due {due:?} ran at {:?}", io.now()));
                }
            });
            io.call_later(Duration::from_secs(25 * 3600), move |io| {
                io.stop_periodic(id);
            });
        });
    }
    sim.run_until_done(Duration::from_secs(26 * 3600), |s| {
        s.now() >= Instant::ZERO + Duration::from_secs(25 * 3600)
    })?;
    let late = late.borrow();
    if let Some(first) = late.first() {
        return Err(SimError::Invariant {
            seed,
            message: first.clone(),
        });
    }
    Ok(sim.report())
}
