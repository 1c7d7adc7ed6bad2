//! [`Delivery`]: the handle exporters hold. It admits events without blocking and talks to the
//! worker through [`Command`]s.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::LogBatch;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::decode::{decode, DecodeError, DecodeOptions, Event};

use super::error::BuildError;
use super::range::{check_range, check_retry, check_timeout, deadline_after, MAX_DURATION_SETTING};
use super::retry::RetryPolicy;
use super::stats::{DeliveryStats, DeliveryStatsSnapshot, DropReason};
use super::stream::{Limits, Stream};
use super::tap::{SentRing, TapSlot};
use super::transport::Transport;
use super::worker::{self, Worker};

/// Default bound of the hand-over queue and of the backlog, in events. Sized by measurement
/// (BENCHMARKS.md): 4096 keeps 100k events/s sustained on loopback free of drops (2048 evicted a
/// few hundred per million when a send lagged behind a hand-over), while a 1M-event flood stays
/// within 16 MiB of extra memory.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;
/// Default per-request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default deadline of flush and shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits past its deadline for the worker's reply before giving up on it.
const REPLY_GRACE: Duration = Duration::from_millis(250);

/// How one engine delivers. Build with [`DeliveryConfig::new`] and adjust the fields.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// Batch size, body size, delay and expiry rules of the stream.
    pub limits: Limits,
    /// At most this many events wait to be mapped, and at most this many mapped items wait to
    /// be sent (the backlog evicts its oldest when full). With a [`spool`](Self::spool) the
    /// backlog lives on disk, bounded by the spool's cap instead. Default
    /// [`DEFAULT_QUEUE_CAPACITY`].
    pub queue_capacity: usize,
    /// Per-request timeout. Default [`DEFAULT_REQUEST_TIMEOUT`]. It bounds connecting (a
    /// destination that never accepts is a connection failure: an outage, retried without
    /// limit), and then sending and the answer, with extra time for the body at 50 KB/s: one
    /// exchange may take `2 × request_timeout + body / 50 KB/s` before it counts as timed out.
    pub request_timeout: Duration,
    /// `Some(level)` gzips bodies and sends `Content-Encoding: gzip`. Default `None`.
    pub gzip: Option<u32>,
    /// Backoff and give-up rules. Default [`RetryPolicy::default`].
    pub retry: RetryPolicy,
    /// Deadline used when every handle is dropped without an explicit shutdown.
    /// Default [`DEFAULT_SHUTDOWN_TIMEOUT`].
    pub shutdown_timeout: Duration,
    /// The durable on-disk spool under the backlog. Default `None` (memory only).
    pub spool: Option<SpoolConfig>,
}

/// Where and how an engine spools: the stream's spool lives in `dir/<stream name>`.
///
/// With a spool every mapped item is appended to disk, batches are read back from it and
/// acknowledged after a 2xx (or a counted drop); what was not acknowledged when the process
/// ended is sent on the next start. If the directory is locked by another process or
/// unusable the engine falls back to `dir/<stream>/pid-<pid>`, else to memory, with one
/// warning naming the reason; one not private to this user (Unix: another owner, or writable by
/// group or others) is refused and the stream runs in memory. See `docs/RELIABILITY.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// The base directory (`CL_TELEMETRY_SPOOL_DIR`); each stream uses a subdirectory.
    pub dir: std::path::PathBuf,
    /// Cap, segment size and sync interval.
    pub options: crate::spool::SpoolOptions,
    /// Purge what the spool holds when it opens, before anything is sent (counted as
    /// `purged`): for an app whose user has withdrawn consent, so events spooled by an
    /// earlier run never leave the machine. Default `false`.
    pub purge_on_open: bool,
}

impl SpoolConfig {
    /// A spool in `dir` (per-stream subdirectories) with default options.
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        SpoolConfig {
            dir: dir.into(),
            options: crate::spool::SpoolOptions::default(),
            purge_on_open: false,
        }
    }

    /// Sets [`purge_on_open`](Self::purge_on_open).
    pub fn purge_on_open(mut self, on: bool) -> Self {
        self.purge_on_open = on;
        self
    }
}

impl DeliveryConfig {
    /// The range checks [`Delivery::start`] applies (see [`super::check_range`]): sizes of at
    /// least 1, timeouts above zero and at most [`MAX_DURATION_SETTING`], the batch delay,
    /// retry and spool sync durations at most that too. Names the setting at fault.
    pub fn check(&self) -> Result<(), BuildError> {
        if self.limits.max_items == 0 || self.queue_capacity == 0 {
            return Err(BuildError::InvalidValue {
                setting: "batch size / queue capacity",
                reason: "must be at least 1".into(),
            });
        }
        check_timeout("timeout", self.request_timeout)?;
        check_timeout("shutdown_timeout", self.shutdown_timeout)?;
        check_range(
            "max_delay",
            self.limits.max_delay,
            Duration::ZERO,
            MAX_DURATION_SETTING,
        )?;
        check_retry(&self.retry)?;
        if let Some(spool) = &self.spool {
            check_range(
                "spool sync_interval",
                spool.options.sync_interval,
                Duration::ZERO,
                MAX_DURATION_SETTING,
            )?;
        }
        Ok(())
    }

    /// A configuration with the given limits and every other field at its default.
    pub fn new(limits: Limits) -> Self {
        DeliveryConfig {
            limits,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            gzip: None,
            retry: RetryPolicy::default(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            spool: None,
        }
    }
}

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

/// The worker's commands (see STYLE.md: one small enum drives each sink's worker).
#[derive(Debug)]
pub(crate) enum Command {
    /// Decoded events to map, queue and deliver.
    Events(Vec<Event>),
    /// Deliver everything queued now, then reply with what remains (by the deadline).
    Flush {
        deadline: Instant,
        reply: std::sync::mpsc::SyncSender<u64>,
    },
    /// Like flush, then drop what remains, reply with that count and stop.
    Shutdown {
        deadline: Instant,
        reply: std::sync::mpsc::SyncSender<u64>,
    },
    /// Stop waiting for a backoff timer and try now (e.g. the relay connection is back).
    Wake,
    /// Consent was denied: drop everything queued (counted as `purged`), abandon any backoff
    /// and reply with the count once no request is on the wire. The worker keeps running;
    /// events handed over while the gate is closed are dropped as `purged`.
    Purge {
        reply: std::sync::mpsc::SyncSender<u64>,
    },
}

/// A running delivery engine: one named worker thread plus this cheap, cloneable handle.
///
/// Dropping the last handle without [`Delivery::shutdown`] lets the worker deliver what it can
/// within [`DeliveryConfig::shutdown_timeout`] in the background and stop.
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
    /// `transport`.
    pub fn start(
        stream: impl Stream,
        transport: impl Transport,
        config: DeliveryConfig,
    ) -> Result<Self, BuildError> {
        config.check()?;
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

    /// The body of a `LogExporter::export`: decodes each record on the calling thread, keeps
    /// the ones the stream routes, and hands them to the worker. Never blocks and never does
    /// I/O; losses are counted, not returned. After shutdown: `AlreadyShutdown`.
    pub fn export(&self, batch: &LogBatch<'_>, opts: &DecodeOptions) -> OTelSdkResult {
        if self.is_shutdown() {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let stats = &self.inner.stats;
        let mut events = Vec::new();
        for (record, _scope) in batch.iter() {
            match decode(record, opts) {
                Ok(event) if self.inner.stream.routes(&event) => events.push(event),
                Ok(_) | Err(DecodeError::NoEventName | DecodeError::ActivityEntry) => {
                    stats.ignore(1)
                }
                Err(e) => stats.refused(DropReason::Invalid, 1, &e.to_string()),
            }
        }
        self.submit(events)
    }

    /// Hands already-decoded events to the worker (they must pass [`Stream::routes`]; others
    /// are counted as ignored). Never blocks: when the hand-over queue is full the excess is
    /// dropped and counted as `queue_full`. While the consent gate is closed (see
    /// [`Delivery::purge`]) they are dropped and counted as `purged`.
    pub fn submit(&self, mut events: Vec<Event>) -> OTelSdkResult {
        if self.is_shutdown() {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let stats = &self.inner.stats;
        let before = events.len();
        events.retain(|e| self.inner.stream.routes(e));
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
    pub fn shutdown(&self, timeout: Duration) -> Result<DeliveryReport, OTelSdkError> {
        if self.inner.shut.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
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
