//! The TCP echo service: every byte a client sends comes back, in order, until it closes.
//!
//! It uses only the `IoLoop` API, so the real drivers and the simulator run this same code.
//! It never buffers without bound: past [`HIGH_WATER`] unflushed bytes it stops reading
//! until the client has taken the echo (backpressure), like a well-behaved Tornado handler.

use crate::core::{IoLoop, ListenOptions, ListenerId, StreamId};
use std::net::SocketAddr;

/// Most bytes taken from the stream per read.
pub const READ_MAX: usize = 64 * 1024;
/// Unflushed echo above which the service waits for the flush before reading on.
pub const HIGH_WATER: usize = 1024 * 1024;

/// Listens on `addr` with default options and echoes every accepted stream.
pub fn serve(io: &mut IoLoop, addr: SocketAddr) -> ListenerId {
    serve_with(io, addr, ListenOptions::default())
}

/// Listens on `addr` with `options` (e.g. `reuse_port` for one listener per thread).
pub fn serve_with(io: &mut IoLoop, addr: SocketAddr, options: ListenOptions) -> ListenerId {
    io.listen(addr, options, |io, id, _peer| echo_stream(io, id))
}

/// Echoes one stream until it closes; at end of file the loop flushes and closes it.
pub fn echo_stream(io: &mut IoLoop, id: StreamId) {
    // Err here means the stream is gone already: nothing to echo.
    let _ = io.read_some(id, READ_MAX, move |io, result| {
        let Ok(data) = result else {
            return; // end of file or closed: the loop closes once the echo is flushed
        };
        if io.write(id, data).is_err() {
            return;
        }
        let backlog = io.stream(id).map_or(0, |s| s.write_queued());
        if backlog > HIGH_WATER {
            let _ = io.flush(id, move |io, flushed| {
                if flushed.is_ok() {
                    echo_stream(io, id);
                }
            });
        } else {
            echo_stream(io, id);
        }
    });
}
