//! The hand-off between the app thread and the sinks: a bounded queue of moved (never cloned)
//! log records, drained by one named worker that decodes each record once and submits the
//! events to every sink that routes them.
//!
//! The app thread only takes an uncontended lock and moves the record in. The worker has no
//! timer of its own: it sleeps until the first record of an empty queue wakes it (one
//! `unpark` from the app thread, only when the worker is asleep). A record that comes
//! [`ISOLATED_AFTER`] or more after the last drain is taken at once (one wake per event at a
//! desktop's pace); otherwise the worker lets a batch gather for [`BATCH_DELAY`] (while a flood
//! fills a quarter of the queue sooner, that wakes it), drains it in one pass and sleeps again.
//! So an idle app costs no wake-ups here at all, and a steady trickle one per record. (Waking
//! a thread from the app thread makes the scheduler run it on the app's core (wake-affine),
//! which is why the wakes are batched rather than one per record.)
//! Beyond [`CAPACITY`] records, a burst spills: each further record is written in a compact
//! byte form ([`crate::spill`], about a quarter of a held record) up to [`SPILL_BYTES`], and
//! the worker rebuilds and decodes those after the queued ones, in order. The worker hands
//! events to a stream only as fast as the stream's hand-over queue takes them (waiting up to
//! [`ROOM_WAIT`] for room), so a burst the queue and the spill hold is delivered in full.
//! Past both bounds the record is dropped and counted as `queue_full` on the streams that would
//! have taken it; nothing ever blocks the app. Everything is pushed through on [`Handoff::flush`] and
//! [`Handoff::shutdown`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use closedloop_telemetry_exporters::decode::{decode, DecodeError, DecodeOptions, Event};
use closedloop_telemetry_exporters::delivery::DropReason;
use closedloop_telemetry_layers::catalogue::{self, CatalogueEntry};
use closedloop_telemetry_layers::convention::{CUSTOM_EVENT_NAME, EVENT};
use opentelemetry::logs::{AnyValue, Logger as _};
use opentelemetry_sdk::logs::SdkLogRecord;

use crate::sink::Sink;
use crate::spill;

/// Records the hand-off queue holds as they are (about 20 ms at 100k events/s) before it spills.
pub(crate) const CAPACITY: usize = 2048;
/// Bytes of spilled (compact) records held beyond [`CAPACITY`] before records are dropped:
/// about 100,000 events of the size BENCHMARKS.md measures.
pub(crate) const SPILL_BYTES: usize = 16 << 20;
/// Spilled records are written into chunks of this size.
const SPILL_CHUNK: usize = 256 << 10;
/// How long the worker waits for room in a stream's hand-over queue before handing over
/// anyway (the stream then drops the excess, counted as `queue_full`).
pub(crate) const ROOM_WAIT: Duration = Duration::from_millis(200);
/// How long the worker lets records gather after the first one woke it, while records keep
/// coming: the most an event waits here.
pub(crate) const BATCH_DELAY: Duration = Duration::from_millis(5);
/// A record that comes this long after the worker's last drain is drained at once, without
/// waiting for a batch.
pub(crate) const ISOLATED_AFTER: Duration = Duration::from_millis(100);

/// The worker is draining (or about to look at the queue): pushes never wake it.
const RUNNING: u8 = 0;
/// The worker sleeps until woken: the next push wakes it.
const IDLE: u8 = 1;
/// The worker lets a batch gather: only a push that fills a quarter of the queue wakes it.
const BATCHING: u8 = 2;

/// The app-side handle of the hand-off (shared by the processor and the telemetry handle).
#[derive(Debug)]
pub(crate) struct Handoff {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the app thread fills and the worker swaps out.
#[derive(Default)]
struct Queue {
    records: Vec<SdkLogRecord>,
    /// Records beyond `capacity`, in the compact form, oldest first (all after `records`).
    spilled: Vec<Vec<u8>>,
    spilled_bytes: usize,
    /// The spilled records' attribute keys (append-only, never swapped out).
    keys: spill::Keys,
}

struct Shared {
    queue: Mutex<Queue>,
    /// The spill's bound in bytes ([`SPILL_BYTES`]).
    spill_bytes: usize,
    /// Makes blank records (`SdkLogRecord` has no public constructor): the one left in the
    /// SDK's slot for each record taken, and those spilled records are rebuilt on. A logger of
    /// a throwaway provider without processors.
    blank: opentelemetry_sdk::logs::SdkLogger,
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
        Self::with_capacity(sinks, decode, invalid, CAPACITY, SPILL_BYTES)
    }

    /// [`Handoff::start`] with other queue and spill bounds (tests).
    pub(crate) fn with_capacity(
        sinks: Arc<Vec<Sink>>,
        decode: DecodeOptions,
        invalid: Arc<AtomicU64>,
        capacity: usize,
        spill_bytes: usize,
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
            queue: Mutex::new(Queue::default()),
            blank: {
                use opentelemetry::logs::LoggerProvider as _;
                opentelemetry_sdk::logs::SdkLoggerProvider::builder()
                    .build()
                    .logger("closedloop-telemetry")
            },
            capacity,
            spill_bytes,
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

    /// Moves a record in ([`Handoff::take`] for a record owned by the caller).
    #[cfg(test)]
    pub(crate) fn push(&self, mut record: SdkLogRecord) {
        self.take(&mut record);
    }

    /// Takes the record in `slot`. Never blocks on the worker: the lock is only ever held for a
    /// push or a swap. A queued record is moved from `slot` straight into the queue, leaving a
    /// blank record behind (no intermediate copies of the ~430-byte record); a spilled one is
    /// written in its compact form and left in `slot`, as is one a full (or shut) queue drops
    /// and counts.
    pub(crate) fn take(&self, slot: &mut SdkLogRecord) {
        let s = &*self.shared;
        let mut q = lock(&s.queue);
        if s.closed.load(Ordering::Relaxed) {
            drop(q);
            return s.count_rejected(slot);
        }
        if q.records.len() < s.capacity {
            // A blank goes into the queue and trades places with the record.
            q.records.push(s.blank.create_log_record());
            if let Some(last) = q.records.last_mut() {
                std::mem::swap(slot, last);
            }
            let len = q.records.len();
            drop(q);
            return s.wake_if_due(len);
        }
        // A burst: spill the record in its compact form, while the spill has room.
        let spilled = q.spilled_bytes < s.spill_bytes && {
            let Queue {
                spilled,
                spilled_bytes,
                keys,
                ..
            } = &mut *q;
            if spilled
                .last()
                .is_none_or(|c| c.capacity() - c.len() < SPILL_CHUNK / 16)
            {
                spilled.push(Vec::with_capacity(SPILL_CHUNK));
            }
            let chunk = spilled.last_mut().expect("pushed above");
            let before = chunk.len();
            let ok = spill::write(slot, keys, chunk);
            *spilled_bytes += chunk.len() - before;
            ok
        };
        drop(q);
        if spilled {
            s.wake_if_due(s.capacity);
        } else {
            s.count_rejected(slot);
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
            BATCHING => len >= self.high_water(),
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
        let len = lock(&self.queue).records.len();
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
        let mut last_drain: Option<Instant> = None;
        loop {
            let ticket = self.requested.load(Ordering::Acquire);
            // Drain until empty: a flush must see everything pushed before it asked.
            loop {
                let (spilled, keys) = {
                    let mut q = lock(&self.queue);
                    std::mem::swap(&mut q.records, &mut batch);
                    q.spilled_bytes = 0;
                    let spilled = std::mem::take(&mut q.spilled);
                    let keys = (!spilled.is_empty()).then(|| q.keys.snapshot());
                    (spilled, keys)
                };
                if batch.is_empty() && spilled.is_empty() {
                    break;
                }
                last_drain = Some(Instant::now());
                self.deliver(&mut batch, &mut per_sink);
                // The spilled records came after those: rebuild and deliver them in order.
                let keys = keys.unwrap_or_default();
                for chunk in spilled {
                    let mut reader = spill::Reader::new(&chunk);
                    while let Some(r) = reader.next(&keys, &self.blank) {
                        batch.push(r);
                        if batch.len() >= self.capacity {
                            self.deliver(&mut batch, &mut per_sink);
                        }
                    }
                }
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
                if lock(&self.queue).records.is_empty() {
                    return;
                }
                continue;
            }
            // Sleep until a record (or a flush, or the close) comes: no timer while idle.
            self.park_in(IDLE, None, |len| len > 0);
            if last_drain.is_some_and(|t| t.elapsed() < ISOLATED_AFTER) {
                // Records keep coming: let a batch gather (one hand-over per batch).
                self.park_in(BATCHING, Some(BATCH_DELAY), |len| len >= self.high_water());
            }
        }
    }

    /// Keeps in `events` what the stream's hand-over queue has room for now and returns the
    /// rest, waiting (up to [`ROOM_WAIT`] without progress) until there is some room. Past
    /// that, or once closed, everything is handed over and the stream counts what it drops.
    fn wait_for_room(&self, sink: &Sink, events: &mut Vec<Event>) -> Vec<Event> {
        let give_up = Instant::now() + ROOM_WAIT;
        loop {
            let room = sink.delivery().room();
            let refused = self.closed.load(Ordering::Relaxed) || sink.delivery().is_denied();
            if room > 0 || refused || Instant::now() >= give_up {
                let keep = if room == 0 { events.len() } else { room };
                return events.split_off(keep.min(events.len()));
            }
            std::thread::sleep(Duration::from_millis(1));
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
            let mut events = std::mem::take(events);
            while !events.is_empty() {
                let rest = self.wait_for_room(sink, &mut events);
                let n = events.len() as u64;
                if sink.delivery().submit(events).is_err() {
                    // The engine shut down first (a shutdown deadline passed while this worker
                    // was still draining): the events were routed, so count them as dropped.
                    let why = "the stream shut down before the hand-off reached it";
                    sink.count_refused(DropReason::Shutdown, n, why);
                }
                events = rest;
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
