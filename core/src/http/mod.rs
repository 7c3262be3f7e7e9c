//! HTTP/1.1 connection machines (h11-style): bytes in, events out; responses in, bytes out.
//!
//! Owns framing (RFC 9112) and message syntax; never touches a socket or the clock.
//!
//! # Theory of operation
//!
//! A [`ServerConn`] is two small state machines side by side, as in h11: the *read side*
//! follows the client's request (`Head → Body → Done`), the *write side* follows our
//! response (`Idle → Ready → Body → Done`). Inputs move one side at a time; when both sides
//! are `Done` the cycle either restarts (keep-alive) or both become `Closed`. The table of
//! transitions is on [`ServerConn`].
//!
//! * **Bytes in.** The caller owns the read buffer (`BytesMut`) and hands it to
//!   [`ServerConn::poll_event`]; the machine consumes exactly what it parsed. Heads are
//!   scanned for their end with strict CRLF rules and a `max_header_size` bound, then parsed
//!   by httparse into a stack array; the head keeps its bytes and the positions of its
//!   fields and target parts, so nothing is copied and no map is built unless asked for.
//!   Body data is `split_to` off the buffer.
//! * **Events out.** `Head`, `Data`*, `End` per request; `NeedData` when the buffer is
//!   exhausted; `Paused` when a request is complete and its response is not: pipelined bytes
//!   stay in the buffer untouched (the caller bounds its buffer and stops reading), and the
//!   next head is parsed only after `send_end`. Malformed input yields one `Error` carrying
//!   the status to answer; the connection then closes after that answer.
//! * **Responses in, bytes out.** `send_response` / `send_data` / `send_end` write into any
//!   [`ResponseSink`]: a reused `BytesMut` (everything copied, fine for small bodies) or an
//!   [`OutQueue`] (large body `Bytes` queued without copying). `send_end` says whether the
//!   connection stays alive.
//! * **Time is an input.** The machine reports which read time-out applies
//!   ([`ServerConn::read_timeout`]) with a phase number; the glue arms one timer and calls
//!   [`ServerConn::handle_timeout`] with that phase when it fires.
//!
//! [`HttpServer`] glues a `ServerConn` to each accepted stream of an `IoLoop` and hands
//! requests to a [`Handler`], which answers through a [`Responder`].
//!
//! The client side mirrors this: [`ClientConn`] serialises requests and parses responses
//! (same framing code), and [`HttpClient`] glues it to connected streams with a keep-alive
//! pool, a `max_clients` queue, redirects and time-outs (see [`client`]).
//!
//! [`Request`] is the value the web layer gets (query and body arguments, cookies, remote
//! ip after xheaders); [`HttpDate`] formats the cached `Date` header.

mod async_service;
mod body_stream;
pub mod client;
mod config;
mod date;
mod error;
pub mod form;
pub mod framing;
#[doc(hidden)]
pub mod fuzz_entry;
mod head;
mod request;
mod response_fields;
mod server;
mod service;
mod sink;

pub use async_service::{spawn_response_task, FetchFuture, Response, ResponseWriter};
pub use body_stream::{BodyError, BodyStream, BODY_HIGH_WATER};
pub use client::{
    ClientConfig, ClientConn, ClientEvent, ClientStats, FetchHandle, FetchResult, HttpClient,
    HttpError, HttpRequest, HttpResponse, ResponseError, ResponseHead, TimeoutPhase,
};
pub use config::HttpConfig;
pub use date::{parse_http_date, HttpDate};
pub use error::{RequestError, SendError};
pub use form::{Arguments, FormData, UploadedFile};
pub use framing::{ChunkedDecoder, Decoded};
pub use head::{BodyFraming, FieldSpan, HeaderValues, Headers, RequestHead, MAX_HEADERS};
pub use request::{Protocol, Request};
pub use response_fields::{HeaderBlock, ResponseFields};
pub use server::{AfterResponse, ReadTimeout, ServerConn, ServerEvent, TimeoutKind};
pub(crate) use service::idle_connection_parts;
pub use service::{ConnectionProbe, Handler, HttpServer, Responder, ServerStats, WRITE_HIGH_WATER};
pub use sink::{OutQueue, ResponseSink};
