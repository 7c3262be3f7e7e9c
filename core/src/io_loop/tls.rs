//! TLS on a stream (see [`crate::tls`]): starting the layer, and what its input and output
//! change for the loop (handshake time-out, a failed session's close).

use super::*;

/// TLS streams (see [`crate::tls`]): starting the layer, and what its input and output
/// change for the loop (handshake time-out, a failed session's close).
impl IoLoop {
    /// Starts TLS on a stream: from now on the driver moves ciphertext and the stream's reads
    /// and writes are plaintext. Call it right after accept or connect, before any read.
    ///
    /// A server stream waits for the client's hello; a client stream sends its hello as soon
    /// as it is connected. Writes made before the handshake completes go out after it. The
    /// session's handshake time-out closes the stream with
    /// [`TlsFailure::HandshakeTimeout`](crate::tls::TlsFailure::HandshakeTimeout).
    pub fn start_tls(
        &mut self,
        id: StreamId,
        session: crate::tls::TlsSession,
    ) -> Result<(), StreamError> {
        let unix_nanos = self.unix_origin_nanos + self.now.as_nanos();
        crate::tls::set_loop_time(unix_nanos);
        let timeout = session.handshake_timeout();
        let entry = self.entry_mut(id).ok_or(StreamError::UnknownStream)?;
        if let Some(reason) = entry.stream.close_reason() {
            return Err(StreamError::Closed(reason));
        }
        let conn = match session.connect() {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(stream = ?id, error = %e, "TLS session could not start");
                let failure = crate::tls::TlsFailure::from_rustls(&e, true);
                self.close_stream(id, CloseReason::Tls(failure));
                return Err(StreamError::Closed(CloseReason::Tls(failure)));
            }
        };
        entry.stream.start_tls(crate::tls::TlsLayer::new(conn))?;
        if let Some(t) = timeout {
            let deadline = self.now + t;
            let timer = self.timers.insert(deadline, TimerAction::TlsTimeout(id));
            self.entry_mut(id).expect("present").lifecycle.tls_timer = Some(timer);
        }
        self.after_tls_input(id);
        Ok(())
    }

    /// True when the stream runs TLS.
    pub fn is_tls(&self, id: StreamId) -> bool {
        self.entry(id).is_some_and(|e| e.stream.tls().is_some())
    }

    /// The stream's TLS layer (negotiated ALPN, SNI name, peer certificates), if it has one.
    pub fn tls(&self, id: StreamId) -> Option<&crate::tls::TlsLayer> {
        self.entry(id).and_then(|e| e.stream.tls())
    }

    /// Ciphertext arrived: the layer decrypts, then the stream's reads proceed as usual.
    #[inline(never)]
    pub(super) fn handle_tls_read(&mut self, id: StreamId, n: usize) {
        let unix_nanos = self.unix_origin_nanos + self.now.as_nanos();
        crate::tls::set_loop_time(unix_nanos);
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        entry.stream.handle_read(n);
        self.after_tls_input(id);
    }

    /// After the layer took input: cancel the handshake timer once done, fail a broken
    /// session (after its alert is written), treat `close_notify` as end of file.
    pub(super) fn after_tls_input(&mut self, id: StreamId) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        if let Some(failure) = entry.stream.tls_failure() {
            return self.tls_failed(id, failure);
        }
        if !entry.stream.tls_handshaking() {
            if let Some(t) = entry.lifecycle.tls_timer.take() {
                self.timers.cancel(t);
            }
        }
        let entry = self.entry_mut(id).expect("present");
        if entry.stream.read_eof() {
            // close_notify: the same steps as a TCP end of file.
            self.poll_stream_read(id);
            self.queue_readable(id);
            self.maybe_close_after_eof(id);
            self.queue_interest(id);
            return;
        }
        self.after_read_input(id);
    }

    /// A failed session: its alert (if rustls queued one) is written first, bounded by a
    /// time-out, then the stream closes with the failure as its reason.
    #[cold]
    pub(super) fn tls_failed(&mut self, id: StreamId, failure: crate::tls::TlsFailure) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        if entry.stream.write_queued() == 0 {
            self.close_stream(id, CloseReason::Tls(failure));
            return;
        }
        if entry.lifecycle.tls_timer.is_none() {
            let deadline = self.now + crate::tls::DEFAULT_HANDSHAKE_TIMEOUT;
            let timer = self.timers.insert(deadline, TimerAction::TlsTimeout(id));
            self.entry_mut(id).expect("present").lifecycle.tls_timer = Some(timer);
        }
        self.queue_interest(id);
    }

    /// After ciphertext was written: closes a failed session whose alert is out, or a stream
    /// whose file failed to read. True when the stream closed.
    pub(super) fn tls_closes_after_write(&mut self, id: StreamId) -> bool {
        let Some(entry) = self.entry_mut(id) else {
            return true;
        };
        if let Some(kind) = entry.stream.take_write_error() {
            self.close_stream(id, CloseReason::from_io(kind));
            return true;
        }
        match entry.stream.tls_failure() {
            Some(failure) if entry.stream.write_queued() == 0 => {
                self.close_stream(id, CloseReason::Tls(failure));
                true
            }
            _ => false,
        }
    }
}
