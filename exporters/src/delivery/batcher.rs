//! Batch forming: when the next batch is due, which items it takes, and splitting on 413.
//! Pure functions over the [`Backlog`], tested without I/O.

use std::time::{Duration, Instant, SystemTime};

use super::backlog::Backlog;
use super::wire_format::{Item, Limits};

/// A batch on its way out, with the attempts it has failed so far (408/429/5xx/timeouts).
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) items: Vec<Item>,
    pub(crate) attempts: u32,
}

impl Batch {
    pub(crate) fn new(items: Vec<Item>) -> Self {
        Batch { items, attempts: 0 }
    }

    /// Splits in halves (the first half keeps the older items); attempts start over.
    pub(crate) fn split(mut self) -> (Batch, Batch) {
        let back = self.items.split_off(self.items.len().div_ceil(2));
        (Batch::new(self.items), Batch::new(back))
    }
}

/// Whether an item is past the stream's expiry age.
pub(crate) fn is_expired(item: &Item, expiry: Option<Duration>, now: SystemTime) -> bool {
    expiry.is_some_and(|max| now.duration_since(item.created).unwrap_or_default() > max)
}

/// Whether an item of `len` bytes fits in a request on its own.
pub(crate) fn fits_alone(len: usize, overhead: usize, limits: &Limits) -> bool {
    overhead + len <= limits.max_body_bytes
}

/// When the backlog's next batch is due: at once when a full batch is waiting, else
/// `max_delay` after the oldest item was queued. `None` when nothing waits.
pub(crate) fn due_at(backlog: &Backlog, limits: &Limits) -> Option<Instant> {
    let oldest = backlog.oldest()?;
    if backlog.len() >= limits.max_items {
        Some(oldest)
    } else {
        Some(oldest + limits.max_delay)
    }
}

/// Takes the next batch off the front of the backlog: at most `max_items` items whose framed
/// body (`overhead` plus items plus commas) stays within `max_body_bytes`. Expired items met on
/// the way are removed and returned separately.
pub(crate) fn take_batch(
    backlog: &mut Backlog,
    limits: &Limits,
    overhead: usize,
    now: SystemTime,
) -> (Vec<Item>, Vec<Item>) {
    let mut batch = Vec::new();
    let mut expired = Vec::new();
    let mut size = overhead;
    while batch.len() < limits.max_items.max(1) {
        let Some(len) = backlog.front_len() else {
            break;
        };
        let extra = len + usize::from(!batch.is_empty());
        if !batch.is_empty() && size + extra > limits.max_body_bytes {
            break;
        }
        let Some(item) = backlog.take_front() else {
            break;
        };
        if is_expired(&item, limits.expiry, now) {
            expired.push(item);
            continue;
        }
        size += extra;
        batch.push(item);
    }
    (batch, expired)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_items: usize, max_body_bytes: usize) -> Limits {
        Limits {
            max_items,
            max_body_bytes,
            max_delay: Duration::from_secs(30),
            expiry: Some(Duration::from_secs(3600)),
        }
    }

    fn item(len: usize, age: Duration) -> Item {
        Item {
            id: uuid::Uuid::now_v7(),
            created: SystemTime::now() - age,
            bytes: vec![b'x'; len],
        }
    }

    fn backlog(items: impl IntoIterator<Item = Item>, at: Instant) -> Backlog {
        let mut b = Backlog::new(1000);
        for i in items {
            b.push(i, at);
        }
        b
    }

    #[test]
    fn takes_at_most_max_items() {
        let now = Instant::now();
        let mut b = backlog((0..45).map(|_| item(10, Duration::ZERO)), now);
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            let (batch, _) = take_batch(&mut b, &limits(20, 1 << 20), 2, SystemTime::now());
            (!batch.is_empty()).then_some(batch.len())
        })
        .collect();
        assert_eq!(sizes, vec![20, 20, 5]);
    }

    #[test]
    fn respects_the_body_size_including_overhead_and_commas() {
        let now = Instant::now();
        let mut b = backlog((0..5).map(|_| item(10, Duration::ZERO)), now);
        // 2 + 10 + 11 + 11 = 34 fits in 35; a fourth item would make 45.
        let (batch, _) = take_batch(&mut b, &limits(20, 35), 2, SystemTime::now());
        assert_eq!(batch.len(), 3);
        assert!(fits_alone(33, 2, &limits(20, 35)));
        assert!(!fits_alone(34, 2, &limits(20, 35)));
    }

    #[test]
    fn expired_items_are_set_aside() {
        let now = Instant::now();
        let old = Duration::from_secs(7200);
        let mut b = backlog(
            [
                item(1, old),
                item(1, Duration::ZERO),
                item(1, old),
                item(1, Duration::ZERO),
            ],
            now,
        );
        let (batch, expired) = take_batch(&mut b, &limits(20, 1000), 2, SystemTime::now());
        assert_eq!((batch.len(), expired.len()), (2, 2));
    }

    #[test]
    fn due_when_full_or_after_the_delay() {
        let now = Instant::now();
        assert_eq!(due_at(&Backlog::new(10), &limits(3, 100)), None);
        let b = backlog((0..2).map(|_| item(1, Duration::ZERO)), now);
        assert_eq!(
            due_at(&b, &limits(3, 100)),
            Some(now + Duration::from_secs(30))
        );
        assert_eq!(due_at(&b, &limits(2, 100)), Some(now));
    }

    #[test]
    fn split_keeps_order_and_resets_attempts() {
        let mut batch = Batch::new((0..5).map(|n| item(n, Duration::ZERO)).collect());
        batch.attempts = 3;
        let (a, b) = batch.split();
        let lens = |b: &Batch| b.items.iter().map(|i| i.bytes.len()).collect::<Vec<_>>();
        assert_eq!((lens(&a), lens(&b)), (vec![0, 1, 2], vec![3, 4]));
        assert_eq!(a.attempts + b.attempts, 0);
    }
}
