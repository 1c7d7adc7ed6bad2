//! The hand-off between the app thread and the sinks: a bounded queue of moved (never cloned)
//! log records, drained by one named worker that decodes each record once and submits the
//! events to every sink that routes them.
//!
//! The app thread only takes an uncontended lock and moves the record in. It does not wake
//! the worker: while events flow the worker wakes on its own [`TICK`] timer and drains
//! whatever arrived. Waking a thread from the app thread makes the scheduler run it on the
//! app's core (wake-affine), where it competes with the app; a timer wake does not. The app
//! thread wakes the worker only on the first record after the worker went to sleep for good
//! ([`DEEP_IDLE_AFTER`] without events) and when a flood fills a quarter of the
//! queue before the next tick.
//! A full queue drops the record and counts it as `queue_full` on the streams that would have
//! taken it; nothing ever blocks. Everything is pushed through on [`Handoff::flush`] and
//! [`Handoff::shutdown`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use closedloop_telemetry_exporters::decode::{decode, DecodeError, DecodeOptions, Event};
use closedloop_telemetry_exporters::delivery::DropReason;
use closedloop_telemetry_layers::catalogue::{self, CatalogueEntry};
use closedloop_telemetry_layers::convention::{CUSTOM_EVENT_NAME, EVENT};
use opentelemetry::logs::AnyValue;
use opentelemetry_sdk::logs::SdkLogRecord;

use crate::sink::Sink;

/// Records the hand-off queue holds before it drops (about 20 ms at 100k events/s, four ticks).
pub(crate) const CAPACITY: usize = 2048;
/// How often the worker drains while events flow: the most an event waits here.
pub(crate) const TICK: Duration = Duration::from_millis(5);
/// After this long without events the worker sleeps until the next one wakes it.
pub(crate) const DEEP_IDLE_AFTER: Duration = Duration::from_secs(1);

/// The worker is draining (or about to look at the queue): pushes never wake it.
const RUNNING: u8 = 0;
/// The worker sleeps until woken: the next push wakes it.
const IDLE: u8 = 1;
/// The worker sleeps until its next tick: only a push that fills a quarter of the queue wakes it.
const TICKING: u8 = 2;

/// The app-side handle of the hand-off (shared by the processor and the telemetry handle).
#[derive(Debug)]
pub(crate) struct Handoff {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    queue: Mutex<Vec<SdkLogRecord>>,
    capacity: usize,
    state: AtomicU8,
    closed: AtomicBool,
    /// Flush tickets handed out, and (under the lock) the last one the worker completed.
    requested: AtomicU64,
    completed: Mutex<u64>,
    completed_cv: Condvar,
    worker: Thread,
    sinks: Arc<Vec<Sink>>,
    decode: DecodeOptions,
    invalid: Arc<AtomicU64>,
    /// Per sink: records dropped at the full door and not yet added to the sink's counters
    /// (the worker adds them each pass, so the app thread touches only this counter).
    door_drops: Box<[AtomicU64]>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("state", &self.state.load(Ordering::Relaxed))
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Handoff {
    /// Starts the worker thread `closedloop-telemetry-handoff`.
    pub(crate) fn start(
        sinks: Arc<Vec<Sink>>,
        decode: DecodeOptions,
        invalid: Arc<AtomicU64>,
    ) -> std::io::Result<Self> {
        Self::with_capacity(sinks, decode, invalid, CAPACITY)
    }

    /// [`Handoff::start`] with another queue bound (tests).
    pub(crate) fn with_capacity(
        sinks: Arc<Vec<Sink>>,
        decode: DecodeOptions,
        invalid: Arc<AtomicU64>,
        capacity: usize,
    ) -> std::io::Result<Self> {
        // The worker needs the shared block and the shared block needs the worker's `Thread`:
        // hand the block over through a rendezvous once the thread exists.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<Shared>>(1);
        let thread = std::thread::Builder::new()
            .name("closedloop-telemetry-handoff".into())
            .spawn(move || {
                let _suppressed = opentelemetry::Context::enter_telemetry_suppressed_scope();
                closedloop_telemetry_exporters::priority::lower_current_thread();
                if let Ok(shared) = rx.recv() {
                    shared.run();
                }
            })?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::new()),
            capacity,
            state: AtomicU8::new(RUNNING),
            closed: AtomicBool::new(false),
            requested: AtomicU64::new(0),
            completed: Mutex::new(0),
            completed_cv: Condvar::new(),
            worker: thread.thread().clone(),
            door_drops: sinks.iter().map(|_| AtomicU64::new(0)).collect(),
            sinks,
            decode,
            invalid,
        });
        let _ = tx.send(shared.clone());
        Ok(Handoff {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Moves a record in. Never blocks on the worker: the lock is only ever held for a push or
    /// a swap. A full (or shut) queue drops the record and counts it.
    pub(crate) fn push(&self, record: SdkLogRecord) {
        let s = &*self.shared;
        let rejected = {
            let mut q = lock(&s.queue);
            if q.len() >= s.capacity || s.closed.load(Ordering::Relaxed) {
                Some(record)
            } else {
                q.push(record);
                let len = q.len();
                drop(q);
                s.wake_if_due(len);
                None
            }
        };
        if let Some(record) = rejected {
            s.count_rejected(&record);
        }
    }

    /// Pushes everything queued so far through to the sinks' own queues, waiting until
    /// `deadline`. Returns false when the worker did not finish in time. After shutdown there
    /// is nothing left to push: true at once.
    pub(crate) fn flush(&self, deadline: Instant) -> bool {
        if lock(&self.thread).is_none() {
            return true;
        }
        self.pass_through(deadline)
    }

    fn pass_through(&self, deadline: Instant) -> bool {
        let s = &*self.shared;
        let ticket = s.requested.fetch_add(1, Ordering::AcqRel) + 1;
        s.state.store(RUNNING, Ordering::SeqCst);
        s.worker.unpark();
        let mut done = lock(&s.completed);
        while *done < ticket {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            done = match s.completed_cv.wait_timeout(done, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    /// Refuses further records, pushes what is queued through (by `deadline`) and stops the
    /// worker. Later calls return at once.
    pub(crate) fn shutdown(&self, deadline: Instant) -> bool {
        let Some(thread) = lock(&self.thread).take() else {
            return true;
        };
        self.shared.closed.store(true, Ordering::SeqCst);
        let done = self.pass_through(deadline);
        if done {
            // The worker exits right after answering the flush of a closed queue.
            let _ = thread.join();
        }
        // Door drops that raced with the close.
        self.shared.settle_door_drops();
        done
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        // Let a detached worker finish what is queued and exit.
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.worker.unpark();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave their data inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// The app side of the wake policy: wake an idle worker for the first record, a ticking
    /// one only at the high-water mark, a running one never.
    fn wake_if_due(&self, len: usize) {
        let state = self.state.load(Ordering::SeqCst);
        let due = match state {
            IDLE => true,
            TICKING => len >= self.high_water(),
            _ => false,
        };
        if due && self.state.swap(RUNNING, Ordering::SeqCst) != RUNNING {
            self.worker.unpark();
        }
    }

    /// Counts a record dropped at the door as `queue_full` (`shutdown` once closed) on every
    /// stream that would have taken it. Nothing is decoded here: the routing is read from the
    /// record's name alone ([`door_route`]), exactly as the decoder would find it, so a record
    /// the decoder would ignore is counted nowhere. The record becomes `routed` only together
    /// with its drop: `queue_full` drops are counted (both) on the worker's next pass.
    fn count_rejected(&self, record: &SdkLogRecord) {
        let Some(entry) = door_route(record) else {
            return;
        };
        let closed = self.closed.load(Ordering::Relaxed);
        for (sink, pending) in self.sinks.iter().zip(self.door_drops.iter()) {
            if !sink.routes(entry) {
                continue;
            }
            if closed {
                sink.count_refused(DropReason::Shutdown, 1, "telemetry is shut down");
            } else {
                pending.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Moves the door's `queue_full` counts into the streams' counters (worker side).
    fn settle_door_drops(&self) {
        for (sink, pending) in self.sinks.iter().zip(self.door_drops.iter()) {
            let n = pending.swap(0, Ordering::Relaxed);
            let why = "the facade's hand-off queue is full";
            sink.count_refused(DropReason::QueueFull, n, why);
        }
    }

    fn high_water(&self) -> usize {
        (self.capacity / 4).max(1)
    }

    fn flush_pending(&self) -> bool {
        self.requested.load(Ordering::Acquire) > *lock(&self.completed)
    }

    /// Parks in `state` unless the queue already warrants running (`ready`), a flush is
    /// pending or the queue is closed.
    fn park_in(&self, state: u8, timeout: Option<Duration>, ready: impl Fn(usize) -> bool) {
        self.state.store(state, Ordering::SeqCst);
        // Re-check after publishing the state: a push that came before the store is seen
        // here, one that comes after sees the state and unparks us.
        let len = lock(&self.queue).len();
        if !ready(len) && !self.flush_pending() && !self.closed.load(Ordering::SeqCst) {
            match timeout {
                Some(t) => std::thread::park_timeout(t),
                None => std::thread::park(),
            }
        }
        self.state.store(RUNNING, Ordering::SeqCst);
    }

    fn run(&self) {
        let mut batch: Vec<SdkLogRecord> = Vec::new();
        let mut per_sink: Vec<Vec<Event>> = self.sinks.iter().map(|_| Vec::new()).collect();
        let mut last_event = std::time::Instant::now();
        loop {
            let ticket = self.requested.load(Ordering::Acquire);
            // Drain until empty: a flush must see everything pushed before it asked.
            loop {
                std::mem::swap(&mut *lock(&self.queue), &mut batch);
                if batch.is_empty() {
                    break;
                }
                last_event = std::time::Instant::now();
                self.deliver(&mut batch, &mut per_sink);
            }
            self.settle_door_drops();
            {
                let mut done = lock(&self.completed);
                if *done < ticket {
                    *done = ticket;
                    self.completed_cv.notify_all();
                }
            }
            if self.closed.load(Ordering::SeqCst) && !self.flush_pending() {
                if lock(&self.queue).is_empty() {
                    return;
                }
                continue;
            }
            // Wait for work: tick while events flow, sleep until woken once they stopped.
            if last_event.elapsed() < DEEP_IDLE_AFTER {
                self.park_in(TICKING, Some(TICK), |len| len >= self.high_water());
            } else {
                self.park_in(IDLE, None, |len| len > 0);
            }
        }
    }

    /// Decodes each record once and submits the events, per sink, in one hand-over.
    fn deliver(&self, batch: &mut Vec<SdkLogRecord>, per_sink: &mut [Vec<Event>]) {
        for record in batch.drain(..) {
            let event = match decode(&record, &self.decode) {
                Ok(event) => event,
                Err(DecodeError::NoEventName | DecodeError::ActivityEntry) => continue,
                Err(_) => {
                    // Only records from other bridges can get here (the layer always sets a
                    // name and a computeTargetId); count them where the app can see them.
                    self.invalid.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let mut targets = self
                .sinks
                .iter()
                .zip(per_sink.iter_mut())
                .filter(|(s, _)| s.routes(event.entry))
                .map(|(_, out)| out)
                .peekable();
            while let Some(out) = targets.next() {
                if targets.peek().is_some() {
                    out.push(event.clone());
                } else {
                    out.push(event);
                    break;
                }
            }
        }
        for (sink, events) in self.sinks.iter().zip(per_sink.iter_mut()) {
            if events.is_empty() {
                continue;
            }
            let n = events.len() as u64;
            if sink.delivery().submit(std::mem::take(events)).is_err() {
                // The engine shut down first (a shutdown deadline passed while this worker
                // was still draining): the events were routed, so count them as dropped.
                let why = "the stream shut down before the hand-off reached it";
                sink.count_refused(DropReason::Shutdown, n, why);
            }
        }
    }
}

/// The catalogue row a record would decode to (`Some(None)`: a custom event), or `None` when
/// the decoder would ignore it (no event name, or a local-only activity entry). Mirrors
/// [`decode`]'s name rules without decoding the record.
fn door_route(record: &SdkLogRecord) -> Option<Option<&'static CatalogueEntry>> {
    let mut entry = record
        .event_name()
        .filter(|n| *n != CUSTOM_EVENT_NAME)
        .and_then(catalogue::lookup);
    let mut named = entry.is_some();
    for (key, value) in record.attributes_iter() {
        match key.as_str() {
            "activity" => return None,
            EVENT => {
                let name = match value {
                    AnyValue::String(s) => s.as_str().trim().to_string(),
                    other => format!("{other:?}"),
                };
                named = !name.is_empty();
                entry = catalogue::lookup(&name);
            }
            _ => {}
        }
    }
    named.then_some(entry)
}

#[cfg(test)]
mod tests;
