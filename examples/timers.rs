//! Timers on a real loop: `call_later`, `remove_timeout`, a periodic callback, a wake-up from
//! another thread, and `run_sync` returning a value. Runs for about half a second.
//!
//! ```text
//! cargo run --example timers            # EDDY_DRIVER=poll for the poll(2) driver
//! ```

use eddy::core::{Duration, IoLoop};
use eddy::drivers::{run_sync, DriverConfig};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = DriverConfig::from_env()?;
    let started = Instant::now();
    let ms = move || started.elapsed().as_millis();

    let ran = run_sync(
        &config,
        Some(std::time::Duration::from_secs(5)),
        move |io, done| {
            io.call_later(Duration::from_millis(100), move |_| {
                println!("{:4} ms  one-shot timer (100 ms)", ms())
            });
            let cancelled = io.call_later(Duration::from_millis(150), |_| unreachable!("removed"));
            io.remove_timeout(cancelled);

            let mut ticks = 0u32;
            io.add_periodic(Duration::from_millis(50), move |_| {
                ticks += 1;
                println!("{:4} ms  periodic tick {ticks}", ms());
            });

            // Another thread wakes the loop through a Remote handle.
            let remote = io.remote();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(220));
                remote
                    .add_callback(move |_| println!("{:4} ms  callback from another thread", ms()));
            });

            io.call_later(Duration::from_millis(420), move |io: &mut IoLoop| {
                println!("{:4} ms  done", ms());
                let ran = io.stats().callbacks_run;
                done.complete(io, ran);
            });
        },
    )?;
    println!("the loop ran {ran} callbacks");
    Ok(())
}
