//! `CallbackQueue`: a FIFO run in rounds, so work added during a round waits for the next one.
//!
//! This is what keeps a callback that re-adds itself from starving I/O: the driver polls the
//! OS between rounds. Owns ordering only; running is the caller's business.

use std::collections::VecDeque;

/// A FIFO of pending work, consumed one round at a time.
pub struct CallbackQueue<T> {
    queue: VecDeque<T>,
}

impl<T> Default for CallbackQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> CallbackQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        CallbackQueue {
            queue: VecDeque::new(),
        }
    }

    /// Appends work for a future round.
    pub fn push(&mut self, item: T) {
        self.queue.push_back(item);
    }

    /// Number of queued items.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Starts a round: the number of items that belong to it (those queued now).
    ///
    /// Call [`CallbackQueue::pop`] at most that many times; anything pushed meanwhile stays
    /// behind them and belongs to a later round.
    #[must_use]
    pub fn begin_round(&self) -> usize {
        self.queue.len()
    }

    /// Takes the oldest item.
    pub fn pop(&mut self) -> Option<T> {
        self.queue.pop_front()
    }

    /// Gives memory back after a burst (say, 100,000 tasks spawned at once): a queue holding
    /// far fewer items than its capacity shrinks. Cheap to call after every round.
    #[inline]
    pub fn shrink_after_burst(&mut self) {
        const KEEP: usize = 256;
        if self.queue.capacity() > KEEP && self.queue.len() * 4 < self.queue.capacity() {
            self.queue.shrink_to(KEEP.max(self.queue.len() * 2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Items run FIFO; items pushed during a round run only in a later round.
        #[test]
        fn rounds_are_fifo_and_new_items_wait(
            initial in 0usize..20,
            spawns in proptest::collection::vec(0usize..3, 0..200),
        ) {
            let mut q = CallbackQueue::new();
            let mut next_id = 0usize;
            for _ in 0..initial { q.push((next_id, 0usize)); next_id += 1; }
            let mut spawns = spawns.into_iter();
            let mut ran: Vec<usize> = Vec::new();
            let mut round = 0usize;
            while !q.is_empty() && round < 1000 {
                let n = q.begin_round();
                for _ in 0..n {
                    let (id, born) = q.pop().unwrap();
                    prop_assert!(born <= round, "item born in round {born} ran in round {round}");
                    ran.push(id);
                    for _ in 0..spawns.next().unwrap_or(0) {
                        q.push((next_id, round + 1));
                        next_id += 1;
                    }
                }
                round += 1;
            }
            // FIFO overall: ids were assigned in push order, so they run sorted.
            let mut sorted = ran.clone();
            sorted.sort_unstable();
            prop_assert_eq!(ran, sorted);
        }
    }
}
