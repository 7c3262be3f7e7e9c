//! The TLS input path as one function for fuzzing: peer bytes into a server stream's layer.
//!
//! It owns no state between calls and must never panic, whatever the bytes; the fuzz target
//! under `fuzz/` and the corpus replay in `cargo test` both call it.

use super::config::TlsAcceptor;
use super::layer::TlsLayer;
use crate::error::CloseReason;
use crate::stream::{ReadRequest, Stream, StreamState};

/// Feeds `data` to a fresh server-side TLS stream in pieces cut at `splits` (byte counts,
/// cycled), as a driver would, then end of file; returns why the stream would close (`None`:
/// it would stay open waiting for more).
pub fn feed_server(acceptor: &TlsAcceptor, data: &[u8], splits: &[u8]) -> Option<CloseReason> {
    let mut stream = Stream::new(StreamState::Open, 64 * 1024, 16 * 1024);
    let conn = match acceptor.session().connect() {
        Ok(c) => c,
        Err(_) => return Some(CloseReason::Local),
    };
    stream.start_tls(TlsLayer::new(conn)).ok()?;
    let _ = stream.start_read(ReadRequest::Some(1024));
    let mut at = 0;
    let mut cuts = splits.iter().cycle();
    while at < data.len() {
        let step = cuts.next().map_or(data.len(), |&c| usize::from(c).max(1));
        let end = (at + step).min(data.len());
        stream.push_read(&data[at..end]);
        stream.handle_read(end - at);
        at = end;
        let _ = stream.poll_read();
        if let Some(failure) = stream.tls_failure() {
            return Some(CloseReason::Tls(failure));
        }
        if stream.check_buffer_limit().is_err() {
            return Some(CloseReason::BufferFull);
        }
        // Answer what the layer wrote, as a driver would, so output stays bounded.
        let queued = stream.write_queued();
        stream.handle_written(queued.min(stream.write_chunks().map(<[u8]>::len).sum()));
    }
    stream.handle_eof();
    let _ = stream.poll_read();
    if stream.tls_handshaking() {
        return Some(CloseReason::Eof);
    }
    stream.tls_failure().map(CloseReason::Tls)
}
