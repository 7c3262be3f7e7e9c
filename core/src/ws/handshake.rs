//! The opening handshake (RFC 6455 §4) on `http` types: validating an upgrade request and
//! building the 101 answer (server), building the request and checking the answer (client).
//!
//! Works on `http::Method`/`HeaderMap` only, so any HTTP front end can use it; it never
//! writes bytes itself.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use http::header::{
    ALLOW, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::deflate::{DeflateConfig, DeflateParams};
use super::error::HandshakeError;
use super::extension::{is_tchar, parse_extensions, render_extensions, Extension};

/// The GUID appended to the key before hashing (§1.3).
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version spoken (§4.1).
pub const WEBSOCKET_VERSION: &str = "13";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)) (§4.2.2).
pub fn accept_key(sec_websocket_key: &[u8]) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(sec_websocket_key);
    sha.update(WEBSOCKET_GUID.as_bytes());
    BASE64.encode(sha.digest().bytes())
}

/// A `Sec-WebSocket-Key` from 16 random bytes the caller drew (§4.1).
pub fn client_key(nonce: [u8; 16]) -> String {
    BASE64.encode(nonce)
}

/// True when some field named `name` lists `token` (comma-separated, case-insensitive).
fn lists_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// The one value of a field that must appear once, trimmed.
fn single(headers: &HeaderMap, name: http::header::HeaderName) -> Option<&[u8]> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    values
        .next()
        .is_none()
        .then(|| value.as_bytes().trim_ascii())
}

/// The subprotocols a `Sec-WebSocket-Protocol` list names, in order (all fields joined).
pub fn parse_protocols(headers: &HeaderMap) -> Result<Vec<String>, HandshakeError> {
    let mut out = Vec::new();
    for value in headers.get_all(SEC_WEBSOCKET_PROTOCOL) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() {
                continue;
            }
            if !item.iter().copied().all(is_tchar) {
                return Err(HandshakeError::BadProtocolList);
            }
            out.push(String::from_utf8_lossy(item).into_owned());
        }
    }
    Ok(out)
}

/// What the handshake settled: the subprotocol and permessage-deflate parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Negotiated {
    /// The selected subprotocol, if any.
    pub protocol: Option<String>,
    /// permessage-deflate parameters, if the extension is on.
    pub deflate: Option<DeflateParams>,
}

/// A valid upgrade request: what the client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The `Sec-WebSocket-Key` (trimmed), to compute the accept value from.
    pub key: String,
    /// Subprotocols offered, in the client's order of preference.
    pub protocols: Vec<String>,
    /// Extensions offered (an unparseable header counts as none: they are declined).
    pub extensions: Vec<Extension>,
}

/// Server side: checks an upgrade request (method and headers) as Tornado's
/// `WebSocketHandler.get` does; the error's [`status`](HandshakeError::status) is the answer
/// (with [`rejection_headers`]).
pub fn validate_request(
    method: &Method,
    headers: &HeaderMap,
) -> Result<UpgradeRequest, HandshakeError> {
    if method != Method::GET {
        return Err(HandshakeError::MethodNotGet);
    }
    if !lists_token(headers, UPGRADE, "websocket") {
        return Err(HandshakeError::BadUpgrade);
    }
    if !lists_token(headers, CONNECTION, "upgrade") {
        return Err(HandshakeError::BadConnection);
    }
    if single(headers, SEC_WEBSOCKET_VERSION) != Some(WEBSOCKET_VERSION.as_bytes()) {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let key = single(headers, SEC_WEBSOCKET_KEY).ok_or(HandshakeError::BadKey)?;
    // §4.2.1: the key is base64 of 16 bytes, i.e. 24 characters with padding.
    match BASE64.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return Err(HandshakeError::BadKey),
    }
    Ok(UpgradeRequest {
        key: String::from_utf8_lossy(key).into_owned(),
        protocols: parse_protocols(headers)?,
        extensions: parse_extensions(headers).unwrap_or_default(),
    })
}

/// Headers that go with a handshake refusal: `Allow: GET` for 405,
/// `Sec-WebSocket-Version: 13` for 426 (§4.4).
pub fn rejection_headers(error: &HandshakeError) -> HeaderMap {
    let mut headers = HeaderMap::new();
    match error.status() {
        StatusCode::METHOD_NOT_ALLOWED => {
            headers.insert(ALLOW, HeaderValue::from_static("GET"));
        }
        StatusCode::UPGRADE_REQUIRED => {
            headers.insert(
                SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static(WEBSOCKET_VERSION),
            );
        }
        _ => {}
    }
    headers
}

impl UpgradeRequest {
    /// The headers of the `101 Switching Protocols` answer for what was negotiated.
    ///
    /// Fails if the subprotocol is not one the client offered (§4.2.2).
    pub fn response_headers(&self, negotiated: &Negotiated) -> Result<HeaderMap, HandshakeError> {
        let mut headers = HeaderMap::new();
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        let accept = HeaderValue::try_from(accept_key(self.key.as_bytes()))
            .map_err(|_| HandshakeError::BadKey)?;
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
        if let Some(protocol) = &negotiated.protocol {
            if !self.protocols.contains(protocol) {
                return Err(HandshakeError::ProtocolNotOffered);
            }
            let value = HeaderValue::try_from(protocol.as_str())
                .map_err(|_| HandshakeError::ProtocolNotOffered)?;
            headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
        }
        if let Some(deflate) = &negotiated.deflate {
            headers.insert(SEC_WEBSOCKET_EXTENSIONS, deflate.answer_header());
        }
        Ok(headers)
    }
}

/// Client side: one opening handshake, from the request it sends to the answer it checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHandshake {
    key: String,
    protocols: Vec<String>,
    deflate: Option<DeflateConfig>,
}

impl ClientHandshake {
    /// A handshake with a key from `nonce` (16 random bytes), offering `protocols` and,
    /// if given, permessage-deflate.
    pub fn new(
        nonce: [u8; 16],
        protocols: Vec<String>,
        deflate: Option<DeflateConfig>,
    ) -> ClientHandshake {
        ClientHandshake {
            key: client_key(nonce),
            protocols,
            deflate,
        }
    }

    /// The key this handshake sends.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The WebSocket headers of the GET request (the HTTP client adds Host and the rest).
    ///
    /// Subprotocols that are not tokens are left out rather than sent malformed.
    pub fn request_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(key) = HeaderValue::try_from(self.key.as_str()) {
            headers.insert(SEC_WEBSOCKET_KEY, key);
        }
        headers.insert(
            SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static(WEBSOCKET_VERSION),
        );
        let tokens: Vec<&str> = self
            .protocols
            .iter()
            .map(String::as_str)
            .filter(|p| !p.is_empty() && p.bytes().all(is_tchar))
            .collect();
        if !tokens.is_empty() {
            if let Ok(v) = HeaderValue::try_from(tokens.join(", ")) {
                headers.insert(SEC_WEBSOCKET_PROTOCOL, v);
            }
        }
        if let Some(deflate) = &self.deflate {
            if let Ok(v) = HeaderValue::try_from(render_extensions(&[deflate.offer()])) {
                headers.insert(SEC_WEBSOCKET_EXTENSIONS, v);
            }
        }
        headers
    }

    /// Checks the server's answer (§4.1 steps 1-6); on success, what was negotiated.
    pub fn validate_response(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Result<Negotiated, HandshakeError> {
        if status != StatusCode::SWITCHING_PROTOCOLS {
            return Err(HandshakeError::NotSwitching(status));
        }
        if !lists_token(headers, UPGRADE, "websocket") {
            return Err(HandshakeError::BadUpgrade);
        }
        if !lists_token(headers, CONNECTION, "upgrade") {
            return Err(HandshakeError::BadConnection);
        }
        if single(headers, SEC_WEBSOCKET_ACCEPT) != Some(accept_key(self.key.as_bytes()).as_bytes())
        {
            return Err(HandshakeError::BadAccept);
        }
        let protocol = match parse_protocols(headers)
            .map_err(|_| HandshakeError::UnexpectedProtocol)?
            .as_slice()
        {
            [] => None,
            [p] if self.protocols.contains(p) => Some(p.clone()),
            _ => return Err(HandshakeError::UnexpectedProtocol),
        };
        let answer = parse_extensions(headers)
            .map_err(|_| HandshakeError::BadExtensions("malformed Sec-WebSocket-Extensions"))?;
        let deflate = match &self.deflate {
            Some(config) => config.accept_answer(&answer)?,
            None if answer.is_empty() => None,
            None => return Err(HandshakeError::BadExtensions("no extension was offered")),
        };
        Ok(Negotiated { protocol, deflate })
    }
}
