//! [`ActivityLogStore`]: a ring of the newest entries that is also a broadcast log for live
//! subscribers.
//!
//! One mutex guards a `VecDeque` of `Arc` entries plus the next sequence number. Recording builds
//! the entry (the copies and allocation) before taking the lock, and under the lock only assigns
//! the sequence number, pushes a pointer and pops the oldest one, whose memory is freed after the
//! lock is released. A subscriber is just a cursor (the next sequence number it wants) into the
//! same ring, so the app never waits for a slow reader: when the reader falls behind the ring it
//! is told how many entries it missed ([`ActivityUpdate::Lagged`]) and resumes at the oldest one
//! still kept.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::entry::{ActivityEntry, ActivityKind};

/// How many entries a store keeps unless told otherwise.
pub const DEFAULT_CAPACITY: usize = 200;

struct Ring {
    entries: VecDeque<Arc<ActivityEntry>>,
    capacity: usize,
    /// The sequence number the next entry gets.
    next_seq: u64,
    /// Entries below this sequence number were removed by `clear()`.
    cleared_below: u64,
}

impl Ring {
    fn oldest_seq(&self) -> u64 {
        self.entries.front().map_or(self.next_seq, |e| e.seq)
    }
}

struct Shared {
    ring: Mutex<Ring>,
    arrived: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding this lock cannot leave the ring inconsistent (every mutation is
        // a single push/pop/assignment), so a poisoned lock is still usable.
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The activity log: the last N entries (default 200), newest last.
///
/// Cheap to clone (all clones share one log) and safe to use from any thread. Build one with
/// [`ActivityLogStore::new`] or [`ActivityLogStore::with_capacity`].
#[derive(Clone)]
pub struct ActivityLogStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ActivityLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ring = self.shared.lock();
        f.debug_struct("ActivityLogStore")
            .field("len", &ring.entries.len())
            .field("capacity", &ring.capacity)
            .field("next_seq", &ring.next_seq)
            .finish()
    }
}

impl Default for ActivityLogStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl ActivityLogStore {
    /// A store keeping the last 200 entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store keeping the last `capacity` entries (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        ActivityLogStore {
            shared: Arc::new(Shared {
                ring: Mutex::new(Ring {
                    // Grows as entries arrive: a huge capacity must not allocate (or panic) up front.
                    entries: VecDeque::with_capacity(capacity.min(DEFAULT_CAPACITY)),
                    capacity,
                    next_seq: 0,
                    cleared_below: 0,
                }),
                arrived: Condvar::new(),
            }),
        }
    }

    /// Records one entry and returns its sequence number. The summary is cut to 512 bytes and
    /// the body to 8 KiB (marking the entry truncated), both on a UTF-8 boundary. Never blocks
    /// on subscribers.
    pub fn record(
        &self,
        kind: ActivityKind,
        summary: impl AsRef<str>,
        body: impl AsRef<str>,
    ) -> u64 {
        let mut entry = Arc::new(ActivityEntry::bounded(
            kind,
            summary.as_ref(),
            body.as_ref(),
        ));
        let (seq, evicted) = {
            let mut ring = self.shared.lock();
            let seq = ring.next_seq;
            if let Some(e) = Arc::get_mut(&mut entry) {
                e.seq = seq;
            }
            ring.next_seq += 1;
            let evicted = if ring.entries.len() >= ring.capacity {
                ring.entries.pop_front()
            } else {
                None
            };
            ring.entries.push_back(entry);
            (seq, evicted)
        };
        self.shared.arrived.notify_all();
        drop(evicted); // freed outside the lock
        seq
    }

    /// A copy of the kept entries, oldest first and newest last.
    pub fn snapshot(&self) -> Vec<ActivityEntry> {
        // Copy pointers under the lock, the entries themselves after it.
        let kept: Vec<Arc<ActivityEntry>> = self.shared.lock().entries.iter().cloned().collect();
        kept.iter().map(|e| ActivityEntry::clone(e)).collect()
    }

    /// The kept entries whose sequence number is at least `from`, at most the newest `max` of
    /// them, oldest first. Only those entries are copied: a reader that polls for what is new
    /// (the view page, once a second) pays for what is new, not for the whole log, however
    /// large its capacity.
    ///
    /// ```
    /// use closedloop_telemetry_layers::{ActivityKind, ActivityLogStore};
    ///
    /// let store = ActivityLogStore::new();
    /// for summary in ["a", "b", "c", "d"] {
    ///     store.record(ActivityKind::Request, summary, "");
    /// }
    /// let new: Vec<String> = store.since(2, 10).into_iter().map(|e| e.summary).collect();
    /// assert_eq!(new, ["c", "d"]); // from sequence number 2 on
    /// assert_eq!(store.since(0, 3)[0].summary, "b"); // the newest 3
    /// assert!(store.since(4, 10).is_empty()); // nothing new yet
    /// ```
    pub fn since(&self, from: u64, max: usize) -> Vec<ActivityEntry> {
        // Copy the wanted pointers under the lock, the entries themselves after it. The kept
        // entries have consecutive sequence numbers, so the first wanted one is found by index.
        let kept: Vec<Arc<ActivityEntry>> = {
            let ring = self.shared.lock();
            let oldest = ring.oldest_seq();
            let newest_max = ring
                .next_seq
                .saturating_sub(u64::try_from(max).unwrap_or(u64::MAX));
            let first = from.max(oldest).max(newest_max);
            let skip = usize::try_from(first - oldest).unwrap_or(usize::MAX);
            ring.entries
                .iter()
                .skip(skip.min(ring.entries.len()))
                .cloned()
                .collect()
        };
        kept.iter().map(|e| ActivityEntry::clone(e)).collect()
    }

    /// Removes every kept entry. Subscribers skip the removed entries without a lag report;
    /// sequence numbers keep counting up.
    pub fn clear(&self) {
        let removed = {
            let mut ring = self.shared.lock();
            ring.cleared_below = ring.next_seq;
            std::mem::take(&mut ring.entries)
        };
        drop(removed);
    }

    /// How many entries are kept now.
    pub fn len(&self) -> usize {
        self.shared.lock().entries.len()
    }

    /// Whether no entry is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries the store keeps at most.
    pub fn capacity(&self) -> usize {
        self.shared.lock().capacity
    }

    /// How many entries were ever recorded (the next sequence number).
    pub fn total_recorded(&self) -> u64 {
        self.shared.lock().next_seq
    }

    /// Subscribes to entries recorded from now on. See [`ActivitySubscription`].
    pub fn subscribe(&self) -> ActivitySubscription {
        let next = self.shared.lock().next_seq;
        ActivitySubscription {
            shared: self.shared.clone(),
            next,
        }
    }
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivityUpdate {
    /// The next entry, in recording order.
    Entry(ActivityEntry),
    /// The subscriber fell behind the ring and missed this many entries; the next update is the
    /// oldest entry still kept.
    Lagged(u64),
}

/// A live view of new entries, created by [`ActivityLogStore::subscribe`].
///
/// It is a cursor into the store's ring, so holding one costs nothing while it is not read and
/// never slows the app down. A subscriber that reads less often than the ring turns over gets
/// [`ActivityUpdate::Lagged`] with the exact number of entries it missed.
pub struct ActivitySubscription {
    shared: Arc<Shared>,
    next: u64,
}

impl std::fmt::Debug for ActivitySubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivitySubscription")
            .field("next_seq", &self.next)
            .finish_non_exhaustive()
    }
}

impl ActivitySubscription {
    /// The next update if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<ActivityUpdate> {
        let ring = self.shared.lock();
        let update = take(&mut self.next, &ring);
        drop(ring);
        update.map(Pending::resolve)
    }

    /// The next update, waiting at most `timeout` for one; `None` if none arrived in time.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<ActivityUpdate> {
        // A `Duration::MAX` wait must not overflow: without a deadline it waits until an update.
        let deadline = Instant::now().checked_add(timeout);
        let mut ring = self.shared.lock();
        loop {
            if let Some(update) = take(&mut self.next, &ring) {
                drop(ring);
                return Some(update.resolve());
            }
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return None;
            }
            ring = self
                .shared
                .arrived
                .wait_timeout(ring, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Everything ready now, without waiting.
    pub fn drain(&mut self) -> Vec<ActivityUpdate> {
        std::iter::from_fn(|| self.try_recv()).collect()
    }
}

/// Advances the cursor `next` over `ring` by one update, if one is ready.
fn take(next: &mut u64, ring: &Ring) -> Option<Pending> {
    if *next < ring.cleared_below {
        *next = ring.cleared_below;
    }
    let oldest = ring.oldest_seq();
    if *next < oldest {
        let missed = oldest - *next;
        *next = oldest;
        return Some(Pending::Lagged(missed));
    }
    if *next >= ring.next_seq {
        return None;
    }
    let entry = ring.entries.get((*next - oldest) as usize)?.clone();
    *next += 1;
    Some(Pending::Entry(entry))
}

/// An update whose entry is still shared; copied out after the lock is released.
enum Pending {
    Entry(Arc<ActivityEntry>),
    Lagged(u64),
}

impl Pending {
    fn resolve(self) -> ActivityUpdate {
        match self {
            Pending::Entry(e) => ActivityUpdate::Entry(ActivityEntry::clone(&e)),
            Pending::Lagged(n) => ActivityUpdate::Lagged(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_skips_unread_entries_without_lag() {
        let store = ActivityLogStore::with_capacity(4);
        let mut sub = store.subscribe();
        store.record(ActivityKind::Request, "a", "");
        store.clear();
        store.record(ActivityKind::Request, "b", "");
        match sub.try_recv() {
            Some(ActivityUpdate::Entry(e)) => assert_eq!((e.seq, e.summary.as_str()), (1, "b")),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(sub.try_recv(), None);
    }

    fn seqs(entries: Vec<ActivityEntry>) -> Vec<u64> {
        entries.into_iter().map(|e| e.seq).collect()
    }

    #[test]
    fn since_returns_only_the_asked_tail() {
        let store = ActivityLogStore::with_capacity(4);
        assert!(store.since(0, 10).is_empty());
        for _ in 0..6 {
            store.record(ActivityKind::Request, "e", "");
        }
        // Kept: 2..=5 (0 and 1 were evicted).
        assert_eq!(seqs(store.since(0, 10)), [2, 3, 4, 5]);
        assert_eq!(seqs(store.since(4, 10)), [4, 5]);
        assert_eq!(seqs(store.since(0, 2)), [4, 5], "the newest `max`");
        assert_eq!(seqs(store.since(3, 1)), [5]);
        assert!(store.since(6, 10).is_empty());
        assert!(store.since(u64::MAX, usize::MAX).is_empty());
        assert!(store.since(0, 0).is_empty());
        assert_eq!(seqs(store.since(0, usize::MAX)), [2, 3, 4, 5]);
        store.clear();
        assert!(store.since(0, 10).is_empty());
        store.record(ActivityKind::Request, "after", "");
        assert_eq!(seqs(store.since(0, 10)), [6]);
        assert_eq!(seqs(store.since(6, 1)), [6]);
    }

    #[test]
    fn capacity_is_at_least_one() {
        let store = ActivityLogStore::with_capacity(0);
        store.record(ActivityKind::Request, "a", "");
        store.record(ActivityKind::Request, "b", "");
        assert_eq!(store.len(), 1);
        assert_eq!(store.snapshot()[0].summary, "b");
    }
}
