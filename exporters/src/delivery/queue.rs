//! The pipeline's one queue, from the app thread to the background: log records moved in as
//! they are (never cloned, never decoded here), each with the set of destinations that route
//! it (its *mask*, read once at the door from the record's name by the decoder's own naming
//! rule, `decode::event_name`), plus events that arrive
//! already decoded ([`Delivery::submit`](super::Delivery::submit)).
//!
//! - **Bounds.** At most `capacity` records wait as they are, counting those the background
//!   has taken and not yet finished. Past that a burst goes to the **overflow**: each further
//!   record is written in a compact byte form ([`super::overflow`], about a quarter of a held
//!   record) up to `overflow_bytes`, again counting a chunk the background is working on, so
//!   the bound holds at every moment. Past both the record is dropped at the door and counted
//!   as `queue_full` on every destination that routes it. Nothing ever blocks the app.
//! - **Order.** While the overflow holds anything, new records go behind it, so the background
//!   sees records in the order they came.
//! - **Accounting.** What waits here for a destination is in that destination's counters
//!   (`routed` and `queued`) from the moment it is queued: the queue keeps a count per
//!   destination under its lock and the stats add it ([`Pending`]).
//! - **Wake-ups.** The app thread wakes the background only when it must: the first record
//!   while the background is idle (no timer of its own), the first record into an empty queue
//!   when the background's next timer is later than that record may wait (the destination's
//!   window: its batch delay, or the spool's sync interval), and the high-water marks (a
//!   quarter of `capacity`, the overflow, a destination's batch size). Otherwise the records
//!   wait for the background's own timers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry::logs::{Logger as _, LoggerProvider as _};
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger, SdkLoggerProvider};
use tokio::sync::Notify;

use closedloop_telemetry_layers::__private::catalogue::CatalogueEntry;

use super::overflow::{self, Keys};
use super::stats::{DeliveryStats, DropReason, Pending, QueueCounts};
use super::wire_format::WireFormat;
use crate::decode::Event;
use crate::volume::limiter::{LimitReport, Limiter};
use crate::volume::VolumeOptions;

/// The most destinations one pipeline serves (a mask is one byte).
pub(crate) const MAX_DESTINATIONS: usize = 8;
/// The destinations (their indexes) a mask names.
pub(crate) fn destinations(mask: u8) -> impl Iterator<Item = usize> {
    (0..MAX_DESTINATIONS).filter(move |d| mask & (1 << d) != 0)
}

/// Adds one entry for each destination `mask` names to `counts`.
pub(crate) fn count(counts: &mut [u64; MAX_DESTINATIONS], mask: u8) {
    for d in destinations(mask) {
        counts[d] += 1;
    }
}

/// Overflowed records are written into chunks of this size.
const CHUNK: usize = 256 << 10;

/// What one destination looks like from the door.
pub(crate) struct Lane {
    pub(crate) stream: Arc<dyn WireFormat>,
    pub(crate) stats: Arc<DeliveryStats>,
    /// Its batch size: this many records waiting for it wake the background.
    pub(crate) batch: usize,
    /// How long a record for it may wait in the queue before the background must look.
    pub(crate) window: Duration,
}

/// Where the background is, as the door sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// Working: it looks at the queue again before it sleeps.
    Running,
    /// Asleep until this instant (its own timer).
    Armed(Instant),
    /// Asleep with no timer: only the door wakes it.
    Idle,
}

/// The queue shared by the app threads (the door) and the background.
pub(crate) struct Queue {
    state: Mutex<State>,
    notify: Notify,
    lanes: Vec<Lane>,
    capacity: usize,
    overflow_max: usize,
    /// Blank records: the one left in the SDK's slot for each record taken, and those
    /// overflowed records are rebuilt on. A logger of a throwaway provider without processors.
    blank: SdkLogger,
    /// Per destination: records dropped at the door, not yet in its counters.
    door: Box<[AtomicU64]>,
    /// Per destination: records that route elsewhere.
    ignored: Box<[AtomicU64]>,
    closed: AtomicBool,
    /// Entries the background finished (flush tickets compare it with `State::pushed`).
    done: AtomicU64,
    /// Whether any destination rate-limits (else the door skips the limiter).
    limiting: bool,
    /// A report window is open (the limiter refused something not yet reported): read by the
    /// background without the lock on every pass, so it takes the lock only when there is one.
    report_open: AtomicBool,
}

struct State {
    records: Vec<SdkLogRecord>,
    masks: Vec<u8>,
    events: Vec<(u8, Event)>,
    overflow: VecDeque<Vec<u8>>,
    /// Bytes in `overflow`, plus those of a chunk the background holds.
    overflow_bytes: usize,
    keys: Keys,
    /// Records the background took and has not finished.
    held: usize,
    /// Per destination: queued entries that route there (including held ones).
    waiting: [u64; MAX_DESTINATIONS],
    /// When the first entry went into the empty queue.
    first_at: Option<Instant>,
    wake: Wake,
    /// Entries accepted so far (a plain count: the app's threads hold the lock anyway).
    pushed: u64,
    /// The token buckets, consulted under this lock (`volume/limiter.rs`).
    limiter: Limiter,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("capacity", &self.capacity)
            .field("overflow_max", &self.overflow_max)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What the background takes from the queue in one go.
#[derive(Default)]
pub(crate) struct Taken {
    pub(crate) records: Vec<SdkLogRecord>,
    pub(crate) masks: Vec<u8>,
    pub(crate) events: Vec<(u8, Event)>,
    /// When the oldest of them was queued.
    pub(crate) first_at: Option<Instant>,
}

impl Taken {
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty() && self.events.is_empty()
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave the state inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Queue {
    /// A queue for `lanes` whose door applies each destination's `volume` settings.
    pub(crate) fn new(
        lanes: Vec<Lane>,
        volume: Vec<VolumeOptions>,
        report_interval: Duration,
        capacity: usize,
        overflow_max: usize,
    ) -> Self {
        let n = lanes.len();
        let limiter = Limiter::new(volume, report_interval);
        let limiting = !limiter.is_off();
        Queue {
            state: Mutex::new(State {
                records: Vec::new(),
                masks: Vec::new(),
                events: Vec::new(),
                overflow: VecDeque::new(),
                overflow_bytes: 0,
                keys: Keys::default(),
                held: 0,
                waiting: [0; MAX_DESTINATIONS],
                first_at: None,
                wake: Wake::Running,
                pushed: 0,
                limiter,
            }),
            notify: Notify::new(),
            lanes,
            capacity: capacity.max(1),
            overflow_max,
            blank: SdkLoggerProvider::builder()
                .build()
                .logger("closedloop-telemetry"),
            door: (0..n).map(|_| AtomicU64::new(0)).collect(),
            ignored: (0..n).map(|_| AtomicU64::new(0)).collect(),
            closed: AtomicBool::new(false),
            done: AtomicU64::new(0),
            limiting,
            report_open: AtomicBool::new(false),
        }
    }

    /// The destinations' door-side view.
    pub(crate) fn lanes(&self) -> &[Lane] {
        &self.lanes
    }

    /// The blank logger overflowed records are rebuilt on.
    pub(crate) fn blank(&self) -> &SdkLogger {
        &self.blank
    }

    /// The mask of the destinations that route `entry`; counts the others as `ignored`.
    fn mask_of(&self, entry: Option<&CatalogueEntry>) -> u8 {
        let mut mask = 0u8;
        for (i, lane) in self.lanes.iter().enumerate() {
            if lane.stream.routes(entry) {
                mask |= 1 << i;
            } else {
                self.ignored[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        mask
    }

    /// Takes the record in `slot` (the app thread's side). Never blocks on the background:
    /// the lock is only ever held for a push or a swap. A queued record is moved from `slot`
    /// straight into the queue, leaving a blank record behind; an overflowed one is written in
    /// its compact form and left in `slot`, as is one the queue drops and counts.
    pub(crate) fn take(&self, slot: &mut SdkLogRecord) {
        let Ok(name) = crate::decode::event_name(slot) else {
            // Not an event (no name, or a local-only activity entry): no destination's.
            for n in self.ignored.iter() {
                n.fetch_add(1, Ordering::Relaxed);
            }
            return;
        };
        let mask = self.mask_of(name.entry);
        if mask == 0 {
            return;
        }
        if self.closed.load(Ordering::Acquire) {
            return self.refuse_closed(mask);
        }
        let mut q = lock(&self.state);
        let mut mask = mask;
        if self.limiting {
            let admission = q.limiter.admit(&name.name, mask, event_nanos(slot));
            mask &= !admission.limited;
            if admission.opened {
                // Set under the lock, so a report taken next sees this refusal's window.
                self.report_open.store(true, Ordering::Release);
            }
            if mask == 0 {
                drop(q);
                if admission.opened {
                    // A report is now due within a minute: the background plans it.
                    self.notify.notify_one();
                }
                return;
            }
        }
        let was_empty = q.is_empty();
        let accepted = if q.overflow.is_empty() && q.records.len() + q.held < self.capacity {
            // A blank goes into the queue and trades places with the record.
            q.records.push(self.blank.create_log_record());
            if let Some(last) = q.records.last_mut() {
                std::mem::swap(slot, last);
            }
            q.masks.push(mask);
            true
        } else if q.overflow_bytes < self.overflow_max {
            let State {
                overflow,
                overflow_bytes,
                keys,
                ..
            } = &mut *q;
            if overflow
                .back()
                .is_none_or(|c| c.capacity() - c.len() < CHUNK / 16)
            {
                overflow.push_back(Vec::with_capacity(CHUNK));
            }
            let chunk = overflow.back_mut().expect("pushed above");
            let before = chunk.len();
            let ok = overflow::write(slot, mask, keys, chunk);
            *overflow_bytes += chunk.len() - before;
            if before == 0 && !ok {
                overflow.pop_back();
            }
            ok
        } else {
            false
        };
        if !accepted {
            drop(q);
            for i in destinations(mask) {
                self.door[i].fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let wake = self.accepted(&mut q, mask, 1, was_empty);
        drop(q);
        if wake {
            self.notify.notify_one();
        }
    }

    /// Queues decoded events for destination `index` ([`Delivery::submit`]): those its stream
    /// routes, as many as the record bound leaves room for; the rest are counted as `ignored`
    /// or `queue_full`. Returns how many were queued.
    ///
    /// [`Delivery::submit`]: super::Delivery::submit
    pub(crate) fn push_events(&self, index: usize, mut events: Vec<Event>) -> usize {
        let lane = &self.lanes[index];
        let before = events.len();
        events.retain(|e| lane.stream.routes(e.entry));
        let ignored = (before - events.len()) as u64;
        self.ignored[index].fetch_add(ignored, Ordering::Relaxed);
        if events.is_empty() {
            return 0;
        }
        let n = events.len();
        if self.closed.load(Ordering::Acquire) {
            lane.stats
                .refused(DropReason::Shutdown, n as u64, "telemetry is shut down");
            return 0;
        }
        let mask = 1u8 << index;
        let mut q = lock(&self.state);
        let was_empty = q.is_empty();
        let room = self
            .capacity
            .saturating_sub(q.records.len() + q.held + q.events.len());
        let take = n.min(room);
        q.events
            .extend(events.into_iter().take(take).map(|e| (mask, e)));
        let wake = take > 0 && self.accepted(&mut q, mask, take as u64, was_empty);
        drop(q);
        if take < n {
            self.door[index].fetch_add((n - take) as u64, Ordering::Relaxed);
        }
        if wake {
            self.notify.notify_one();
        }
        take
    }

    /// Counts `n` accepted entries for `mask` and says whether the background must be woken.
    fn accepted(&self, q: &mut State, mask: u8, n: u64, was_empty: bool) -> bool {
        q.pushed += n;
        let mut over_batch = false;
        let mut window = Duration::MAX;
        for i in destinations(mask) {
            q.waiting[i] += n;
            let lane = &self.lanes[i];
            over_batch |= q.waiting[i] >= lane.batch as u64;
            window = window.min(lane.window);
        }
        if was_empty {
            q.first_at = Some(Instant::now());
        }
        let wake = match q.wake {
            Wake::Running => false,
            Wake::Idle => true,
            Wake::Armed(until) => {
                let late =
                    was_empty && q.first_at.and_then(|t| t.checked_add(window)) < Some(until);
                let high = q.records.len() + q.held >= (self.capacity / 4).max(1)
                    || !q.overflow.is_empty();
                late || high || over_batch
            }
        };
        if wake {
            q.wake = Wake::Running;
        }
        wake
    }

    /// A record for `mask` after shutdown: counted as `shutdown` (routed and dropped).
    fn refuse_closed(&self, mask: u8) {
        for i in destinations(mask) {
            self.lanes[i]
                .stats
                .refused(DropReason::Shutdown, 1, "telemetry is shut down");
        }
    }

    /// Refuses every later record (counted as `shutdown`).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// What the background awaits besides its timers.
    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// Entries accepted so far (a flush's ticket).
    pub(crate) fn pushed(&self) -> u64 {
        lock(&self.state).pushed
    }

    /// Entries the background has finished so far.
    pub(crate) fn done(&self) -> u64 {
        self.done.load(Ordering::Acquire)
    }

    /// The background is at work: the door wakes it for nothing until it parks again.
    pub(crate) fn set_running(&self) {
        lock(&self.state).wake = Wake::Running;
    }

    /// Swaps the queued records and events out into `into` (empty on entry; its buffers are
    /// reused). They count against the record bound until [`Queue::finish`], and for their
    /// destinations until [`Queue::hand_over`].
    pub(crate) fn take_front(&self, into: &mut Taken) {
        let mut q = lock(&self.state);
        std::mem::swap(&mut q.records, &mut into.records);
        std::mem::swap(&mut q.masks, &mut into.masks);
        std::mem::swap(&mut q.events, &mut into.events);
        q.held += into.records.len();
        into.first_at = q.first_at;
        if q.overflow.is_empty() {
            q.first_at = None;
        }
    }

    /// The oldest overflow chunk, with the keys to read it. Its bytes count against the
    /// overflow's bound until [`Queue::finish`].
    pub(crate) fn take_chunk(&self) -> Option<(Vec<u8>, Keys, Option<Instant>)> {
        let mut q = lock(&self.state);
        let chunk = q.overflow.pop_front()?;
        let first_at = q.first_at;
        if q.overflow.is_empty() && q.records.is_empty() && q.events.is_empty() {
            q.first_at = None;
        }
        Some((chunk, q.keys.snapshot(), first_at))
    }

    /// `counts[i]` entries taken (from the front or an overflow chunk) are for destination `i`:
    /// they leave its `waiting` count now (the caller puts them in the destination's own
    /// counters at once).
    pub(crate) fn hand_over(&self, counts: &[u64; MAX_DESTINATIONS]) {
        let mut q = lock(&self.state);
        for (w, n) in q.waiting.iter_mut().zip(counts.iter()) {
            *w = w.saturating_sub(*n);
        }
    }

    /// The background finished `records` taken records, `chunk_bytes` of overflow and
    /// `entries` entries in all.
    pub(crate) fn finish(&self, records: usize, chunk_bytes: usize, entries: u64) {
        let mut q = lock(&self.state);
        q.held = q.held.saturating_sub(records);
        q.overflow_bytes = q.overflow_bytes.saturating_sub(chunk_bytes);
        drop(q);
        self.done.fetch_add(entries, Ordering::Release);
    }

    /// Entries queued for each destination.
    pub(crate) fn waiting_all(&self) -> [u64; MAX_DESTINATIONS] {
        lock(&self.state).waiting
    }

    /// Whether the rate limiter refused something not reported yet.
    pub(crate) fn report_open(&self) -> bool {
        self.report_open.load(Ordering::Acquire)
    }

    /// The rate limiter's report of what it refused and has not reported yet, when one is due
    /// at `now` or `force`d.
    pub(crate) fn take_limit_report(&self, now: Instant, force: bool) -> Option<LimitReport> {
        if !self.report_open.load(Ordering::Acquire) {
            return None;
        }
        let mut q = lock(&self.state);
        let report = q.limiter.take_report(now, force);
        if report.is_some() {
            // Cleared under the lock: a refusal after this opens the next window and sets it.
            self.report_open.store(false, Ordering::Release);
        }
        report
    }

    /// Records dropped at the door for destination `index` since the last call.
    pub(crate) fn take_door_drops(&self, index: usize) -> u64 {
        self.door[index].swap(0, Ordering::Relaxed)
    }

    /// Before the background sleeps: the instant it must wake by, given its own next timer
    /// `next`. Records still queued must be looked at within their window; `None` means no
    /// timer at all. Publishes the state the door reads (`Armed` or `Idle`).
    pub(crate) fn park(&self, next: Option<Instant>) -> Option<Instant> {
        let mut q = lock(&self.state);
        let window = self.lanes.iter().map(|l| l.window).min();
        let queued = match (q.is_empty(), q.first_at, window) {
            (true, _, _) => None,
            (false, Some(t), Some(w)) => Some(t.checked_add(w).unwrap_or(t)),
            (false, _, _) => Some(Instant::now()),
        };
        let at = [next, queued, q.limiter.report_due()]
            .into_iter()
            .flatten()
            .min();
        q.wake = match at {
            Some(t) => Wake::Armed(t),
            None => Wake::Idle,
        };
        at
    }
}

impl State {
    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.overflow.is_empty() && self.events.is_empty()
    }
}

impl Pending for Queue {
    fn pending(&self, index: usize) -> QueueCounts {
        let (waiting, rate_limited) = {
            let q = lock(&self.state);
            let waiting = q.waiting.get(index).copied().unwrap_or(0);
            (waiting, q.limiter.limited_total(index))
        };
        let load = |v: &[AtomicU64]| v.get(index).map_or(0, |n| n.load(Ordering::Relaxed));
        QueueCounts {
            waiting,
            rate_limited,
            door_dropped: load(&self.door),
            ignored: load(&self.ignored),
        }
    }

    fn rate_limited_by_name(&self, index: usize) -> Vec<(String, u64)> {
        lock(&self.state).limiter.limited(index).1
    }
}

/// The event's time on the app's clock (the record's timestamp, which the layer sets from its
/// one clock read; else its observed time; else now), in nanoseconds since the Unix epoch:
/// the rate limiter's clock, read without another clock call.
fn event_nanos(record: &SdkLogRecord) -> u64 {
    let t = record
        .timestamp()
        .or_else(|| record.observed_timestamp())
        .unwrap_or_else(std::time::SystemTime::now);
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
