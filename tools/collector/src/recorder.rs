//! The collector's shared record: the accepted events and the recent rejections it keeps
//! (bounded in count and bytes, oldest dropped first, drops counted), per-stream counts,
//! waiting, and live subscriptions.
//!
//! Memory: kept events hold at most [`DEFAULT_MAX_KEPT_BYTES`] (unless configured) of event
//! JSON, measured as serialized (the parsed values in memory take a small multiple of that);
//! kept rejections hold at most [`MAX_KEPT_REJECTIONS`] reasons of at most [`MAX_REASON_BYTES`]
//! each, about 1 MiB.

use std::collections::BTreeSet;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::kept::Kept;
use super::received::{Arrival, Counts, Destination, Received, Rejected};

/// How many accepted events a collector keeps unless told otherwise; past it the oldest are
/// dropped and counted in [`Counts::not_kept`].
pub const DEFAULT_MAX_KEPT: usize = 100_000;

/// How many bytes of accepted events a collector keeps unless told otherwise: 32 MiB, counting
/// each event as its name, id and JSON as serialized. Past it the oldest are dropped and counted
/// in [`Counts::not_kept`]; an event larger than this alone is counted and never kept.
pub const DEFAULT_MAX_KEPT_BYTES: usize = 32 * 1024 * 1024;

/// How many recent rejections a collector keeps; past it the oldest are dropped and counted in
/// [`Counts::rejections_not_kept`].
pub const MAX_KEPT_REJECTIONS: usize = 1_000;

/// The most bytes of a rejection's reason, as answered and as kept: 1 KiB. A reason can quote
/// the request (a malformed value), so a longer one keeps its start, cut on a character
/// boundary, and ends with `…`.
pub const MAX_REASON_BYTES: usize = 1024;

/// How many arrivals a subscription buffers before further ones are dropped for it (counted in
/// [`Counts::subscriber_drops`]).
pub const SUBSCRIPTION_BUFFER: usize = 10_000;

struct State {
    received: Kept<Received>,
    rejected: Kept<Rejected>,
    counts: Counts,
    subscribers: Vec<SyncSender<Arrival>>,
}

impl State {
    fn publish(&mut self, arrival: &Arrival) {
        let mut drops = 0;
        self.subscribers
            .retain(|tx| match tx.try_send(arrival.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    drops += 1;
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
        self.counts.subscriber_drops += drops;
    }
}

/// The shared record of a collector: what arrived (the command-line tool's view page reads its counts).
#[doc(hidden)]
pub struct Recorder {
    state: Mutex<State>,
    changed: Condvar,
}

impl Recorder {
    /// A record keeping at most `max_kept` accepted events and `max_kept_bytes` of them.
    pub(crate) fn new(max_kept: usize, max_kept_bytes: usize) -> Self {
        Recorder {
            state: Mutex::new(State {
                received: Kept::new(max_kept, max_kept_bytes),
                // Reasons are cut to MAX_REASON_BYTES, so the count bounds the bytes.
                rejected: Kept::new(MAX_KEPT_REJECTIONS, usize::MAX),
                counts: Counts::default(),
                subscribers: Vec::new(),
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation below is complete or absent, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one accepted request's events, all at once.
    pub(crate) fn accept(&self, events: Vec<Received>) {
        // Measured before taking the lock: serializing a large event takes a while.
        let sized: Vec<(Received, usize)> = events
            .into_iter()
            .map(|event| {
                let size = size_of(&event);
                (event, size)
            })
            .collect();
        let mut state = self.lock();
        for (event, size) in sized {
            state.counts.add(event.stream, 1);
            if !state.subscribers.is_empty() {
                state.publish(&Arrival::Received(event.clone()));
            }
            state.counts.not_kept += state.received.push(event, size);
        }
        drop(state);
        self.changed.notify_all();
    }

    pub(crate) fn reject(&self, rejected: Rejected) {
        // The server cuts reasons already; cut here too, since the count bounds the bytes kept
        // only while every reason is bounded.
        let rejected = Rejected {
            reason: cut_reason(rejected.reason),
            ..rejected
        };
        let mut state = self.lock();
        state.counts.rejected_requests += 1;
        if !state.subscribers.is_empty() {
            state.publish(&Arrival::Rejected(rejected.clone()));
        }
        let size = rejected.reason.len();
        state.counts.rejections_not_kept += state.rejected.push(rejected, size);
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.lock().received.iter().cloned().collect()
    }

    pub(crate) fn received_on(&self, stream: Destination) -> Vec<Received> {
        let state = self.lock();
        state
            .received
            .iter()
            .filter(|r| r.stream == stream)
            .cloned()
            .collect()
    }

    pub(crate) fn rejected(&self) -> Vec<Rejected> {
        self.lock().rejected.iter().cloned().collect()
    }

    /// The counters so far.
    pub fn counts(&self) -> Counts {
        self.lock().counts
    }

    pub(crate) fn unique_ids(&self, stream: Destination) -> BTreeSet<String> {
        let state = self.lock();
        state
            .received
            .iter()
            .filter(|r| r.stream == stream)
            .filter_map(|r| r.id.clone())
            .collect()
    }

    /// Waits until `done(counts)` holds or `timeout` passed; returns whether it holds.
    pub(crate) fn wait_until(&self, timeout: Duration, done: impl Fn(&Counts) -> bool) -> bool {
        let deadline = closedloop_telemetry_exporters::__private::delivery::deadline_after(
            Instant::now(),
            timeout,
        );
        let mut state = self.lock();
        loop {
            if done(&state.counts) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    pub(crate) fn subscribe(&self) -> Receiver<Arrival> {
        let (tx, rx) = std::sync::mpsc::sync_channel(SUBSCRIPTION_BUFFER);
        self.lock().subscribers.push(tx);
        rx
    }

    pub(crate) fn clear(&self) {
        let mut state = self.lock();
        state.received.clear();
        state.rejected.clear();
        state.counts = Counts {
            subscriber_drops: state.counts.subscriber_drops,
            ..Counts::default()
        };
    }
}

/// The bytes an accepted event counts for: its name, its id and its JSON as serialized.
fn size_of(event: &Received) -> usize {
    /// Counts what is written and keeps none of it.
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut json = Counter(0);
    // Writing a `Value` into a counter cannot fail.
    let _ = serde_json::to_writer(&mut json, &event.body);
    event.name.len() + event.id.as_ref().map_or(0, String::len) + json.0
}

/// `reason` cut to [`MAX_REASON_BYTES`]: its start, on a character boundary, then `…`.
pub(super) fn cut_reason(reason: String) -> String {
    if reason.len() <= MAX_REASON_BYTES {
        return reason;
    }
    const MARK: &str = "…";
    let head = closedloop_telemetry_layers::__private::truncate::keep_head(
        &reason,
        MAX_REASON_BYTES - MARK.len(),
    );
    format!("{head}{MARK}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::SystemTime;

    fn event(stream: Destination, id: &str) -> Received {
        Received {
            stream,
            name: "e".into(),
            id: Some(id.into()),
            body: json!({}),
            at: SystemTime::now(),
        }
    }

    #[test]
    fn keeps_at_most_max_and_counts_the_rest() {
        let r = Recorder::new(2, DEFAULT_MAX_KEPT_BYTES);
        r.accept(vec![
            event(Destination::Relay, "a"),
            event(Destination::Relay, "a"),
            event(Destination::PostHog, "b"),
        ]);
        let c = r.counts();
        assert_eq!((c.relay, c.posthog, c.not_kept, c.total()), (2, 1, 1, 3));
        assert_eq!(r.received().len(), 2);
        assert_eq!(r.unique_ids(Destination::Relay).len(), 1);
    }

    #[test]
    fn rejections_keep_the_latest_with_cut_reasons_and_count_the_rest() {
        let r = Recorder::new(10, DEFAULT_MAX_KEPT_BYTES);
        for i in 0..MAX_KEPT_REJECTIONS + 2 {
            r.reject(Rejected {
                stream: None,
                status: 400,
                reason: format!("{i} {}", "ñ".repeat(MAX_REASON_BYTES)),
                at: SystemTime::now(),
            });
        }
        let c = r.counts();
        assert_eq!((c.rejected_requests, c.rejections_not_kept), (1002, 2));
        let kept = r.rejected();
        assert_eq!(kept.len(), MAX_KEPT_REJECTIONS);
        assert!(kept[0].reason.starts_with("2 ñ"), "the oldest went first");
        assert!(kept
            .iter()
            .all(|k| k.reason.len() <= MAX_REASON_BYTES && k.reason.ends_with("ñ…")));
        assert_eq!(cut_reason("short".into()), "short");
    }

    #[test]
    fn a_full_subscriber_is_counted_not_waited_for() {
        let r = Recorder::new(10, DEFAULT_MAX_KEPT_BYTES);
        let rx = r.subscribe();
        for i in 0..SUBSCRIPTION_BUFFER + 5 {
            r.accept(vec![event(Destination::Datadog, &i.to_string())]);
        }
        assert_eq!(r.counts().subscriber_drops, 5);
        drop(rx);
        r.accept(vec![event(Destination::Datadog, "x")]);
        assert!(r.lock().subscribers.is_empty());
    }
}
