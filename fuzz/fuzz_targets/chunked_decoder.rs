//! Arbitrary bytes through the chunked decoder in arbitrary pieces; split and whole
//! decoding agree, and decoded bodies round-trip through the encoder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    eddy_core::http::fuzz_entry::chunked_decoder(data);
});
