//! Arbitrary frame bytes (the first byte chooses role, compression and limits; the next
//! ones the split sizes) fed to a `WsConn`; split and whole runs must agree, and what the
//! machine writes must be valid for its peer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    eddy_core::ws::fuzz_entry::ws_frames(data);
});
