//! Running many seeds: in parallel over cores, with `EDDY_SEED` replay, a replay command for
//! every failure, and the determinism self-check.
//!
//! It owns scheduling seeds onto threads and summarising; each seed's world is built inside
//! its own thread (an `IoLoop` is not `Send`), so seeds share nothing.

use crate::error::SimError;
use crate::world::RunReport;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration as WallDuration, Instant as WallInstant};

/// A progress callback: (seeds done, seeds in total, seeds failed).
pub type Progress = Box<dyn Fn(u64, u64, u64) + Sync>;

/// How to run a range of seeds.
pub struct SeedRun {
    /// Worker threads (default: available cores).
    pub threads: usize,
    /// Stop handing out seeds after the first failure (default: false).
    pub stop_on_failure: bool,
    /// Prints the command that replays a failing seed (default: [`replay_command`]).
    pub replay: Box<dyn Fn(u64) -> String + Sync>,
    /// Called (from worker threads) after every finished seed with (done, total, failed).
    pub progress: Option<Progress>,
}

impl Default for SeedRun {
    fn default() -> Self {
        let test = std::thread::current().name().map(str::to_string);
        SeedRun {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            stop_on_failure: false,
            replay: Box::new(move |seed| replay_command_for(seed, test.as_deref())),
            progress: None,
        }
    }
}

/// What a range of seeds produced.
#[derive(Debug, Default)]
pub struct SeedSummary {
    /// Seeds run.
    pub runs: u64,
    /// Failures, ordered by seed, each with its replay command.
    pub failures: Vec<(SimError, String)>,
    /// Sum of virtual time over all runs.
    pub virtual_time: std::time::Duration,
    /// Wall-clock time.
    pub wall: WallDuration,
}

impl SeedSummary {
    /// The first failing seed's error and replay command, if any.
    pub fn first_failure(&self) -> Option<&(SimError, String)> {
        self.failures.first()
    }
}

/// The seeds to run: just `EDDY_SEED` if that variable is set, else `default`.
pub fn seeds_from_env(default: Range<u64>) -> Range<u64> {
    match std::env::var("EDDY_SEED")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    {
        Some(seed) => seed..seed + 1,
        None => default,
    }
}

/// The command that replays `seed` of the current cargo test (or program).
pub fn replay_command(seed: u64) -> String {
    replay_command_for(seed, std::thread::current().name())
}

fn replay_command_for(seed: u64, test: Option<&str>) -> String {
    let exe = std::env::args().next().unwrap_or_default();
    let stem = std::path::Path::new(&exe)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("")
        .to_string();
    // cargo names test binaries `<target>-<16 hex digits>`.
    let target = match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            Some(name.to_string())
        }
        _ => None,
    };
    let package = std::env::var("CARGO_PKG_NAME").ok();
    match (target, test.filter(|t| *t != "main")) {
        (Some(target), Some(test)) => {
            let pkg = package.map(|p| format!(" -p {p}")).unwrap_or_default();
            let lib_name = package_lib_name();
            let kind = if Some(&target) == lib_name.as_ref() {
                " --lib".to_string()
            } else {
                format!(" --test {target}")
            };
            format!("EDDY_SEED={seed} cargo test{pkg}{kind} -- {test} --exact")
        }
        _ => format!("EDDY_SEED={seed} {exe}"),
    }
}

fn package_lib_name() -> Option<String> {
    std::env::var("CARGO_CRATE_NAME").ok().or_else(|| {
        std::env::var("CARGO_PKG_NAME")
            .ok()
            .map(|p| p.replace('-', "_"))
    })
}

/// Runs `run(seed)` for every seed of `seeds` (or `EDDY_SEED`), in parallel.
///
/// Each call must build its world inside itself; failures are printed with their replay
/// command as they happen and returned ordered by seed.
pub fn run_seeds<F>(seeds: Range<u64>, opts: &SeedRun, run: F) -> SeedSummary
where
    F: Fn(u64) -> Result<RunReport, SimError> + Sync,
{
    let seeds = seeds_from_env(seeds);
    let started = WallInstant::now();
    let total = seeds.end.saturating_sub(seeds.start);
    let next = AtomicU64::new(seeds.start);
    let done = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let virtual_ns = AtomicU64::new(0);
    let failures: Mutex<Vec<(SimError, String)>> = Mutex::new(Vec::new());
    let threads = opts.threads.clamp(1, total.max(1) as usize);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    return;
                }
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed)));
                let outcome = match outcome {
                    Ok(r) => r,
                    Err(p) => Err(SimError::Invariant {
                        seed,
                        message: panic_text(&*p),
                    }),
                };
                match outcome {
                    Ok(report) => {
                        virtual_ns
                            .fetch_add(report.virtual_time.as_nanos() as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        let cmd = (opts.replay)(seed);
                        eprintln!("FAILED {e}\n  replay: {cmd}");
                        failed.fetch_add(1, Ordering::Relaxed);
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((e, cmd));
                        if opts.stop_on_failure {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(progress) = &opts.progress {
                    progress(d, total, failed.load(Ordering::Relaxed));
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    failures.sort_by_key(|(e, _)| e.seed());
    SeedSummary {
        runs: done.load(Ordering::Relaxed),
        failures,
        virtual_time: std::time::Duration::from_nanos(virtual_ns.load(Ordering::Relaxed)),
        wall: started.elapsed(),
    }
}

/// Runs every seed and panics on the first failure with its seed and replay command.
pub fn assert_seeds<F>(seeds: Range<u64>, run: F) -> SeedSummary
where
    F: Fn(u64) -> Result<RunReport, SimError> + Sync,
{
    let summary = run_seeds(seeds, &SeedRun::default(), run);
    if let Some((e, cmd)) = summary.first_failure() {
        panic!(
            "{} of {} seeds failed; first: {e}\nreplay with: {cmd}",
            summary.failures.len(),
            summary.runs
        );
    }
    summary
}

/// Runs `run(seed)` twice and fails if the trace hashes differ (the determinism self-check).
pub fn check_determinism<F>(seed: u64, run: F) -> Result<RunReport, SimError>
where
    F: Fn(u64) -> Result<RunReport, SimError>,
{
    let first = run(seed);
    let second = run(seed);
    match (first, second) {
        (Ok(a), Ok(b)) if a.trace_hash == b.trace_hash => Ok(a),
        (Ok(a), Ok(b)) => Err(SimError::Nondeterministic {
            seed,
            first: a.trace_hash,
            second: b.trace_hash,
        }),
        (Err(a), Err(b)) if a == b => Err(a),
        (Err(e), _) | (_, Err(e)) => Err(SimError::Invariant {
            seed,
            message: format!("nondeterminism: one run failed, the other did not ({e})"),
        }),
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}
