//! Replays the committed `http_response` fuzz corpus (`fuzz/corpus/http_response`) through
//! the entry point the fuzz target calls, so every seed and saved crasher runs on stable.

use std::path::PathBuf;

use eddy_core::http::client::fuzz::http_response;

#[test]
fn http_response_corpus_replays_without_failure() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/http_response");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus dir {} unreadable: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 20, "corpus has only {} files", files.len());
    for path in files {
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| http_response(&data));
        assert!(result.is_ok(), "corpus file {} failed", path.display());
        // Every seed also runs with other request methods and split sizes.
        for methods in [0u8, 1, 0xff] {
            let mut variant = data.clone();
            if let Some(first) = variant.first_mut() {
                *first = methods;
            }
            http_response(&variant);
        }
    }
}
