//! Replays the committed `ws_frames` fuzz corpus through the entry point the fuzz target
//! calls, so every seed and every saved crasher runs on stable in CI.

use std::path::PathBuf;

use eddy_core::ws::{fuzz_entry, ProtocolError};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ws_frames");
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
    assert!(files.len() >= 30, "corpus has only {} files", files.len());
    files
}

#[test]
fn ws_frames_corpus_replays_without_failure() {
    for (name, data) in corpus() {
        let result = std::panic::catch_unwind(|| fuzz_entry::ws_frames(&data));
        assert!(result.is_ok(), "ws_frames corpus file {name} failed");
    }
}

#[test]
fn every_corpus_seed_agrees_fed_byte_by_byte() {
    for (name, data) in corpus() {
        let (setup, _, input) = fuzz_entry::split_input(&data);
        let whole = fuzz_entry::drive(&setup, input, &[input.len().max(1)], true);
        let bytewise = fuzz_entry::drive(&setup, input, &[1], true);
        assert_eq!(whole, bytewise, "seed {name}");
    }
}

#[test]
fn corpus_seeds_end_as_their_names_say() {
    use fuzz_entry::Ev;
    for (name, data) in corpus() {
        let (setup, _, input) = fuzz_entry::split_input(&data);
        let t = fuzz_entry::drive(&setup, input, &[input.len().max(1)], true);
        // Seeds end without a close frame, so most end in ConnectionLost; look past it.
        let error = t.events.iter().find_map(|e| match e {
            Ev::Error(e) if *e != ProtocolError::ConnectionLost => Some(e.close_code().0),
            Ev::Error(_) if name.starts_with("truncated") => Some(1006),
            _ => None,
        });
        let expected = match name.as_str() {
            n if n.starts_with("close_code_3000") => None,
            n if n.starts_with("close_one_byte") || n.starts_with("close_code_") => Some(1002),
            n if (n.contains("utf8") && !n.contains("split_across")) || n.contains("at_fin") => {
                Some(1007)
            }
            n if n.contains("too_big") || n.contains("bomb") || n.contains("over_limit") => {
                Some(1009)
            }
            "deflate_corrupt" => Some(1007),
            n if n.starts_with("truncated") => Some(1006),
            n if n.contains("nonminimal")
                || n.contains("high_bit")
                || n.contains("masked_to")
                || n.contains("without_start")
                || n.contains("mid_message")
                || n.contains("reserved")
                || n.contains("rsv")
                || n.contains("too_long")
                || n.contains("ping_fragmented") =>
            {
                Some(1002)
            }
            _ => None,
        };
        assert_eq!(error, expected, "seed {name}: {:?}", t.events);
    }
}
