//! [`Delivery`]: the handle of one destination of a pipeline. It queues events into the
//! pipeline's one queue without blocking and talks to the destination's worker (on the
//! pipeline's background) through [`Command`]s. [`DeliverySpec`] is a destination configured
//! but not started; [`launch`] starts a pipeline of them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use closedloop_telemetry_layers::__private::catalogue::CatalogueEntry;

use crate::decode::{DecodeOptions, Event};

use super::command::Command;
use super::config::EngineConfig;
use super::error::{AlreadyShutdown, BuildError};
use super::options::DeliveryOptions;
use super::queue::{Lane, Queue, MAX_DESTINATIONS};
use super::range::{check_range, deadline_after, MAX_DURATION_SETTING};
use super::stats::{DeliveryStats, DeliveryStatsSnapshot, Pending};
use super::tap::{SentRing, TapSlot};
use super::transport::Transport;
use super::wire_format::{Limits, WireFormat};
use super::worker::background::Background;
use super::worker::Worker;
use crate::spool::SpoolOptions;

/// How long a caller waits past its deadline for the worker's reply before giving up on it.
const REPLY_GRACE: Duration = Duration::from_millis(250);

/// What a flush or shutdown left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Flush: events not yet delivered at the deadline, wherever they wait (the pipeline's
    /// queue and overflow, the backlog, in flight); they stay queued. Shutdown: events that
    /// were still undelivered at the deadline: dropped (counted as `shutdown`), or, with a
    /// spool, left in it for the next start (counted in [`DeliveryStatsSnapshot::spooled`]).
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

/// One destination, configured and checked but not started: its wire format, transport,
/// batch limits, delivery options and the decoder's defaults. An exporter builder's `spec()`
/// makes one; `StreamExporter::start` starts it alone, and
/// `Pipeline::start` starts several on one background.
pub struct DeliverySpec {
    pub(crate) stream: Arc<dyn WireFormat>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) limits: Limits,
    pub(crate) options: DeliveryOptions,
    pub(crate) decode: DecodeOptions,
    pub(crate) endpoint: String,
    pub(crate) on_start: Option<OnStart>,
}

/// What runs with a destination's handle once it has started.
type OnStart = Box<dyn FnOnce(&Delivery) + Send>;

impl std::fmt::Debug for DeliverySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliverySpec")
            .field("stream", &self.stream.name())
            .field("endpoint", &crate::url_redact::redact_url(&self.endpoint))
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl DeliverySpec {
    /// A destination of `stream` over `transport`, with the stream's `limits` and the delivery
    /// `options`. Checks the ranges ([`DeliveryOptions::check`], a batch of at least one item,
    /// a delay of at most [`MAX_DURATION_SETTING`]) and names the setting at fault.
    pub fn new(
        stream: impl WireFormat,
        transport: impl Transport,
        limits: Limits,
        options: &DeliveryOptions,
    ) -> Result<Self, BuildError> {
        Self::from_parts(Arc::new(stream), Arc::new(transport), limits, options)
    }

    pub(crate) fn from_parts(
        stream: Arc<dyn WireFormat>,
        transport: Arc<dyn Transport>,
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
        Ok(DeliverySpec {
            stream,
            transport,
            limits,
            options: options.clone(),
            decode: DecodeOptions::default(),
            endpoint: String::new(),
            on_start: None,
        })
    }

    /// The decoder's defaults for records this destination gets (used when it runs alone).
    pub fn with_decode(mut self, decode: DecodeOptions) -> Self {
        self.decode = decode;
        self
    }

    /// Where requests go, for `Debug` and logs (never with credentials).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// Replaces the transport with `f(current)` (feature `testing`): e.g. a
    /// [`MemoryTransport`](super::MemoryTransport) that records what this destination would
    /// receive, while the wire format, endpoint and limits stay those of the configured
    /// destination. `f` may keep `current` (to wrap it) or drop it.
    #[cfg(any(test, feature = "testing"))]
    pub fn map_transport(
        mut self,
        f: impl FnOnce(Arc<dyn Transport>) -> Arc<dyn Transport>,
    ) -> Self {
        self.transport = f(self.transport);
        self
    }

    /// Runs `hook` with the destination's handle once it has started (e.g. to attach it to
    /// the app's relay connection).
    pub(crate) fn on_start(mut self, hook: impl FnOnce(&Delivery) + Send + 'static) -> Self {
        self.on_start = Some(Box::new(hook));
        self
    }

    /// The decoder's defaults given with [`DeliverySpec::with_decode`].
    pub fn decode_options(&self) -> &DecodeOptions {
        &self.decode
    }

    /// Where requests go.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether this destination's wire format sends subprocess tails ([`WireFormat::sends_tails`]).
    pub fn sends_tails(&self) -> bool {
        self.stream.sends_tails()
    }
}

/// What a pipeline's handles share: its queue and the background's command channel (the
/// background thread stops once every handle is gone; nothing joins it).
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) queue: Arc<Queue>,
    tx: UnboundedSender<(usize, Command)>,
    pub(crate) invalid: Arc<AtomicU64>,
}

impl Core {
    /// Runs `work` on the background thread (see [`Command::Run`]); `false` once it stopped.
    pub(crate) fn run_in_background(&self, work: Box<dyn FnOnce() + Send>) -> bool {
        self.tx.send((0, Command::Run(work))).is_ok()
    }
}

/// Starts one background thread (named `thread`) for `specs`, decoding records with
/// `decode`. The handles come back in the order of `specs`.
pub(crate) fn launch(
    specs: Vec<DeliverySpec>,
    decode: DecodeOptions,
    thread: String,
    observer: Option<crate::volume::LimitObserver>,
) -> Result<(Arc<Core>, Vec<Delivery>), BuildError> {
    if specs.len() > MAX_DESTINATIONS {
        return Err(BuildError::InvalidValue {
            setting: "destinations",
            reason: format!("at most {MAX_DESTINATIONS} in one pipeline"),
        });
    }
    let capacity = specs
        .iter()
        .map(|s| s.options.queue_capacity())
        .max()
        .unwrap_or(1);
    let overflow = specs
        .iter()
        .map(|s| s.options.overflow_bytes())
        .max()
        .unwrap_or(0);
    // The rate limiter's report interval, shortened like the engine's other clocks by the
    // test-only clock divisor.
    let report_interval = crate::delivery::options::scale(
        crate::volume::limiter::REPORT_INTERVAL,
        specs
            .iter()
            .map(|s| s.options.test_clock_divisor())
            .max()
            .unwrap_or(1),
    );
    let mut lanes = Vec::new();
    let mut volume = Vec::new();
    let mut workers = Vec::new();
    let mut parts = Vec::new();
    for spec in specs {
        let config = EngineConfig::new(spec.limits, &spec.options);
        volume.push(spec.options.volume().clone());
        let stats = Arc::new(DeliveryStats::new(spec.stream.name()));
        let denied = Arc::new(AtomicBool::new(false));
        let tap = TapSlot::default();
        let spool = config.spool.clone();
        let window = match &config.spool {
            Some(spool) => config.limits.max_delay.min(spool.sync_interval),
            None => config.limits.max_delay,
        };
        lanes.push(Lane {
            stream: spec.stream.clone(),
            stats: stats.clone(),
            batch: config.limits.max_items,
            window: window.max(Duration::from_millis(1)),
        });
        workers.push(
            Worker::new(
                spec.stream.clone(),
                spec.transport.clone(),
                config,
                stats.clone(),
                denied.clone(),
            )
            .with_tap(tap.clone()),
        );
        parts.push((spec, stats, denied, tap, spool));
    }
    let queue = Arc::new(Queue::new(
        lanes,
        volume,
        report_interval,
        capacity,
        overflow,
    ));
    let weak: Weak<Queue> = Arc::downgrade(&queue);
    let weak: Weak<dyn Pending> = weak;
    for (i, (_, stats, ..)) in parts.iter().enumerate() {
        stats.set_pending(weak.clone(), i);
    }
    let (tx, rx) = unbounded_channel();
    let invalid = Arc::new(AtomicU64::new(0));
    let background = Background::new(
        queue.clone(),
        workers,
        rx,
        decode,
        invalid.clone(),
        observer,
    );
    background.spawn(thread)?;
    let core = Arc::new(Core { queue, tx, invalid });
    let mut deliveries = Vec::new();
    for (index, (spec, stats, denied, tap, spool)) in parts.into_iter().enumerate() {
        let delivery = Delivery {
            inner: Arc::new(Inner {
                index,
                core: core.clone(),
                stream: spec.stream,
                stats,
                shut: AtomicBool::new(false),
                denied,
                tap,
                spool,
            }),
        };
        if let Some(hook) = spec.on_start {
            hook(&delivery);
        }
        deliveries.push(delivery);
    }
    Ok((core, deliveries))
}

/// The handle of one running destination: cheap and cloneable. Its worker runs on its
/// pipeline's background thread.
///
/// Dropping every handle of a pipeline without [`Delivery::shutdown`] lets the background
/// deliver what it can within [`DeliveryOptions::shutdown_timeout`] and stop.
#[derive(Clone)]
pub struct Delivery {
    inner: Arc<Inner>,
}

struct Inner {
    index: usize,
    core: Arc<Core>,
    stream: Arc<dyn WireFormat>,
    stats: Arc<DeliveryStats>,
    shut: AtomicBool,
    /// The consent gate, shared with the worker: while set, nothing is queued or sent.
    denied: Arc<AtomicBool>,
    /// The "sent" tap, shared with the worker: empty until a view attaches a ring.
    tap: TapSlot,
    /// The spool's settings (its directory is `dir/<stream name>`), for
    /// [`Delivery::write_crash`]; `None`: memory only.
    spool: Option<SpoolOptions>,
}

/// What [`Delivery::write_crash`] did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrashWrite {
    /// Durable in a detached spool beside the destination's; its worker was told to adopt it.
    Spooled,
    /// The destination has no spool: queued like any event (lost if the process dies).
    Queued,
    /// Not written: the destination does not take this event, its consent gate is closed or
    /// it is shut down.
    Skipped,
    /// Not durable: encoding failed (the reason; nothing queued), or the spool write failed
    /// (the reason; queued like any event instead).
    Failed(String),
}

/// A [`Delivery`] that does not keep its pipeline alive (for a holder the pipeline itself
/// reaches, such as the relay connection its transport holds: a strong handle there would be a
/// reference cycle, and the background would never stop).
#[derive(Clone)]
pub(crate) struct WeakDelivery(Weak<Inner>);

impl WeakDelivery {
    /// The handle, while any strong one lives.
    pub(crate) fn upgrade(&self) -> Option<Delivery> {
        self.0.upgrade().map(|inner| Delivery { inner })
    }
}

impl std::fmt::Debug for WeakDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.strong_count() > 0 {
            "WeakDelivery(live)"
        } else {
            "WeakDelivery(gone)"
        })
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("stream", &self.inner.stream.name())
            .field("shut", &self.is_shutdown())
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// Starts `stream` over `transport` alone, on a background thread of its own (named
    /// `closedloop-telemetry-<stream>`): [`DeliverySpec::new`] and a pipeline of one.
    pub fn start(
        stream: impl WireFormat,
        transport: impl Transport,
        limits: Limits,
        options: &DeliveryOptions,
    ) -> Result<Self, BuildError> {
        let spec = DeliverySpec::new(stream, transport, limits, options)?;
        Self::start_spec(spec)
    }

    /// A handle that does not keep the pipeline alive.
    pub(crate) fn downgrade(&self) -> WeakDelivery {
        WeakDelivery(Arc::downgrade(&self.inner))
    }

    /// Starts one destination alone (see [`Delivery::start`]).
    pub(crate) fn start_spec(spec: DeliverySpec) -> Result<Self, BuildError> {
        let name = format!("closedloop-telemetry-{}", spec.stream.name());
        let decode = spec.decode.clone();
        let (_, mut deliveries) = launch(vec![spec], decode, name, None)?;
        Ok(deliveries.remove(0))
    }

    /// Queues already-decoded events in the pipeline's queue (those [`WireFormat::routes`] does
    /// not take are counted as ignored). Never blocks: past the queue's bound the excess is
    /// dropped and counted as `queue_full`. While the consent gate is closed (see
    /// [`Delivery::purge`]) they are dropped and counted as `purged`.
    pub fn submit(&self, events: Vec<Event>) -> Result<(), AlreadyShutdown> {
        if self.is_shutdown() {
            return Err(AlreadyShutdown);
        }
        self.inner.core.queue.push_events(self.inner.index, events);
        Ok(())
    }

    /// Writes `event` straight into this destination's spool and makes it durable, without
    /// going through the pipeline's queue or waiting for its background: for an event that
    /// must survive the process ending right after (the panic hook's `app.panicked`). It is
    /// encoded here, on the caller's thread, with a new id, into a detached spool of one item
    /// beside the destination's (`spool/detached.rs`: one write, one fsync), and the worker is
    /// told to adopt it, so this process delivers it if it lives on; otherwise the next start
    /// does. Skipped when the destination does not take the event, its consent gate is closed
    /// or it is shut down. Without a spool, or when the write fails, the event is queued like
    /// any other (delivered if the process lives on; the queue's lock, which the background
    /// holds only for a swap, is the one lock taken then). Never panics, and the spooled path
    /// takes no lock the background holds; counted as `routed` once adopted (as `replayed`
    /// when the next start adopts it instead). Not for the pipeline's own thread.
    pub fn write_crash(&self, event: &Event) -> CrashWrite {
        if !self.routes(event.entry) || self.is_denied() || self.is_shutdown() {
            return CrashWrite::Skipped;
        }
        let Some(spool) = &self.inner.spool else {
            self.inner
                .core
                .queue
                .push_events(self.inner.index, vec![event.clone()]);
            return CrashWrite::Queued;
        };
        let id = uuid::Uuid::now_v7();
        let bytes = match self.inner.stream.encode(event, id) {
            Ok(bytes) => bytes,
            Err(invalid) => return CrashWrite::Failed(invalid.0.to_string()),
        };
        let created_ms = event
            .time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let dir = spool.dir.join(self.inner.stream.name());
        match crate::spool::write_detached(&dir, spool, id, created_ms, &bytes) {
            Ok(written) => {
                // Nobody may be listening any more (the process is ending): then the next
                // start adopts it.
                self.send(Command::Adopt { dir: written });
                CrashWrite::Spooled
            }
            Err(e) => {
                // Not durable, but this process may still deliver it if it lives on.
                self.inner
                    .core
                    .queue
                    .push_events(self.inner.index, vec![event.clone()]);
                CrashWrite::Failed(e.to_string())
            }
        }
    }

    /// Whether this engine's stream takes an event with this catalogue row (`None`: a custom
    /// event); see [`WireFormat::routes`]. A pure question: nothing is counted.
    pub fn routes(&self, entry: Option<&CatalogueEntry>) -> bool {
        self.inner.stream.routes(entry)
    }

    /// Whether this engine's stream sends subprocess tails; see [`WireFormat::sends_tails`].
    pub fn sends_tails(&self) -> bool {
        self.inner.stream.sends_tails()
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

    /// Sends everything queued now (the pipeline's queue included), ignoring the batch delay
    /// but honouring backoff, and waits at most `timeout`. What could not go stays queued and
    /// is reported as `remaining`.
    pub fn flush(&self, timeout: Duration) -> DeliveryReport {
        Self::flush_all(std::slice::from_ref(self), timeout).remove(0)
    }

    /// [`Delivery::flush`] on several destinations at once, within one deadline.
    pub(crate) fn flush_all(deliveries: &[Delivery], timeout: Duration) -> Vec<DeliveryReport> {
        let deadline = deadline_after(Instant::now(), timeout);
        let asked: Vec<_> = deliveries
            .iter()
            .map(|d| {
                if d.is_shutdown() {
                    return None;
                }
                let (reply, rx) = sync_channel(1);
                let ticket = d.inner.core.queue.pushed();
                d.send(Command::Flush {
                    deadline,
                    ticket,
                    reply,
                })
                .then_some(rx)
            })
            .collect();
        deliveries
            .iter()
            .zip(asked)
            .map(|(d, rx)| d.answer(rx, deadline))
            .collect()
    }

    /// Delivers what is queued within `timeout`, drops the rest (counted as `shutdown`; with a
    /// spool it stays spooled for the next start instead, counted as `spooled`) and stops the
    /// destination. Later exports return `AlreadyShutdown`; so does a second shutdown.
    /// Never waits much longer than `timeout`, whatever the destination does.
    pub fn shutdown(&self, timeout: Duration) -> Result<DeliveryReport, AlreadyShutdown> {
        Self::shutdown_all(std::slice::from_ref(self), timeout)
            .pop()
            .ok_or(AlreadyShutdown)
    }

    /// [`Delivery::shutdown`] on several destinations at once, within one deadline; the
    /// reports of those not already shut down.
    pub(crate) fn shutdown_all(deliveries: &[Delivery], timeout: Duration) -> Vec<DeliveryReport> {
        let deadline = deadline_after(Instant::now(), timeout);
        let asked: Vec<_> = deliveries
            .iter()
            .filter(|d| !d.inner.shut.swap(true, Ordering::AcqRel))
            .map(|d| {
                let (reply, rx) = sync_channel(1);
                let sent = d.send(Command::Shutdown { deadline, reply });
                (d, sent.then_some(rx))
            })
            .collect();
        asked
            .into_iter()
            .map(|(d, rx)| {
                let report = d.answer(rx, deadline);
                if report.remaining > 0 {
                    tracing::warn!(
                        stream = d.inner.stream.name(),
                        undelivered = report.remaining,
                        dropped_total = report.stats.dropped.total(),
                        spooled = report.stats.spooled,
                        "telemetry shutdown deadline reached with events undelivered"
                    );
                }
                report
            })
            .collect()
    }

    /// Cancels a pending backoff so the worker retries at once (for transports that learn
    /// the destination is back, e.g. the relay connection resumed).
    pub fn wake(&self) {
        self.send(Command::Wake);
    }

    /// Closes the consent gate and drops every event queued for this destination (the
    /// pipeline's queue, the backlog, batches waiting for a retry) without sending them,
    /// counts them as `purged` and returns how many there were. For consent withdrawal.
    ///
    /// Until [`Delivery::resume`] every event for it is dropped and counted as `purged`, even
    /// one that was already on its way in, and no request starts. A request already on the
    /// wire is not recalled: the answer comes once it has finished (a failed one is not
    /// retried), so when `purge` returns in time no request of this destination is in flight
    /// and none will start. Waits at most `timeout` for that answer (then returns 0; the gate
    /// is closed all the same).
    pub fn purge(&self, timeout: Duration) -> u64 {
        Self::purge_all(std::slice::from_ref(self), timeout)
    }

    /// [`Delivery::purge`] on several destinations: every gate closes first, then each
    /// purges, all within one deadline. The total purged.
    pub(crate) fn purge_all(deliveries: &[Delivery], timeout: Duration) -> u64 {
        for d in deliveries {
            d.inner.denied.store(true, Ordering::Release);
        }
        let deadline = deadline_after(Instant::now(), timeout);
        let asked: Vec<_> = deliveries
            .iter()
            .filter(|d| !d.is_shutdown())
            .filter_map(|d| {
                let (reply, rx) = sync_channel(1);
                d.send(Command::Purge { reply }).then_some(rx)
            })
            .collect();
        asked
            .into_iter()
            .map(|rx| {
                let left = deadline.saturating_duration_since(Instant::now());
                rx.recv_timeout(left).unwrap_or(0)
            })
            .sum()
    }

    /// Closes the consent gate without purging (nothing is queued yet, e.g. at a start with
    /// consent denied, whose spools were purged as they opened).
    pub(crate) fn close_gate(&self) {
        self.inner.denied.store(true, Ordering::Release);
    }

    /// Reopens the consent gate closed by [`Delivery::purge`]: events are queued and sent
    /// again.
    pub fn resume(&self) {
        self.inner.denied.store(false, Ordering::Release);
        self.wake();
    }

    /// Whether the consent gate is closed (after [`Delivery::purge`], before
    /// [`Delivery::resume`]).
    pub fn is_denied(&self) -> bool {
        self.inner.denied.load(Ordering::Acquire)
    }

    /// Sends a command to this destination's worker; false when the background is gone.
    fn send(&self, cmd: Command) -> bool {
        self.inner.core.send(self.inner.index, cmd)
    }

    /// The report for a command's reply (`None`: it could not be sent), waiting until
    /// `deadline` plus a grace; without a reply, whatever is still queued.
    fn answer(
        &self,
        rx: Option<std::sync::mpsc::Receiver<u64>>,
        deadline: Instant,
    ) -> DeliveryReport {
        let remaining = rx.and_then(|rx| {
            let left = deadline.saturating_duration_since(Instant::now());
            rx.recv_timeout(left.saturating_add(REPLY_GRACE)).ok()
        });
        self.report(remaining.unwrap_or_else(|| self.inner.stats.queued()))
    }

    fn report(&self, remaining: u64) -> DeliveryReport {
        DeliveryReport {
            remaining,
            stats: self.inner.stats.snapshot(),
        }
    }
}

impl Core {
    /// Sends a command for destination `index`; false when the background is gone.
    pub(crate) fn send(&self, index: usize, cmd: Command) -> bool {
        self.tx.send((index, cmd)).is_ok()
    }
}

#[cfg(test)]
mod tests;
