//! `TimerHeap`: deadlines in a binary heap with O(1) lazy cancellation.
//!
//! Owns timer ordering and id validity; never runs callbacks itself. Cancelled entries stay in
//! the heap until they surface or until they are most of it, then the heap is rebuilt
//! (Tornado compacts when more than 512 entries and more than half are cancelled).

use crate::slab::{Key, Slab};
use crate::time::Instant;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Cancelled entries tolerated before compaction is considered (Tornado's constant).
const COMPACT_MIN_CANCELLED: usize = 512;

/// Identifies one inserted timer; a stale id never matches a later timer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TimerId(Key);

/// One heap entry; ordered by (deadline, seq) so ties fire in insertion order.
/// Bytes one pending timer with values of type `T` takes: its heap entry and its slot.
pub(crate) const fn timer_size<T>() -> usize {
    core::mem::size_of::<Entry>() + crate::slab::slot_size::<T>()
}

#[derive(Clone, Copy)]
struct Entry {
    deadline: Instant,
    seq: u64,
    key: Key,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed, so `BinaryHeap` (a max-heap) pops the earliest deadline first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// A min-heap of deadlines carrying values, with O(1) cancellation by [`TimerId`].
pub struct TimerHeap<T> {
    heap: BinaryHeap<Entry>,
    values: Slab<T>,
    next_seq: u64,
    /// Heap entries whose slot no longer holds their value (cancelled, not yet removed).
    cancelled: usize,
}

impl<T> Default for TimerHeap<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TimerHeap<T> {
    /// An empty heap.
    pub fn new() -> Self {
        TimerHeap {
            heap: BinaryHeap::new(),
            values: Slab::default(),
            next_seq: 0,
            cancelled: 0,
        }
    }

    /// Number of live (not cancelled, not fired) timers.
    pub fn len(&self) -> usize {
        debug_assert_eq!(self.values.len() + self.cancelled, self.heap.len());
        self.values.len()
    }

    /// True when no live timer remains.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of entries physically in the heap, cancelled ones included (for tests and stats).
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }

    /// Schedules `value` at `deadline`.
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerId {
        let key = self.values.insert(value);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { deadline, seq, key });
        TimerId(key)
    }

    /// Cancels a timer and returns its value; `None` if it already fired or was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let value = self.values.remove(id.0)?;
        self.cancelled += 1;
        self.maybe_compact();
        Some(value)
    }

    /// The earliest live deadline, discarding cancelled entries found on top.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.discard_cancelled_top();
        self.heap.peek().map(|e| e.deadline)
    }

    /// Removes and returns the earliest timer whose deadline is at or before `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(TimerId, T)> {
        self.discard_cancelled_top();
        let top = *self.heap.peek()?;
        if top.deadline > now {
            return None;
        }
        self.heap.pop();
        let value = self
            .values
            .remove(top.key)
            .expect("live heap entry without a value");
        Some((TimerId(top.key), value))
    }

    fn discard_cancelled_top(&mut self) {
        while let Some(top) = self.heap.peek() {
            if self.values.contains(top.key) {
                break;
            }
            self.heap.pop();
            self.cancelled -= 1;
        }
    }

    fn maybe_compact(&mut self) {
        if self.cancelled > COMPACT_MIN_CANCELLED && self.cancelled * 2 > self.heap.len() {
            let mut entries = std::mem::take(&mut self.heap).into_vec();
            entries.retain(|e| self.values.contains(e.key));
            self.heap = BinaryHeap::from(entries);
            self.cancelled = 0;
        }
        debug_assert!(self.cancelled <= self.heap.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(n: u64) -> Instant {
        Instant::from_nanos(n)
    }

    #[test]
    fn stale_id_cannot_cancel_a_timer_reusing_its_slot() {
        let mut heap = TimerHeap::new();
        let old = heap.insert(at(1), "old");
        assert_eq!(heap.pop_expired(at(1)).map(|(_, v)| v), Some("old"));
        let new = heap.insert(at(2), "new");
        assert_eq!(heap.cancel(old), None);
        assert_eq!(heap.cancel(new), Some("new"));
        assert!(heap.is_empty());
    }

    #[test]
    fn compaction_runs_when_most_entries_are_cancelled() {
        let mut heap = TimerHeap::new();
        let ids: Vec<_> = (0..2000).map(|i| heap.insert(at(i), i)).collect();
        for id in &ids[..1500] {
            heap.cancel(*id);
        }
        assert!(heap.heap_len() < 2000, "heap was not compacted");
        assert_eq!(heap.len(), 500);
        let fired: Vec<_> =
            std::iter::from_fn(|| heap.pop_expired(at(5000)).map(|(_, v)| v)).collect();
        assert_eq!(fired, (1500..2000).collect::<Vec<_>>());
    }

    /// Operations on the heap, as data, so proptest can shrink a failing sequence.
    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        Cancel(usize),
        Pop(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..50).prop_map(Op::Insert),
            3 => any::<usize>().prop_map(Op::Cancel),
            2 => (0u64..60).prop_map(Op::Pop),
        ]
    }

    proptest! {
        /// The heap against a model: a list of (deadline, seq, value) fired by a linear scan.
        #[test]
        fn heap_matches_sorted_list_model(ops in proptest::collection::vec(op(), 0..3000)) {
            let mut heap = TimerHeap::new();
            let mut model: Vec<(u64, u64, u64)> = Vec::new(); // (deadline, seq, value)
            let mut ids: Vec<(TimerId, u64)> = Vec::new();
            let mut seq = 0u64;
            for op in ops {
                match op {
                    Op::Insert(d) => {
                        let id = heap.insert(at(d), seq);
                        ids.push((id, seq));
                        model.push((d, seq, seq));
                        seq += 1;
                    }
                    Op::Cancel(i) => {
                        if ids.is_empty() { continue; }
                        let (id, value) = ids[i % ids.len()];
                        let in_model = model.iter().position(|e| e.2 == value);
                        let got = heap.cancel(id);
                        match in_model {
                            Some(pos) => { model.remove(pos); prop_assert_eq!(got, Some(value)); }
                            None => prop_assert_eq!(got, None),
                        }
                    }
                    Op::Pop(now) => {
                        loop {
                            let expect = model.iter().enumerate()
                                .filter(|(_, e)| e.0 <= now)
                                .min_by_key(|(_, e)| (e.0, e.1))
                                .map(|(i, e)| (i, e.2));
                            let got = heap.pop_expired(at(now)).map(|(_, v)| v);
                            prop_assert_eq!(got, expect.map(|e| e.1));
                            match expect { Some((i, _)) => { model.remove(i); } None => break }
                        }
                    }
                }
                prop_assert_eq!(heap.len(), model.len());
                let next = model.iter().map(|e| e.0).min().map(at);
                prop_assert_eq!(heap.next_deadline(), next);
            }
        }
    }
}

#[cfg(test)]
mod compaction_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Heavy cancellation forces compaction; the survivors still fire in (deadline, insertion)
        /// order and no cancelled timer fires.
        #[test]
        fn compaction_keeps_order_and_drops_only_cancelled(
            deadlines in proptest::collection::vec(0u64..100, 1100..2000),
            keep_one_in in 3usize..6,
        ) {
            let mut heap = TimerHeap::new();
            let ids: Vec<_> = deadlines.iter().enumerate()
                .map(|(i, d)| heap.insert(Instant::from_nanos(*d), i))
                .collect();
            let mut expected = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                if i % keep_one_in == 0 {
                    expected.push((deadlines[i], i));
                } else {
                    prop_assert_eq!(heap.cancel(*id), Some(i));
                }
            }
            prop_assert!(heap.heap_len() < deadlines.len(), "compaction never ran");
            expected.sort();
            let fired: Vec<_> = std::iter::from_fn(|| heap.pop_expired(Instant::from_nanos(100)))
                .map(|(_, v)| (deadlines[v], v))
                .collect();
            prop_assert_eq!(fired, expected);
        }
    }
}
