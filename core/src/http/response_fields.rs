//! Response header fields as the server machine takes them: an `http::HeaderMap` given per
//! response, or a [`HeaderBlock`] serialised once and copied whole into every response head.
//!
//! Owns the one scan of which framing-related fields an application set; the framing
//! decisions themselves stay in [`ServerConn`](super::ServerConn).

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, SERVER, TRANSFER_ENCODING};
use http::HeaderMap;

/// Response header fields serialised once (`name: value\r\n` each, `Connection` left out
/// because the server writes its own), for handlers that send the same fields on every
/// response: a response head then copies them as one piece instead of field by field.
///
/// ```
/// use eddy_core::http::{HeaderBlock, HttpServer, Request, Responder};
/// use eddy_core::IoLoop;
/// use http::header::CONTENT_TYPE;
/// use http::{HeaderMap, HeaderValue, StatusCode};
///
/// let mut fields = HeaderMap::new();
/// fields.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
/// let fields = HeaderBlock::new(fields);
/// let _server = HttpServer::new(move |io: &mut IoLoop, _req: Request, resp: Responder| {
///     let _ = resp.respond(io, StatusCode::OK, &fields, "hi");
/// });
/// ```
#[derive(Debug, Clone)]
pub struct HeaderBlock {
    bytes: Bytes,
    map: HeaderMap,
    fields: AppFields,
}

impl HeaderBlock {
    /// Serialises `headers` (every field but `Connection`) for reuse in many responses.
    pub fn new(headers: HeaderMap) -> HeaderBlock {
        let mut bytes = BytesMut::new();
        for (name, value) in &headers {
            if name == CONNECTION {
                continue;
            }
            bytes.extend_from_slice(name.as_str().as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        HeaderBlock {
            bytes: bytes.freeze(),
            fields: AppFields::scan(&headers),
            map: headers,
        }
    }

    /// The fields the block was made from.
    pub fn headers(&self) -> &HeaderMap {
        &self.map
    }

    /// The serialised fields, `name: value\r\n` each.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl From<HeaderMap> for HeaderBlock {
    fn from(headers: HeaderMap) -> HeaderBlock {
        HeaderBlock::new(headers)
    }
}

/// The header fields of one response: a map, or a pre-serialised [`HeaderBlock`].
#[derive(Debug, Clone, Copy)]
pub enum ResponseFields<'a> {
    /// Fields serialised while the head is written.
    Map(&'a HeaderMap),
    /// Fields serialised once, copied as one piece.
    Block(&'a HeaderBlock),
}

impl<'a> From<&'a HeaderMap> for ResponseFields<'a> {
    fn from(map: &'a HeaderMap) -> ResponseFields<'a> {
        ResponseFields::Map(map)
    }
}

impl<'a> From<&'a HeaderBlock> for ResponseFields<'a> {
    fn from(block: &'a HeaderBlock) -> ResponseFields<'a> {
        ResponseFields::Block(block)
    }
}

impl<'a> ResponseFields<'a> {
    /// The fields as a map.
    pub fn map(self) -> &'a HeaderMap {
        match self {
            ResponseFields::Map(map) => map,
            ResponseFields::Block(block) => &block.map,
        }
    }

    /// The pre-serialised fields (without `Connection`), when there are.
    pub(crate) fn block(self) -> Option<&'a [u8]> {
        match self {
            ResponseFields::Map(_) => None,
            ResponseFields::Block(block) => Some(&block.bytes),
        }
    }

    /// Which framing-related fields are present.
    pub(crate) fn app_fields(self) -> AppFields {
        match self {
            ResponseFields::Map(map) => AppFields::scan(map),
            ResponseFields::Block(block) => block.fields,
        }
    }
}

/// Which framing-related fields the application's header map holds, found in one pass over
/// its names (instead of one hash lookup per field).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AppFields {
    pub(crate) content_length: bool,
    pub(crate) transfer_encoding: bool,
    pub(crate) date: bool,
    pub(crate) server: bool,
    pub(crate) connection: bool,
}

impl AppFields {
    pub(crate) fn scan(headers: &HeaderMap) -> AppFields {
        let mut f = AppFields::default();
        for name in headers.keys() {
            if name == CONTENT_LENGTH {
                f.content_length = true;
            } else if name == TRANSFER_ENCODING {
                f.transfer_encoding = true;
            } else if name == DATE {
                f.date = true;
            } else if name == SERVER {
                f.server = true;
            } else if name == CONNECTION {
                f.connection = true;
            }
        }
        f
    }
}
