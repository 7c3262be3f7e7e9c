//! `TlsLayer`: one stream's rustls connection between the socket's bytes and the stream's
//! plaintext buffers.
//!
//! Ciphertext from the driver lands in `incoming`; rustls decrypts into the stream's read
//! buffer; plaintext the stream hands over is encrypted into `outgoing`, which the driver
//! writes. It keeps the marks that turn "ciphertext written" into "plaintext written" (so a
//! flush means on the wire). It never touches a socket and never panics on peer bytes.

use std::collections::VecDeque;
use std::io::{Read, Write};

use bytes::{Buf, BufMut, BytesMut};

use super::failure::TlsFailure;

/// Encrypted bytes queued for the driver above which no more plaintext is encrypted.
pub const TLS_OUT_HIGH_WATER: usize = 64 * 1024;
/// An emptied output buffer larger than this is freed (idle connections stay small).
const OUT_KEEP: usize = 32 * 1024;
/// An emptied input buffer larger than this is freed.
const IN_KEEP: usize = 8 * 1024;
/// Most plaintext handed to rustls in one call (four full records).
const ENCRYPT_STEP: usize = 4 * 16 * 1024;
/// Most `write_tls` calls per drain; each moves at least one queued record.
const MAX_DRAIN_CALLS: usize = 4096;

/// The TLS state of one stream; see the module docs.
pub struct TlsLayer {
    conn: rustls::Connection,
    /// Ciphertext read from the socket and not yet taken by rustls.
    incoming: BytesMut,
    /// Ciphertext for the driver to write.
    outgoing: BytesMut,
    /// `(ciphertext total at the end of a record batch, plaintext total it carries)`.
    marks: VecDeque<(u64, u64)>,
    cipher_queued: u64,
    cipher_written: u64,
    plain_encrypted: u64,
    failure: Option<TlsFailure>,
    handshaking: bool,
    close_notify_sent: bool,
    peer_closed: bool,
}

impl std::fmt::Debug for TlsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsLayer")
            .field("handshaking", &self.handshaking)
            .field("incoming", &self.incoming.len())
            .field("outgoing", &self.outgoing.len())
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl TlsLayer {
    /// Wraps a fresh rustls connection; a client's hello is queued at once.
    pub fn new(conn: rustls::Connection) -> TlsLayer {
        let mut layer = TlsLayer {
            handshaking: conn.is_handshaking(),
            conn,
            incoming: BytesMut::new(),
            outgoing: BytesMut::new(),
            marks: VecDeque::new(),
            cipher_queued: 0,
            cipher_written: 0,
            plain_encrypted: 0,
            failure: None,
            close_notify_sent: false,
            peer_closed: false,
        };
        layer.drain_output();
        layer
    }

    // ----- getters -----

    /// True until the handshake has completed.
    pub fn is_handshaking(&self) -> bool {
        self.handshaking
    }

    /// The failure that ended the session, if one did.
    pub fn failure(&self) -> Option<TlsFailure> {
        self.failure
    }

    /// True once the peer's `close_notify` arrived (the plaintext end of file).
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// True once this side's `close_notify` is queued.
    pub fn close_notify_sent(&self) -> bool {
        self.close_notify_sent
    }

    /// Ciphertext waiting for the driver.
    pub fn outgoing(&self) -> &[u8] {
        &self.outgoing
    }

    /// True while more plaintext may be encrypted (the output is below its high water).
    pub fn wants_plaintext(&self) -> bool {
        !self.handshaking
            && self.failure.is_none()
            && !self.close_notify_sent
            && self.outgoing.len() < TLS_OUT_HIGH_WATER
    }

    /// The negotiated ALPN protocol.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The SNI name a server was asked for.
    pub fn server_name(&self) -> Option<&str> {
        match &self.conn {
            rustls::Connection::Server(s) => s.server_name(),
            rustls::Connection::Client(_) => None,
        }
    }

    /// The peer's certificate chain, once verified.
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// The negotiated protocol version.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.protocol_version()
    }

    // ----- inputs -----

    /// True when no ciphertext waits for rustls.
    pub fn incoming_is_empty(&self) -> bool {
        self.incoming.is_empty()
    }

    /// The buffer the driver reads ciphertext into (or the simulator appends to).
    pub fn incoming_mut(&mut self) -> &mut BytesMut {
        &mut self.incoming
    }

    /// Feeds the buffered ciphertext to rustls and appends what it decrypts to `plain`.
    ///
    /// Afterwards check [`failure`](Self::failure), [`peer_closed`](Self::peer_closed) and
    /// [`is_handshaking`](Self::is_handshaking); alerts and handshake replies are in
    /// [`outgoing`](Self::outgoing).
    pub fn process(&mut self, plain: &mut BytesMut) {
        // Each turn consumes at least one byte or stops, so this is bounded by the input.
        let mut stalled = false;
        for _ in 0..=self.incoming.len() {
            if self.incoming.is_empty() || self.failure.is_some() || self.peer_closed {
                break;
            }
            let mut rd: &[u8] = &self.incoming;
            match self.conn.read_tls(&mut rd) {
                Ok(0) => break,
                Ok(n) => {
                    self.incoming.advance(n);
                    stalled = false;
                }
                Err(_) if !stalled => stalled = true, // its buffer is full: process, retry
                Err(_) => {
                    self.fail(TlsFailure::Protocol);
                    break;
                }
            }
            self.process_packets(plain);
        }
        if self.peer_closed {
            self.incoming.clear(); // nothing after close_notify counts (RFC 8446 §6.1)
        }
        if self.incoming.is_empty() && self.incoming.capacity() > IN_KEEP {
            self.incoming = BytesMut::new(); // an idle connection keeps no big read buffer
        }
        self.drain_output();
    }

    /// The peer closed the TCP stream.
    pub fn handle_eof(&mut self, plain: &mut BytesMut) {
        let _ = self.conn.read_tls(&mut &[][..]);
        if self.failure.is_none() && !self.incoming.is_empty() {
            self.process(plain);
        }
    }

    /// Encrypts from the front of `data`; returns how many plaintext bytes were taken.
    pub fn encrypt(&mut self, data: &[u8]) -> usize {
        if !self.wants_plaintext() || data.is_empty() {
            return 0;
        }
        let step = &data[..data.len().min(ENCRYPT_STEP)];
        let n = self.conn.writer().write(step).unwrap_or(0);
        self.drain_output();
        if n > 0 {
            self.plain_encrypted += n as u64;
            match self.marks.back_mut() {
                Some(m) if m.0 == self.cipher_queued => m.1 = self.plain_encrypted,
                _ => self
                    .marks
                    .push_back((self.cipher_queued, self.plain_encrypted)),
            }
        }
        n
    }

    /// Queues `close_notify` (the TLS half-close), once.
    pub fn send_close_notify(&mut self) {
        if !self.close_notify_sent && self.failure.is_none() {
            self.close_notify_sent = true;
            self.conn.send_close_notify();
            self.drain_output();
        }
    }

    /// The driver wrote `n` ciphertext bytes; returns the plaintext total now on the wire,
    /// when that moved.
    pub fn handle_written(&mut self, n: usize) -> Option<u64> {
        let n = n.min(self.outgoing.len());
        self.outgoing.advance(n);
        if self.outgoing.is_empty() && self.outgoing.capacity() > OUT_KEEP {
            self.outgoing = BytesMut::new();
        }
        self.cipher_written += n as u64;
        let mut acked = None;
        while let Some(&(end, plain)) = self.marks.front() {
            if end > self.cipher_written {
                break;
            }
            acked = Some(plain);
            self.marks.pop_front();
        }
        acked
    }

    /// Drops unwritten output (the stream closed).
    pub fn clear_output(&mut self) {
        self.outgoing = BytesMut::new();
        self.marks.clear();
    }

    fn fail(&mut self, failure: TlsFailure) {
        self.failure.get_or_insert(failure);
    }

    fn process_packets(&mut self, plain: &mut BytesMut) {
        let state = match self.conn.process_new_packets() {
            Ok(state) => state,
            Err(e) => {
                let failure = TlsFailure::from_rustls(&e, self.handshaking);
                tracing::debug!(error = %e, %failure, "TLS session failed");
                self.fail(failure);
                self.drain_output(); // the alert rustls queued for the peer
                return;
            }
        };
        let mut want = state.plaintext_bytes_to_read();
        let peer_closed = state.peer_has_closed();
        // Bounded: every turn reads at least one byte or stops.
        while want > 0 {
            let at = plain.len();
            plain.resize(at + want, 0);
            match self.conn.reader().read(&mut plain[at..]) {
                Ok(n) if n > 0 => {
                    plain.truncate(at + n);
                    want -= n.min(want);
                }
                _ => {
                    plain.truncate(at);
                    break;
                }
            }
        }
        if peer_closed {
            self.peer_closed = true;
        }
        if self.handshaking && !self.conn.is_handshaking() {
            self.handshaking = false;
        }
    }

    /// Moves everything rustls has queued for the peer into `outgoing`.
    fn drain_output(&mut self) {
        let before = self.outgoing.len();
        for _ in 0..MAX_DRAIN_CALLS {
            if !self.conn.wants_write() {
                break;
            }
            let mut w = (&mut self.outgoing).writer();
            if !matches!(self.conn.write_tls(&mut w), Ok(n) if n > 0) {
                break;
            }
        }
        self.cipher_queued += (self.outgoing.len() - before) as u64;
    }
}
