//! What the view shows, as JSON: the activity log, the "sent" records and per-stream health,
//! plus the rate history behind the sparklines. No I/O here.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use closedloop_telemetry_exporters::__private::delivery::{SentOutcome, SentRecord, SentRing};
use closedloop_telemetry_layers::__private::envelope::format_timestamp;
use closedloop_telemetry_layers::ActivityEntry;
use serde_json::{json, Value};

/// The most activity entries the view shows (the newest).
const ACTIVITY_VIEW_MAX: usize = 1000;
/// The sparkline's bucket width.
const RATE_BUCKET: Duration = Duration::from_secs(10);
/// Buckets in the sparkline: 30 × 10 s = the last 5 minutes.
const RATE_BUCKETS: usize = 30;

/// The health of one stream, as a source reports it.
#[derive(Debug, Clone, Default)]
pub struct StreamHealth {
    /// The stream's name.
    pub name: &'static str,
    /// Counters in display order (`queued`, `sent`, `spooled`, …).
    pub counters: Vec<(&'static str, u64)>,
    /// Dropped events by reason (reasons with a zero count may be left out).
    pub dropped: Vec<(&'static str, u64)>,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Events the rate limit refused, by event name (empty when none).
    pub rate_limited_by_name: Vec<(String, u64)>,
    /// The monotonic count the sparkline shows the rate of (events sent or received).
    pub rate_of: u64,
}

/// What a view shows; implemented for a running pipeline and for the collector.
pub trait Source: Send + Sync + 'static {
    /// The page's heading.
    fn title(&self) -> &'static str;
    /// The activity entries from sequence number `from` on, at most the newest `max`, oldest
    /// first (`None`: this source has none). Copies only those: it runs on every request and
    /// every live tick, and the log may hold 100,000 entries.
    fn activity(&self, from: u64, max: usize) -> Option<Vec<ActivityEntry>>;
    /// The ring the "sent" part reads.
    fn sent(&self) -> &SentRing;
    /// Per-stream health.
    fn health(&self) -> Vec<StreamHealth>;
    /// Called about once a second by the server (the collector drains its arrivals here).
    fn tick(&self) {}
}

/// Per-stream samples of [`StreamHealth::rate_of`], one per [`RATE_BUCKET`].
#[derive(Debug, Default)]
pub(crate) struct History {
    samples: Mutex<BTreeMap<&'static str, VecDeque<(Instant, u64)>>>,
}

impl History {
    /// Takes a sample of each stream when its last one is a bucket old.
    pub(crate) fn sample(&self, health: &[StreamHealth], now: Instant) {
        let mut all = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        for h in health {
            let s = all.entry(h.name).or_default();
            if s.back()
                .is_none_or(|(t, _)| now.duration_since(*t) >= RATE_BUCKET)
            {
                s.push_back((now, h.rate_of));
                while s.len() > RATE_BUCKETS + 1 {
                    s.pop_front();
                }
            }
        }
    }

    /// Events per bucket over the last five minutes, oldest first, ending with the bucket in
    /// progress.
    fn rates(&self, name: &str, current: u64) -> Vec<u64> {
        let all = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(s) = all.get(name) else {
            return Vec::new();
        };
        let mut counts: Vec<u64> = s.iter().map(|(_, n)| *n).collect();
        counts.push(current);
        let rates: Vec<u64> = counts
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]))
            .collect();
        let skip = rates.len().saturating_sub(RATE_BUCKETS);
        rates[skip..].to_vec()
    }
}

/// `/api/activity`: the entries from sequence number `from` on (at most the newest
/// [`ACTIVITY_VIEW_MAX`]), newest first; `next_seq` is the cursor after them.
pub(crate) fn activity_json(source: &dyn Source, from: u64) -> Value {
    let Some(entries) = source.activity(from, ACTIVITY_VIEW_MAX) else {
        return json!({"available": false, "entries": [], "next_seq": 0});
    };
    let next = entries.last().map_or(from, |e| e.seq + 1);
    let list: Vec<Value> = entries
        .iter()
        .rev()
        .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
        .collect();
    json!({"available": true, "entries": list, "next_seq": next})
}

/// `/api/sent`: the newest records first.
pub(crate) fn sent_json(source: &dyn Source, from: u64) -> Value {
    let ring = source.sent();
    let next = ring.next_seq();
    let list: Vec<Value> = ring.since(from).iter().rev().map(|r| record(r)).collect();
    json!({"records": list, "next_seq": next, "capacity": closedloop_telemetry_exporters::__private::delivery::SENT_RING_CAPACITY})
}

fn record(r: &SentRecord) -> Value {
    let mut v = json!({
        "seq": r.seq,
        "stream": r.stream,
        "id": r.id,
        "at": format_timestamp(r.at),
        "outcome": r.outcome.as_str(),
        "body": r.body,
        "truncated": r.truncated,
    });
    let (reason, detail) = match &r.outcome {
        SentOutcome::Sent => (None, None),
        SentOutcome::Spooled => (None, Some("left in the spool for the next start")),
        SentOutcome::Retrying { spooled, error } => (
            Some(if *spooled { "spooled" } else { "queued" }),
            Some(error.as_str()),
        ),
        SentOutcome::Dropped { reason, detail } => (Some(reason.as_str()), Some(detail.as_str())),
    };
    if let Some(reason) = reason {
        v["reason"] = reason.into();
    }
    if let Some(detail) = detail {
        v["detail"] = detail.into();
    }
    v
}

/// `/api/stats`: per stream, its counters, drops by reason, last error and rate sparkline.
pub(crate) fn stats_json(source: &dyn Source, history: &History) -> Value {
    let streams: Vec<Value> = source
        .health()
        .iter()
        .map(|h| {
            // Pairs, not objects, so the display order survives.
            let counters: Vec<Value> = h.counters.iter().map(|(k, v)| json!([k, v])).collect();
            let dropped: Vec<Value> = h
                .dropped
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, v)| json!([k, v]))
                .collect();
            json!({
                "name": h.name,
                "counters": counters,
                "dropped": dropped,
                "dropped_total": h.dropped.iter().map(|(_, n)| n).sum::<u64>(),
                "rate_limited_by_name": h
                    .rate_limited_by_name
                    .iter()
                    .map(|(k, v)| json!([k, v]))
                    .collect::<Vec<Value>>(),
                "last_error": h.last_error,
                "rate": history.rates(h.name, h.rate_of),
                "rate_bucket_seconds": RATE_BUCKET.as_secs(),
            })
        })
        .collect();
    json!({"streams": streams})
}

/// Everything the page needs for its first paint.
pub(crate) fn initial_json(source: &dyn Source, history: &History) -> Value {
    json!({
        "title": source.title(),
        "activity": activity_json(source, 0),
        "sent": sent_json(source, 0),
        "stats": stats_json(source, history),
    })
}

/// JSON safe to place inside a `<script>` element: no `<`, `>` or `&` characters.
pub(crate) fn script_safe(v: &Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}
