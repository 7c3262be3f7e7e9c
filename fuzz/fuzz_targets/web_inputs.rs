//! Client-controlled inputs of the web layer (signed cookies, XSRF tokens, Accept-Encoding,
//! paths against routes): no panic, and the round-trip invariants of `eddy_web::fuzz_entry`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    eddy_web::fuzz_entry::web_inputs(data);
});
