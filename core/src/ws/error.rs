//! Error values of the WebSocket machine and its handshake, each with the code that answers it.

use http::StatusCode;

use super::close::CloseCode;

/// The peer broke RFC 6455 or RFC 7692, or a limit; the connection fails with
/// [`close_code`](ProtocolError::close_code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// An opcode of the reserved ranges 3-7 or 0xB-0xF (§5.2).
    #[error("frame uses reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// RSV1-3 set without a negotiated extension defining them (§5.2), or RSV1 on a control
    /// or continuation frame under permessage-deflate (RFC 7692 §6).
    #[error("frame sets reserved bits no negotiated extension defines")]
    ReservedBits,
    /// A client sent an unmasked frame (§5.1).
    #[error("client frame is not masked")]
    UnmaskedFrame,
    /// A server sent a masked frame (§5.1).
    #[error("server frame is masked")]
    MaskedFrame,
    /// A length used a longer form than needed (§5.2).
    #[error("frame length not in its minimal form")]
    NonMinimalLength,
    /// A 64-bit length with the most significant bit set (§5.2).
    #[error("64-bit frame length has its high bit set")]
    LengthHighBit,
    /// A control frame with a payload over 125 bytes (§5.5).
    #[error("control frame payload longer than 125 bytes")]
    ControlFrameTooLong,
    /// A control frame without FIN (§5.5).
    #[error("control frame is fragmented")]
    FragmentedControlFrame,
    /// A continuation frame with no message under way (§5.4).
    #[error("continuation frame without a message to continue")]
    ContinuationWithoutStart,
    /// A text or binary frame while a fragmented message is unfinished (§5.4).
    #[error("new data frame before the fragmented message finished")]
    DataFrameInsideMessage,
    /// A close payload of one byte (§5.5.1).
    #[error("close frame payload of one byte")]
    CloseFrameOneByte,
    /// A close code that may not be sent (§7.4).
    #[error("close frame carries invalid code {0}")]
    InvalidCloseCode(u16),
    /// A close reason that is not UTF-8 (§5.5.1).
    #[error("close reason is not valid UTF-8")]
    CloseReasonNotUtf8,
    /// A text message that is not UTF-8, found at its first bad byte (§8.1).
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// A message (after decompression) larger than `max_message_size`.
    #[error("message larger than max_message_size ({limit} bytes)")]
    MessageTooLarge {
        /// The configured `max_message_size`.
        limit: usize,
    },
    /// A compressed message that does not inflate (RFC 7692 §7.2.2).
    #[error("compressed message is not valid DEFLATE data")]
    BadCompressedData,
    /// The connection ended before the close handshake finished.
    #[error("connection closed without a close handshake")]
    ConnectionLost,
}

impl ProtocolError {
    /// The close code that reports this error (1006 is never sent: the peer is gone).
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::CloseReasonNotUtf8
            | ProtocolError::InvalidUtf8
            | ProtocolError::BadCompressedData => CloseCode::INVALID_PAYLOAD,
            ProtocolError::MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            ProtocolError::ConnectionLost => CloseCode::ABNORMAL,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// A frame the application tried to send that the connection cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// A close frame was already sent (or the connection failed): nothing more may be sent.
    #[error("close frame already sent; the connection takes no more frames")]
    Closed,
    /// A ping, pong or close payload over 125 bytes.
    #[error("control frame payload longer than 125 bytes")]
    ControlPayloadTooLong,
    /// A close code reserved for reporting (1005, 1006, 1015) or otherwise not sendable.
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// A fragment of the other kind while a fragmented message is unfinished.
    #[error("a fragmented message is still being sent; finish it first")]
    MessageInProgress,
    /// The permessage-deflate compressor failed; nothing was queued, but the compression
    /// context may be damaged, so close the connection.
    #[error("permessage-deflate compressor failed; close the connection")]
    Compression,
    /// More than the session's write limit is queued unwritten: the peer reads too slowly
    /// (wait with the async `send`, or close it).
    #[error("{queued} bytes already queued for a slow peer (limit {limit}); nothing was queued")]
    BufferFull {
        /// Bytes queued and not yet written.
        queued: usize,
        /// The session's `write_limit`.
        limit: usize,
    },
}

/// Why an opening handshake was refused, with the HTTP status that answers it (server side)
/// or the reason to fail the connection (client side).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The request method is not GET (RFC 6455 §4.1); answer 405 with `Allow: GET`.
    #[error("WebSocket upgrade requires GET")]
    MethodNotGet,
    /// `Upgrade` does not name `websocket`.
    #[error("Upgrade header must name websocket")]
    BadUpgrade,
    /// `Connection` does not contain the `upgrade` token.
    #[error("Connection header must contain upgrade")]
    BadConnection,
    /// `Sec-WebSocket-Version` is missing or not 13; answer 426 with `Sec-WebSocket-Version: 13`.
    #[error("unsupported Sec-WebSocket-Version; this server speaks 13")]
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` is missing, repeated, or not 16 bytes in base64.
    #[error("Sec-WebSocket-Key must be 16 bytes in base64")]
    BadKey,
    /// `Sec-WebSocket-Protocol` is not a comma-separated list of tokens.
    #[error("malformed Sec-WebSocket-Protocol list")]
    BadProtocolList,
    /// The server answered with a status other than 101.
    #[error("server answered {0} instead of 101 Switching Protocols")]
    NotSwitching(StatusCode),
    /// `Sec-WebSocket-Accept` is missing or does not match the key sent.
    #[error("Sec-WebSocket-Accept does not match the key")]
    BadAccept,
    /// The server chose a subprotocol not offered (or one when none was offered).
    #[error("server selected a subprotocol that was not offered")]
    UnexpectedProtocol,
    /// The server's `Sec-WebSocket-Extensions` is malformed, unknown or not what was offered.
    #[error("server extension response not acceptable: {0}")]
    BadExtensions(&'static str),
    /// The application chose a subprotocol the client did not offer.
    #[error("selected subprotocol was not offered by the client")]
    ProtocolNotOffered,
}

impl HandshakeError {
    /// The status a server answers this error with (client-side errors map to 400 too).
    pub fn status(&self) -> StatusCode {
        match self {
            HandshakeError::MethodNotGet => StatusCode::METHOD_NOT_ALLOWED,
            HandshakeError::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            HandshakeError::ProtocolNotOffered => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}
