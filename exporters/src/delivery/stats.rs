//! Live delivery counters, readable by the app at any time without blocking the worker.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::spool::SpoolStats;

/// Why events were dropped instead of delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The pipeline's bounded queue and its overflow were full (the newest events are refused).
    QueueFull,
    /// The backlog was full while the destination was unreachable: the oldest events went.
    Evicted,
    /// The event failed the stream's validation (e.g. no `distinct_id`).
    Invalid,
    /// The server refused the batch with a 4xx other than 408/413/429.
    Rejected,
    /// The event alone is larger than a request may be (or still got 413 on its own).
    TooLarge,
    /// The event was older than the stream's expiry age when it was about to be sent.
    Expired,
    /// The batch failed more attempts than the retry policy allows.
    RetriesExhausted,
    /// Still queued when shutdown reached its deadline (without a spool; with one they stay
    /// spooled, see [`DeliveryStatsSnapshot::spooled`]).
    Shutdown,
    /// Queued when the user denied consent: purged on purpose, never sent.
    Purged,
    /// The on-disk spool reached its size cap and deleted its oldest segment.
    SpoolCap,
    /// The spool could not store the event (disk full, I/O error) and the memory queue that
    /// keeps such events was full as well.
    SpoolWriteFailed,
    /// Over its name's rate limit on this destination (a token bucket at the pipeline's door;
    /// see [`RateLimit`](crate::RateLimit)): never queued.
    RateLimited,
    /// Left out by the name's sample rate (decided by the event's id).
    SampledOut,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 13] = [
        DropReason::QueueFull,
        DropReason::Evicted,
        DropReason::Invalid,
        DropReason::Rejected,
        DropReason::TooLarge,
        DropReason::Expired,
        DropReason::RetriesExhausted,
        DropReason::Shutdown,
        DropReason::Purged,
        DropReason::SpoolCap,
        DropReason::SpoolWriteFailed,
        DropReason::RateLimited,
        DropReason::SampledOut,
    ];

    /// The snake_case name used in logs and reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Evicted => "evicted",
            DropReason::Invalid => "invalid",
            DropReason::Rejected => "rejected",
            DropReason::TooLarge => "too_large",
            DropReason::Expired => "expired",
            DropReason::RetriesExhausted => "retries_exhausted",
            DropReason::Shutdown => "shutdown",
            DropReason::Purged => "purged",
            DropReason::SpoolCap => "spool_cap",
            DropReason::SpoolWriteFailed => "spool_write_failed",
            DropReason::RateLimited => "rate_limited",
            DropReason::SampledOut => "sampled_out",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// The shared counters of one delivery engine. All counters but `queued` are monotonic.
///
/// They keep one invariant (docs/RELIABILITY.md, "Accounting"): every event is counted once
/// where it came from (`routed` this run, or `replayed` from the spool) and once where it is
/// (`sent`, `dropped` by reason, or still `queued`), so
/// `routed + replayed = sent + dropped.total() + queued`. Each change moves one event between
/// two of them in one step; a snapshot taken while the engine works may catch a step half done.
#[derive(Debug)]
pub struct DeliveryStats {
    stream: &'static str,
    routed: AtomicU64,
    replayed: AtomicU64,
    queued: AtomicU64,
    sent: AtomicU64,
    requests: AtomicU64,
    retried: AtomicU64,
    spooled: AtomicU64,
    spool: Mutex<Option<SpoolStats>>,
    dropped: [AtomicU64; DropReason::ALL.len()],
    warned: [AtomicBool; DropReason::ALL.len()],
    last_error: Mutex<Option<String>>,
    /// `sampled_out` by event name.
    sampled_by_name: Mutex<std::collections::BTreeMap<String, u64>>,
    /// What waits for this destination in the pipeline's queue, not yet in the counters above
    /// (set once by the pipeline; see [`Pending`]).
    pending: std::sync::OnceLock<(std::sync::Weak<dyn Pending>, usize)>,
}

/// What the pipeline's one queue holds for a destination and has not yet handed to it:
/// records that route there (`waiting`), and records refused at the queue's door whose
/// `queue_full` drop is not yet in the counters (`door_dropped`). A snapshot adds both, so the
/// accounting invariant holds while records wait in the queue or its overflow.
pub(crate) trait Pending: Send + Sync + std::fmt::Debug {
    /// The counts for destination `index`.
    fn pending(&self, index: usize) -> QueueCounts;
    /// Destination `index`'s `rate_limited` events by name.
    fn rate_limited_by_name(&self, index: usize) -> Vec<(String, u64)>;
}

/// What the pipeline's queue counts for one destination (see [`Pending`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct QueueCounts {
    /// Queued records and events that route there.
    pub(crate) waiting: u64,
    /// Dropped at the door as `queue_full`, not yet in the counters.
    pub(crate) door_dropped: u64,
    /// Refused at the door by the rate limiter (kept there, never in the counters above).
    pub(crate) rate_limited: u64,
    /// Records that route elsewhere.
    pub(crate) ignored: u64,
}

/// Dropped events by reason (see [`DropReason`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct DroppedCounts {
    pub queue_full: u64,
    pub evicted: u64,
    pub invalid: u64,
    pub rejected: u64,
    pub too_large: u64,
    pub expired: u64,
    pub retries_exhausted: u64,
    pub shutdown: u64,
    pub purged: u64,
    pub spool_cap: u64,
    pub spool_write_failed: u64,
    pub rate_limited: u64,
    pub sampled_out: u64,
}

impl DroppedCounts {
    /// The sum over every reason.
    pub fn total(&self) -> u64 {
        self.queue_full
            + self.evicted
            + self.invalid
            + self.rejected
            + self.too_large
            + self.expired
            + self.retries_exhausted
            + self.shutdown
            + self.purged
            + self.spool_cap
            + self.spool_write_failed
            + self.rate_limited
            + self.sampled_out
    }

    /// The count for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::QueueFull => self.queue_full,
            DropReason::Evicted => self.evicted,
            DropReason::Invalid => self.invalid,
            DropReason::Rejected => self.rejected,
            DropReason::TooLarge => self.too_large,
            DropReason::Expired => self.expired,
            DropReason::RetriesExhausted => self.retries_exhausted,
            DropReason::Shutdown => self.shutdown,
            DropReason::Purged => self.purged,
            DropReason::SpoolCap => self.spool_cap,
            DropReason::SpoolWriteFailed => self.spool_write_failed,
            DropReason::RateLimited => self.rate_limited,
            DropReason::SampledOut => self.sampled_out,
        }
    }
}

/// A point-in-time copy of one destination's delivery counters. All but `queued` are monotonic.
///
/// They keep one invariant (`docs/RELIABILITY.md`, "Accounting"): every event is counted once
/// where it came from (`routed` this run, or `replayed` from the spool) and once where it is
/// (`sent`, `dropped` by reason, or still `queued`), so
/// `routed + replayed = sent + dropped.total() + queued`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryStatsSnapshot {
    /// Events handed to this engine in this run that its stream routes: those queued, and
    /// those refused at once (the pipeline's queue full, shut down), and those still waiting in
    /// the pipeline's queue.
    pub routed: u64,
    /// Events an earlier run left in the spool, found when this engine opened it.
    pub replayed: u64,
    /// Events routed or replayed and neither delivered nor dropped yet, wherever they wait: in
    /// memory (the pipeline's queue, backlog, in flight) or in the on-disk spool. After shutdown,
    /// what stays in the spool for the next start is still queued (and also reported as
    /// [`spooled`](Self::spooled)).
    pub queued: u64,
    /// Events delivered (answered 2xx).
    pub sent: u64,
    /// Requests made (every attempt, including retries and split halves).
    pub requests: u64,
    /// Failed attempts that were scheduled for a retry after a backoff.
    pub retried: u64,
    /// Records not meant for this stream (no event name, activity entries, other routes).
    pub ignored: u64,
    /// Events dropped, by reason.
    pub dropped: DroppedCounts,
    /// Events still undelivered when the engine stopped that stay in the on-disk spool and go
    /// out on the next start (never counted as dropped).
    pub spooled: u64,
    /// The on-disk spool's counters (damaged records skipped, cap losses, bytes on disk), when
    /// the engine has a spool.
    pub spool: Option<SpoolStats>,
    /// The most recent delivery error, e.g. `"HTTP 503: busy"` or `"connection: refused"`.
    pub last_error: Option<String>,
    /// `dropped.rate_limited` by event name (names past the limiter's 1024 counted together
    /// as `(other names)`).
    pub rate_limited_by_name: std::collections::BTreeMap<String, u64>,
    /// `dropped.sampled_out` by event name.
    pub sampled_out_by_name: std::collections::BTreeMap<String, u64>,
}

impl DeliveryStats {
    /// Fresh counters for the stream called `stream` (used in log messages).
    pub fn new(stream: &'static str) -> Self {
        DeliveryStats {
            stream,
            routed: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            spooled: AtomicU64::new(0),
            spool: Mutex::new(None),
            dropped: Default::default(),
            warned: Default::default(),
            last_error: Mutex::new(None),
            sampled_by_name: Mutex::new(Default::default()),
            pending: std::sync::OnceLock::new(),
        }
    }

    /// Makes snapshots include what the pipeline's queue holds for destination `index`.
    pub(crate) fn set_pending(&self, source: std::sync::Weak<dyn Pending>, index: usize) {
        let _ = self.pending.set((source, index));
    }

    /// What the pipeline's queue holds for this destination (zeros without a pipeline).
    fn in_queue(&self) -> QueueCounts {
        let Some((source, index)) = self.pending.get() else {
            return QueueCounts::default();
        };
        source
            .upgrade()
            .map_or_else(QueueCounts::default, |p| p.pending(*index))
    }

    /// The pipeline's `rate_limited` counts by name for this destination.
    fn limited_by_name(&self) -> std::collections::BTreeMap<String, u64> {
        let Some((source, index)) = self.pending.get() else {
            return Default::default();
        };
        source
            .upgrade()
            .map(|p| p.rate_limited_by_name(*index).into_iter().collect())
            .unwrap_or_default()
    }

    /// Counts one event of `name` left out by its sample rate (it was queued).
    pub(crate) fn sampled_out(&self, name: &str) {
        self.dropped(DropReason::SampledOut, 1, "sample rate");
        if let Ok(mut m) = self.sampled_by_name.lock() {
            match m.get_mut(name) {
                Some(n) => *n += 1,
                None => {
                    m.insert(name.to_string(), 1);
                }
            }
        }
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> DeliveryStatsSnapshot {
        let QueueCounts {
            waiting,
            door_dropped: door,
            rate_limited,
            ignored,
        } = self.in_queue();
        let d = |r: DropReason| {
            let extra = match r {
                DropReason::QueueFull => door,
                DropReason::RateLimited => rate_limited,
                _ => 0,
            };
            self.dropped[r.index()].load(Relaxed) + extra
        };
        DeliveryStatsSnapshot {
            routed: self.routed.load(Relaxed) + waiting + door + rate_limited,
            replayed: self.replayed.load(Relaxed),
            queued: self.queued.load(Relaxed) + waiting,
            sent: self.sent.load(Relaxed),
            requests: self.requests.load(Relaxed),
            retried: self.retried.load(Relaxed),
            ignored,
            dropped: DroppedCounts {
                queue_full: d(DropReason::QueueFull),
                evicted: d(DropReason::Evicted),
                invalid: d(DropReason::Invalid),
                rejected: d(DropReason::Rejected),
                too_large: d(DropReason::TooLarge),
                expired: d(DropReason::Expired),
                retries_exhausted: d(DropReason::RetriesExhausted),
                shutdown: d(DropReason::Shutdown),
                purged: d(DropReason::Purged),
                spool_cap: d(DropReason::SpoolCap),
                spool_write_failed: d(DropReason::SpoolWriteFailed),
                rate_limited: d(DropReason::RateLimited),
                sampled_out: d(DropReason::SampledOut),
            },
            spooled: self.spooled.load(Relaxed),
            spool: self.spool.lock().map(|s| *s).unwrap_or(None),
            last_error: self.last_error.lock().map(|e| e.clone()).unwrap_or(None),
            rate_limited_by_name: match rate_limited {
                0 => Default::default(),
                _ => self.limited_by_name(),
            },
            sampled_out_by_name: self
                .sampled_by_name
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
        }
    }

    /// Events currently queued (the `queued` gauge), the pipeline's queue included.
    pub fn queued(&self) -> u64 {
        self.queued.load(Relaxed) + self.in_queue().waiting
    }

    /// Counts `n` routed events taken into the queue.
    pub(crate) fn enqueued(&self, n: u64) {
        self.queued.fetch_add(n, Relaxed);
        self.routed.fetch_add(n, Relaxed);
    }

    /// Counts `n` events an earlier run left in the spool, now queued again.
    pub(crate) fn replayed(&self, n: u64) {
        self.queued.fetch_add(n, Relaxed);
        self.replayed.fetch_add(n, Relaxed);
    }

    /// Removes `n` events from the `queued` gauge (they were sent, dropped or ignored).
    fn settle(&self, n: u64) {
        let _ = self
            .queued
            .fetch_update(Relaxed, Relaxed, |q| Some(q.saturating_sub(n)));
    }

    pub(crate) fn delivered(&self, n: u64) {
        self.sent.fetch_add(n, Relaxed);
        self.settle(n);
    }

    /// Moves `n` events already counted as sent to `reason` (a 2xx that rejected part of its
    /// batch): they were settled once, so the accounting still holds. `true` when this logged
    /// the first drop of its kind.
    pub(crate) fn reclassify_sent(&self, n: u64, reason: DropReason, detail: &str) -> bool {
        if n == 0 {
            return false;
        }
        self.sent.fetch_sub(n, Relaxed);
        self.count_drop(reason, n, detail)
    }

    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }

    pub(crate) fn retry(&self) {
        self.retried.fetch_add(1, Relaxed);
    }

    /// Counts `n` routed events dropped before they were queued (refused at the door).
    pub(crate) fn refused(&self, reason: DropReason, n: u64, detail: &str) {
        self.routed.fetch_add(n, Relaxed);
        let _ = self.count_drop(reason, n, detail);
    }

    /// Counts `n` dropped events that were queued. Returns whether this call logged the
    /// first-drop warning of `reason`.
    pub(crate) fn dropped(&self, reason: DropReason, n: u64, detail: &str) -> bool {
        self.settle(n);
        self.count_drop(reason, n, detail)
    }

    fn count_drop(&self, reason: DropReason, n: u64, detail: &str) -> bool {
        if n == 0 {
            return false;
        }
        self.dropped[reason.index()].fetch_add(n, Relaxed);
        if matches!(reason, DropReason::Purged | DropReason::SampledOut) {
            // A purge or a sample rate is a choice, not a loss worth a warning.
            return false;
        }
        // Warn on the first loss of each kind only; the counters carry the rest.
        if !self.warned[reason.index()].swap(true, Relaxed) {
            tracing::warn!(
                stream = self.stream,
                reason = reason.as_str(),
                count = n,
                detail,
                "telemetry events dropped (first drop of this kind; further ones are only counted)"
            );
            return true;
        }
        false
    }

    /// Counts `n` queued events left in the spool at shutdown (they stay `queued`: they wait
    /// in the spool for the next start).
    pub(crate) fn spooled(&self, n: u64) {
        self.spooled.fetch_add(n, Relaxed);
    }

    pub(crate) fn set_spool(&self, stats: Option<SpoolStats>) {
        if let Ok(mut slot) = self.spool.lock() {
            *slot = stats;
        }
    }

    pub(crate) fn set_last_error(&self, error: String) {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = Some(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_counted_by_reason_and_settle_the_gauge() {
        let stats = DeliveryStats::new("test");
        stats.enqueued(5);
        stats.delivered(2);
        stats.dropped(DropReason::Rejected, 2, "HTTP 400");
        stats.refused(DropReason::QueueFull, 7, "full");
        let s = stats.snapshot();
        assert_eq!(s.routed, 12);
        assert_eq!(s.routed, s.sent + s.dropped.total() + s.queued);
        assert_eq!(s.queued, 1);
        assert_eq!(s.sent, 2);
        assert_eq!(s.dropped.rejected, 2);
        assert_eq!(s.dropped.queue_full, 7);
        assert_eq!(s.dropped.total(), 9);
        assert_eq!(s.dropped.get(DropReason::QueueFull), 7);
    }

    #[test]
    fn reason_names_are_snake_case_and_ordered() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(r
                .as_str()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }
}
