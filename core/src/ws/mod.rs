//! WebSocket (RFC 6455) with permessage-deflate (RFC 7692) as a pure state machine: frame
//! bytes in, events out; messages in, frame bytes out.
//!
//! Owns framing, the close handshake, UTF-8 and size limits, compression and the opening
//! handshake's header rules; never touches a socket, a clock or a random source.
//!
//! # Theory of operation
//!
//! A [`WsConn`] is built after the HTTP upgrade, for one [`Role`]. It has a *read side* that
//! walks frames (`Header → Payload → Header`, until `Closed`) and a *write side* that is
//! open until a close frame goes out; the close handshake (table on [`WsConn`]) joins them.
//!
//! * **Bytes in.** The caller owns the read buffer (`BytesMut`) and hands it to
//!   [`WsConn::poll_event`], which consumes what it used. [`FrameHeader::parse`] checks what
//!   is wrong in any state (reserved opcodes, length forms, control frame limits);
//!   `WsConn` checks what depends on the connection (masking by role, RSV1 only with
//!   permessage-deflate, fragment order). Data payloads are taken piece by piece as they
//!   arrive: unmasked in place, inflated if compressed, checked against
//!   `max_message_size` (after inflation, so a deflate bomb stops at the limit) and, for
//!   text, run through an incremental [`Utf8Validator`] so a bad byte fails the message
//!   where it is. An unfragmented, uncompressed binary frame that is all in the buffer is
//!   split off it without a copy.
//! * **Events out.** `Message`, `Ping`, `Pong`, `Close`, `Error`; `NeedData` when the
//!   buffer holds nothing complete; `Closed` once nothing more is read. Every violation is
//!   one `Error` whose [`ProtocolError::close_code`] (1002, 1007, 1009) went out in a
//!   close frame; no input panics (see the `ws_frames` fuzz target).
//! * **Automatic answers.** A ping queues its pong; a close queues the echoing close once.
//! * **Messages in, bytes out.** `send_*` queue frames in an internal [`OutQueue`]
//!   (`Bytes`, large unmasked payloads not copied), drained by [`WsConn::poll_transmit`].
//!   Client frames are masked with keys from a caller-supplied [`MaskSource`], so the
//!   machine stays deterministic.
//!
//! The opening handshake lives in [`handshake`]: [`validate_request`] and
//! [`UpgradeRequest::response_headers`] for servers, [`ClientHandshake`] for clients, and
//! [`DeflateConfig`] negotiates the extension for both.
//!
//! ```
//! use bytes::BytesMut;
//! use eddy_core::ws::{WsConn, WsConfig, WsEvent, Message};
//!
//! let mut server = WsConn::server(WsConfig::default(), None);
//! // A masked text frame "Hi" from a client (RFC 6455 §5.7).
//! let mut buf = BytesMut::from(&[0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2][..]);
//! assert_eq!(server.poll_event(&mut buf), WsEvent::Message(Message::Text("Hi".into())));
//! server.send_text("Hello").unwrap();
//! assert_eq!(&server.poll_transmit().unwrap()[..], b"\x81\x05Hello");
//! ```
//!
//! [`OutQueue`]: crate::http::OutQueue

mod close;
mod conn;
pub mod deflate;
mod error;
pub mod extension;
pub mod frame;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod handshake;
mod socket;
mod utf8;

pub use close::{close_payload, parse_close_payload, CloseCode, CloseFrame};
pub use conn::{
    MaskSource, Message, MessageKind, Role, WsConfig, WsConn, WsEvent, DEFAULT_MAX_MESSAGE_SIZE,
};
pub use deflate::{DeflateCodec, DeflateConfig, DeflateParams};
pub use error::{HandshakeError, ProtocolError, SendError};
pub use extension::{Extension, ExtensionParam};
pub use frame::{apply_mask, FrameHeader, Opcode};
pub use handshake::{
    accept_key, client_key, rejection_headers, validate_request, ClientHandshake, Negotiated,
    UpgradeRequest,
};
pub use socket::{
    connect, AcceptError, CloseStatus, ConnectError, WebSocket, WsConnect, WsOptions, WsSender,
};
pub use utf8::{Utf8Error, Utf8Validator};
