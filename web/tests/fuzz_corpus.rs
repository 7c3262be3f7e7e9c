//! Replays the committed fuzz corpora of the web layer (`fuzz/corpus/web_inputs`,
//! `fuzz/corpus/static_inputs`) through the targets' own entry points, so every seed (and
//! every crash ever found) runs in `cargo test`.

use std::path::PathBuf;

/// Feeds every file of `fuzz/corpus/NAME` to `entry`; the corpus must hold `min` seeds.
fn replay(name: &str, min: usize, entry: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(name);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus dir {} unreadable: {e}", dir.display()));
    let mut n = 0;
    for entry_file in entries {
        let data = std::fs::read(entry_file.unwrap().path()).unwrap();
        entry(&data);
        n += 1;
    }
    assert!(n >= min, "corpus {name} has only {n} seeds");
}

#[test]
fn web_inputs_corpus_replays_without_failure() {
    replay("web_inputs", 15, eddy_web::fuzz_entry::web_inputs);
}

#[test]
fn static_inputs_corpus_replays_without_failure() {
    replay("static_inputs", 15, eddy_web::fuzz_entry::static_inputs);
}
