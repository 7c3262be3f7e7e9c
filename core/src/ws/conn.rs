//! `WsConn`: one WebSocket connection (RFC 6455, with RFC 7692 compression) as a pure state
//! machine. Frame bytes in, events out; messages in, frame bytes out.
//!
//! It never reads a socket or a clock and never panics on input: every violation becomes an
//! [`WsEvent::Error`] and the close frame that reports it.

use bytes::{Buf, Bytes, BytesMut};

use super::close::{close_payload, parse_close_payload, CloseCode, CloseFrame};
use super::deflate::{DeflateCodec, DeflateParams, InflateError};
use super::error::{ProtocolError, SendError};
use super::frame::{apply_mask, FrameHeader, Opcode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use super::utf8::Utf8Validator;
use crate::http::{OutQueue, ResponseSink};
use crate::stream::Chunk;

/// Payloads up to this long are copied behind their frame header (one send per frame).
const COALESCE_MAX: usize = 16 * 1024;

/// Which end of the connection this machine is; it decides who masks (RFC 6455 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepted the connection: frames in must be masked, frames out must not be.
    Server,
    /// Opened the connection: frames out are masked, frames in must not be.
    Client,
}

/// Limits of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsConfig {
    /// Largest message accepted, after decompression (Tornado's `max_message_size`); over
    /// it the connection fails with 1009.
    pub max_message_size: usize,
}

/// Default `max_message_size`: 10 MiB, as in Tornado.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;

impl Default for WsConfig {
    fn default() -> WsConfig {
        WsConfig {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// Whether a message is text or binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text (opcode 0x1).
    Text,
    /// Arbitrary bytes (opcode 0x2).
    Binary,
}

/// A complete data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message, validated as UTF-8.
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// Text or binary.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Text(_) => MessageKind::Text,
            Message::Binary(_) => MessageKind::Binary,
        }
    }

    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }
}

/// What [`WsConn::poll_event`] found; drain events until `NeedData` or `Closed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// A whole text or binary message (fragments joined, decompressed).
    Message(Message),
    /// A ping; its pong is already queued for output.
    Ping(Bytes),
    /// A pong (an answer to our ping, or an unsolicited heartbeat).
    Pong(Bytes),
    /// The peer's close frame (`None`: it carried no code, i.e. 1005); our answering close
    /// is already queued if we had not sent one. Nothing more is read.
    Close(Option<CloseFrame>),
    /// The peer broke the protocol or a limit; the close frame with
    /// [`ProtocolError::close_code`] is queued (except for `ConnectionLost`). Nothing more is read.
    Error(ProtocolError),
    /// The buffer holds no complete event; read more bytes, then poll again.
    NeedData,
    /// Nothing more will be read: flush output, then see [`WsConn::should_close_tcp`].
    Closed,
}

/// Where client frames get their masking keys; must be unpredictable to the peer (§10.3).
pub type MaskSource = Box<dyn FnMut() -> [u8; 4] + Send>;

/// Read side: where the next input byte belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    /// At a frame boundary.
    Header,
    /// Inside a data frame's payload: `remaining` bytes to go, `offset` into the mask.
    Payload {
        header: FrameHeader,
        remaining: u64,
        offset: usize,
    },
    /// Nothing more is read (peer's close received, failure, or end of input).
    Closed,
}

/// A data message being received.
#[derive(Debug)]
struct Incoming {
    kind: MessageKind,
    compressed: bool,
    data: Vec<u8>,
    utf8: Utf8Validator,
}

/// A fragmented message being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outgoing {
    kind: MessageKind,
    compressed: bool,
}

/// One WebSocket connection after the opening handshake.
///
/// # Call order
/// After every read into the connection's buffer call [`poll_event`](Self::poll_event)
/// until it returns `NeedData` or `Closed`, then drain [`poll_transmit`](Self::poll_transmit)
/// into the stream (pongs and close answers are queued by `poll_event` itself). Application
/// sends (`send_*`) queue frames the same way. At end of input call
/// [`handle_eof`](Self::handle_eof) and poll once more.
///
/// # Close handshake (RFC 6455 §7)
/// | what happens               | close_sent | close_received | then                      |
/// |----------------------------|------------|----------------|---------------------------|
/// | `send_close`               | → true     | —              | read on until their close |
/// | their close arrives        | → true (answer queued once) | → true | reading stops  |
/// | protocol error             | → true (error close queued) | —      | reading stops  |
/// | end of input before closes | —          | —              | `Error(ConnectionLost)`   |
///
/// After both closes a server closes TCP at once; a client waits for the server to close
/// it first (§7.1.1), so [`should_close_tcp`](Self::should_close_tcp) says so only after
/// `handle_eof`. The glue bounds that wait with a timer.
pub struct WsConn {
    role: Role,
    config: WsConfig,
    deflate: Option<DeflateCodec>,
    mask: Option<MaskSource>,
    read: ReadState,
    incoming: Option<Incoming>,
    outgoing: Option<Outgoing>,
    close_sent: bool,
    close_received: bool,
    failed: bool,
    peer_eof: bool,
    out: OutQueue,
}

impl std::fmt::Debug for WsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConn")
            .field("role", &self.role)
            .field("read", &self.read)
            .field("close_sent", &self.close_sent)
            .field("close_received", &self.close_received)
            .field("failed", &self.failed)
            .field("pending_output", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl WsConn {
    /// A server-side connection; `deflate` holds the negotiated permessage-deflate parameters.
    pub fn server(config: WsConfig, deflate: Option<&DeflateParams>) -> WsConn {
        WsConn::new(Role::Server, config, deflate, None)
    }

    /// A client-side connection; `mask` supplies a fresh masking key for every frame.
    pub fn client(config: WsConfig, deflate: Option<&DeflateParams>, mask: MaskSource) -> WsConn {
        WsConn::new(Role::Client, config, deflate, Some(mask))
    }

    fn new(
        role: Role,
        config: WsConfig,
        deflate: Option<&DeflateParams>,
        mask: Option<MaskSource>,
    ) -> WsConn {
        WsConn {
            role,
            config,
            deflate: deflate.map(|p| DeflateCodec::new(p, role)),
            mask,
            read: ReadState::Header,
            incoming: None,
            outgoing: None,
            close_sent: false,
            close_received: false,
            failed: false,
            peer_eof: false,
            out: OutQueue::new(),
        }
    }

    // ----- getters ------------------------------------------------------------------------

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The limits in force.
    pub fn config(&self) -> &WsConfig {
        &self.config
    }

    /// True when permessage-deflate is on for this connection.
    pub fn compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// True when data messages may still be sent (no close sent, no failure).
    pub fn is_open(&self) -> bool {
        !self.close_sent
    }

    /// True once a close frame went out (sent by the application, answered or on failure).
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// True once the peer's close frame arrived.
    pub fn close_received(&self) -> bool {
        self.close_received
    }

    /// True while the machine would consume more input.
    pub fn wants_read(&self) -> bool {
        self.read != ReadState::Closed
    }

    /// True when the TCP connection may be closed once output is flushed: after a failure,
    /// after both closes on a server, and on a client after both closes and the server's EOF.
    pub fn should_close_tcp(&self) -> bool {
        if self.failed {
            return true;
        }
        let handshake_done = self.close_sent && self.close_received;
        match self.role {
            Role::Server => handshake_done,
            Role::Client => handshake_done && self.peer_eof,
        }
    }

    /// Bytes of frames queued and not yet taken by [`poll_transmit`](Self::poll_transmit).
    pub fn pending_output_len(&self) -> usize {
        self.out.len()
    }

    // ----- inputs -------------------------------------------------------------------------

    /// Parses what it can from `buf` (the stream's read buffer), consuming what it used.
    ///
    /// Returns one event. Unread bytes after `Close` or `Error` are left in `buf`, to be
    /// discarded.
    #[must_use]
    pub fn poll_event(&mut self, buf: &mut BytesMut) -> WsEvent {
        // Every round consumes a header or a payload piece, or returns: bounded by the input.
        for _ in 0..=2 * buf.len() + 2 {
            let step = match self.read {
                ReadState::Closed => return WsEvent::Closed,
                ReadState::Header => self.read_header(buf),
                ReadState::Payload {
                    header,
                    remaining,
                    offset,
                } => self.read_payload(buf, header, remaining, offset),
            };
            match step {
                Ok(Some(event)) => return event,
                Ok(None) => {}
                Err(e) => return self.fail(e),
            }
        }
        WsEvent::NeedData
    }

    /// The peer closed its sending side; poll again to learn what that means.
    pub fn handle_eof(&mut self) {
        self.peer_eof = true;
    }

    fn need_data(&mut self) -> Result<Option<WsEvent>, ProtocolError> {
        if self.peer_eof {
            return Err(ProtocolError::ConnectionLost);
        }
        Ok(Some(WsEvent::NeedData))
    }

    fn read_header(&mut self, buf: &mut BytesMut) -> Result<Option<WsEvent>, ProtocolError> {
        let Some((header, header_len)) = FrameHeader::parse(buf)? else {
            return self.need_data();
        };
        self.check_header(&header)?;
        if header.opcode.is_control() {
            // ≤ 125 bytes (checked by parse): wait for the whole frame.
            let total = header_len + header.payload_len as usize;
            if buf.len() < total {
                return self.need_data();
            }
            buf.advance(header_len);
            let mut payload = buf.split_to(header.payload_len as usize);
            if let Some(key) = header.mask {
                apply_mask(&mut payload, key, 0);
            }
            return self.on_control(header.opcode, payload.freeze());
        }
        let len = header.payload_len;
        match (header.opcode, &self.incoming) {
            (Opcode::Continuation, None) => return Err(ProtocolError::ContinuationWithoutStart),
            (Opcode::Text | Opcode::Binary, Some(_)) => {
                return Err(ProtocolError::DataFrameInsideMessage)
            }
            _ => {}
        }
        let compressed = header.rsv1
            || self
                .incoming
                .as_ref()
                .is_some_and(|incoming| incoming.compressed);
        if !compressed {
            // The decompressed size of a compressed message is checked as it inflates.
            let so_far = self.incoming.as_ref().map_or(0, |m| m.data.len()) as u64;
            if so_far.saturating_add(len) > self.config.max_message_size as u64 {
                return Err(ProtocolError::MessageTooLarge {
                    limit: self.config.max_message_size,
                });
            }
        }
        let kind = match header.opcode {
            Opcode::Text => Some(MessageKind::Text),
            Opcode::Binary => Some(MessageKind::Binary),
            _ => None,
        };
        if let Some(kind) = kind {
            let whole_frame = (header_len as u64).saturating_add(len) <= buf.len() as u64;
            if header.fin && !compressed && whole_frame {
                // Fast path: one frame, all here; a binary payload is shared, not copied.
                buf.advance(header_len);
                let mut payload = buf.split_to(len as usize);
                if let Some(key) = header.mask {
                    apply_mask(&mut payload, key, 0);
                }
                return Ok(Some(WsEvent::Message(finish_plain(kind, payload)?)));
            }
            self.incoming = Some(Incoming {
                kind,
                compressed,
                data: Vec::new(),
                utf8: Utf8Validator::new(),
            });
        }
        buf.advance(header_len);
        self.read = ReadState::Payload {
            header,
            remaining: len,
            offset: 0,
        };
        Ok(None)
    }

    /// Frame rules that depend on the connection: roles (§5.1) and extensions (§5.2).
    fn check_header(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        let rsv1_allowed =
            self.deflate.is_some() && matches!(header.opcode, Opcode::Text | Opcode::Binary);
        if header.rsv2 || header.rsv3 || (header.rsv1 && !rsv1_allowed) {
            return Err(ProtocolError::ReservedBits);
        }
        match (self.role, header.mask) {
            (Role::Server, None) => Err(ProtocolError::UnmaskedFrame),
            (Role::Client, Some(_)) => Err(ProtocolError::MaskedFrame),
            _ => Ok(()),
        }
    }

    fn read_payload(
        &mut self,
        buf: &mut BytesMut,
        header: FrameHeader,
        remaining: u64,
        offset: usize,
    ) -> Result<Option<WsEvent>, ProtocolError> {
        if remaining > 0 {
            if buf.is_empty() {
                return self.need_data();
            }
            let take = remaining.min(buf.len() as u64) as usize;
            let mut chunk = buf.split_to(take);
            if let Some(key) = header.mask {
                apply_mask(&mut chunk, key, offset);
            }
            self.absorb(&chunk)?;
            if remaining > take as u64 {
                self.read = ReadState::Payload {
                    header,
                    remaining: remaining - take as u64,
                    offset: offset.wrapping_add(take) % 4,
                };
                return self.need_data();
            }
        }
        self.read = ReadState::Header;
        if !header.fin {
            return Ok(None);
        }
        self.finish_message().map(|m| Some(WsEvent::Message(m)))
    }

    /// Adds a piece of payload to the message under way, validating text as it goes.
    fn absorb(&mut self, chunk: &[u8]) -> Result<(), ProtocolError> {
        let limit = self.config.max_message_size;
        let Some(incoming) = self.incoming.as_mut() else {
            return Ok(());
        };
        if incoming.compressed {
            let before = incoming.data.len();
            let inflated = match self.deflate.as_mut() {
                Some(codec) => codec.inflate(Some(chunk), &mut incoming.data, limit),
                None => Err(InflateError::Corrupt),
            };
            // Validate what came out before reporting an inflate error, so the first fault
            // in the message is reported whatever the input's split.
            if incoming.kind == MessageKind::Text
                && incoming.utf8.feed(&incoming.data[before..]).is_err()
            {
                return Err(ProtocolError::InvalidUtf8);
            }
            return inflated.map_err(|e| inflate_error(e, limit));
        }
        if incoming.kind == MessageKind::Text && incoming.utf8.feed(chunk).is_err() {
            return Err(ProtocolError::InvalidUtf8);
        }
        incoming.data.extend_from_slice(chunk);
        Ok(())
    }

    fn finish_message(&mut self) -> Result<Message, ProtocolError> {
        let limit = self.config.max_message_size;
        let Some(mut incoming) = self.incoming.take() else {
            return Err(ProtocolError::ContinuationWithoutStart);
        };
        if incoming.compressed {
            let before = incoming.data.len();
            let inflated = match self.deflate.as_mut() {
                Some(codec) => codec.inflate(None, &mut incoming.data, limit),
                None => Err(InflateError::Corrupt),
            };
            if incoming.kind == MessageKind::Text
                && incoming.utf8.feed(&incoming.data[before..]).is_err()
            {
                return Err(ProtocolError::InvalidUtf8);
            }
            inflated.map_err(|e| inflate_error(e, limit))?;
        }
        match incoming.kind {
            MessageKind::Binary => Ok(Message::Binary(Bytes::from(incoming.data))),
            MessageKind::Text if !incoming.utf8.is_complete() => Err(ProtocolError::InvalidUtf8),
            MessageKind::Text => String::from_utf8(incoming.data)
                .map(Message::Text)
                .map_err(|_| ProtocolError::InvalidUtf8),
        }
    }

    fn on_control(
        &mut self,
        opcode: Opcode,
        payload: Bytes,
    ) -> Result<Option<WsEvent>, ProtocolError> {
        match opcode {
            Opcode::Ping => {
                // §5.5.2: answer with the same payload; nothing follows our close.
                if !self.close_sent {
                    self.write_frame(Opcode::Pong, true, false, payload.clone());
                }
                Ok(Some(WsEvent::Ping(payload)))
            }
            Opcode::Pong => Ok(Some(WsEvent::Pong(payload))),
            _ => {
                let frame = parse_close_payload(&payload)?;
                self.close_received = true;
                self.read = ReadState::Closed;
                self.incoming = None;
                if !self.close_sent {
                    // §5.5.1: answer once, echoing the code (the reason is ours to omit).
                    let echo = frame.as_ref().map(|f| CloseFrame {
                        code: f.code,
                        reason: String::new(),
                    });
                    self.close_sent = true;
                    self.write_frame(Opcode::Close, true, false, close_payload(echo.as_ref()));
                }
                Ok(Some(WsEvent::Close(frame)))
            }
        }
    }

    /// Fails the connection (§7.1.7): queues the close frame for `error`, stops reading.
    fn fail(&mut self, error: ProtocolError) -> WsEvent {
        self.failed = true;
        self.read = ReadState::Closed;
        self.incoming = None;
        if !self.close_sent && error != ProtocolError::ConnectionLost {
            let mut reason = error.to_string();
            let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
            let frame = CloseFrame {
                code: error.close_code(),
                reason,
            };
            self.close_sent = true;
            self.write_frame(Opcode::Close, true, false, close_payload(Some(&frame)));
        }
        WsEvent::Error(error)
    }

    // ----- application mutators -------------------------------------------------------------

    /// Queues a whole message (compressed when permessage-deflate is on).
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        match message {
            Message::Text(text) => self.send_fragment(MessageKind::Text, Bytes::from(text), true),
            Message::Binary(data) => self.send_fragment(MessageKind::Binary, data, true),
        }
    }

    /// Queues a whole text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send_fragment(
            MessageKind::Text,
            Bytes::copy_from_slice(text.as_bytes()),
            true,
        )
    }

    /// Queues a whole binary message; unmasked (server) payloads are queued without a copy.
    pub fn send_binary(&mut self, data: Bytes) -> Result<(), SendError> {
        self.send_fragment(MessageKind::Binary, data, true)
    }

    /// Queues one fragment of a message: the first call starts a `kind` message, later
    /// calls (same `kind`) continue it, and `fin` ends it. Control frames may be sent between.
    ///
    /// Text fragments need not end on character boundaries; the whole message must be UTF-8.
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: Bytes,
        fin: bool,
    ) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        let (opcode, state) = match self.outgoing {
            Some(o) if o.kind != kind => return Err(SendError::MessageInProgress),
            Some(o) => (Opcode::Continuation, o),
            None => {
                let opcode = match kind {
                    MessageKind::Text => Opcode::Text,
                    MessageKind::Binary => Opcode::Binary,
                };
                let compressed = self.deflate.as_ref().is_some_and(DeflateCodec::compresses);
                (opcode, Outgoing { kind, compressed })
            }
        };
        let mut payload = data;
        if state.compressed {
            let codec = self.deflate.as_mut().ok_or(SendError::Compression)?;
            let compressed = codec
                .compress(&payload, fin)
                .map_err(|_| SendError::Compression)?;
            payload = Bytes::from(compressed);
        }
        // RFC 7692 §6.1: RSV1 marks the first frame of a compressed message only.
        let rsv1 = state.compressed && opcode != Opcode::Continuation;
        self.write_frame(opcode, fin, rsv1, payload);
        self.outgoing = if fin { None } else { Some(state) };
        Ok(())
    }

    /// Queues a ping (payload at most 125 bytes).
    pub fn send_ping(&mut self, payload: Bytes) -> Result<(), SendError> {
        self.send_control(Opcode::Ping, payload)
    }

    /// Queues an unsolicited pong (a heartbeat; pings are answered automatically).
    pub fn send_pong(&mut self, payload: Bytes) -> Result<(), SendError> {
        self.send_control(Opcode::Pong, payload)
    }

    fn send_control(&mut self, opcode: Opcode, payload: Bytes) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlPayloadTooLong);
        }
        self.write_frame(opcode, true, false, payload);
        Ok(())
    }

    /// Starts the close handshake with `frame` (`None`: no code); afterwards only the
    /// peer's close is awaited and nothing more may be sent.
    pub fn send_close(&mut self, frame: Option<CloseFrame>) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        if let Some(f) = &frame {
            if !f.code.is_sendable() {
                return Err(SendError::InvalidCloseCode(f.code.0));
            }
            if f.reason.len() > MAX_CONTROL_PAYLOAD - 2 {
                return Err(SendError::ControlPayloadTooLong);
            }
        }
        self.close_sent = true;
        self.write_frame(Opcode::Close, true, false, close_payload(frame.as_ref()));
        Ok(())
    }

    /// Convenience for `send_close` with a code and reason.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        self.send_close(Some(CloseFrame {
            code,
            reason: reason.to_owned(),
        }))
    }

    // ----- outputs ------------------------------------------------------------------------

    /// The next piece of output (frame bytes, in order); drain after every input and send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        match self.out.pop_front()? {
            Chunk::Bytes(frame) => Some(frame),
            Chunk::File(_) => unreachable!("frames are written from memory"),
        }
    }

    fn write_frame(&mut self, opcode: Opcode, fin: bool, rsv1: bool, payload: Bytes) {
        let mut header = FrameHeader::new(opcode, payload.len() as u64);
        header.fin = fin;
        header.rsv1 = rsv1;
        header.mask = self.mask.as_mut().map(|source| source());
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = header.write(&mut head);
        self.out.put_slice(&head[..n]);
        match header.mask {
            // A small payload is copied behind its header: the frame then leaves in one
            // send(2) rather than a two-part sendmsg, which costs the kernel more than the copy.
            None if payload.len() <= COALESCE_MAX => self.out.put_slice(&payload),
            None => self.out.put_bytes(payload),
            Some(key) => {
                let mut masked = payload.to_vec();
                apply_mask(&mut masked, key, 0);
                if masked.len() <= COALESCE_MAX {
                    self.out.put_slice(&masked);
                } else {
                    self.out.put_bytes(Bytes::from(masked));
                }
            }
        }
    }
}

fn inflate_error(e: InflateError, limit: usize) -> ProtocolError {
    match e {
        InflateError::TooLarge => ProtocolError::MessageTooLarge { limit },
        InflateError::Corrupt => ProtocolError::BadCompressedData,
    }
}

/// A single-frame uncompressed message from its unmasked payload.
fn finish_plain(kind: MessageKind, payload: BytesMut) -> Result<Message, ProtocolError> {
    match kind {
        MessageKind::Binary => Ok(Message::Binary(payload.freeze())),
        MessageKind::Text => {
            let mut utf8 = Utf8Validator::new();
            if utf8.feed(&payload).is_err() || !utf8.is_complete() {
                return Err(ProtocolError::InvalidUtf8);
            }
            String::from_utf8(payload.to_vec())
                .map(Message::Text)
                .map_err(|_| ProtocolError::InvalidUtf8)
        }
    }
}
