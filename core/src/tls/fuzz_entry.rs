//! The TLS input path as one function for fuzzing: peer bytes into a stream's TLS layer.
//!
//! It owns no state between calls and must never panic, whatever the bytes; the fuzz target
//! `tls_input` under `fuzz/` and the corpus replay in `cargo test` both call it.

use super::config::TlsSession;
use super::fixture;
use super::layer::TlsLayer;
use crate::error::CloseReason;
use crate::stream::{ReadRequest, Stream, StreamState};

/// Arbitrary bytes: the first byte picks the role (bit 0: client, else server) and a read
/// size (the other bits), the rest is what the peer sends. Fed whole and in pieces, the
/// outcome (how the stream would close, or that it waits) must be the same.
pub fn tls_input(data: &[u8]) {
    let Some((&control, peer)) = data.split_first() else {
        return;
    };
    let client = control & 1 == 1;
    let piece = usize::from(control >> 1).max(1);
    let whole = feed(client, peer, peer.len().max(1));
    let split = feed(client, peer, piece);
    assert_eq!(whole, split, "whole and split input disagree");
}

fn session(client: bool) -> Option<TlsSession> {
    if client {
        fixture::connector().session("localhost").ok()
    } else {
        Some(fixture::acceptor().session())
    }
}

/// Feeds `peer` to a fresh stream of the given role in `piece`-byte reads, answering what the
/// layer writes as a driver would, then end of file; returns why the stream would close
/// (`None`: it would stay open).
pub fn feed(client: bool, peer: &[u8], piece: usize) -> Option<CloseReason> {
    let mut stream = Stream::new(StreamState::Open, 64 * 1024, 16 * 1024);
    let conn = session(client)?.connect().ok()?;
    stream.start_tls(TlsLayer::new(conn)).ok()?;
    stream
        .start_read(ReadRequest::UntilClose { streaming: true })
        .ok()?;
    for chunk in peer.chunks(piece.max(1)) {
        stream.push_read(chunk);
        stream.handle_read(chunk.len());
        while let Some(_out) = stream.poll_read() {
            if stream.reading() {
                continue;
            }
            break;
        }
        if let Some(failure) = stream.tls_failure() {
            return Some(CloseReason::Tls(failure));
        }
        if stream.check_buffer_limit().is_err() {
            return Some(CloseReason::BufferFull);
        }
        let out: usize = stream.write_chunks().map(<[u8]>::len).sum();
        stream.handle_written(out);
    }
    if stream.tls_handshaking() {
        return Some(CloseReason::Eof); // the loop closes quietly on a mid-handshake EOF
    }
    stream.handle_eof();
    stream.tls_failure().map(CloseReason::Tls)
}
