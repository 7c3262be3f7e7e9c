//! Replays the committed fuzz corpus (`fuzz/corpus/*`) through the same entry points the
//! fuzz targets call, so every seed and every saved crasher runs on stable in CI.

use std::path::PathBuf;

use eddy_core::http::fuzz_entry;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus dir {} unreadable: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "corpus {target} has only {} files",
        files.len()
    );
    files
}

#[test]
fn http_request_corpus_replays_without_failure() {
    for (name, data) in corpus("http_request") {
        let result = std::panic::catch_unwind(|| fuzz_entry::http_request(&data));
        assert!(result.is_ok(), "http_request corpus file {name} failed");
    }
}

#[test]
fn chunked_decoder_corpus_replays_without_failure() {
    for (name, data) in corpus("chunked_decoder") {
        let result = std::panic::catch_unwind(|| fuzz_entry::chunked_decoder(&data));
        assert!(result.is_ok(), "chunked_decoder corpus file {name} failed");
    }
}

#[test]
fn every_byte_split_of_the_corpus_agrees() {
    // The targets compare one split against the whole; here every seed also runs byte-wise.
    for (_, data) in corpus("http_request") {
        let mut bytewise = vec![0u8];
        bytewise.extend_from_slice(&data[..]);
        fuzz_entry::http_request(&bytewise);
    }
}
