//! `Pool`: memory one application reuses from one request to the next — emptied header
//! maps, body buffers and path captures — and `ValueArena`, that computed header values
//! (entity tags) and short bodies are cut from; so a typical request allocates none of them.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};

/// Emptied values of one kind kept for the next exchanges (at most [`Pool::KEEP`]: as many
/// as requests commonly in flight on one loop).
pub(crate) struct Pool<T>(RefCell<Vec<T>>);

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool(RefCell::new(Vec::new()))
    }
}

impl<T: Recyclable> Pool<T> {
    /// Values kept at most.
    const KEEP: usize = 256;

    /// An empty value: a pooled one, or a fresh one.
    pub(crate) fn take(&self) -> T {
        self.0.borrow_mut().pop().unwrap_or_else(T::fresh)
    }

    /// Takes a value back, emptied, for a later `take` (unless it is not worth keeping or
    /// the pool is full).
    pub(crate) fn give(&self, mut value: T) {
        if !value.recycle() {
            return;
        }
        let mut pool = self.0.borrow_mut();
        if pool.len() < Self::KEEP {
            pool.push(value);
        }
    }
}

/// What a [`Pool`] keeps.
pub(crate) trait Recyclable {
    /// A new, empty value.
    fn fresh() -> Self;
    /// Empties the value for reuse, keeping what it allocated; false when it is not worth
    /// keeping (it holds nothing, or grew large).
    fn recycle(&mut self) -> bool;
}

/// Response header maps: a new one has room for a typical response's fields (type, ETag,
/// Vary, a cookie or two) in an allocation small enough for the allocator's per-thread
/// cache; one that grew past 24 fields is not kept.
impl Recyclable for HeaderMap {
    fn fresh() -> Self {
        HeaderMap::with_capacity(6)
    }

    fn recycle(&mut self) -> bool {
        if self.capacity() == 0 || self.capacity() > 24 {
            return false;
        }
        self.clear();
        true
    }
}

/// Response body buffers: a new one has room for a short page or JSON object; one that grew
/// past 4 KiB is not kept (so a pool holds 1 MiB at most).
impl Recyclable for Vec<u8> {
    fn fresh() -> Self {
        Vec::with_capacity(256)
    }

    fn recycle(&mut self) -> bool {
        if self.capacity() == 0 || self.capacity() > 4096 {
            return false;
        }
        self.clear();
        true
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
        let pool = Pool::<HeaderMap>::default();
        let mut map = pool.take();
        map.insert(http::header::ETAG, HeaderValue::from_static("\"x\""));
        pool.give(map);
        let again = pool.take();
        assert!(again.is_empty() && again.capacity() > 0);
        let mut big = HeaderMap::with_capacity(100);
        big.insert(http::header::ETAG, HeaderValue::from_static("\"y\""));
        pool.give(big);
        assert!(pool.0.borrow().is_empty(), "large maps are dropped");
    }

    #[test]
    fn pooled_bodies_come_back_empty_and_large_ones_are_dropped() {
        let pool = Pool::<Vec<u8>>::default();
        let mut body = pool.take();
        body.extend_from_slice(b"{\"id\":1}");
        pool.give(body);
        let again = pool.take();
        assert!(again.is_empty() && again.capacity() >= 256);
        pool.give(vec![0; 4097]);
        assert!(pool.0.borrow().is_empty(), "a large buffer is not kept");
        for _ in 0..Pool::<Vec<u8>>::KEEP + 10 {
            pool.give(Vec::with_capacity(8));
        }
        assert_eq!(pool.0.borrow().len(), Pool::<Vec<u8>>::KEEP);
    }
}
