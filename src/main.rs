//! The `eddy` command: `eddy version`, `eddy fetch URL` (an HTTP client, like
//! `python -m tornado.httpclient`), and `eddy sim` to run simulation scenarios over seeds.
//!
//! It owns argument parsing (hand-rolled, no dependencies) and printing; scenarios live in
//! `eddy::scenarios`, the seed runner in `eddy_sim::seeds`.

use eddy::scenarios::{self, ScenarioOptions};
use eddy_sim::{check_determinism, run_seeds, FaultConfig, SeedRun};
use std::io::Write as _;
use std::ops::Range;
use std::process::ExitCode;

const USAGE: &str = "\
usage:
  eddy version
  eddy fetch URL [-X METHOD] [-H 'Name: value']... [-d BODY] [--follow-redirects] [--include]
             [--timeout S]
  eddy sim --scenario NAME [--seeds A..B] [--faults swarm|none|hostile] [--clients N]
           [--server-loops N] [--threads N] [--check-determinism] [--hashes] [--trace out.json]
           [--trace-lines out.jsonl]
  eddy sim --list

`eddy sim` runs scenario NAME for every seed in A..B (default 0..100; EDDY_SEED=n runs just n),
in parallel, prints a progress line, each failure with the command that replays it, and a
summary. --check-determinism runs every seed twice and fails on differing trace hashes;
--hashes prints each seed's trace hash (compare runs across machines and commits).
--trace writes the Chrome trace-event JSON (chrome://tracing, Perfetto) of the first failing
seed (or of the first seed if none fails); --trace-lines writes it as JSON lines.";

struct SimArgs {
    scenario: String,
    seeds: Range<u64>,
    faults: Option<String>,
    clients: Option<usize>,
    server_loops: Option<usize>,
    threads: Option<usize>,
    determinism: bool,
    hashes: bool,
    trace: Option<String>,
    trace_lines: Option<String>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("version") | Some("--version") | Some("-V") => {
            println!("eddy {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("fetch") => eddy::fetch::run(args[1..].to_vec()),
        Some("sim") if args.iter().any(|a| a == "--help" || a == "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("sim") if args.iter().any(|a| a == "--list") => {
            for s in scenarios::all() {
                println!("{:<12} {}", s.name, s.about);
            }
            ExitCode::SUCCESS
        }
        Some("sim") => match parse_sim(&args[1..]) {
            Ok(a) => sim(a),
            Err(e) => {
                eprintln!("eddy sim: {e}\n\n{USAGE}");
                ExitCode::from(2)
            }
        },
        Some("help") | Some("--help") | Some("-h") | None => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("eddy: unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let bad = || format!("--seeds wants A..B (or a single seed), got {s:?}");
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

fn parse_sim(args: &[String]) -> Result<SimArgs, String> {
    let mut out = SimArgs {
        scenario: String::new(),
        seeds: 0..100,
        faults: None,
        clients: None,
        server_loops: None,
        threads: None,
        determinism: false,
        hashes: false,
        trace: None,
        trace_lines: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (flag.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "--scenario" => out.scenario = value()?,
            "--seeds" => out.seeds = parse_range(&value()?)?,
            "--faults" => out.faults = Some(value()?),
            "--clients" => {
                out.clients = Some(value()?.parse().map_err(|_| "--clients wants a number")?)
            }
            "--server-loops" => {
                out.server_loops = Some(
                    value()?
                        .parse()
                        .map_err(|_| "--server-loops wants a number")?,
                )
            }
            "--threads" => {
                out.threads = Some(value()?.parse().map_err(|_| "--threads wants a number")?)
            }
            "--check-determinism" => out.determinism = true,
            "--hashes" => out.hashes = true,
            "--trace" => out.trace = Some(value()?),
            "--trace-lines" => out.trace_lines = Some(value()?),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if out.scenario.is_empty() {
        return Err("--scenario is required (see --list)".into());
    }
    Ok(out)
}

fn sim(a: SimArgs) -> ExitCode {
    let Some(scenario) = scenarios::find(&a.scenario) else {
        let names: Vec<&str> = scenarios::all().iter().map(|s| s.name).collect();
        eprintln!(
            "eddy sim: no scenario {:?}; try one of {}",
            a.scenario,
            names.join(", ")
        );
        return ExitCode::from(2);
    };
    let faults = match a.faults.as_deref() {
        None | Some("swarm") => None,
        Some("none") => Some(FaultConfig::none()),
        Some("hostile") => Some(FaultConfig::hostile()),
        Some(other) => {
            eprintln!("eddy sim: --faults wants swarm, none or hostile, got {other:?}");
            return ExitCode::from(2);
        }
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
    if let Some(f) = &a.faults {
        extra.push_str(&format!(" --faults {f}"));
    }
    if let Some(c) = a.clients {
        extra.push_str(&format!(" --clients {c}"));
    }
    if let Some(n) = a.server_loops {
        extra.push_str(&format!(" --server-loops {n}"));
    }
    if a.determinism {
        extra.push_str(" --check-determinism");
    }
    let name = scenario.name;
    let replay_extra = extra.clone();
    let total = a.seeds.end - a.seeds.start;
    // The last count printed: threads finish seeds in any order, and the line only counts up.
    let shown = std::sync::Mutex::new(0u64);
    let mut run = SeedRun {
        replay: Box::new(move |seed| {
            format!(
                "eddy sim --scenario {name} --seeds {seed}..{}{replay_extra}",
                seed + 1
            )
        }),
        progress: Some(Box::new(move |done, total, failed| {
            let mut last = shown.lock().unwrap_or_else(|e| e.into_inner());
            let percent = |n: u64| n * 100 / total.max(1);
            if done > *last && (percent(done) != percent(*last) || done == total) {
                *last = done;
                eprint!("\r{name}: {done}/{total} seeds, {failed} failed ");
                let _ = std::io::stderr().flush();
            }
        })),
        ..SeedRun::default()
    };
    if let Some(t) = a.threads {
        run.threads = t;
    }
    let opts_ref = &opts;
    let determinism = a.determinism;
    let hashes = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let summary = run_seeds(a.seeds.clone(), &run, |seed| {
        let result = if determinism {
            check_determinism(seed, |s| (scenario.run)(s, opts_ref))
        } else {
            (scenario.run)(seed, opts_ref)
        };
        let hash = result.as_ref().ok().map(|r| r.trace_hash);
        hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(seed, hash);
        result
    });
    eprintln!();
    if a.hashes {
        for (seed, hash) in hashes.into_inner().unwrap_or_else(|e| e.into_inner()) {
            match hash {
                Some(h) => println!("seed {seed}: trace hash {h:016x}"),
                None => println!("seed {seed}: failed"),
            }
        }
    }
    let virt = summary.virtual_time.as_secs_f64();
    let wall = summary.wall.as_secs_f64();
    println!(
        "{name}: {} seeds, {} failed; wall {:.2} s, virtual {:.1} s ({:.0}x real time)",
        summary.runs,
        summary.failures.len(),
        wall,
        virt,
        virt / wall.max(1e-9)
    );
    if summary.runs < total {
        println!("(EDDY_SEED narrowed the range)");
    }
    for (e, cmd) in summary.failures.iter().take(10) {
        println!("  FAILED {e}\n    replay: {cmd}");
    }
    if a.trace.is_some() || a.trace_lines.is_some() {
        let seed = summary
            .first_failure()
            .map_or(a.seeds.start, |(e, _)| e.seed());
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
