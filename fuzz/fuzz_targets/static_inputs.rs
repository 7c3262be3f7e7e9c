//! Client-controlled inputs of static file serving (`Range`, HTTP dates, request paths): no
//! panic, and the invariants of `eddy_web::fuzz_entry::static_inputs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    eddy_web::fuzz_entry::static_inputs(data);
});
