//! HTTP for tasks: async handlers on [`HttpServer`] and `fetch_async` on [`HttpClient`].
//!
//! Both are thin adapters over the callback machinery. An async handler runs as one task per
//! request; when its connection closes before it answers, the task is aborted (its future
//! dropped), never leaked. A [`ResponseWriter`] lets a handler stream its answer with
//! back-pressure; the plain form returns a whole [`Response`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use super::client::{FetchHandle, FetchResult, HttpClient, HttpRequest};
use super::config::HttpConfig;
use super::error::SendError;
use super::request::Request;
use super::service::{ConnectionProbe, HttpServer, Responder};
use crate::error::StreamError;
use crate::file::FileRange;
use crate::io_loop::IoLoop;
use crate::task::{with_loop, Oneshot};

/// A whole response, as an async handler returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// Header fields (`Content-Length` is added from the body; `Date` by the server).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: StatusCode) -> Response {
        Response {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// `200 OK` with `body`.
    pub fn ok(body: impl Into<Bytes>) -> Response {
        Response::new(StatusCode::OK).with_body(body)
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Response {
        self.body = body.into();
        self
    }

    /// Adds a header field.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Response {
        self.headers.append(name, value);
        self
    }
}

/// Streams one response from a task: `start`, `write`, `flush().await`, `finish`, or
/// `respond` for a whole one. Dropped unfinished, it behaves as a dropped [`Responder`].
pub struct ResponseWriter {
    responder: Option<Responder>,
}

impl ResponseWriter {
    /// True while the client is still connected.
    pub fn is_connected(&self) -> bool {
        self.responder.as_ref().is_some_and(Responder::is_connected)
    }

    /// A handle that tells later whether the client is still connected.
    pub fn connection(&self) -> Option<ConnectionProbe> {
        self.responder.as_ref().map(Responder::connection)
    }

    /// Sends a whole response.
    pub fn respond(mut self, response: Response) -> Result<(), SendError> {
        let responder = self.responder.take().ok_or(SendError::Closed)?;
        with_loop(|io| responder.respond(io, response.status, &response.headers, response.body))
    }

    /// Sends a whole response from borrowed fields (the caller keeps its header map, to
    /// reuse it for the next response).
    pub fn respond_with(
        mut self,
        status: StatusCode,
        headers: &HeaderMap,
        body: impl Into<Bytes>,
    ) -> Result<(), SendError> {
        let responder = self.responder.take().ok_or(SendError::Closed)?;
        let body = body.into();
        with_loop(|io| responder.respond(io, status, headers, body))
    }

    /// Starts a streamed response (chunked on HTTP/1.1 unless `headers` give a length).
    pub fn start(&mut self, status: StatusCode, headers: &HeaderMap) -> Result<(), SendError> {
        let responder = self.responder.as_mut().ok_or(SendError::Closed)?;
        with_loop(|io| responder.start(io, status, headers))
    }

    /// Starts a response whose body is `len` bytes, written in pieces afterwards.
    pub fn start_sized(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        len: u64,
    ) -> Result<(), SendError> {
        let responder = self.responder.as_mut().ok_or(SendError::Closed)?;
        with_loop(|io| responder.start_sized(io, status, headers, len))
    }

    /// Queues a piece of the body.
    pub fn write(&mut self, data: impl Into<Bytes>) -> Result<(), SendError> {
        let responder = self.responder.as_mut().ok_or(SendError::Closed)?;
        let data = data.into();
        with_loop(|io| responder.write(io, data))
    }

    /// Queues a range of an open file as a piece of the body (sent zero-copy where it can).
    pub fn write_file(&mut self, range: FileRange) -> Result<(), SendError> {
        let responder = self.responder.as_mut().ok_or(SendError::Closed)?;
        with_loop(|io| responder.write_file(io, range))
    }

    /// Completes once everything written so far has reached the socket (back-pressure).
    pub async fn flush(&mut self) -> Result<(), StreamError> {
        let slot = Oneshot::new();
        let done = slot.clone();
        let responder = self
            .responder
            .as_mut()
            .ok_or(StreamError::Closed(crate::CloseReason::Local))?;
        with_loop(|io| responder.flush(io, move |_, r| done.complete(r)))?;
        std::future::poll_fn(|cx| slot.poll(cx)).await
    }

    /// Answers `101 Switching Protocols` and hands the stream over (see [`Responder::upgrade`]).
    pub fn upgrade(mut self, headers: &HeaderMap) -> Result<crate::StreamId, SendError> {
        let responder = self.responder.take().ok_or(SendError::Closed)?;
        with_loop(|io| responder.upgrade(io, headers))
    }

    /// Ends a streamed response.
    pub fn finish(mut self) -> Result<(), SendError> {
        let responder = self.responder.take().ok_or(SendError::Closed)?;
        with_loop(|io| responder.finish(io))
    }
}

impl HttpServer {
    /// A server whose handler is `async fn(Request) -> Response`, one task per request.
    pub fn new_async<F, Fut>(handler: F) -> HttpServer
    where
        F: Fn(Request) -> Fut + 'static,
        Fut: Future<Output = Response> + 'static,
    {
        HttpServer::with_config_async(HttpConfig::default(), handler)
    }

    /// [`HttpServer::new_async`] with the given limits and options.
    pub fn with_config_async<F, Fut>(config: HttpConfig, handler: F) -> HttpServer
    where
        F: Fn(Request) -> Fut + 'static,
        Fut: Future<Output = Response> + 'static,
    {
        HttpServer::with_config_streaming(config, move |request, writer: ResponseWriter| {
            let answer = handler(request);
            async move {
                let response = answer.await;
                let _ = writer.respond(response); // the client may be gone
            }
        })
    }

    /// A server whose handler streams: `async fn(Request, ResponseWriter)`.
    pub fn with_config_streaming<F, Fut>(config: HttpConfig, handler: F) -> HttpServer
    where
        F: Fn(Request, ResponseWriter) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        HttpServer::with_config(
            config,
            move |io: &mut IoLoop, request, responder: Responder| {
                spawn_response_task(io, responder, |writer| handler(request, writer));
            },
        )
    }
}

/// Runs a request's answer as a task: `make` gets the [`ResponseWriter`]; the task is
/// aborted if the connection closes first (for handlers that implement `Handler` by hand).
pub fn spawn_response_task<Fut>(
    io: &mut IoLoop,
    responder: Responder,
    make: impl FnOnce(ResponseWriter) -> Fut,
) where
    Fut: Future<Output = ()> + 'static,
{
    // A handler still pending when its connection closes is cancelled: the connection holds
    // the task's handle (no callback to allocate per request).
    let connection = responder.connection();
    let writer = ResponseWriter {
        responder: Some(responder),
    };
    let task = io.spawn_detached(make(writer));
    connection.cancel_on_close(task);
}

impl HttpClient {
    /// Fetches `request` from a task; dropping the future cancels the fetch.
    pub fn fetch_async(&self, request: HttpRequest) -> FetchFuture {
        FetchFuture {
            client: self.clone(),
            request: Some(request),
            started: None,
        }
    }
}

/// The future of [`HttpClient::fetch_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct FetchFuture {
    client: HttpClient,
    request: Option<HttpRequest>,
    started: Option<(FetchHandle, Oneshot<FetchResult>)>,
}

impl Future for FetchFuture {
    type Output = FetchResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<FetchResult> {
        let this = &mut *self;
        if let Some(request) = this.request.take() {
            let slot = Oneshot::new();
            let done = slot.clone();
            let handle =
                with_loop(|io| this.client.fetch(io, request, move |_, r| done.complete(r)));
            this.started = Some((handle, slot));
        }
        let (_, slot) = this.started.as_ref().expect("started");
        let result = slot.poll(cx);
        if result.is_ready() {
            this.started = None;
        }
        result
    }
}

impl Drop for FetchFuture {
    fn drop(&mut self) {
        if let Some((handle, _)) = self.started.take() {
            if !handle.is_done() {
                let _ = crate::task::try_with_loop(|io| handle.cancel(io));
            }
        }
    }
}
