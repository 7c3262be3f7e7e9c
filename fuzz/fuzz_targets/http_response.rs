//! Arbitrary response bytes, split into arbitrary pieces (the first bytes choose the request
//! methods and the sizes), fed to a `ClientConn`; split, byte-wise and whole runs must agree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    eddy_core::http::client::fuzz::http_response(data);
});
