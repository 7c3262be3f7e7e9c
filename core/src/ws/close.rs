//! Close codes and close-frame payloads (RFC 6455 §5.5.1, §7.4).

use bytes::Bytes;

use super::error::ProtocolError;
use super::utf8::Utf8Validator;

/// A close status code (RFC 6455 §7.4); the constants name the registered ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a message of a type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no code was in the close frame (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection ended without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: message data inconsistent with its type (e.g. a text message not UTF-8).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violates the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message is too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client needed an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// True when this code may appear in a close frame on the wire.
    ///
    /// 1000-1003 and 1007-1014 are registered for use (1012-1014 by IANA after the RFC);
    /// 1004 is reserved; 1005, 1006 and 1015 are for reporting only; the rest of 0-2999 is
    /// unassigned; 3000-4999 belong to libraries and applications.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

/// The contents of a close frame that carried a status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// Why the endpoint closed.
    pub code: CloseCode,
    /// A human-readable reason (valid UTF-8, at most 123 bytes).
    pub reason: String,
}

/// Parses a close payload: empty means no code; otherwise a valid code and a UTF-8 reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload {
        [] => Ok(None),
        // §5.5.1: a body, if present, starts with a 2-byte code.
        [_] => Err(ProtocolError::CloseFrameOneByte),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_sendable() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let mut validator = Utf8Validator::new();
            if validator.feed(reason).is_err() || !validator.is_complete() {
                return Err(ProtocolError::CloseReasonNotUtf8);
            }
            let reason = String::from_utf8(reason.to_vec())
                .map_err(|_| ProtocolError::CloseReasonNotUtf8)?;
            Ok(Some(CloseFrame { code, reason }))
        }
    }
}

/// Builds a close payload: the code in network order, then the reason.
pub fn close_payload(frame: Option<&CloseFrame>) -> Bytes {
    let Some(frame) = frame else {
        return Bytes::new();
    };
    let mut payload = Vec::with_capacity(2 + frame.reason.len());
    payload.extend_from_slice(&frame.code.0.to_be_bytes());
    payload.extend_from_slice(frame.reason.as_bytes());
    Bytes::from(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_codes_follow_the_registry() {
        for code in 0..=u16::MAX {
            let expected = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            assert_eq!(CloseCode(code).is_sendable(), expected, "code {code}");
        }
    }

    #[test]
    fn close_payload_round_trips() {
        let frame = CloseFrame {
            code: CloseCode(4000),
            reason: "bye ü".into(),
        };
        let payload = close_payload(Some(&frame));
        assert_eq!(parse_close_payload(&payload), Ok(Some(frame)));
        assert_eq!(parse_close_payload(&[]), Ok(None));
    }
}
