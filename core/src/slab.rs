//! `Slab`: a vector of slots addressed by (index, generation) keys.
//!
//! Owns id validity for timers, streams, listeners and periodic callbacks: removing an entry
//! bumps its slot's generation, so a stale key never reaches an entry that reuses the slot.

/// A key into a [`Slab`]: slot index and the generation it was issued for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Key {
    /// Slot index.
    pub index: u32,
    /// Slot generation when the key was issued.
    pub generation: u32,
}

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Bytes one slot of a `Slab<T>` takes (for memory accounting).
pub(crate) const fn slot_size<T>() -> usize {
    core::mem::size_of::<Slot<T>>()
}

/// Generational storage with slot reuse; see the module docs.
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Number of occupied slots.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no slot is occupied.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Gives memory back after a burst: when at most a quarter of the slots are occupied,
    /// the empty slots at the end are dropped and the vectors shrunk.
    ///
    /// Trimmed slots forget their generations, so a stale key may later match a new entry
    /// there: only for slabs whose users double-check an entry's identity (tasks do).
    pub fn shrink_when_sparse(&mut self) {
        const KEEP: usize = 64;
        if self.slots.len() <= KEEP
            || self.len * 4 > self.slots.len()
            || self.slots.last().is_some_and(|s| s.value.is_some())
        {
            return;
        }
        while self.slots.len() > KEEP && self.slots.last().is_some_and(|s| s.value.is_none()) {
            self.slots.pop();
        }
        let end = self.slots.len() as u32;
        self.free.retain(|&i| i < end);
        self.slots.shrink_to(self.slots.len().max(KEEP));
        self.free.shrink_to(self.free.len().max(KEEP));
    }

    /// Stores `value` and returns its key; freed slots are reused (lowest-recently freed last).
    pub fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            debug_assert!(slot.value.is_none());
            slot.value = Some(value);
            return Key {
                index,
                generation: slot.generation,
            };
        }
        let index = u32::try_from(self.slots.len()).expect("more than 2^32 slab entries");
        self.slots.push(Slot {
            generation: 0,
            value: Some(value),
        });
        Key {
            index,
            generation: 0,
        }
    }

    /// True when `key` names a live entry.
    pub fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// The entry `key` names, if it is still live.
    pub fn get(&self, key: Key) -> Option<&T> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_ref()
    }

    /// The entry `key` names, mutably, if it is still live.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_mut()
    }

    /// Removes the entry; every copy of `key` goes stale.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        self.len -= 1;
        Some(value)
    }

    /// Live entries in slot order (deterministic).
    pub fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.value.as_ref().map(|v| {
                (
                    Key {
                        index: i as u32,
                        generation: s.generation,
                    },
                    v,
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_key_misses_reused_slot() {
        let mut slab = Slab::default();
        let a = slab.insert("a");
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert("b");
        assert_eq!(a.index, b.index);
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.len(), 1);
    }
}
