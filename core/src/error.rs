//! Errors and close reasons of streams, as values a caller can match on.

use std::io;

/// Why a stream closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The peer closed its side (read returned end of file) and everything was flushed.
    Eof,
    /// This side called `close`.
    Local,
    /// The peer reset the connection (ECONNRESET / EPIPE).
    Reset,
    /// The connection attempt was refused (no listener at the address).
    Refused,
    /// The connection attempt did not finish before its timeout.
    ConnectTimeout,
    /// More than `max_buffer_size` bytes were buffered for reading.
    BufferFull,
    /// A `read_until` did not find its delimiter within `max_bytes`.
    Unsatisfiable,
    /// Any other I/O error reported by the driver.
    Io(io::ErrorKind),
    /// The loop (or the host it runs on) was shut down.
    Shutdown,
    /// The TLS handshake or session failed; the cause says why.
    Tls(crate::tls::TlsFailure),
}

impl CloseReason {
    /// Maps an I/O error kind from a driver to a close reason.
    pub fn from_io(kind: io::ErrorKind) -> CloseReason {
        match kind {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted => CloseReason::Reset,
            io::ErrorKind::ConnectionRefused => CloseReason::Refused,
            other => CloseReason::Io(other),
        }
    }

    /// Maps the error of a connect attempt: like [`CloseReason::from_io`], but a time-out is
    /// the connect's own.
    pub fn from_connect_error(kind: io::ErrorKind) -> CloseReason {
        match kind {
            io::ErrorKind::TimedOut => CloseReason::ConnectTimeout,
            other => CloseReason::from_io(other),
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Eof => f.write_str("closed by peer"),
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::Reset => f.write_str("connection reset by peer"),
            CloseReason::Refused => f.write_str("connection refused"),
            CloseReason::ConnectTimeout => f.write_str("connect timed out"),
            CloseReason::BufferFull => f.write_str("read buffer full"),
            CloseReason::Unsatisfiable => f.write_str("delimiter not found within max_bytes"),
            CloseReason::Io(kind) => write!(f, "I/O error: {kind}"),
            CloseReason::Shutdown => f.write_str("event loop shut down"),
            CloseReason::Tls(failure) => write!(f, "{failure}"),
        }
    }
}

/// What a stream operation can fail with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The stream is closed (or closes before the operation completes).
    #[error("stream closed: {0}")]
    Closed(CloseReason),
    /// A read was requested while another is pending; at most one read may be pending.
    #[error("a read is already pending on this stream")]
    ReadPending,
    /// Buffering more would exceed `max_buffer_size` (Tornado's StreamBufferFullError).
    #[error("read buffer would exceed max_buffer_size ({limit} bytes); stream closed")]
    BufferFull {
        /// The stream's `max_buffer_size`.
        limit: usize,
    },
    /// `read_until` found no delimiter within `max_bytes` (Tornado's UnsatisfiableReadError).
    #[error("delimiter not found within max_bytes ({max_bytes} bytes); stream closed")]
    Unsatisfiable {
        /// The read's `max_bytes`.
        max_bytes: usize,
    },
    /// The stream id does not name a stream of this loop (never existed or long gone).
    #[error("no such stream")]
    UnknownStream,
    /// A write was attempted after `shutdown_write`.
    #[error("write side already shut down")]
    WriteShutdown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_out_is_a_connect_time_out_only_while_connecting() {
        let t = io::ErrorKind::TimedOut;
        assert_eq!(
            CloseReason::from_connect_error(t),
            CloseReason::ConnectTimeout
        );
        assert_eq!(CloseReason::from_io(t), CloseReason::Io(t));
        assert_eq!(
            CloseReason::from_io(io::ErrorKind::BrokenPipe),
            CloseReason::Reset
        );
    }
}
