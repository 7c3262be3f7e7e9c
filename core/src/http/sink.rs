//! Where the server machine writes response bytes: a plain `BytesMut`, or an [`OutQueue`]
//! that keeps large body `Bytes` and file ranges as they are instead of copying them.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::file::FileRange;
use crate::stream::Chunk;

/// A destination for serialised response bytes, in order.
pub trait ResponseSink {
    /// Appends framing or head bytes (small; always copied).
    fn put_slice(&mut self, bytes: &[u8]);
    /// Appends body data; an implementation may keep the `Bytes` without copying.
    fn put_bytes(&mut self, bytes: Bytes) {
        self.put_slice(&bytes);
    }
    /// Appends a piece of body data, in memory or from a file.
    fn put_chunk(&mut self, chunk: Chunk) {
        match chunk {
            Chunk::Bytes(bytes) => self.put_bytes(bytes),
            Chunk::File(range) => self.put_file(range),
        }
    }
    /// Appends a range of an open file as body data. This default copies it (in-memory
    /// sinks for tests and tools); on a read error it stops where the file failed.
    fn put_file(&mut self, range: FileRange) {
        let mut range = range;
        let mut buf = vec![0; 64 * 1024];
        while !range.is_empty() {
            match range.read_front(&mut buf) {
                Ok(n) => {
                    self.put_slice(&buf[..n]);
                    range.advance(n as u64);
                }
                Err(_) => return,
            }
        }
    }
}

impl ResponseSink for BytesMut {
    fn put_slice(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl ResponseSink for Vec<u8> {
    fn put_slice(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// How much the queue's buffer grows by when it runs out: pipelined responses share one
/// allocation instead of each allocating while earlier ones wait to be written.
pub const OUT_QUEUE_RESERVE: usize = 16 * 1024;

/// Body chunks at least this long are queued as they are rather than copied.
pub const OUT_QUEUE_COPY_MAX: usize = 1024;

/// An ordered queue of output chunks: small writes coalesce into one reused buffer, large
/// bodies and file ranges are queued without a copy (the stream's write queue takes them
/// as they are).
#[derive(Debug, Default)]
pub struct OutQueue {
    queue: VecDeque<Chunk>,
    tail: BytesMut,
}

impl OutQueue {
    /// An empty queue.
    pub fn new() -> OutQueue {
        OutQueue::default()
    }

    /// Takes the next piece of output, oldest first.
    pub fn pop_front(&mut self) -> Option<Chunk> {
        if let Some(chunk) = self.queue.pop_front() {
            return Some(chunk);
        }
        if self.tail.is_empty() {
            None
        } else {
            Some(Chunk::Bytes(self.tail.split().freeze()))
        }
    }

    /// Takes the drained buffer out (for a pool), so an idle connection holds none.
    pub fn take_idle_buffer(&mut self) -> Option<BytesMut> {
        if self.tail.is_empty() && self.queue.is_empty() && self.tail.capacity() > 0 {
            Some(std::mem::take(&mut self.tail))
        } else {
            None
        }
    }

    /// True when the queue holds no buffer (one may be installed from a pool).
    pub fn needs_buffer(&self) -> bool {
        self.tail.capacity() == 0
    }

    /// Installs a pooled empty buffer if the queue has none; returns it otherwise.
    pub fn install_buffer(&mut self, buf: BytesMut) -> Option<BytesMut> {
        if self.needs_buffer() {
            self.tail = buf;
            None
        } else {
            Some(buf)
        }
    }

    /// Queues the coalesced small writes so a chunk after them keeps its place.
    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            self.queue
                .push_back(Chunk::Bytes(self.tail.split().freeze()));
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.tail.capacity() - self.tail.len() < bytes.len() {
            self.tail.reserve(bytes.len().max(OUT_QUEUE_RESERVE));
        }
        self.tail.extend_from_slice(bytes);
    }

    /// Total bytes waiting.
    pub fn len(&self) -> usize {
        self.queue.iter().map(Chunk::len).sum::<usize>() + self.tail.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.tail.is_empty()
    }
}

impl ResponseSink for OutQueue {
    fn put_slice(&mut self, bytes: &[u8]) {
        self.append(bytes);
    }

    fn put_bytes(&mut self, bytes: Bytes) {
        if bytes.len() < OUT_QUEUE_COPY_MAX {
            self.append(&bytes);
            return;
        }
        self.seal_tail();
        self.queue.push_back(Chunk::Bytes(bytes));
    }

    fn put_file(&mut self, range: FileRange) {
        if !range.is_empty() {
            self.seal_tail();
            self.queue.push_back(Chunk::File(range));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(chunk: Option<Chunk>) -> Bytes {
        match chunk {
            Some(Chunk::Bytes(b)) => b,
            other => panic!("expected bytes, got {other:?}"),
        }
    }

    #[test]
    fn out_queue_keeps_order_and_does_not_copy_large_bodies() {
        let mut q = OutQueue::new();
        q.put_slice(b"head");
        let big = Bytes::from(vec![7u8; 4096]);
        let ptr = big.as_ptr();
        q.put_bytes(big);
        q.put_slice(b"tail");
        assert_eq!(q.len(), 4 + 4096 + 4);
        assert_eq!(&bytes_of(q.pop_front())[..], b"head");
        let body = bytes_of(q.pop_front());
        assert_eq!(body.as_ptr(), ptr);
        assert_eq!(&bytes_of(q.pop_front())[..], b"tail");
        assert!(q.pop_front().is_none());
        assert!(q.is_empty());
    }
}
