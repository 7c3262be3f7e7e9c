//! `BodyStream`: a request body handed to the application piece by piece as it arrives
//! (Tornado's `stream_request_body` / `data_received`), with back-pressure: past
//! [`BODY_HIGH_WATER`] unread bytes the connection stops reading until the application has
//! taken half of them, so a 1 GiB upload never sits in memory.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::error::RequestError;
use crate::io_loop::StreamId;

/// Unread body bytes at which the connection stops reading.
pub const BODY_HIGH_WATER: usize = 256 * 1024;

/// Why a streamed body ended early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body broke a rule (too large: 413, bad chunked framing: 400); the server answers
    /// with that status.
    #[error("request body rejected: {0}")]
    Rejected(RequestError),
    /// The connection closed before the body ended.
    #[error("connection closed before the request body ended")]
    Closed,
}

/// The connection's side of a streamed body.
pub(crate) struct BodyChannel {
    chunks: VecDeque<Bytes>,
    queued: usize,
    end: Option<Result<(), BodyError>>,
    waker: Option<Waker>,
    /// The connection stopped reading because `queued` passed the high-water mark.
    paused: bool,
    /// The application dropped its `BodyStream`: further pieces are discarded.
    abandoned: bool,
    stream: StreamId,
}

/// The connection's handle on a streamed body.
pub(crate) type BodySender = Rc<RefCell<BodyChannel>>;

impl BodyChannel {
    /// A channel for a body arriving on `stream`, and the application's end of it.
    pub(crate) fn open(stream: StreamId) -> (BodySender, BodyStream) {
        let channel = Rc::new(RefCell::new(BodyChannel {
            chunks: VecDeque::new(),
            queued: 0,
            end: None,
            waker: None,
            paused: false,
            abandoned: false,
            stream,
        }));
        (channel.clone(), BodyStream { channel })
    }

    /// A piece arrived; true if the connection should stop reading (back-pressure).
    pub(crate) fn push(&mut self, data: Bytes) -> bool {
        if self.abandoned || data.is_empty() {
            return false;
        }
        self.queued += data.len();
        self.chunks.push_back(data);
        self.wake();
        if self.queued > BODY_HIGH_WATER {
            self.paused = true;
        }
        self.paused
    }

    /// The body ended, well or not.
    pub(crate) fn finish(&mut self, end: Result<(), BodyError>) {
        if self.end.is_none() {
            self.end = Some(end);
            self.wake();
        }
    }

    /// True while the application has not taken enough for reading to resume.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// The body of a request whose handler asked for it streamed; see the module docs.
pub struct BodyStream {
    channel: BodySender,
}

impl BodyStream {
    /// The next piece; `None` at the end of the body, `Some(Err)` if it ended early.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, BodyError>> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// Polls for the next piece (for hand-written futures).
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        let mut ch = self.channel.borrow_mut();
        if let Some(data) = ch.chunks.pop_front() {
            ch.queued -= data.len();
            if ch.paused && ch.queued <= BODY_HIGH_WATER / 2 {
                ch.paused = false;
                let stream = ch.stream;
                drop(ch);
                // Parse on from what is buffered, and read again.
                crate::task::with_loop(|io| {
                    io.set_reading(stream, true);
                    io.notify_handler(stream);
                });
            }
            return Poll::Ready(Some(Ok(data)));
        }
        match &ch.end {
            Some(Ok(())) => Poll::Ready(None),
            Some(Err(e)) => Poll::Ready(Some(Err(e.clone()))),
            None => {
                ch.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for BodyStream {
    fn drop(&mut self) {
        let mut ch = self.channel.borrow_mut();
        ch.abandoned = true;
        ch.chunks.clear();
        ch.queued = 0;
        if ch.paused {
            ch.paused = false;
            let stream = ch.stream;
            drop(ch);
            // Discard the rest of the body as it comes, so the connection can go on.
            let _ = crate::task::try_with_loop(|io| {
                io.set_reading(stream, true);
                io.notify_handler(stream);
            });
        }
    }
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ch = self.channel.borrow();
        f.debug_struct("BodyStream")
            .field("queued", &ch.queued)
            .field("ended", &ch.end.is_some())
            .finish()
    }
}
