//! Arbitrary peer bytes into a TLS stream (the first byte picks client or server and the
//! read size): never a panic, and whole and split input must end the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    eddy_core::tls::fuzz_entry::tls_input(data);
});
