//! Replays the committed `web_inputs` fuzz corpus (`fuzz/corpus/web_inputs`) through the
//! target's own entry point, so every seed (and every crash ever found) runs in `cargo test`.

use std::path::PathBuf;

#[test]
fn web_inputs_corpus_replays_without_failure() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/web_inputs");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus dir {} unreadable: {e}", dir.display()));
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        eddy_web::fuzz_entry::web_inputs(&data);
        n += 1;
    }
    assert!(n >= 15, "corpus has only {n} seeds");
}

#[test]
fn static_inputs_corpus_replays_without_failure() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/static_inputs");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus dir {} unreadable: {e}", dir.display()));
    let mut n = 0;
    for entry in entries {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        eddy_web::fuzz_entry::static_inputs(&data);
        n += 1;
    }
    assert!(n >= 15, "corpus has only {n} seeds");
}
