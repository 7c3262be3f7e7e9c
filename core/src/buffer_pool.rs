//! `BufferPool`: spare `BytesMut` buffers lent to whichever connection is active.
//!
//! Owns buffer reuse for stream reads and HTTP responses: a connection takes a buffer when it
//! has bytes to hold and gives it back once drained, so idle connections hold none and a busy
//! loop allocates nothing in steady state. Bounded in count and in buffer size.

use bytes::BytesMut;

/// A bounded stack of empty buffers; see the module docs.
#[derive(Debug)]
pub struct BufferPool {
    free: Vec<BytesMut>,
    max_buffers: usize,
    max_capacity: usize,
}

impl BufferPool {
    /// A pool keeping at most `max_buffers` buffers of at most `max_capacity` bytes each.
    pub fn new(max_buffers: usize, max_capacity: usize) -> BufferPool {
        BufferPool {
            free: Vec::new(),
            max_buffers,
            max_capacity,
        }
    }

    /// An empty buffer: a pooled one if any, else a new (unallocated) one.
    pub fn take(&mut self) -> BytesMut {
        self.free.pop().unwrap_or_default()
    }

    /// Gives back an emptied buffer; kept if there is room and it is not oversized.
    pub fn give(&mut self, buf: BytesMut) {
        debug_assert!(buf.is_empty(), "only empty buffers go back to the pool");
        if buf.capacity() > 0
            && buf.capacity() <= self.max_capacity
            && self.free.len() < self.max_buffers
        {
            self.free.push(buf);
        }
    }

    /// Buffers waiting in the pool.
    pub fn len(&self) -> usize {
        self.free.len()
    }

    /// True when no buffer waits.
    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_reuses_buffers_and_bounds_what_it_keeps() {
        let mut pool = BufferPool::new(2, 4096);
        let mut a = pool.take();
        a.reserve(1000);
        let ptr = a.as_ptr();
        pool.give(a);
        let b = pool.take();
        assert_eq!(b.as_ptr(), ptr, "the same allocation comes back");
        pool.give(BytesMut::with_capacity(1 << 20));
        assert!(pool.is_empty(), "oversized buffers are dropped");
        pool.give(b);
        pool.give(BytesMut::with_capacity(10));
        pool.give(BytesMut::with_capacity(10));
        assert_eq!(pool.len(), 2, "count bounded");
    }
}
