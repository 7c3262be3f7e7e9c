//! The `eddy` command: `eddy serve [DIR]` (a static file server, like `python -m
//! http.server`), `eddy fetch URL` (an HTTP client, like `python -m tornado.httpclient`), and
//! `eddy sim` to run simulation scenarios over seeds.
//!
//! It owns the command line (clap) and printing; the servers live in `eddy::serve` and
//! `eddy::fetch`, scenarios in `eddy::scenarios`, the seed runner in `eddy_sim::seeds`.

use clap::{Parser, Subcommand, ValueEnum};
use eddy::scenarios::{self, ScenarioOptions};
use eddy_sim::{check_determinism, run_seeds, FaultConfig, SeedRun};
use std::io::IsTerminal as _;
use std::ops::Range;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Tornado's networking stack on a sans-IO core.
#[derive(Parser)]
#[command(name = "eddy", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a directory over HTTP (like `python -m http.server`).
    Serve(eddy::serve::ServeArgs),
    /// Fetch a URL and print the body (like `python -m tornado.httpclient`).
    Fetch(eddy::fetch::FetchCli),
    /// Run a simulation scenario for every seed of a range.
    Sim(SimArgs),
    /// Print the version.
    Version,
}

/// The fault mixes `eddy sim --faults` offers.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Faults {
    /// A different mix drawn for every seed (swarm testing).
    Swarm,
    /// A calm network.
    None,
    /// Every fault at a high rate.
    Hostile,
}

/// Runs scenario NAME for every seed in A..B in parallel, prints each failure with the
/// command that replays it, and a summary.
#[derive(clap::Args)]
#[command(
    after_help = "EDDY_SEED=n runs just seed n. --check-determinism runs every seed \
    twice and fails on differing trace hashes; --hashes prints each seed's trace hash (compare \
    runs across machines and commits). --trace writes the Chrome trace-event JSON \
    (chrome://tracing, Perfetto) of the first failing seed (or of the first seed if none \
    fails); --trace-lines writes it as JSON lines."
)]
struct SimArgs {
    /// The scenario to run (see --list).
    #[arg(long, required_unless_present = "list")]
    scenario: Option<String>,
    /// The seeds: A..B, or one seed.
    #[arg(long, default_value = "0..100", value_parser = parse_range)]
    seeds: Range<u64>,
    /// The fault mix.
    #[arg(long, value_enum)]
    faults: Option<Faults>,
    /// Clients per world.
    #[arg(long)]
    clients: Option<usize>,
    /// Server loops per world.
    #[arg(long)]
    server_loops: Option<usize>,
    /// Worlds run at once (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Run every seed twice and compare trace hashes.
    #[arg(long)]
    check_determinism: bool,
    /// Print each seed's trace hash.
    #[arg(long)]
    hashes: bool,
    /// Write the Chrome trace-event JSON of the first failing seed here.
    #[arg(long, value_name = "FILE")]
    trace: Option<String>,
    /// Write that trace as JSON lines here.
    #[arg(long, value_name = "FILE")]
    trace_lines: Option<String>,
    /// Run only the K-th of N disjoint slices of the seeds (0 <= K < N), e.g. one pod of
    /// an indexed job; the slices' results together are the whole range's.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    shard: Option<(u64, u64)>,
    /// Write one JSON line per seed on stdout (seed, outcome, failure, trace hash: nothing
    /// that varies between runs); the summary goes to stderr.
    #[arg(long)]
    json: bool,
    /// List the scenarios.
    #[arg(long)]
    list: bool,
    /// Print nothing but the summary (no progress).
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("eddy {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Serve(args) => eddy::serve::run(args),
        Command::Fetch(args) => eddy::fetch::run(args),
        Command::Sim(args) if args.list => {
            for s in scenarios::all() {
                println!("{:<12} {}", s.name, s.about);
            }
            ExitCode::SUCCESS
        }
        Command::Sim(args) => sim(args),
    }
}

fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let bad = || format!("wants A..B (or a single seed), got {s:?}");
    match s.split_once("..") {
        Some((a, b)) => {
            let a: u64 = a.parse().map_err(|_| bad())?;
            let b: u64 = b.parse().map_err(|_| bad())?;
            if b <= a {
                return Err(bad());
            }
            Ok(a..b)
        }
        None => {
            let a: u64 = s.parse().map_err(|_| bad())?;
            Ok(a..a + 1)
        }
    }
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("wants K/N with 0 <= K < N, got {s:?}");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (u64, u64) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if n == 0 || k >= n {
        return Err(bad());
    }
    Ok((k, n))
}

/// The `k`-th of `n` contiguous, disjoint slices of `seeds` (some may be empty).
fn shard_of(seeds: &Range<u64>, (k, n): (u64, u64)) -> Range<u64> {
    let len = u128::from(seeds.end - seeds.start);
    let at = |i: u64| seeds.start + (len * u128::from(i) / u128::from(n)) as u64;
    at(k)..at(k + 1)
}

/// One seed's result as a JSON line.
fn json_line(seed: u64, result: &SeedOutcome) -> String {
    let value = match result {
        SeedOutcome::Passed(hash) => serde_json::json!({
            "seed": seed, "outcome": "pass", "failure": null,
            "trace_hash": format!("{hash:016x}"),
        }),
        SeedOutcome::Failed(message) => serde_json::json!({
            "seed": seed, "outcome": "fail", "failure": message, "trace_hash": null,
        }),
    };
    value.to_string()
}

/// What one seed gave.
enum SeedOutcome {
    Passed(u64),
    Failed(String),
}

/// How `eddy sim` shows progress: a bar on a terminal, a line every few seconds otherwise.
enum Progress {
    Quiet,
    Bar(indicatif::ProgressBar),
    Lines { started: Instant, last: Instant },
}

impl Progress {
    fn new(quiet: bool, total: u64, name: &str) -> Progress {
        if quiet {
            return Progress::Quiet;
        }
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            let style = indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:40}] {pos}/{len} seeds, {per_sec}, {msg} ({eta} left)",
            )
            .expect("a valid template")
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(name.to_owned());
            bar.set_message("0 failed");
            return Progress::Bar(bar);
        }
        let now = Instant::now();
        Progress::Lines {
            started: now,
            last: now,
        }
    }

    fn update(&mut self, name: &str, done: u64, total: u64, failed: u64) {
        match self {
            Progress::Quiet => {}
            Progress::Bar(bar) => {
                bar.set_position(done);
                bar.set_message(format!("{failed} failed"));
            }
            Progress::Lines { started, last } => {
                if last.elapsed() >= Duration::from_secs(5) || done == total {
                    *last = Instant::now();
                    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
                    eprintln!("{name}: {done}/{total} seeds, {failed} failed, {rate:.0} seeds/s");
                }
            }
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

fn sim(a: SimArgs) -> ExitCode {
    let wanted = a.scenario.clone().unwrap_or_default();
    let Some(scenario) = scenarios::find(&wanted) else {
        let names: Vec<&str> = scenarios::all().iter().map(|s| s.name).collect();
        eprintln!(
            "eddy sim: no scenario {wanted:?}; try one of {}",
            names.join(", ")
        );
        return ExitCode::from(2);
    };
    let faults = match a.faults {
        None | Some(Faults::Swarm) => None,
        Some(Faults::None) => Some(FaultConfig::none()),
        Some(Faults::Hostile) => Some(FaultConfig::hostile()),
    };
    let mut opts = ScenarioOptions {
        faults,
        ..ScenarioOptions::default()
    };
    if let Some(c) = a.clients {
        opts.clients = c;
    }
    if let Some(n) = a.server_loops {
        opts.server_loops = n;
    }
    let mut extra = String::new();
    if let Some(f) = a.faults {
        let f = f.to_possible_value().expect("no skipped variants");
        extra.push_str(&format!(" --faults {}", f.get_name()));
    }
    if let Some(c) = a.clients {
        extra.push_str(&format!(" --clients {c}"));
    }
    if let Some(n) = a.server_loops {
        extra.push_str(&format!(" --server-loops {n}"));
    }
    if a.check_determinism {
        extra.push_str(" --check-determinism");
    }
    let name = scenario.name;
    let replay_extra = extra.clone();
    let seeds = match a.shard {
        Some(shard) => shard_of(&a.seeds, shard),
        None => a.seeds.clone(),
    };
    let total = seeds.end - seeds.start;
    // Threads finish seeds in any order; the shown count only goes up.
    let progress = std::sync::Mutex::new((Progress::new(a.quiet, total, name), 0u64));
    let mut run = SeedRun {
        replay: Box::new(move |seed| {
            format!(
                "eddy sim --scenario {name} --seeds {seed}..{}{replay_extra}",
                seed + 1
            )
        }),
        progress: Some(Box::new(move |done, total, failed| {
            let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
            if done > p.1 {
                p.1 = done;
                p.0.update(name, done, total, failed);
                if done == total {
                    p.0.finish();
                }
            }
        })),
        ..SeedRun::default()
    };
    if let Some(t) = a.threads {
        run.threads = t;
    }
    let opts_ref = &opts;
    let determinism = a.check_determinism;
    let outcomes = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let summary = run_seeds(seeds.clone(), &run, |seed| {
        let result = if determinism {
            check_determinism(seed, |s| (scenario.run)(s, opts_ref))
        } else {
            (scenario.run)(seed, opts_ref)
        };
        let outcome = match &result {
            Ok(r) => SeedOutcome::Passed(r.trace_hash),
            Err(e) => SeedOutcome::Failed(e.to_string()),
        };
        outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(seed, outcome);
        result
    });
    let outcomes = outcomes.into_inner().unwrap_or_else(|e| e.into_inner());
    if a.json {
        for (seed, outcome) in &outcomes {
            println!("{}", json_line(*seed, outcome));
        }
    }
    if a.hashes {
        for (seed, outcome) in &outcomes {
            match outcome {
                SeedOutcome::Passed(h) => println!("seed {seed}: trace hash {h:016x}"),
                SeedOutcome::Failed(_) => println!("seed {seed}: failed"),
            }
        }
    }
    // With --json, stdout holds only the JSON lines.
    let json = a.json;
    let say = |line: String| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let virt = summary.virtual_time.as_secs_f64();
    let wall = summary.wall.as_secs_f64();
    say(format!(
        "{name}: {} seeds, {} failed; wall {:.2} s, virtual {:.1} s ({:.0}x real time)",
        summary.runs,
        summary.failures.len(),
        wall,
        virt,
        virt / wall.max(1e-9)
    ));
    if summary.runs < total {
        say("(EDDY_SEED narrowed the range)".to_owned());
    }
    for (e, cmd) in summary.failures.iter().take(10) {
        say(format!("  FAILED {e}\n    replay: {cmd}"));
    }
    if a.trace.is_some() || a.trace_lines.is_some() {
        let seed = summary
            .first_failure()
            .map_or(seeds.start, |(e, _)| e.seed());
        let traced = ScenarioOptions {
            trace: true,
            ..opts.clone()
        };
        if let Err(e) = write_traces(scenario.run, seed, &traced, &a) {
            eprintln!("eddy sim: {e}");
            return ExitCode::FAILURE;
        }
    }
    if summary.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

type RunFn = fn(u64, &ScenarioOptions) -> Result<eddy_sim::RunReport, eddy_sim::SimError>;

/// Runs `seed` again with recording on and writes the requested trace files.
fn write_traces(run: RunFn, seed: u64, opts: &ScenarioOptions, a: &SimArgs) -> Result<(), String> {
    // A failing run returns no report; its world left the trace up to the failure behind.
    let trace = match run(seed, opts) {
        Ok(report) => report.trace,
        Err(_) => eddy_sim::take_last_trace(),
    };
    let Some(trace) = trace else {
        return Err(format!("seed {seed}: no trace was recorded"));
    };
    if let Some(path) = &a.trace {
        std::fs::write(path, trace.to_chrome_json()).map_err(|e| format!("{path}: {e}"))?;
        println!(
            "trace of seed {seed}: {} events, Chrome trace-event JSON in {path}",
            trace.events.len()
        );
    }
    if let Some(path) = &a.trace_lines {
        std::fs::write(path, trace.to_json_lines()).map_err(|e| format!("{path}: {e}"))?;
        println!("trace of seed {seed}: JSON lines in {path}");
    }
    Ok(())
}
