//! The collector's shared record: the bounded list of accepted events, the recent rejections,
//! per-stream counts, waiting, and live subscriptions.

use std::collections::{BTreeSet, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::received::{Arrival, Counts, Destination, Received, Rejected};

/// How many accepted events a collector keeps unless told otherwise; later ones are counted.
pub const DEFAULT_MAX_KEPT: usize = 100_000;

/// How many recent rejections a collector keeps.
pub const MAX_KEPT_REJECTIONS: usize = 1_000;

/// How many arrivals a subscription buffers before further ones are dropped for it (counted in
/// [`Counts::subscriber_drops`]).
pub const SUBSCRIPTION_BUFFER: usize = 10_000;

#[derive(Default)]
struct State {
    received: Vec<Received>,
    rejected: VecDeque<Rejected>,
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

/// The shared record of a collector.
pub(crate) struct Recorder {
    state: Mutex<State>,
    changed: Condvar,
    max_kept: usize,
}

impl Recorder {
    pub(crate) fn new(max_kept: usize) -> Self {
        Recorder {
            state: Mutex::default(),
            changed: Condvar::new(),
            max_kept,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation below is complete or absent, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one accepted request's events, all at once.
    pub(crate) fn accept(&self, events: Vec<Received>) {
        let mut state = self.lock();
        for event in events {
            state.counts.add(event.stream, 1);
            if !state.subscribers.is_empty() {
                state.publish(&Arrival::Received(event.clone()));
            }
            if state.received.len() < self.max_kept {
                state.received.push(event);
            } else {
                state.counts.not_kept += 1;
            }
        }
        drop(state);
        self.changed.notify_all();
    }

    pub(crate) fn reject(&self, rejected: Rejected) {
        let mut state = self.lock();
        state.counts.rejected_requests += 1;
        if !state.subscribers.is_empty() {
            state.publish(&Arrival::Rejected(rejected.clone()));
        }
        if state.rejected.len() >= MAX_KEPT_REJECTIONS {
            state.rejected.pop_front();
        }
        state.rejected.push_back(rejected);
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
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

    pub(crate) fn counts(&self) -> Counts {
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
        let deadline =
            closedloop_telemetry_exporters::delivery::deadline_after(Instant::now(), timeout);
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
        let r = Recorder::new(2);
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
    fn a_full_subscriber_is_counted_not_waited_for() {
        let r = Recorder::new(10);
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
