//! The backlog: mapped items waiting for a batch, bounded, oldest first.
//!
//! **Spool seam.** This is where the durable on-disk spool (`CL_TELEMETRY_SPOOL_DIR`) will sit:
//! the worker only uses [`Backlog::push`], [`Backlog::take_front`],
//! [`Backlog::drain`] and the length/age queries. A spooling backlog will write items that
//! would be evicted (and everything left at shutdown) to disk instead of dropping them, and
//! reload spooled items at start. Nothing above this module needs to change for that.

use std::collections::VecDeque;
use std::time::Instant;

use super::stream::Item;

#[derive(Debug)]
struct Pending {
    item: Item,
    queued_at: Instant,
}

/// Items waiting to be batched, in arrival order, with at most `capacity` of them.
#[derive(Debug)]
pub(crate) struct Backlog {
    items: VecDeque<Pending>,
    capacity: usize,
}

impl Backlog {
    pub(crate) fn new(capacity: usize) -> Self {
        Backlog {
            items: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// When the oldest waiting item was queued.
    pub(crate) fn oldest(&self) -> Option<Instant> {
        self.items.front().map(|p| p.queued_at)
    }

    /// Appends an item; when full, evicts and returns the oldest one.
    pub(crate) fn push(&mut self, item: Item, now: Instant) -> Option<Item> {
        let evicted = if self.items.len() >= self.capacity {
            self.items.pop_front().map(|p| p.item)
        } else {
            None
        };
        self.items.push_back(Pending {
            item,
            queued_at: now,
        });
        evicted
    }

    /// The size in bytes of the item at the front.
    pub(crate) fn front_len(&self) -> Option<usize> {
        self.items.front().map(|p| p.item.bytes.len())
    }

    /// Removes the front item.
    pub(crate) fn take_front(&mut self) -> Option<Item> {
        self.items.pop_front().map(|p| p.item)
    }

    /// Removes everything.
    pub(crate) fn drain(&mut self) -> Vec<Item> {
        self.items.drain(..).map(|p| p.item).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn item(n: u8) -> Item {
        Item {
            id: uuid::Uuid::now_v7(),
            created: SystemTime::now(),
            bytes: vec![n],
        }
    }

    #[test]
    fn evicts_the_oldest_when_full() {
        let now = Instant::now();
        let mut b = Backlog::new(2);
        assert!(b.push(item(1), now).is_none());
        assert!(b.push(item(2), now).is_none());
        assert_eq!(b.push(item(3), now).unwrap().bytes, vec![1]);
        assert_eq!(b.len(), 2);
        assert_eq!(b.take_front().unwrap().bytes, vec![2]);
        assert_eq!(b.front_len(), Some(1));
        let order: Vec<u8> = b.drain().into_iter().map(|i| i.bytes[0]).collect();
        assert_eq!(order, vec![3]);
        assert!(b.is_empty());
    }
}
