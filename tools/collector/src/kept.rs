//! [`Kept`]: the records a collector holds, bounded in count and in bytes, oldest dropped first.

use std::collections::VecDeque;

/// Records in arrival order, each with its size in bytes. Pushing past either bound drops the
/// oldest until the new record fits; a record larger than the byte bound alone is not kept.
pub(super) struct Kept<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
    max_items: usize,
    max_bytes: usize,
}

impl<T> Kept<T> {
    pub(super) fn new(max_items: usize, max_bytes: usize) -> Self {
        Kept {
            items: VecDeque::new(),
            bytes: 0,
            max_items,
            max_bytes,
        }
    }

    /// Keeps `item` of `size` bytes; returns how many records this left out (the oldest ones
    /// dropped, or `item` itself when it alone is over a bound).
    pub(super) fn push(&mut self, item: T, size: usize) -> u64 {
        if self.max_items == 0 || size > self.max_bytes {
            return 1;
        }
        let mut dropped = 0;
        while self.items.len() >= self.max_items || self.bytes + size > self.max_bytes {
            let Some((_, old)) = self.items.pop_front() else {
                break;
            };
            self.bytes -= old;
            dropped += 1;
        }
        self.bytes += size;
        self.items.push_back((item, size));
        dropped
    }

    /// The kept records, oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter().map(|(item, _)| item)
    }

    pub(super) fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(k: &Kept<u32>) -> Vec<u32> {
        k.iter().copied().collect()
    }

    #[test]
    fn the_oldest_go_first_under_either_bound() {
        let mut k = Kept::new(3, 10);
        assert_eq!(k.push(1, 4) + k.push(2, 4), 0);
        // Bytes: 4 + 4 + 4 > 10, so 1 goes.
        assert_eq!(k.push(3, 4), 1);
        assert_eq!(kept(&k), [2, 3]);
        // Count: a fourth small one pushes out the oldest once three are kept.
        assert_eq!(k.push(4, 1) + k.push(5, 1), 1);
        assert_eq!(kept(&k), [3, 4, 5]);
        assert_eq!(k.bytes, 6);
        // Larger than the byte bound alone: not kept, nothing else lost.
        assert_eq!(k.push(6, 11), 1);
        assert_eq!(kept(&k), [3, 4, 5]);
        k.clear();
        assert_eq!((kept(&k), k.bytes), (vec![], 0));
        let mut none = Kept::new(0, 10);
        assert_eq!(none.push(1, 1), 1);
        assert!(kept(&none).is_empty());
    }
}
