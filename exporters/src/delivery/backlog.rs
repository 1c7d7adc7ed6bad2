//! The backlog: mapped items waiting for a batch, oldest first.
//!
//! **Without a spool** it is a bounded in-memory queue that evicts its oldest item when full.
//!
//! **With a spool** ([`Backlog::with_spool`]) every pushed item is appended to the stream's
//! on-disk [`Spool`] and memory holds only a read-ahead window: [`Backlog::refill`] reads the
//! next batch's worth back from the spool. The spool's reader remembers every item it handed
//! out, by position and id; [`Backlog::settle`] acknowledges items by id once they are
//! delivered or dropped and counted, so whatever was never settled (in flight, queued, or
//! spooled at shutdown) is read again when the spool is next opened. The spool's own cap replaces eviction (losses surface
//! through [`Backlog::take_cap_losses`]). An item the spool refuses or fails to write (disk
//! full, I/O error, too large for it) is kept in memory instead, up to `capacity` such items;
//! beyond that it is dropped and counted as `spool_write_failed`
//! ([`Backlog::take_write_failures`]). The first such failure is logged once, and new items
//! then stay in memory for [`SPOOL_RETRY_AFTER`] before the spool is tried again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::wire_format::Item;
use crate::spool::{Position, Spool, SpoolStats};

/// At most this many bytes of items are read back from the spool at once.
const REFILL_MAX_BYTES: usize = 4 << 20;
/// After the spool failed to store items, new items go to memory for this long before the
/// spool is tried again (so a full disk is not hit on every append).
pub(crate) const SPOOL_RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Pending {
    item: Item,
    queued_at: Instant,
    /// Where the item sits in the spool (`None`: memory only).
    pos: Option<Position>,
}

/// The spool and what the backlog adds to it. What was read back, taken for a batch and not
/// yet settled is the spool reader's business: it knows every item it handed out (by position
/// and id), so it counts what is still unread and acknowledges settled items by id.
#[derive(Debug)]
struct Durable {
    spool: Spool,
    /// When the oldest item still only on disk was queued (approximately).
    unread_since: Option<Instant>,
    /// Appends or acks not yet fsynced since this moment.
    dirty_since: Option<Instant>,
    sync_interval: Duration,
    /// The spool failed to store items: new ones stay in memory until then.
    bypass_until: Option<Instant>,
    /// Items neither the spool nor memory could keep, not yet reported.
    write_failed: u64,
    /// Whether the spool's failure was logged.
    warned: bool,
}

impl Durable {
    /// Items in the spool neither read ahead nor taken.
    fn unread(&self) -> u64 {
        self.spool.unread_items()
    }

    fn mark_dirty(&mut self, now: Instant) {
        self.dirty_since.get_or_insert(now);
    }

    /// The spool could not store items: log it once and keep new items in memory for a while.
    fn failed(&mut self, now: Instant, capacity: usize) {
        self.bypass_until = Some(now + SPOOL_RETRY_AFTER);
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                dir = %self.spool.dir().display(),
                error = self.spool.last_write_error().unwrap_or("refused"),
                kept_in_memory_up_to = capacity,
                "telemetry spool failed to store events (disk full or I/O error): they stay in \
                 memory and are delivered from there; beyond that bound they are dropped and \
                 counted as spool_write_failed (logged once)"
            );
        }
    }
}

/// Items waiting to be batched, in arrival order, with at most `capacity` of them in memory.
#[derive(Debug)]
pub(crate) struct Backlog {
    items: VecDeque<Pending>,
    /// Of `items`, those held only in memory (not in a spool): at most `capacity` of them.
    memory_only: usize,
    capacity: usize,
    durable: Option<Durable>,
}

fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64)
}

impl Backlog {
    pub(crate) fn new(capacity: usize) -> Self {
        Backlog {
            items: VecDeque::new(),
            memory_only: 0,
            capacity: capacity.max(1),
            durable: None,
        }
    }

    /// A backlog over an opened spool; what the spool still holds is replayed first.
    pub(crate) fn with_spool(capacity: usize, mut spool: Spool, now: Instant) -> Self {
        let replay = spool.recovery().items_to_replay;
        let sync_interval = spool.options().sync_interval;
        // Losses while opening (adopting) are in the spool's own counters, not the engine's.
        let _ = spool.take_cap_losses();
        Backlog {
            items: VecDeque::new(),
            memory_only: 0,
            capacity: capacity.max(1),
            durable: Some(Durable {
                spool,
                unread_since: (replay > 0).then_some(now),
                dirty_since: None,
                sync_interval,
                bypass_until: None,
                write_failed: 0,
                warned: false,
            }),
        }
    }

    /// Whether items are kept in a spool (and so survive shutdown and crashes).
    pub(crate) fn is_durable(&self) -> bool {
        self.durable.is_some()
    }

    /// Items waiting: in memory plus, with a spool, those only on disk.
    pub(crate) fn len(&self) -> usize {
        let unread = self.durable.as_ref().map_or(0, Durable::unread);
        self.items.len() + unread as usize
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When the oldest waiting item was queued.
    pub(crate) fn oldest(&self) -> Option<Instant> {
        let mem = self.items.front().map(|p| p.queued_at);
        let disk = self
            .durable
            .as_ref()
            .filter(|d| d.unread() > 0)
            .and_then(|d| d.unread_since);
        [mem, disk].into_iter().flatten().min()
    }

    /// Appends an item; without a spool, when full, evicts and returns the oldest one.
    pub(crate) fn push(&mut self, item: Item, now: Instant) -> Option<Item> {
        if let Some(d) = self.durable.as_mut() {
            if d.bypass_until.is_some_and(|t| now < t) {
                self.keep_unstored(item, now);
                return None;
            }
            d.bypass_until = None;
            let stored = d
                .spool
                .append_parts(item.id, to_ms(item.created), &item.bytes);
            if stored.is_ok() {
                d.unread_since.get_or_insert(now);
                d.mark_dirty(now);
            } else {
                d.failed(now, self.capacity);
            }
            // Items buffered earlier whose write failed just now come first.
            self.reclaim(now);
            if stored.is_err() {
                self.keep_unstored(item, now);
            }
            return None;
        }
        let evicted = if self.items.len() >= self.capacity {
            self.pop_front().map(|p| p.item)
        } else {
            None
        };
        self.push_memory_only(item, now);
        evicted
    }

    fn push_memory_only(&mut self, item: Item, now: Instant) {
        self.memory_only += 1;
        self.items.push_back(Pending {
            item,
            queued_at: now,
            pos: None,
        });
    }

    /// With a spool: keeps an item the spool could not store in memory, unless `capacity` such
    /// items are there already; then it is dropped (see [`Backlog::take_write_failures`]).
    fn keep_unstored(&mut self, item: Item, now: Instant) {
        let Some(d) = self.durable.as_mut() else {
            return;
        };
        if self.memory_only >= self.capacity {
            d.write_failed += 1;
            return;
        }
        self.push_memory_only(item, now);
    }

    /// With a spool: takes back the items whose write to the spool failed and keeps them in
    /// memory (the spool has already forgotten them).
    fn reclaim(&mut self, now: Instant) {
        let Some(d) = self.durable.as_mut() else {
            return;
        };
        let unstored = d.spool.take_unstored();
        if unstored.is_empty() {
            return;
        }
        d.failed(now, self.capacity);
        for si in unstored {
            let item = Item {
                id: si.id,
                created: UNIX_EPOCH + Duration::from_millis(si.created_ms),
                bytes: si.bytes,
            };
            self.keep_unstored(item, now);
        }
    }

    /// With a spool: items dropped since the last call because neither the spool nor memory
    /// could keep them (counted as `spool_write_failed`).
    pub(crate) fn take_write_failures(&mut self) -> u64 {
        self.durable
            .as_mut()
            .map_or(0, |d| std::mem::take(&mut d.write_failed))
    }

    /// With a spool: adopts the detached spool `dir` (one item written by another thread, see
    /// `Spool::adopt_dir`) into the spool now; its items wait like any other, from `now`.
    /// Returns how many were adopted (0 without a spool: the next start adopts it).
    pub(crate) fn adopt(&mut self, dir: &std::path::Path, now: Instant) -> u64 {
        let Some(d) = self.durable.as_mut() else {
            return 0;
        };
        let adopted = d.spool.adopt_dir(dir);
        if adopted > 0 {
            d.unread_since.get_or_insert(now);
        }
        adopted
    }

    /// With a spool, reads items back until `max_items` wait in memory (a batch's worth).
    pub(crate) fn refill(&mut self, max_items: usize, now: Instant) {
        let Some(d) = self.durable.as_mut() else {
            return;
        };
        let want = max_items.saturating_sub(self.items.len());
        if want == 0 || d.unread() == 0 {
            return;
        }
        let queued_at = d.unread_since.unwrap_or(now);
        // Errors are counted by the spool; what could not be read is retried next time.
        let batch = d
            .spool
            .read_batch(want, REFILL_MAX_BYTES)
            .unwrap_or_default();
        for (pos, si) in batch {
            self.items.push_back(Pending {
                item: Item {
                    id: si.id,
                    created: UNIX_EPOCH + Duration::from_millis(si.created_ms),
                    bytes: si.bytes,
                },
                queued_at,
                pos: Some(pos),
            });
        }
        if d.unread() == 0 {
            d.unread_since = None;
        }
        self.reclaim(now);
    }

    fn pop_front(&mut self) -> Option<Pending> {
        let p = self.items.pop_front()?;
        if p.pos.is_none() {
            self.memory_only -= 1;
        }
        Some(p)
    }

    /// The size in bytes of the item at the front.
    pub(crate) fn front_len(&self) -> Option<usize> {
        self.items.front().map(|p| p.item.bytes.len())
    }

    /// Removes the front item (with a spool it stays there until [`Backlog::settle`]).
    pub(crate) fn take_front(&mut self) -> Option<Item> {
        self.pop_front().map(|p| p.item)
    }

    /// The items (taken earlier) were delivered or dropped and counted: with a spool,
    /// acknowledge exactly them, so they are not replayed. The spool's cursor never moves past
    /// an item still taken (in flight) or read ahead: settling an expired item never settles a
    /// fresher one still being sent ([`Spool::ack_items`]).
    pub(crate) fn settle(&mut self, items: &[Item], now: Instant) {
        let Some(d) = self.durable.as_mut() else {
            return;
        };
        // A failed cursor write is counted by the spool; it means a replay, not a loss.
        if !matches!(d.spool.ack_ids(items.iter().map(|i| i.id)), Ok(0)) {
            d.mark_dirty(now);
        }
    }

    /// With a spool: items the cap deleted since the last call, and the ids of those among
    /// them that were taken for a batch (the caller removes them from its batches: they are
    /// counted as lost, not sent). Read-ahead items of the deleted segments leave memory too.
    pub(crate) fn take_cap_losses(&mut self) -> (u64, HashSet<Uuid>) {
        let Some(d) = self.durable.as_mut() else {
            return (0, HashSet::new());
        };
        let losses = d.spool.take_cap_losses();
        if losses.items == 0 {
            return (0, HashSet::new());
        }
        let mut gone: HashMap<Position, Uuid> = losses.handed_out.into_iter().collect();
        // Read ahead: they leave memory; the rest were taken for a batch.
        self.items
            .retain(|p| p.pos.is_none_or(|pos| gone.remove(&pos).is_none()));
        (losses.items, gone.into_values().collect())
    }

    /// With a spool: writes appended items out to the file (so a process kill cannot lose
    /// them) and fsyncs when the sync interval has passed since the backlog got dirty.
    pub(crate) fn write_out(&mut self, now: Instant) {
        let Some(d) = self.durable.as_mut() else {
            return;
        };
        let due = d.dirty_since.is_some_and(|t| now >= t + d.sync_interval);
        // A pass in the last quarter of the interval since the last fsync syncs now, rather
        // than leave it to a timer wake of its own a moment later (at a steady event a second
        // the fsyncs then ride on the event wakes and the timer never fires).
        let soon = d.spool.needs_sync()
            && now.saturating_duration_since(d.spool.last_sync())
                >= d.sync_interval - d.sync_interval / 4;
        if due || soon {
            d.dirty_since = None;
            let _ = d.spool.sync();
        } else {
            let _ = d.spool.maybe_sync(now);
            if !d.spool.needs_sync() {
                // `maybe_sync` just fsynced (the interval had passed): no timer to wait for.
                d.dirty_since = None;
            }
        }
        self.reclaim(now);
    }

    /// When [`Backlog::write_out`] must run next to honour the sync interval.
    pub(crate) fn sync_due(&self) -> Option<Instant> {
        let d = self.durable.as_ref()?;
        d.dirty_since.map(|t| t + d.sync_interval)
    }

    /// Makes everything spooled durable now (flush, shutdown). Errors are counted by the spool.
    pub(crate) fn sync(&mut self) {
        if let Some(d) = self.durable.as_mut() {
            d.dirty_since = None;
            let _ = d.spool.sync();
        }
        self.reclaim(Instant::now());
    }

    /// The spool's counters, when there is one.
    pub(crate) fn spool_stats(&self) -> Option<SpoolStats> {
        self.durable.as_ref().map(|d| d.spool.stats())
    }

    /// Consent withdrawn: forgets every queued item, in memory and in the spool, and
    /// acknowledges everything spooled so nothing is replayed on the next start. Items taken
    /// for an in-flight batch are acknowledged too (the caller counts them). Returns how many
    /// queued items were purged.
    pub(crate) fn purge(&mut self) -> u64 {
        self.reclaim(Instant::now());
        let mut seen = HashSet::new();
        while let Some(p) = self.pop_front() {
            seen.insert(p.item.id);
        }
        let mut n = seen.len() as u64;
        if let Some(d) = self.durable.as_mut() {
            loop {
                let batch = d
                    .spool
                    .read_batch(4096, REFILL_MAX_BYTES)
                    .unwrap_or_default();
                if batch.is_empty() {
                    break;
                }
                for (_, item) in batch {
                    if seen.insert(item.id) {
                        n += 1;
                    }
                }
            }
            // Everything read back: in memory, taken for a batch, and just now.
            let _ = d.spool.ack_all_read();
            let _ = d.spool.sync();
            d.unread_since = None;
            d.dirty_since = None;
        }
        n
    }

    /// Removes everything. Returns the items held only in memory (lost) and how many stay in
    /// the spool for the next start (made durable first; what fails to be written is returned
    /// as held in memory).
    pub(crate) fn drain(&mut self) -> (Vec<Item>, u64) {
        self.sync();
        let unread = self.durable.as_ref().map_or(0, Durable::unread);
        let mut lost = Vec::new();
        let mut spooled = unread;
        while let Some(p) = self.pop_front() {
            match p.pos {
                Some(_) => spooled += 1,
                None => lost.push(p.item),
            }
        }
        (lost, spooled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::SpoolOptions;

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
        let (lost, spooled) = b.drain();
        let order: Vec<u8> = lost.into_iter().map(|i| i.bytes[0]).collect();
        assert_eq!((order, spooled), (vec![3], 0));
        assert!(b.is_empty());
    }

    #[test]
    fn spooled_items_survive_until_settled() {
        let dir = std::env::temp_dir().join(format!("cl-backlog-{}", uuid::Uuid::new_v4()));
        let now = Instant::now();
        let ids: Vec<Uuid> = {
            let spool = Spool::open(&dir, SpoolOptions::default()).unwrap();
            let mut b = Backlog::with_spool(2, spool, now);
            let items: Vec<Item> = (0..5).map(item).collect();
            for i in &items {
                assert!(b.push(i.clone(), now).is_none());
            }
            assert_eq!(b.len(), 5);
            assert_eq!(b.oldest(), Some(now));
            b.refill(3, now);
            let first: Vec<Item> = (0..3).map(|_| b.take_front().unwrap()).collect();
            let key = |v: &[Item]| {
                v.iter()
                    .map(|i| (i.id, i.bytes.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(key(&first), key(&items[..3]));
            b.settle(&first[..2], now);
            b.sync();
            assert_eq!(b.drain().1, 2);
            items[2..].iter().map(|i| i.id).collect()
        };
        let spool = Spool::open(&dir, SpoolOptions::default()).unwrap();
        let mut b = Backlog::with_spool(2, spool, now);
        assert_eq!(b.len(), 3);
        b.refill(10, now);
        let again: Vec<Uuid> = std::iter::from_fn(|| b.take_front().map(|i| i.id)).collect();
        assert_eq!(again, ids);
        std::fs::remove_dir_all(&dir).ok();
    }

    fn sized(n: u8, len: usize) -> Item {
        Item {
            bytes: vec![n; len],
            ..item(n)
        }
    }

    #[test]
    fn cap_losses_name_the_taken_items_and_drop_the_read_ahead_ones() {
        let dir = std::env::temp_dir().join(format!("cl-backlog-{}", uuid::Uuid::new_v4()));
        let now = Instant::now();
        // 100-byte records: five to a segment, four segments under the cap.
        let opts = SpoolOptions::default()
            .with_segment_bytes(512)
            .with_max_bytes(2048);
        let mut b = Backlog::with_spool(100, Spool::open(&dir, opts).unwrap(), now);
        let items: Vec<Item> = (0..25).map(|n| sized(n, 60)).collect();
        items[..10]
            .iter()
            .for_each(|i| assert!(b.push(i.clone(), now).is_none()));
        b.refill(4, now);
        let taken = [b.take_front().unwrap(), b.take_front().unwrap()];
        assert_eq!(b.take_cap_losses(), (0, HashSet::new()));
        items[10..]
            .iter()
            .for_each(|i| assert!(b.push(i.clone(), now).is_none()));
        // The first segment (items 0..5) went: two taken, two read ahead, one never read.
        let (lost, gone) = b.take_cap_losses();
        assert_eq!(lost, 5);
        assert_eq!(gone, taken.iter().map(|i| i.id).collect());
        assert_eq!(
            b.len(),
            20,
            "the read-ahead items left memory with their segment"
        );
        assert_eq!(b.take_cap_losses(), (0, HashSet::new()), "reported once");
        b.refill(100, now);
        let rest: Vec<Uuid> = std::iter::from_fn(|| b.take_front().map(|i| i.id)).collect();
        let expected: Vec<Uuid> = items[5..].iter().map(|i| i.id).collect();
        assert_eq!(rest, expected);
        drop(b);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn settling_both_copies_of_a_repeated_id_acknowledges_both() {
        // The same record twice in a spool (adopted again after a crash mid-adoption).
        let dir = std::env::temp_dir().join(format!("cl-backlog-{}", uuid::Uuid::new_v4()));
        let now = Instant::now();
        {
            let spool = Spool::open(&dir, SpoolOptions::default()).unwrap();
            let mut b = Backlog::with_spool(10, spool, now);
            let twice = item(1);
            for i in [twice.clone(), twice, item(2)] {
                assert!(b.push(i, now).is_none());
            }
            b.refill(10, now);
            let batch: Vec<Item> = std::iter::from_fn(|| b.take_front()).collect();
            assert_eq!(batch.len(), 3);
            b.settle(&batch, now);
            b.sync();
        }
        let spool = Spool::open(&dir, SpoolOptions::default()).unwrap();
        assert_eq!(spool.recovery().items_to_replay, 0, "nothing is replayed");
        drop(spool);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn nothing_counts_as_unread_once_the_reader_is_at_the_end() {
        use std::io::{Read, Seek, SeekFrom, Write};
        let dir = std::env::temp_dir().join(format!("cl-backlog-{}", uuid::Uuid::new_v4()));
        let now = Instant::now();
        let spool = Spool::open(&dir, SpoolOptions::default()).unwrap();
        let mut b = Backlog::with_spool(10, spool, now);
        let items: Vec<Item> = (0..3).map(item).collect();
        items
            .iter()
            .for_each(|i| assert!(b.push(i.clone(), now).is_none()));
        b.sync();
        // The middle record is damaged on disk after the spool counted it.
        let record = 16 + 24 + 1;
        let mut seg = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("000000000001.seg"))
            .unwrap();
        // Flip the byte (a byte of the id's timestamp: writing a fixed value left it unchanged
        // whenever it already had that value, 1 run in 256).
        let at = SeekFrom::Start(record as u64 + 20);
        let mut byte = [0u8];
        seg.seek(at).unwrap();
        seg.read_exact(&mut byte).unwrap();
        seg.seek(at).unwrap();
        seg.write_all(&[!byte[0]]).unwrap();
        drop(seg);
        assert_eq!(b.len(), 3);
        b.refill(10, now);
        assert_eq!(b.len(), 2, "the damaged record is not waiting to be read");
        let got: Vec<Uuid> = std::iter::from_fn(|| b.take_front().map(|i| i.id)).collect();
        assert_eq!(got, vec![items[0].id, items[2].id]);
        assert!(b.is_empty());
        drop(b);
        std::fs::remove_dir_all(&dir).ok();
    }
}
