//! Arbitrary bytes, split into arbitrary pieces (the first bytes choose the sizes), fed to
//! a `ServerConn` that answers every request; split and whole runs must agree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    eddy_core::http::fuzz_entry::http_request(data);
});
