//! The `eddy` command: `version`, `--help` of every subcommand, and `sim` finding a planted bug, printing a replay command
//! that reproduces it, and exporting a Chrome trace.

use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(args)
        .env_remove("EDDY_SEED")
        .output()
        .unwrap()
}

/// `eddy ARGS`: success, and stdout then stderr.
fn eddy(args: &[&str]) -> (bool, String) {
    let out = run(args);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn version_prints_the_package_version() {
    let (ok, text) = eddy(&["version"]);
    assert!(ok);
    assert!(text.contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_prints_the_usage_and_succeeds_for_every_command() {
    for args in [
        &["--help"][..],
        &["sim", "--help"],
        &["sim", "-h"],
        &["fetch", "--help"],
        &["serve", "--help"],
        &["help", "serve"],
    ] {
        let (ok, text) = eddy(args);
        assert!(ok, "{args:?}: {text}");
        assert!(text.contains("Usage: eddy"), "{args:?}: {text}");
        assert!(!text.contains("unknown"), "{args:?}: {text}");
    }
}

#[test]
fn sim_passes_the_echo_scenario_with_a_summary() {
    let (ok, text) = eddy(&[
        "sim",
        "--scenario",
        "echo",
        "--seeds",
        "0..50",
        "--check-determinism",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("echo: 50 seeds, 0 failed"), "{text}");
}

#[test]
fn sim_finds_the_planted_bug_and_its_replay_command_reproduces_it() {
    let (ok, text) = eddy(&["sim", "--scenario", "buggy_echo", "--seeds", "0..300"]);
    assert!(!ok, "the planted bug is found: {text}");
    let replay = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay: "))
        .expect("a replay command is printed")
        .to_string();
    assert!(
        replay.starts_with("eddy sim --scenario buggy_echo --seeds "),
        "{replay}"
    );
    let first_failure = text
        .lines()
        .find(|l| l.trim_start().starts_with("FAILED seed"))
        .unwrap()
        .trim()
        .to_string();
    let trace = std::env::temp_dir().join(format!("eddy-sim-cli-{}.json", std::process::id()));
    let mut args: Vec<&str> = replay.split_whitespace().skip(1).collect();
    let trace_arg = trace.to_str().unwrap().to_string();
    args.extend(["--trace", &trace_arg]);
    let (ok2, text2) = eddy(&args);
    assert!(!ok2);
    assert!(text2.contains("1 seeds, 1 failed"), "{text2}");
    assert!(
        text2.contains(&first_failure),
        "same failure:\n{first_failure}\n{text2}"
    );
    let json = std::fs::read_to_string(&trace).unwrap();
    let _ = std::fs::remove_file(&trace);
    assert!(json.starts_with("{\"traceEvents\":["));
    assert!(json.contains("\"name\":\"read\""));
}

#[test]
fn bad_arguments_are_explained() {
    let (ok, text) = eddy(&["sim", "--scenario", "nope"]);
    assert!(!ok);
    assert!(text.contains("no scenario \"nope\""), "{text}");
    let (ok, text) = eddy(&["sim", "--scenario", "echo", "--seeds", "5..2"]);
    assert!(!ok);
    assert!(text.contains("'--seeds <SEEDS>': wants A..B"), "{text}");
    let (ok, text) = eddy(&["serve", "--port", "http"]);
    assert!(!ok);
    assert!(
        text.contains("invalid value 'http' for '--port <PORT>'"),
        "{text}"
    );
    let (ok, text) = eddy(&["serve", "/no/such/dir/here"]);
    assert!(!ok);
    assert!(text.contains("eddy serve: /no/such/dir/here:"), "{text}");
}

#[test]
fn sim_progress_is_plain_lines_off_a_terminal_and_absent_with_quiet() {
    let (ok, text) = eddy(&["sim", "--scenario", "echo", "--seeds", "0..20"]);
    assert!(ok, "{text}");
    assert!(text.contains("echo: 20/20 seeds, 0 failed, "), "{text}");
    let (ok, text) = eddy(&["sim", "--scenario", "echo", "--seeds", "0..20", "--quiet"]);
    assert!(ok, "{text}");
    assert!(!text.contains("20/20"), "{text}");
    assert!(text.contains("echo: 20 seeds, 0 failed"), "{text}");
}

/// `eddy ARGS`: success, and stdout alone.
fn eddy_stdout(args: &[&str]) -> (bool, String) {
    let out = run(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn three_shards_of_a_range_merge_into_the_unsharded_run_line_for_line() {
    let base = [
        "sim",
        "--scenario",
        "buggy_echo",
        "--seeds",
        "0..300",
        "--json",
    ];
    let (_, whole) = eddy_stdout(&base);
    let whole: Vec<&str> = whole.lines().collect();
    assert_eq!(whole.len(), 300, "one line per seed");
    assert!(
        whole.iter().any(|l| l.contains("\"outcome\":\"fail\"")),
        "failures included"
    );
    assert!(whole.iter().any(|l| l.contains("\"outcome\":\"pass\"")));
    let mut merged: Vec<String> = Vec::new();
    for k in 0..3 {
        let shard = format!("{k}/3");
        let mut args = base.to_vec();
        args.extend(["--shard", &shard]);
        let (_, lines) = eddy_stdout(&args);
        let lines: Vec<String> = lines.lines().map(str::to_owned).collect();
        assert!(
            (99..=101).contains(&lines.len()),
            "shard {k}: {} lines",
            lines.len()
        );
        merged.extend(lines);
    }
    merged.sort_by_key(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["seed"].as_u64().unwrap()
    });
    assert_eq!(merged, whole);
    let (ok, text) = eddy(&["sim", "--scenario", "echo", "--shard", "3/3"]);
    assert!(!ok && text.contains("wants K/N"), "{text}");
}
