//! `RecvBuf`: the bytes written to a simulated socket end and not yet read.
//!
//! A vector consumed from the front: writes append, reads take a contiguous slice from the
//! front and move a cursor past it. The consumed prefix is dropped when the buffer empties, or
//! compacted once it outweighs what is left, so memory stays within about twice the unread
//! bytes (which the socket buffer bounds) and every byte is moved O(1) times.

/// The consumed prefix is compacted only past this size, so small exchanges never move bytes.
const COMPACT_AT: usize = 4096;

/// Unread bytes of one socket end; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct RecvBuf {
    bytes: Vec<u8>,
    head: usize,
}

impl RecvBuf {
    /// Unread bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.bytes.len() - self.head
    }

    /// True when nothing is unread.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.len() == self.head
    }

    /// Appends written bytes.
    #[inline]
    pub(crate) fn extend(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }

    /// The first `n` unread bytes (`n <= len()`).
    #[inline]
    pub(crate) fn front(&self, n: usize) -> &[u8] {
        &self.bytes[self.head..self.head + n]
    }

    /// Drops the first `n` unread bytes (`n <= len()`).
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.head += n;
        if self.head == self.bytes.len() {
            self.bytes.clear();
            self.head = 0;
        } else if self.head >= COMPACT_AT && self.head * 2 >= self.bytes.len() {
            self.bytes.drain(..self.head);
            self.head = 0;
        }
    }

    /// Drops every unread byte, keeping the allocation.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.head = 0;
    }

    /// Drops every unread byte and frees the allocation.
    pub(crate) fn release(&mut self) {
        *self = RecvBuf::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    proptest! {
        /// Reads return exactly the written bytes in order, and memory stays bounded by the
        /// unread bytes.
        #[test]
        fn reads_what_was_written_in_order(
            ops in proptest::collection::vec((any::<bool>(), 1usize..3000), 0..300)
        ) {
            let mut buf = RecvBuf::default();
            let mut model = VecDeque::new();
            let mut next = 0u8;
            for (write, n) in ops {
                if write {
                    let data: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                    buf.extend(&data);
                    model.extend(data);
                } else {
                    let n = n.min(model.len());
                    let want: Vec<u8> = model.drain(..n).collect();
                    prop_assert_eq!(buf.front(n), &want[..]);
                    buf.consume(n);
                }
                prop_assert_eq!(buf.len(), model.len());
                prop_assert_eq!(buf.is_empty(), model.is_empty());
                // The consumed prefix is small, or smaller than what is unread.
                prop_assert!(buf.head < COMPACT_AT || buf.head < buf.len());
            }
        }
    }
}
