//! permessage-deflate (RFC 7692): negotiating its parameters, and compressing and
//! inflating whole messages with or without context takeover.
//!
//! Outgoing messages are deflated with a sync flush and lose the flush's `00 00 ff ff`
//! tail (§7.2.1); incoming ones get it back before inflating (§7.2.2). Inflating always
//! uses a 32 KiB window, which decodes any smaller window too (and zlib's habit of using a
//! 512-byte window when asked for 256 bytes). Compression honours the negotiated window;
//! 256 bytes (8 bits) is below what zlib can produce, so then messages go out uncompressed,
//! which RFC 7692 always allows.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use http::HeaderValue;

use super::error::HandshakeError;
use super::extension::{render_extensions, Extension, ExtensionParam};
use super::Role;

/// The extension token.
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// The tail a sync flush ends with, stripped on the wire (RFC 7692 §7.2.1).
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Smallest window zlib can compress with (raw deflate refuses 8 bits).
const MIN_COMPRESS_WINDOW_BITS: u8 = 9;

/// What this endpoint asks for or allows when negotiating permessage-deflate.
///
/// As a server: which offers to accept and what to add to the answer. As a client: what to
/// offer, and so what an acceptable answer looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// Upper bound of the server's compression window (8-15 bits); `None` is 15.
    pub server_max_window_bits: Option<u8>,
    /// Upper bound of the client's compression window (8-15 bits); `None` is 15.
    pub client_max_window_bits: Option<u8>,
    /// zlib compression level, 0-9.
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> DeflateConfig {
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
            level: 6,
        }
    }
}

/// The negotiated permessage-deflate parameters, as written in the server's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compression context after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compression context after each message.
    pub client_no_context_takeover: bool,
    /// The server's window bound in bits, if the answer names one (else 15).
    pub server_max_window_bits: Option<u8>,
    /// The client's window bound in bits, if the answer names one (else 15).
    pub client_max_window_bits: Option<u8>,
    /// Local compression level (not negotiated), 0-9.
    pub level: u32,
}

/// A parameter set of one offer or answer, each known parameter at most once.
#[derive(Debug, Default)]
struct ParsedParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// Outer `Some`: present; inner: its value.
    client_max_window_bits: Option<Option<u8>>,
}

/// A window-bits value: a decimal 8-15 without leading zeros (RFC 7692 §7.1.2).
fn window_bits(value: &str) -> Option<u8> {
    match value.as_bytes() {
        [b'8'] => Some(8),
        [b'9'] => Some(9),
        [b'1', d @ b'0'..=b'5'] => Some(10 + (d - b'0')),
        _ => None,
    }
}

fn clamp_bits(bits: Option<u8>) -> Option<u8> {
    bits.map(|b| b.clamp(8, 15))
}

impl ParsedParams {
    /// Reads the parameters of one permessage-deflate element; `None` if any is unknown,
    /// repeated or has a bad value (§7: such an offer is declined, such an answer fails).
    fn parse(params: &[ExtensionParam]) -> Option<ParsedParams> {
        let mut p = ParsedParams::default();
        let mut seen = [false; 4];
        for param in params {
            let (slot, ok) = match param.name.as_str() {
                "server_no_context_takeover" => {
                    p.server_no_context_takeover = true;
                    (0, param.value.is_none())
                }
                "client_no_context_takeover" => {
                    p.client_no_context_takeover = true;
                    (1, param.value.is_none())
                }
                "server_max_window_bits" => {
                    p.server_max_window_bits = param.value.as_deref().and_then(window_bits);
                    (2, p.server_max_window_bits.is_some())
                }
                "client_max_window_bits" => match param.value.as_deref() {
                    None => {
                        p.client_max_window_bits = Some(None);
                        (3, true)
                    }
                    Some(v) => {
                        p.client_max_window_bits = Some(window_bits(v));
                        (3, window_bits(v).is_some())
                    }
                },
                _ => return None,
            };
            if !ok || std::mem::replace(&mut seen[slot], true) {
                return None;
            }
        }
        Some(p)
    }
}

impl DeflateConfig {
    /// Server side: the first acceptable permessage-deflate offer, as the parameters to
    /// run with and answer with; `None` declines the extension.
    ///
    /// Offers with unknown, repeated or invalid parameters are skipped (RFC 7692 §5.1).
    pub fn negotiate(&self, offers: &[Extension]) -> Option<DeflateParams> {
        offers
            .iter()
            .filter(|e| e.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE))
            .find_map(|e| self.accept_offer(&ParsedParams::parse(&e.params)?))
    }

    fn accept_offer(&self, offer: &ParsedParams) -> Option<DeflateParams> {
        let ours = clamp_bits(self.server_max_window_bits);
        // §7.1.2.1: the answer may name a window the offer did not, or a smaller one.
        let server_max_window_bits = match (offer.server_max_window_bits, ours) {
            (Some(asked), Some(ours)) => Some(asked.min(ours)),
            (asked, ours) => asked.or(ours),
        };
        // §7.1.2.2: only answer client_max_window_bits if the client offered it.
        let client_max_window_bits = match offer.client_max_window_bits {
            None => None,
            Some(None) => clamp_bits(self.client_max_window_bits),
            Some(Some(hint)) => {
                Some(clamp_bits(self.client_max_window_bits).map_or(hint, |c| c.min(hint)))
            }
        };
        Some(DeflateParams {
            server_no_context_takeover: offer.server_no_context_takeover
                || self.server_no_context_takeover,
            client_no_context_takeover: offer.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
            level: self.level.min(9),
        })
    }

    /// Client side: the offer to send as `Sec-WebSocket-Extensions`.
    ///
    /// Always announces `client_max_window_bits`: any bound the server picks can be honoured.
    pub fn offer(&self) -> Extension {
        let mut params = Vec::new();
        let flag = |name: &str| ExtensionParam {
            name: name.into(),
            value: None,
        };
        if self.server_no_context_takeover {
            params.push(flag("server_no_context_takeover"));
        }
        if self.client_no_context_takeover {
            params.push(flag("client_no_context_takeover"));
        }
        if let Some(bits) = clamp_bits(self.server_max_window_bits) {
            params.push(ExtensionParam {
                name: "server_max_window_bits".into(),
                value: Some(bits.to_string()),
            });
        }
        params.push(ExtensionParam {
            name: "client_max_window_bits".into(),
            value: clamp_bits(self.client_max_window_bits).map(|b| b.to_string()),
        });
        Extension {
            name: PERMESSAGE_DEFLATE.into(),
            params,
        }
    }

    /// Client side: checks the server's answer to [`offer`](Self::offer); `Ok(None)` when
    /// the server declined the extension.
    pub fn accept_answer(
        &self,
        answer: &[Extension],
    ) -> Result<Option<DeflateParams>, HandshakeError> {
        let bad = HandshakeError::BadExtensions;
        let [ext] = answer else {
            return if answer.is_empty() {
                Ok(None)
            } else {
                Err(bad("more than one extension in the answer"))
            };
        };
        if !ext.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE) {
            return Err(bad("server answered an extension that was not offered"));
        }
        let p = ParsedParams::parse(&ext.params).ok_or(bad(
            "unknown, repeated or invalid permessage-deflate parameter",
        ))?;
        if self.server_no_context_takeover && !p.server_no_context_takeover {
            return Err(bad("server ignored server_no_context_takeover"));
        }
        let asked = clamp_bits(self.server_max_window_bits);
        match (asked, p.server_max_window_bits) {
            (Some(_), None) => return Err(bad("server ignored server_max_window_bits")),
            (Some(asked), Some(got)) if got > asked => {
                return Err(bad("server_max_window_bits above the offer"))
            }
            _ => {}
        }
        let client_max_window_bits = match p.client_max_window_bits {
            None => None,
            Some(None) => return Err(bad("client_max_window_bits without a value")),
            Some(Some(got)) => {
                if clamp_bits(self.client_max_window_bits).is_some_and(|asked| got > asked) {
                    return Err(bad("client_max_window_bits above the offer"));
                }
                Some(got)
            }
        };
        Ok(Some(DeflateParams {
            server_no_context_takeover: p.server_no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits: p.server_max_window_bits,
            client_max_window_bits,
            level: self.level.min(9),
        }))
    }
}

impl DeflateParams {
    /// The answer element a server sends for these parameters.
    pub fn answer(&self) -> Extension {
        let mut params = Vec::new();
        let mut push = |name: &str, value: Option<u8>| {
            params.push(ExtensionParam {
                name: name.into(),
                value: value.map(|v| v.to_string()),
            })
        };
        if self.server_no_context_takeover {
            push("server_no_context_takeover", None);
        }
        if self.client_no_context_takeover {
            push("client_no_context_takeover", None);
        }
        if let Some(bits) = self.server_max_window_bits {
            push("server_max_window_bits", Some(bits));
        }
        if let Some(bits) = self.client_max_window_bits {
            push("client_max_window_bits", Some(bits));
        }
        Extension {
            name: PERMESSAGE_DEFLATE.into(),
            params,
        }
    }

    /// The answer as a `Sec-WebSocket-Extensions` value.
    pub fn answer_header(&self) -> HeaderValue {
        HeaderValue::try_from(render_extensions(&[self.answer()]))
            .unwrap_or_else(|_| HeaderValue::from_static(PERMESSAGE_DEFLATE))
    }
}

/// The inflated message would exceed the limit, or the data is not DEFLATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// More than the limit came out.
    TooLarge,
    /// The compressed data is corrupt.
    Corrupt,
}

/// The compressor failed (or compression is off); the message cannot be sent compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("permessage-deflate compressor failed")]
pub struct CompressError;

/// One endpoint's permessage-deflate state: its compressor and the peer's decompressor.
pub struct DeflateCodec {
    /// `None` when the negotiated window is too small for zlib: send uncompressed.
    compress: Option<Compress>,
    reset_compress: bool,
    decompress: Decompress,
    reset_decompress: bool,
    /// The peer's stream hit a BFINAL block in the current message; the rest is skipped.
    stream_ended: bool,
}

impl std::fmt::Debug for DeflateCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeflateCodec")
            .field("compresses", &self.compress.is_some())
            .field("reset_compress", &self.reset_compress)
            .field("reset_decompress", &self.reset_decompress)
            .finish()
    }
}

impl DeflateCodec {
    /// The codec for `role` under the negotiated parameters.
    pub fn new(params: &DeflateParams, role: Role) -> DeflateCodec {
        let (own_bits, own_reset, peer_reset) = match role {
            Role::Server => (
                params.server_max_window_bits,
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            ),
            Role::Client => (
                params.client_max_window_bits,
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            ),
        };
        let bits = own_bits.unwrap_or(15).min(15);
        let compress = (bits >= MIN_COMPRESS_WINDOW_BITS).then(|| {
            Compress::new_with_window_bits(Compression::new(params.level.min(9)), false, bits)
        });
        DeflateCodec {
            compress,
            reset_compress: own_reset,
            decompress: Decompress::new(false),
            reset_decompress: peer_reset,
            stream_ended: false,
        }
    }

    /// True when outgoing messages are compressed (false if the window is below 512 bytes).
    pub fn compresses(&self) -> bool {
        self.compress.is_some()
    }

    /// Deflates one piece of an outgoing message; the last piece (`fin`) loses the sync
    /// tail and, without context takeover, resets the compressor.
    pub fn compress(&mut self, data: &[u8], fin: bool) -> Result<Vec<u8>, CompressError> {
        let c = self.compress.as_mut().ok_or(CompressError)?;
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let mut pos = 0;
        let mut flushed = false;
        // zlib: repeat a sync flush until all input is taken and output space is left over.
        // Every round but the last takes input or fills the buffer, which then doubles.
        for _ in 0..data.len() + 64 {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before = c.total_in();
            c.compress_vec(&data[pos..], &mut out, FlushCompress::Sync)
                .map_err(|_| CompressError)?;
            pos += (c.total_in() - before) as usize;
            if pos == data.len() && out.len() < out.capacity() {
                flushed = true;
                break;
            }
        }
        if !flushed {
            return Err(CompressError);
        }
        if fin {
            if out.ends_with(&SYNC_TAIL) {
                out.truncate(out.len() - SYNC_TAIL.len());
            }
            if out.is_empty() {
                // zlib writes nothing for a flush with no new input, but the peer will
                // append the sync tail: send the header bits of an empty stored block
                // (§7.2.3.6) so that tail completes it.
                out.push(0x00);
            }
            if self.reset_compress {
                c.reset();
            }
        }
        Ok(out)
    }

    /// Inflates `input` (a piece of the compressed payload, or `None` for the message's
    /// end, which feeds the sync tail) and appends the output to `out`, never letting
    /// `out` grow past `limit + 1` bytes.
    pub fn inflate(
        &mut self,
        input: Option<&[u8]>,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        let Some(data) = input else {
            if std::mem::take(&mut self.stream_ended) {
                // §7.2.3.4: the message ended with a BFINAL block, so the sync tail would be
                // data past the stream's end. The next message starts a new stream.
                self.decompress.reset(false);
                return Ok(());
            }
            let result = self.run_inflate(&SYNC_TAIL, out, limit, FlushDecompress::Sync);
            if std::mem::take(&mut self.stream_ended) || self.reset_decompress {
                // Without context takeover the next message starts with an empty window.
                self.decompress.reset(false);
            }
            return result;
        };
        if self.stream_ended {
            // §7.2.3.4: what follows a BFINAL block in its message (the 0x00 that makes
            // the appended tail an empty block) is not inflated, as zlib stops at the end.
            return Ok(());
        }
        self.run_inflate(data, out, limit, FlushDecompress::None)
    }

    fn run_inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
        flush: FlushDecompress,
    ) -> Result<(), InflateError> {
        let d = &mut self.decompress;
        let mut pos = 0;
        // Each round takes input or fills output (bounded by limit + 1), or stops.
        loop {
            if out.len() == out.capacity() {
                if out.len() > limit {
                    return Err(InflateError::TooLarge);
                }
                // Geometric growth, capped one byte past the limit so a bomb is caught
                // before it costs more memory than a legitimate message could.
                let want = (out.capacity() * 2).max(4096).min(limit.saturating_add(1));
                out.reserve_exact(want.max(out.len() + 1) - out.len());
            }
            let (in_before, out_before) = (d.total_in(), out.len());
            let result = d.decompress_vec(&input[pos..], out, flush);
            let taken = (d.total_in() - in_before) as usize;
            pos += taken;
            // Output past the limit wins over corruption found in the same call: with
            // more input at hand inflate may look further ahead, and the error reported
            // must not depend on how the input was split.
            if out.len() > limit {
                return Err(InflateError::TooLarge);
            }
            let status = result.map_err(|_| InflateError::Corrupt)?;
            if status == Status::StreamEnd {
                self.stream_ended = true;
                return Ok(());
            }
            if pos == input.len() && out.len() < out.capacity() {
                return Ok(());
            }
            if taken == 0 && out.len() == out_before {
                // No progress with input left and room to write: the stream is stuck.
                return if pos == input.len() {
                    Ok(())
                } else {
                    Err(InflateError::Corrupt)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::extension::parse_extension_list;

    fn offers(s: &str) -> Vec<Extension> {
        parse_extension_list(s.as_bytes()).unwrap()
    }

    #[test]
    fn window_bits_values_are_8_to_15_without_leading_zeros() {
        assert_eq!(window_bits("8"), Some(8));
        assert_eq!(window_bits("15"), Some(15));
        for bad in ["7", "16", "08", "", "1", "+9", "9 "] {
            assert_eq!(window_bits(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn server_skips_bad_offers_and_takes_the_next() {
        let config = DeflateConfig::default();
        let got = config
            .negotiate(&offers(
                "permessage-deflate; foo, permessage-deflate; server_max_window_bits=16, \
                 permessage-deflate; server_no_context_takeover; server_no_context_takeover, \
                 permessage-deflate; client_max_window_bits",
            ))
            .unwrap();
        assert_eq!(got.answer_header(), "permessage-deflate");
    }

    #[test]
    fn client_rejects_answers_that_break_the_offer() {
        let config = DeflateConfig {
            server_max_window_bits: Some(10),
            ..DeflateConfig::default()
        };
        for bad in [
            "permessage-deflate",
            "permessage-deflate; server_max_window_bits=11",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=10; x=1",
            "x-other",
        ] {
            assert!(config.accept_answer(&offers(bad)).is_err(), "{bad}");
        }
        let ok = config
            .accept_answer(&offers("permessage-deflate; server_max_window_bits=9"))
            .unwrap()
            .unwrap();
        assert_eq!(ok.server_max_window_bits, Some(9));
    }
}
