//! The "sent" tap: a bounded ring of what engines sent, spooled or dropped (each item's encoded,
//! redacted JSON and its outcome), for a local view of what leaves the machine.
//!
//! An engine publishes into a ring only once one is attached with
//! [`Delivery::attach_tap`](super::Delivery::attach_tap); until then the hook is one atomic
//! load per batch outcome. The ring keeps the newest [`SENT_RING_CAPACITY`] records, each body
//! cut to [`SENT_BODY_MAX_BYTES`] and its error detail to [`SENT_DETAIL_MAX_BYTES`], so it holds
//! at most about 8.9 MB however much is sent (8,192 + 512 bytes plus about 190 bytes of id and
//! bookkeeping per record); with typical items of 300–500 bytes, about 0.6 MB.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use closedloop_telemetry_layers::__private::truncate::keep_head;

use super::stats::DropReason;
use super::wire_format::Item;

/// How many records a [`SentRing`] keeps (the oldest go first).
pub const SENT_RING_CAPACITY: usize = 1000;
/// The most bytes of one item's JSON a record keeps; a longer body keeps its start (cut on a
/// UTF-8 boundary) and is marked [`SentRecord::truncated`].
pub(crate) const SENT_BODY_MAX_BYTES: usize = 8192;
/// The most bytes of an outcome's error or detail text a record keeps.
pub(crate) const SENT_DETAIL_MAX_BYTES: usize = 512;

/// What became of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SentOutcome {
    /// The destination accepted it (2xx).
    Sent,
    /// Left in the on-disk spool at shutdown: it goes out on the next start.
    Spooled,
    /// Its first attempt failed; it stays queued (`spooled`: on disk) and is retried.
    Retrying {
        /// Whether it waits in the on-disk spool (else in memory).
        spooled: bool,
        /// Why the attempt failed (redacted, as in `last_error`).
        error: String,
    },
    /// Dropped, never to be sent.
    Dropped {
        /// Why.
        reason: DropReason,
        /// The detail (the server's redacted answer, or what the engine saw).
        detail: String,
    },
}

impl SentOutcome {
    /// `"sent"`, `"spooled"`, `"retrying"` or `"dropped"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SentOutcome::Sent => "sent",
            SentOutcome::Spooled => "spooled",
            SentOutcome::Retrying { .. } => "retrying",
            SentOutcome::Dropped { .. } => "dropped",
        }
    }
}

/// One item as it left (or failed to leave) an engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRecord {
    /// Position in the ring's history, starting at 0.
    pub seq: u64,
    /// The stream (`"posthog"`, `"relay"`, `"datadog"`).
    pub stream: &'static str,
    /// The item's id (its UUIDv7; empty when the source has none).
    pub id: String,
    /// When the outcome was known.
    pub at: SystemTime,
    /// What became of it.
    pub outcome: SentOutcome,
    /// The item's JSON exactly as encoded for the wire (after redaction), at most
    /// 8 KiB.
    pub body: String,
    /// Whether `body` was cut.
    pub truncated: bool,
}

#[derive(Debug, Default)]
struct Ring {
    records: VecDeque<Arc<SentRecord>>,
    next_seq: u64,
}

/// A bounded, shareable ring of [`SentRecord`]s: engines (or a collector) publish, a view reads.
#[derive(Debug, Default)]
pub struct SentRing {
    ring: Mutex<Ring>,
}

impl SentRing {
    /// An empty ring keeping at most [`SENT_RING_CAPACITY`] records.
    pub fn new() -> Arc<Self> {
        Arc::new(SentRing::default())
    }

    /// Records one item's outcome; the body is cut to [`SENT_BODY_MAX_BYTES`], the outcome's
    /// text to [`SENT_DETAIL_MAX_BYTES`].
    pub fn push(&self, stream: &'static str, id: String, body: &str, mut outcome: SentOutcome) {
        if let SentOutcome::Retrying { error: text, .. }
        | SentOutcome::Dropped { detail: text, .. } = &mut outcome
        {
            let cut = keep_head(text, SENT_DETAIL_MAX_BYTES).len();
            text.truncate(cut);
        }
        let kept = keep_head(body, SENT_BODY_MAX_BYTES);
        let mut record = SentRecord {
            seq: 0,
            stream,
            id,
            at: SystemTime::now(),
            outcome,
            body: kept.to_string(),
            truncated: kept.len() < body.len(),
        };
        let evicted = {
            let mut ring = self.lock();
            record.seq = ring.next_seq;
            ring.next_seq += 1;
            let evicted = if ring.records.len() >= SENT_RING_CAPACITY {
                ring.records.pop_front()
            } else {
                None
            };
            ring.records.push_back(Arc::new(record));
            evicted
        };
        drop(evicted); // freed outside the lock
    }

    /// Records the same outcome for several items.
    pub fn publish(&self, stream: &'static str, items: &[Item], outcome: &SentOutcome) {
        for item in items {
            let body = String::from_utf8_lossy(&item.bytes);
            self.push(stream, item.id.to_string(), &body, outcome.clone());
        }
    }

    /// The kept records with `seq >= from`, oldest first (copies pointers under the lock).
    pub fn since(&self, from: u64) -> Vec<Arc<SentRecord>> {
        let ring = self.lock();
        let skip = ring.records.partition_point(|r| r.seq < from);
        ring.records.iter().skip(skip).cloned().collect()
    }

    /// Every kept record, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<SentRecord>> {
        self.since(0)
    }

    /// The `seq` the next record will get (the count published so far).
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// How many records are kept (at most [`SENT_RING_CAPACITY`]).
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        // Every mutation is complete or absent, so a poisoned lock is still consistent.
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The slot an engine and its worker share: empty (no cost) until a view attaches a ring.
pub(crate) type TapSlot = Arc<OnceLock<Arc<SentRing>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_records_and_cuts_long_bodies() {
        let ring = SentRing::new();
        for i in 0..(SENT_RING_CAPACITY + 5) {
            ring.push("relay", i.to_string(), "{}", SentOutcome::Sent);
        }
        assert_eq!(ring.len(), SENT_RING_CAPACITY);
        assert_eq!(ring.snapshot()[0].seq, 5);
        assert_eq!(ring.since(SENT_RING_CAPACITY as u64 + 3).len(), 2);
        let long = "é".repeat(SENT_BODY_MAX_BYTES);
        ring.push("relay", String::new(), &long, SentOutcome::Spooled);
        let last = ring.since(ring.next_seq() - 1);
        assert!(last[0].truncated);
        assert_eq!(last[0].body.len(), SENT_BODY_MAX_BYTES);
    }
}
