//! Body of the `ws_frames` fuzz target, shared by `fuzz/` and the corpus replay test, plus
//! the transcript driver the tests use (feed bytes in given splits, record what happens).
//!
//! The entry point compares a split run with a whole run: events and output bytes must not
//! depend on how input was chunked, and everything the machine wrote must parse cleanly
//! for a peer of the other role.

use crate::http::fuzz_entry::piece_size;
use bytes::BytesMut;

use super::{
    CloseCode, DeflateParams, MaskSource, Message, MessageKind, ProtocolError, Role, WsConfig,
    WsConn, WsEvent,
};

/// One observable event (`NeedData` is not: it depends on the split).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    /// A whole message.
    Message(MessageKind, Vec<u8>),
    /// A ping payload.
    Ping(Vec<u8>),
    /// A pong payload.
    Pong(Vec<u8>),
    /// The peer's close: its code and reason, if any.
    Close(Option<(u16, String)>),
    /// A protocol error.
    Error(ProtocolError),
    /// Nothing more is read.
    Closed,
}

/// What a driven connection did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transcript {
    /// Events in order.
    pub events: Vec<Ev>,
    /// Every byte the machine wrote.
    pub output: Vec<u8>,
    /// The machine's close flags at the end: (close sent, close received, may close TCP).
    pub close_state: (bool, bool, bool),
}

/// How to build the machine under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// Which end the machine is.
    pub role: Role,
    /// Negotiated permessage-deflate, if on.
    pub deflate: Option<DeflateParams>,
    /// Limits.
    pub config: WsConfig,
}

impl Setup {
    /// A server without extensions and with the given message limit.
    pub fn server(max_message_size: usize) -> Setup {
        Setup {
            role: Role::Server,
            deflate: None,
            config: WsConfig { max_message_size },
        }
    }

    /// Reads a setup from a fuzz input's first byte: bit 0 client, bit 1 deflate, bits 2-3
    /// no-context-takeover (server, client), bit 4 a 100-byte limit, bit 5 9-bit windows.
    pub fn from_flags(flags: u8) -> Setup {
        let deflate = (flags & 2 != 0).then(|| DeflateParams {
            server_no_context_takeover: flags & 4 != 0,
            client_no_context_takeover: flags & 8 != 0,
            server_max_window_bits: (flags & 32 != 0).then_some(9),
            client_max_window_bits: (flags & 32 != 0).then_some(9),
            level: 6,
        });
        Setup {
            role: if flags & 1 != 0 {
                Role::Client
            } else {
                Role::Server
            },
            deflate,
            config: WsConfig {
                max_message_size: if flags & 16 != 0 { 100 } else { 1 << 16 },
            },
        }
    }

    /// The machine this setup describes (clients mask with [`counter_mask`]).
    pub fn conn(&self) -> WsConn {
        match self.role {
            Role::Server => WsConn::server(self.config.clone(), self.deflate.as_ref()),
            Role::Client => {
                WsConn::client(self.config.clone(), self.deflate.as_ref(), counter_mask(1))
            }
        }
    }

    /// The same setup for the other end of the connection.
    pub fn peer(&self) -> Setup {
        Setup {
            role: match self.role {
                Role::Server => Role::Client,
                Role::Client => Role::Server,
            },
            ..self.clone()
        }
    }
}

/// Deterministic, varying masking keys (tests need no randomness; real clients do).
pub fn counter_mask(seed: u32) -> MaskSource {
    let mut n = seed;
    Box::new(move || {
        n = n.wrapping_mul(0x9E37_79B9).wrapping_add(0x7F4A_7C15);
        n.to_le_bytes()
    })
}

/// Converts an event for a transcript; `None` for `NeedData`.
pub fn record(event: WsEvent) -> Option<Ev> {
    Some(match event {
        WsEvent::Message(Message::Text(t)) => Ev::Message(MessageKind::Text, t.into_bytes()),
        WsEvent::Message(Message::Binary(b)) => Ev::Message(MessageKind::Binary, b.to_vec()),
        WsEvent::Ping(p) => Ev::Ping(p.to_vec()),
        WsEvent::Pong(p) => Ev::Pong(p.to_vec()),
        WsEvent::Close(f) => Ev::Close(f.map(|f| (f.code.0, f.reason))),
        WsEvent::Error(e) => Ev::Error(e),
        WsEvent::Closed => Ev::Closed,
        WsEvent::NeedData => return None,
    })
}

/// Drains every event `conn` has for `buf` into `t`; returns false once `Closed`.
pub fn pump(conn: &mut WsConn, buf: &mut BytesMut, t: &mut Transcript) -> bool {
    // Each event consumes input or ends reading, so this is bounded by the input.
    for _ in 0..buf.len() + 4 {
        let event = conn.poll_event(buf);
        while let Some(bytes) = conn.poll_transmit() {
            t.output.extend_from_slice(&bytes);
        }
        match record(event) {
            None => return true,
            Some(Ev::Closed) => {
                t.events.push(Ev::Closed);
                return false;
            }
            Some(ev) => t.events.push(ev),
        }
    }
    panic!("WebSocket machine made no progress");
}

/// Feeds `input` in pieces of the given sizes (cycled; 0 means 1), then EOF if `eof`.
pub fn drive(setup: &Setup, input: &[u8], sizes: &[usize], eof: bool) -> Transcript {
    let mut conn = setup.conn();
    let mut t = Transcript::default();
    let mut buf = BytesMut::new();
    let (mut pos, mut k) = (0, 0);
    let mut open = true;
    while pos < input.len() && open {
        let size = piece_size(sizes, k, 1);
        let end = (pos + size).min(input.len());
        buf.extend_from_slice(&input[pos..end]);
        pos = end;
        k += 1;
        open = pump(&mut conn, &mut buf, &mut t);
    }
    if open && eof {
        conn.handle_eof();
        pump(&mut conn, &mut buf, &mut t);
    }
    t.close_state = (
        conn.close_sent(),
        conn.close_received(),
        conn.should_close_tcp(),
    );
    t
}

/// Checks what `t` wrote parses for the peer: no protocol error, and if `t` failed with an
/// error that is reported on the wire, the last thing the peer sees is a close with its code.
pub fn check_output(setup: &Setup, t: &Transcript) {
    let seen = drive(&setup.peer(), &t.output, &[t.output.len().max(1)], true);
    let peer_errors: Vec<_> = seen
        .events
        .iter()
        .filter(|e| matches!(e, Ev::Error(e) if *e != ProtocolError::ConnectionLost))
        .collect();
    assert!(
        peer_errors.is_empty(),
        "peer rejects our output: {peer_errors:?}"
    );
    let closes = seen
        .events
        .iter()
        .filter(|e| matches!(e, Ev::Close(_)))
        .count();
    assert!(closes <= 1, "more than one close frame written");
    let first_error = t.events.iter().find_map(|e| match e {
        Ev::Error(e) if *e != ProtocolError::ConnectionLost => Some(e.clone()),
        _ => None,
    });
    let peer_close = seen.events.iter().find_map(|e| match e {
        Ev::Close(c) => Some(c.clone()),
        _ => None,
    });
    if let Some(error) = first_error {
        let answered_close = t.events.iter().any(|e| matches!(e, Ev::Close(_)));
        if !answered_close {
            let code = peer_close.flatten().map(|(c, _)| CloseCode(c));
            assert_eq!(
                code,
                Some(error.close_code()),
                "error not reported in a close"
            );
        }
    }
}

/// Splits fuzz input into the setup flags, chunk sizes and the payload.
pub fn split_input(data: &[u8]) -> (Setup, Vec<usize>, &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return (Setup::from_flags(0), vec![1], data);
    };
    let (sizes, payload) = crate::http::fuzz_entry::split_sizes(rest);
    (Setup::from_flags(flags), sizes, payload)
}

/// Fuzz target `ws_frames`: arbitrary frame bytes in arbitrary splits give the same events
/// and output as the whole input, never panic, and the output is valid for the peer.
pub fn ws_frames(data: &[u8]) {
    let (setup, sizes, input) = split_input(data);
    let whole = drive(&setup, input, &[input.len().max(1)], true);
    let split = drive(&setup, input, &sizes, true);
    assert_eq!(whole, split, "split run differs from whole run");
    check_output(&setup, &whole);
}

/// Feeds `input` whole, byte by byte and split once at every point (then EOF if `eof`);
/// asserts every run gives the same transcript and returns it.
pub fn drive_all_splits(setup: &Setup, input: &[u8], eof: bool) -> Transcript {
    let whole = drive(setup, input, &[input.len().max(1)], eof);
    let bytewise = drive(setup, input, &[1], eof);
    assert_eq!(whole, bytewise, "byte-by-byte run differs from whole run");
    for at in 1..input.len() {
        let split = drive(setup, input, &[at, input.len()], eof);
        assert_eq!(whole, split, "run split at {at} differs from whole run");
    }
    whole
}

/// A frame with the given first byte (FIN, RSV, opcode), in the minimal length form,
/// masked with `mask` if given.
pub fn frame_bytes(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut header = super::FrameHeader::new(super::Opcode::Binary, payload.len() as u64);
    header.mask = mask;
    let mut head = [0u8; super::frame::MAX_HEADER_LEN];
    let n = header.write(&mut head);
    head[0] = b0;
    let mut out = head[..n].to_vec();
    let mut body = payload.to_vec();
    if let Some(key) = mask {
        super::apply_mask(&mut body, key, 0);
    }
    out.extend_from_slice(&body);
    out
}

/// A masked frame as a client sends it (FIN set when `fin`), for a server under test.
pub fn client_frame(opcode: u8, payload: &[u8], fin: bool) -> Vec<u8> {
    let b0 = if fin { 0x80 } else { 0 } | opcode;
    frame_bytes(b0, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}
