//! [`Delivery`]: the handle exporters hold. It admits events without blocking and talks to the
//! worker through [`Command`]s.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use closedloop_telemetry_layers::catalogue::CatalogueEntry;

use crate::decode::Event;

use super::command::Command;
use super::config::EngineConfig;
use super::error::{AlreadyShutdown, BuildError};
use super::options::DeliveryOptions;
use super::range::{check_range, deadline_after, MAX_DURATION_SETTING};
use super::stats::{DeliveryStats, DeliveryStatsSnapshot, DropReason};
use super::stream::{Limits, Stream};
use super::tap::{SentRing, TapSlot};
use super::transport::Transport;
use super::worker::{self, Worker};

/// How long a caller waits past its deadline for the worker's reply before giving up on it.
const REPLY_GRACE: Duration = Duration::from_millis(250);

/// What a flush or shutdown left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Flush: events still queued at the deadline (they stay queued). Shutdown: events that
    /// were still queued at the deadline: dropped (counted as `shutdown`), or, with a spool,
    /// left in it for the next start (counted in [`DeliveryStatsSnapshot::spooled`]).
    pub remaining: u64,
    /// The counters at the time of the report.
    pub stats: DeliveryStatsSnapshot,
}

impl DeliveryReport {
    /// Whether everything queued before the call was delivered or settled.
    pub fn is_complete(&self) -> bool {
        self.remaining == 0
    }
}

/// A running delivery engine: one named worker thread plus this cheap, cloneable handle.
///
/// Dropping the last handle without [`Delivery::shutdown`] lets the worker deliver what it can
/// within [`DeliveryOptions::shutdown_timeout`] in the background and stop.
#[derive(Clone)]
pub struct Delivery {
    inner: Arc<Inner>,
}

struct Inner {
    tx: UnboundedSender<Command>,
    stream: Arc<dyn Stream>,
    stats: Arc<DeliveryStats>,
    /// Events handed over but not yet taken by the worker (the hand-over queue's fill).
    admitted: Arc<AtomicUsize>,
    capacity: usize,
    shut: AtomicBool,
    /// The consent gate, shared with the worker: while set, nothing is queued or sent.
    denied: Arc<AtomicBool>,
    /// Events the closed gate refused here since the last purge or resume (the purge's count
    /// includes them).
    gate_refused: AtomicU64,
    /// The "sent" tap, shared with the worker: empty until a view attaches a ring.
    tap: TapSlot,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("stream", &self.inner.stream.name())
            .field("capacity", &self.inner.capacity)
            .field("shut", &self.is_shutdown())
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// Starts the worker thread (named `closedloop-telemetry-<stream>`) for `stream` over
    /// `transport`, with the stream's `limits` and the delivery `options`. Checks the ranges
    /// ([`DeliveryOptions::check`], a batch of at least one item, a delay of at most
    /// [`MAX_DURATION_SETTING`]) and names the setting at fault.
    pub fn start(
        stream: impl Stream,
        transport: impl Transport,
        limits: Limits,
        options: &DeliveryOptions,
    ) -> Result<Self, BuildError> {
        options.check()?;
        if limits.max_items == 0 {
            return Err(BuildError::InvalidValue {
                setting: "batch size",
                reason: "must be at least 1".into(),
            });
        }
        check_range(
            "max_delay",
            limits.max_delay,
            Duration::ZERO,
            MAX_DURATION_SETTING,
        )?;
        let config = EngineConfig::new(limits, options);
        let stream: Arc<dyn Stream> = Arc::new(stream);
        let stats = Arc::new(DeliveryStats::new(stream.name()));
        let admitted = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = unbounded_channel();
        let capacity = config.queue_capacity;
        let denied = Arc::new(AtomicBool::new(false));
        let tap = TapSlot::default();
        let worker = Worker::new(
            stream.clone(),
            Arc::new(transport),
            config,
            stats.clone(),
            admitted.clone(),
            rx,
            denied.clone(),
        )
        .with_tap(tap.clone());
        worker::spawn(worker)?;
        Ok(Delivery {
            inner: Arc::new(Inner {
                tx,
                stream,
                stats,
                admitted,
                capacity,
                shut: AtomicBool::new(false),
                denied,
                gate_refused: AtomicU64::new(0),
                tap,
            }),
        })
    }

    /// Hands already-decoded events to the worker (they must pass [`Stream::routes`]; others
    /// are counted as ignored). Never blocks: when the hand-over queue is full the excess is
    /// dropped and counted as `queue_full`. While the consent gate is closed (see
    /// [`Delivery::purge`]) they are dropped and counted as `purged`.
    pub fn submit(&self, mut events: Vec<Event>) -> Result<(), AlreadyShutdown> {
        if self.is_shutdown() {
            return Err(AlreadyShutdown);
        }
        let stats = &self.inner.stats;
        let before = events.len();
        events.retain(|e| self.inner.stream.routes(e.entry));
        stats.ignore((before - events.len()) as u64);
        if events.is_empty() {
            return Ok(());
        }
        if self.inner.denied.load(Ordering::Acquire) {
            let n = events.len() as u64;
            stats.refused(DropReason::Purged, n, "consent denied");
            self.inner.gate_refused.fetch_add(n, Ordering::Relaxed);
            return Ok(());
        }
        // Reserve room without a lock: the app thread must never wait for the worker.
        let wanted = events.len();
        let mut granted = 0;
        let _ = self
            .inner
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                granted = wanted.min(self.inner.capacity.saturating_sub(cur));
                (granted > 0).then_some(cur + granted)
            });
        if granted < wanted {
            events.truncate(granted);
            stats.refused(
                DropReason::QueueFull,
                (wanted - granted) as u64,
                "the hand-over queue is full",
            );
        }
        if granted == 0 {
            return Ok(());
        }
        stats.enqueued(granted as u64);
        if let Err(err) = self.inner.tx.send(Command::Events(events)) {
            // The worker is gone (it could not start its runtime): count, never propagate.
            self.inner.admitted.fetch_sub(granted, Ordering::AcqRel);
            if let Command::Events(lost) = err.0 {
                stats.dropped(DropReason::Shutdown, lost.len() as u64, "worker stopped");
            }
        }
        Ok(())
    }

    /// Room left in the hand-over queue, in events: how many [`Delivery::submit`] would take
    /// now without dropping any as `queue_full`.
    pub fn room(&self) -> usize {
        self.inner
            .capacity
            .saturating_sub(self.inner.admitted.load(Ordering::Acquire))
    }

    /// Counts `n` decoded records that no stream takes (no event name, an activity entry, or
    /// not routed here) as `ignored`.
    pub fn count_ignored(&self, n: u64) {
        self.inner.stats.ignore(n);
    }

    /// Whether this engine's stream takes an event with this catalogue row (`None`: a custom
    /// event); see [`Stream::routes`]. A pure question: nothing is counted.
    pub fn routes(&self, entry: Option<&CatalogueEntry>) -> bool {
        self.inner.stream.routes(entry)
    }

    /// Whether this engine's stream sends subprocess tails; see [`Stream::sends_tails`].
    pub fn sends_tails(&self) -> bool {
        self.inner.stream.sends_tails()
    }

    /// Counts `n` events of this stream that a stage in front of the engine (e.g. the
    /// facade's hand-off queue) dropped before they reached [`Delivery::submit`], so every
    /// loss of the stream shows in its counters (and the first one of a kind is logged).
    pub fn count_refused(&self, reason: DropReason, n: u64, detail: &str) {
        self.inner.stats.refused(reason, n, detail);
    }

    /// The live counters.
    pub fn stats(&self) -> DeliveryStatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// A shareable handle to the live counters (e.g. for a status page).
    pub fn stats_handle(&self) -> Arc<DeliveryStats> {
        self.inner.stats.clone()
    }

    /// Attaches a "sent" tap: from now on the worker publishes every item it sends, spools or
    /// drops (its encoded, redacted JSON and the outcome) into `ring`. The first ring attached
    /// stays; returns the ring in use (`ring` itself, or the one attached earlier). Without a
    /// tap the hook costs one atomic load per batch outcome. See [`super::tap`].
    pub fn attach_tap(&self, ring: Arc<SentRing>) -> Arc<SentRing> {
        self.inner.tap.get_or_init(|| ring).clone()
    }

    /// Whether [`Delivery::shutdown`] was called.
    pub fn is_shutdown(&self) -> bool {
        self.inner.shut.load(Ordering::Acquire)
    }

    /// Sends everything queued now, ignoring the batch delay but honouring backoff, and waits
    /// at most `timeout`. What could not go stays queued and is reported as `remaining`.
    pub fn flush(&self, timeout: Duration) -> DeliveryReport {
        if self.is_shutdown() {
            return self.report(self.inner.stats.queued());
        }
        let (reply, rx) = sync_channel(1);
        let deadline = deadline_after(Instant::now(), timeout);
        let cmd = Command::Flush { deadline, reply };
        self.ask(cmd, rx, timeout)
    }

    /// Delivers what is queued within `timeout`, drops the rest (counted as `shutdown`; with a
    /// spool it stays spooled for the next start instead, counted as `spooled`) and stops the
    /// worker. Later exports return `AlreadyShutdown`; so does a second shutdown.
    /// Never waits much longer than `timeout`, whatever the destination does.
    pub fn shutdown(&self, timeout: Duration) -> Result<DeliveryReport, AlreadyShutdown> {
        if self.inner.shut.swap(true, Ordering::AcqRel) {
            return Err(AlreadyShutdown);
        }
        let (reply, rx) = sync_channel(1);
        let deadline = deadline_after(Instant::now(), timeout);
        let report = self.ask(Command::Shutdown { deadline, reply }, rx, timeout);
        if report.remaining > 0 {
            tracing::warn!(
                stream = self.inner.stream.name(),
                undelivered = report.remaining,
                dropped_total = report.stats.dropped.total(),
                spooled = report.stats.spooled,
                "telemetry shutdown deadline reached with events undelivered"
            );
        }
        Ok(report)
    }

    /// Cancels a pending backoff so the worker retries at once (for transports that learn
    /// the destination is back, e.g. the relay connection resumed).
    pub fn wake(&self) {
        let _ = self.inner.tx.send(Command::Wake);
    }

    /// Closes the consent gate and drops every event queued on this stream (hand-over queue,
    /// backlog, batches waiting for a retry) without sending them, counts them as `purged` and
    /// returns how many there were. For consent withdrawal.
    ///
    /// Until [`Delivery::resume`] every event handed over is dropped and counted as `purged`,
    /// even one that was already on its way in, and no request starts. A request already on
    /// the wire is not recalled: the answer comes once it has finished (a failed one is not
    /// retried), so when `purge` returns in time no request of this stream is in flight and
    /// none will start. Waits at most `timeout` for that answer (then returns 0; the gate is
    /// closed all the same).
    pub fn purge(&self, timeout: Duration) -> u64 {
        self.inner.denied.store(true, Ordering::Release);
        if self.is_shutdown() {
            return 0;
        }
        let (reply, rx) = sync_channel(1);
        if self.inner.tx.send(Command::Purge { reply }).is_err() {
            return 0;
        }
        let purged = rx.recv_timeout(timeout).unwrap_or(0);
        purged + self.inner.gate_refused.swap(0, Ordering::Relaxed)
    }

    /// Closes the consent gate at once, without purging or waiting: from now on nothing is
    /// queued or sent, and events handed over are dropped as `purged` (the next
    /// [`Delivery::purge`] reports them). For a caller that must settle other stages before it
    /// purges.
    pub fn close_gate(&self) {
        self.inner.denied.store(true, Ordering::Release);
    }

    /// Reopens the consent gate closed by [`Delivery::purge`]: events are queued and sent
    /// again.
    pub fn resume(&self) {
        self.inner.denied.store(false, Ordering::Release);
        self.inner.gate_refused.store(0, Ordering::Relaxed);
        self.wake();
    }

    /// Whether the consent gate is closed (after [`Delivery::purge`], before
    /// [`Delivery::resume`]).
    pub fn is_denied(&self) -> bool {
        self.inner.denied.load(Ordering::Acquire)
    }

    fn ask(
        &self,
        cmd: Command,
        rx: std::sync::mpsc::Receiver<u64>,
        timeout: Duration,
    ) -> DeliveryReport {
        if self.inner.tx.send(cmd).is_err() {
            return self.report(self.inner.stats.queued());
        }
        match rx.recv_timeout(timeout.saturating_add(REPLY_GRACE)) {
            Ok(remaining) => self.report(remaining),
            Err(_) => self.report(self.inner.stats.queued()),
        }
    }

    fn report(&self, remaining: u64) -> DeliveryReport {
        DeliveryReport {
            remaining,
            stats: self.inner.stats.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests;
