//! Frame syntax (RFC 6455 §5.2): header parsing and writing, opcodes and masking.
//!
//! Owns the byte layout of a frame header and nothing else: which frames are allowed in
//! which state (fragmentation, roles, extensions) is [`WsConn`](super::WsConn)'s business.

use super::error::ProtocolError;

/// Largest header: 2 fixed bytes, 8 length bytes, 4 mask bytes.
pub const MAX_HEADER_LEN: usize = 14;

/// Largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame's opcode (RFC 6455 §5.2); reserved values never get this far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// 0x0: a later fragment of a text or binary message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: the close handshake.
    Close,
    /// 0x9: a ping, answered by a pong with the same payload.
    Ping,
    /// 0xA: a pong (an answer, or an unsolicited heartbeat).
    Pong,
}

impl Opcode {
    /// The opcode for a 4-bit value, or `None` for the reserved values 3-7 and 0xB-0xF.
    pub fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit value on the wire.
    pub fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// True for close, ping and pong (opcodes with the high bit set).
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

/// One parsed or to-be-written frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Last frame of its message (always set on control frames).
    pub fin: bool,
    /// RSV1: "compressed" under permessage-deflate, reserved otherwise.
    pub rsv1: bool,
    /// RSV2: reserved (no extension here defines it).
    pub rsv2: bool,
    /// RSV3: reserved (no extension here defines it).
    pub rsv3: bool,
    /// What the frame carries.
    pub opcode: Opcode,
    /// The masking key, present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// A FIN header without reserved bits or mask.
    pub fn new(opcode: Opcode, payload_len: u64) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
            payload_len,
        }
    }

    /// Parses a header from the front of `buf`: `Ok(None)` until it is complete, then the
    /// header and its length in bytes.
    ///
    /// Rejects what is wrong whatever the connection's state: reserved opcodes, control
    /// frames that are fragmented or longer than 125 bytes, non-minimal lengths, and 64-bit
    /// lengths with the high bit set. Checks that need only the first two bytes run before
    /// the rest of the header is awaited, so an error does not depend on how input is split.
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let opcode =
            Opcode::from_bits(b0 & 0x0F).ok_or(ProtocolError::ReservedOpcode(b0 & 0x0F))?;
        let fin = b0 & 0x80 != 0;
        let len7 = b1 & 0x7F;
        if opcode.is_control() {
            // RFC 6455 §5.5: control frames are short and never fragmented.
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if len7 as usize > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::ControlFrameTooLong);
            }
        }
        let masked = b1 & 0x80 != 0;
        let len_bytes = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + len_bytes + if masked { 4 } else { 0 };
        if buf.len() < header_len {
            return Ok(None);
        }
        let payload_len = match len7 {
            126 => {
                let n = u16::from_be_bytes([buf[2], buf[3]]) as u64;
                // §5.2: "the minimal number of bytes MUST be used to encode the length".
                if n < 126 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                n
            }
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&buf[2..10]);
                let n = u64::from_be_bytes(be);
                if n >> 63 != 0 {
                    return Err(ProtocolError::LengthHighBit);
                }
                if n <= u16::MAX as u64 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                n
            }
            n => n as u64,
        };
        let mask = masked.then(|| {
            let at = 2 + len_bytes;
            [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]
        });
        let header = FrameHeader {
            fin,
            rsv1: b0 & 0x40 != 0,
            rsv2: b0 & 0x20 != 0,
            rsv3: b0 & 0x10 != 0,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, header_len)))
    }

    /// Writes the header into `dst` with the minimal length form; returns its length.
    pub fn write(&self, dst: &mut [u8; MAX_HEADER_LEN]) -> usize {
        dst[0] = (self.fin as u8) << 7
            | (self.rsv1 as u8) << 6
            | (self.rsv2 as u8) << 5
            | (self.rsv3 as u8) << 4
            | self.opcode.bits();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut at = match self.payload_len {
            n @ 0..=125 => {
                dst[1] = mask_bit | n as u8;
                2
            }
            n @ 126..=0xFFFF => {
                dst[1] = mask_bit | 126;
                dst[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                4
            }
            n => {
                dst[1] = mask_bit | 127;
                dst[2..10].copy_from_slice(&n.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            dst[at..at + 4].copy_from_slice(&key);
            at += 4;
        }
        at
    }
}

/// XORs `data` with the masking key (RFC 6455 §5.3), as if `data` started `offset` bytes
/// into the payload; applying it twice restores the data.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let rotated = [
        key[offset % 4],
        key[(offset + 1) % 4],
        key[(offset + 2) % 4],
        key[(offset + 3) % 4],
    ];
    let wide = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2],
        rotated[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= rotated[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_in_every_length_form() {
        for len in [0u64, 1, 125, 126, 127, 0xFFFF, 0x1_0000, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut h = FrameHeader::new(Opcode::Binary, len);
                h.mask = mask;
                h.rsv1 = len % 2 == 0;
                let mut dst = [0u8; MAX_HEADER_LEN];
                let n = h.write(&mut dst);
                assert_eq!(FrameHeader::parse(&dst[..n]), Ok(Some((h, n))));
                assert_eq!(FrameHeader::parse(&dst[..n - 1]), Ok(None));
            }
        }
    }

    #[test]
    fn mask_matches_bytewise_xor_at_every_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..41).collect();
        for offset in 0..8 {
            let mut fast = data.clone();
            apply_mask(&mut fast, key, offset);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[(i + offset) % 4])
                .collect();
            assert_eq!(fast, slow);
        }
    }
}
