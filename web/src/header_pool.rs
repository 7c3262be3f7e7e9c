//! Memory the responses of one application reuse: emptied header maps and body buffers, and
//! an arena that computed header values (entity tags) and short bodies are cut from, so a
//! typical response allocates neither a map, nor its values, nor its body.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};

/// Emptied response header maps kept for the next exchanges, so a response allocates no map.
#[derive(Default)]
pub(crate) struct HeaderMapPool(RefCell<Vec<HeaderMap>>);

impl HeaderMapPool {
    /// Maps kept at most (as many as requests commonly in flight on one loop).
    const KEEP: usize = 256;
    /// Maps that grew past this many fields are not kept.
    const KEEP_CAPACITY: usize = 24;

    /// An empty map: a pooled one, or a new one with room for a typical response's fields
    /// (type, ETag, Vary, a cookie or two) in an allocation small enough for the allocator's
    /// per-thread cache.
    pub(crate) fn take(&self) -> HeaderMap {
        self.0
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| HeaderMap::with_capacity(6))
    }

    /// Takes a map back, emptied, for a later `take` (unless it grew large or the pool is full).
    pub(crate) fn give(&self, mut map: HeaderMap) {
        if map.capacity() == 0 || map.capacity() > Self::KEEP_CAPACITY {
            return;
        }
        map.clear();
        let mut pool = self.0.borrow_mut();
        if pool.len() < Self::KEEP {
            pool.push(map);
        }
    }
}

/// Emptied body buffers kept for the next exchanges, so writing a short body allocates
/// nothing.
#[derive(Default)]
pub(crate) struct BodyBufferPool(RefCell<Vec<Vec<u8>>>);

impl BodyBufferPool {
    /// Buffers kept at most.
    const KEEP: usize = 256;
    /// Buffers that grew past this are not kept (so the pool holds 1 MiB at most).
    const KEEP_CAPACITY: usize = 4096;
    /// Room a new buffer starts with: a short page or JSON object.
    const INITIAL: usize = 256;

    /// An empty buffer: a pooled one, or a new one.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.0
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(Self::INITIAL))
    }

    /// Takes a buffer back, emptied (unless it is empty of room, grew large, or the pool is
    /// full).
    pub(crate) fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > Self::KEEP_CAPACITY {
            return;
        }
        buf.clear();
        let mut pool = self.0.borrow_mut();
        if pool.len() < Self::KEEP {
            pool.push(buf);
        }
    }
}

/// Bytes that short header values are cut from: one allocation serves many responses, each
/// piece holding a reference to its block.
#[derive(Default)]
pub(crate) struct ValueArena(RefCell<BytesMut>);

impl ValueArena {
    /// Size of each block pieces are cut from.
    const BLOCK: usize = 4096;
    /// Longest piece cut from a block; longer ones get their own allocation.
    pub(crate) const PIECE_MAX: usize = Self::BLOCK / 8;

    /// A copy of `bytes` cut from the current block.
    pub(crate) fn bytes(&self, bytes: &[u8]) -> Bytes {
        if bytes.len() > Self::PIECE_MAX {
            return Bytes::copy_from_slice(bytes);
        }
        let mut block = self.0.borrow_mut();
        if block.capacity() - block.len() < bytes.len() {
            *block = BytesMut::with_capacity(Self::BLOCK);
        }
        block.extend_from_slice(bytes);
        block.split().freeze()
    }

    /// `bytes` as a header value, or `None` if they are not a valid one.
    pub(crate) fn value(&self, bytes: &[u8]) -> Option<HeaderValue> {
        HeaderValue::from_maybe_shared(self.bytes(bytes)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_values_stay_intact_across_blocks() {
        let arena = ValueArena::default();
        let values: Vec<(String, HeaderValue)> = (0..500)
            .map(|i| {
                let text = format!("\"tag-{i:040}\"");
                let value = arena.value(text.as_bytes()).unwrap();
                (text, value)
            })
            .collect();
        for (text, value) in &values {
            assert_eq!(value.as_bytes(), text.as_bytes());
        }
        assert!(arena.value(b"bad\r\nvalue").is_none(), "CR LF is refused");
        let long = "x".repeat(ValueArena::BLOCK);
        assert_eq!(arena.value(long.as_bytes()).unwrap().len(), long.len());
    }

    #[test]
    fn pooled_maps_come_back_empty() {
        let pool = HeaderMapPool::default();
        let mut map = pool.take();
        map.insert(http::header::ETAG, HeaderValue::from_static("\"x\""));
        pool.give(map);
        let again = pool.take();
        assert!(again.is_empty() && again.capacity() > 0);
        let mut big = HeaderMap::with_capacity(100);
        big.insert(http::header::ETAG, HeaderValue::from_static("\"y\""));
        pool.give(big);
        pool.give(again);
        assert!(
            pool.take().capacity() <= HeaderMapPool::KEEP_CAPACITY,
            "large maps are dropped"
        );
    }

    #[test]
    fn pooled_bodies_come_back_empty_and_large_ones_are_dropped() {
        let pool = BodyBufferPool::default();
        let mut body = pool.take();
        body.extend_from_slice(b"{\"id\":1}");
        pool.give(body);
        let again = pool.take();
        assert!(again.is_empty() && again.capacity() >= BodyBufferPool::INITIAL);
        pool.give(vec![0; BodyBufferPool::KEEP_CAPACITY + 1]);
        assert!(pool.0.borrow().is_empty(), "a large buffer is not kept");
        for _ in 0..BodyBufferPool::KEEP + 10 {
            pool.give(Vec::with_capacity(8));
        }
        assert_eq!(pool.0.borrow().len(), BodyBufferPool::KEEP);
    }
}
