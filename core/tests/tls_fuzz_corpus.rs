//! Replays the committed `tls_input` fuzz corpus (`fuzz/corpus/tls_input`) through the
//! target's entry point, so every seed (and every crash ever found) runs in `cargo test`.
//! The `client_hello_*` seeds are rustls 0.23 first flights (control byte 0 then the
//! records); `server_flight_*` are a server's answers to them, fed to a client (byte 1).

use std::path::PathBuf;

#[test]
fn tls_input_corpus_replays_without_failure() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/tls_input");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus dir {} unreadable: {e}", dir.display()));
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| eddy_core::tls::fuzz_entry::tls_input(&data));
        assert!(outcome.is_ok(), "{} fails", path.display());
        n += 1;
    }
    assert!(n >= 20, "corpus has only {n} seeds");
}

#[test]
fn plain_http_and_a_real_hello_end_as_expected() {
    use eddy_core::tls::{fuzz_entry::feed, TlsFailure};
    use eddy_core::CloseReason;
    let http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(
        feed(false, http, 1),
        Some(CloseReason::Tls(TlsFailure::NotTls))
    );
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/tls_input");
    let hello = std::fs::read(dir.join("client_hello_tls13")).unwrap();
    // A whole hello: the server answers and waits for the client's finish.
    assert_eq!(feed(false, &hello[1..], 5), Some(CloseReason::Eof));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// A real client hello with bytes flipped and cut, read in random pieces: never a panic,
    /// and whole and split reads end the same way.
    #[test]
    fn a_mutated_client_hello_is_handled_the_same_whole_and_split(
        control in proptest::prelude::any::<u8>(),
        flips in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 0..6),
        cut in 0usize..400,
    ) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/tls_input");
        let mut hello = std::fs::read(dir.join("client_hello_tls13")).unwrap();
        hello[0] = control & !1; // server role: these bytes come from a client
        for (at, byte) in flips {
            let at = 1 + at % (hello.len() - 1);
            hello[at] ^= byte;
        }
        hello.truncate(1 + cut.min(hello.len() - 1));
        eddy_core::tls::fuzz_entry::tls_input(&hello);
    }
}
