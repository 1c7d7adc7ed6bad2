//! The worker: one named thread per engine, with its own current-thread tokio runtime, inside a
//! telemetry-suppressed context. It maps events to items, forms batches, sends them and applies
//! the retry policy, and answers flush and shutdown.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Instant;

use opentelemetry::Context;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::UnboundedReceiver;

use super::backlog::Backlog;
use super::batcher::{due_at, fits_alone, Batch};
use super::command::Command;
use super::config::EngineConfig;
use super::range::deadline_after;
use super::stats::{DeliveryStats, DropReason};
use super::stream::{Item, Stream};
use super::tap::{SentOutcome, TapSlot};
use super::transport::Transport;
use crate::spool::Spool;

mod alarm;
mod send;

use alarm::Alarm;

/// The longest server reason text kept in `last_error` and logs.
const LAST_ERROR_MAX_BYTES: usize = 256;
/// How many queued commands the worker takes in before it looks at sending again (it also
/// stops once it has taken a hand-over queue's worth of events, `queue_capacity`).
const MAX_COMMANDS_PER_PASS: usize = 1024;

pub(crate) struct Worker {
    stream: Arc<dyn Stream>,
    transport: Arc<dyn Transport>,
    cfg: EngineConfig,
    stats: Arc<DeliveryStats>,
    admitted: Arc<AtomicUsize>,
    rx: UnboundedReceiver<Command>,
    closed: bool,
    backlog: Backlog,
    inflight: VecDeque<Batch>,
    /// The framing overhead of an empty body.
    overhead: usize,
    backoff_until: Option<Instant>,
    /// Consecutive connection failures of the destination (drives their backoff).
    connect_failures: u32,
    flushes: Vec<Waiter>,
    shutdown: Option<PendingShutdown>,
    warned_status: HashSet<u16>,
    /// The consent gate (see `Delivery::purge`): while set nothing is queued or sent.
    denied: Arc<AtomicBool>,
    /// A request is on the wire (purges then wait for its outcome before answering).
    sending: bool,
    /// Purges answered once the request on the wire has finished, with their counts.
    purge_replies: Vec<PendingPurge>,
    /// Events the closed gate dropped before the purge command came (it reports them).
    gate_drops: u64,
    /// The "sent" tap (see `Delivery::attach_tap`): empty unless a view is attached.
    tap: TapSlot,
    /// The timer the worker sleeps on (made in `run`, inside the runtime).
    alarm: Alarm,
}

/// A flush waiting for the queue to empty, answered by its deadline with what remains.
struct Waiter {
    deadline: Instant,
    reply: SyncSender<u64>,
}

/// The shutdown under way: asked for by `Delivery::shutdown` (with a reply) or started
/// because every handle is gone (no one to answer).
struct PendingShutdown {
    deadline: Instant,
    reply: Option<SyncSender<u64>>,
}

/// A purge answered once the request on the wire has finished, with its count.
struct PendingPurge {
    reply: SyncSender<u64>,
    purged: u64,
}

/// Starts the worker thread.
pub(crate) fn spawn(worker: Worker) -> std::io::Result<()> {
    let name = format!("closedloop-telemetry-{}", worker.stream.name());
    std::thread::Builder::new().name(name).spawn(move || {
        // Everything this thread does (HTTP client, our own logs) must not become telemetry.
        let _suppressed = Context::enter_telemetry_suppressed_scope();
        // Background priority: the app's threads (and its disk I/O) come first.
        crate::priority::lower_current_thread();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            // Blocking-pool threads (DNS lookups) are suppressed for their whole life too.
            .on_thread_start(|| std::mem::forget(Context::enter_telemetry_suppressed_scope()))
            .build();
        match runtime {
            Ok(rt) => rt.block_on(worker.run()),
            Err(e) => {
                tracing::warn!(error = %e, "telemetry delivery worker could not start its runtime");
                worker.stats.set_last_error(format!("runtime: {e}"));
            }
        }
    })?;
    Ok(())
}

impl Worker {
    pub(crate) fn new(
        stream: Arc<dyn Stream>,
        transport: Arc<dyn Transport>,
        cfg: EngineConfig,
        stats: Arc<DeliveryStats>,
        admitted: Arc<AtomicUsize>,
        rx: UnboundedReceiver<Command>,
        denied: Arc<AtomicBool>,
    ) -> Self {
        let mut frame = Vec::new();
        stream.frame(&[], &mut frame);
        Worker {
            backlog: Backlog::new(cfg.queue_capacity),
            overhead: frame.len(),
            stream,
            transport,
            cfg,
            stats,
            admitted,
            rx,
            closed: false,
            inflight: VecDeque::new(),
            backoff_until: None,
            connect_failures: 0,
            flushes: Vec::new(),
            shutdown: None,
            warned_status: HashSet::new(),
            denied,
            sending: false,
            purge_replies: Vec::new(),
            gate_drops: 0,
            tap: TapSlot::default(),
            alarm: Alarm::tokio(),
        }
    }

    /// Shares the engine's "sent" tap slot.
    pub(crate) fn with_tap(mut self, tap: TapSlot) -> Self {
        self.tap = tap;
        self
    }

    /// Publishes what became of `items` when a view is attached (else one atomic load).
    fn tap(&self, items: &[Item], outcome: impl FnOnce() -> SentOutcome) {
        if let Some(ring) = self.tap.get() {
            ring.publish(self.stream.name(), items, &outcome());
        }
    }

    fn dropped_outcome(reason: DropReason, detail: &str) -> impl FnOnce() -> SentOutcome + '_ {
        move || SentOutcome::Dropped {
            reason,
            detail: detail.to_string(),
        }
    }

    async fn run(mut self) {
        self.alarm = Alarm::new();
        self.open_spool();
        loop {
            // Take in what is already waiting before deciding, so batches fill up. Bounded in
            // events too: the hand-over queue refills while the worker takes from it, so a
            // producer that never pauses would otherwise keep it encoding instead of sending.
            let mut events = 0;
            for _ in 0..MAX_COMMANDS_PER_PASS {
                if events >= self.cfg.queue_capacity {
                    break;
                }
                match self.rx.try_recv() {
                    Ok(cmd) => {
                        if let Command::Events(e) = &cmd {
                            events += e.len();
                        }
                        self.on_command(Some(cmd));
                    }
                    Err(TryRecvError::Disconnected) if !self.closed => self.on_command(None),
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            self.spool_tick(now);
            self.settle_flushes(now);
            if self.shutdown_done(now) {
                break;
            }
            let send_at = self.send_at(now);
            if send_at.is_some_and(|t| t <= now) {
                self.send_next().await;
                continue;
            }
            let wake = [send_at, self.next_deadline(), self.backlog.sync_due()]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                cmd = self.rx.recv(), if !self.closed => self.on_command(cmd),
                _ = self.alarm.until(wake) => {}
            }
        }
        self.finish();
    }

    fn pending(&self) -> usize {
        self.backlog.len() + self.inflight.iter().map(|b| b.items.len()).sum::<usize>()
    }

    fn urgent(&self) -> bool {
        !self.flushes.is_empty() || self.shutdown.is_some()
    }

    /// Whether the consent gate is closed.
    fn is_denied(&self) -> bool {
        self.denied.load(Ordering::Acquire)
    }

    /// When the next request should go (`None`: nothing to send, or consent is denied).
    fn send_at(&self, now: Instant) -> Option<Instant> {
        if self.is_denied() {
            return None;
        }
        if let Some(t) = self.backoff_until.filter(|t| *t > now) {
            return (self.pending() > 0).then_some(t);
        }
        if !self.inflight.is_empty() || (self.urgent() && !self.backlog.is_empty()) {
            return Some(now);
        }
        due_at(&self.backlog, &self.cfg.limits)
    }

    fn next_deadline(&self) -> Option<Instant> {
        let flush = self.flushes.iter().map(|w| w.deadline).min();
        [flush, self.shutdown.as_ref().map(|s| s.deadline)]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_command(&mut self, cmd: Option<Command>) {
        match cmd {
            Some(Command::Events(events)) => {
                self.admitted.fetch_sub(events.len(), Ordering::AcqRel);
                if self.is_denied() {
                    // Handed over by a thread that passed the gate just before it closed.
                    self.drop_items(DropReason::Purged, events.len(), "consent denied");
                    self.gate_drops += events.len() as u64;
                    return;
                }
                for event in &events {
                    self.queue_event(event);
                }
            }
            Some(Command::Flush { deadline, reply }) => {
                self.backlog.sync();
                self.flushes.push(Waiter { deadline, reply });
            }
            Some(Command::Shutdown { deadline, reply }) => {
                self.shutdown = Some(PendingShutdown {
                    deadline,
                    reply: Some(reply),
                });
            }
            Some(Command::Wake) => {
                self.backoff_until = None;
                if !self.is_denied() {
                    self.gate_drops = 0;
                }
            }
            Some(Command::Purge { reply }) => {
                let purged = self.purge() + std::mem::take(&mut self.gate_drops);
                if self.sending {
                    // Answer once the request on the wire has finished (see `send_next`).
                    self.purge_replies.push(PendingPurge { reply, purged });
                } else {
                    let _ = reply.try_send(purged);
                }
            }
            None => {
                // Every handle is gone: deliver what we can within the default deadline.
                self.closed = true;
                if self.shutdown.is_none() {
                    self.shutdown = Some(PendingShutdown {
                        deadline: deadline_after(Instant::now(), self.cfg.shutdown_timeout),
                        reply: None,
                    });
                }
            }
        }
    }

    fn queue_event(&mut self, event: &crate::decode::Event) {
        let id = uuid::Uuid::now_v7();
        match self.stream.encode(event, id) {
            Ok(bytes) if !fits_alone(bytes.len(), self.overhead, &self.cfg.limits) => {
                let item = Item {
                    id,
                    created: event.time,
                    bytes,
                };
                let why = "event exceeds the body limit";
                self.tap(&[item], Self::dropped_outcome(DropReason::TooLarge, why));
                let _ = self
                    .stats
                    .dropped(DropReason::TooLarge, 1, "event exceeds the body limit");
            }
            Ok(bytes) => {
                let item = Item {
                    id,
                    created: event.time,
                    bytes,
                };
                if let Some(old) = self.backlog.push(item, Instant::now()) {
                    let _ = self.stats.dropped(DropReason::Evicted, 1, "backlog full");
                    self.tap(
                        &[old],
                        Self::dropped_outcome(DropReason::Evicted, "backlog full"),
                    );
                }
            }
            Err(invalid) => {
                let _ = self.stats.dropped(DropReason::Invalid, 1, invalid.0);
            }
        }
    }

    fn settle_flushes(&mut self, now: Instant) {
        let idle = self.pending() == 0;
        let queued = self.stats.queued();
        self.flushes.retain(|w| {
            let done = idle || w.deadline <= now;
            if done {
                let _ = w.reply.try_send(if idle { 0 } else { queued });
            }
            !done
        });
    }

    fn shutdown_done(&self, now: Instant) -> bool {
        self.shutdown
            .as_ref()
            .is_some_and(|s| self.pending() == 0 || s.deadline <= now)
    }

    /// Opens the configured spool (falling back to a per-process directory or memory, with
    /// one warning) and queues what it still holds for replay.
    fn open_spool(&mut self) {
        let Some(cfg) = self.cfg.spool.clone() else {
            return;
        };
        let dir = cfg.dir.join(self.stream.name());
        let Some(spool) = Spool::open_or_fallback(&dir, cfg.options).into_spool() else {
            return;
        };
        let replay = spool.recovery().items_to_replay;
        self.stats.replayed(replay);
        self.backlog = Backlog::with_spool(self.cfg.queue_capacity, spool, Instant::now());
        if cfg.purge_on_open {
            // Consent was withdrawn: nothing an earlier run spooled may leave the machine.
            self.purge();
            self.backlog.sync();
        }
        self.stats.set_spool(self.backlog.spool_stats());
    }

    /// With a spool: writes appends out, fsyncs on the interval, counts cap losses and items
    /// neither the spool nor memory could keep, and publishes the spool's counters.
    fn spool_tick(&mut self, now: Instant) {
        if !self.backlog.is_durable() {
            return;
        }
        self.backlog.write_out(now);
        let (lost, gone) = self.backlog.take_cap_losses();
        if !gone.is_empty() {
            // Counted as lost with the rest; an emptied batch stays in place (a request for it
            // may be on the wire) and is discarded when it comes up.
            for batch in &mut self.inflight {
                batch.items.retain(|i| !gone.contains(&i.id));
            }
        }
        self.drop_items(
            DropReason::SpoolCap,
            lost as usize,
            "the spool reached its size cap",
        );
        let failed = self.backlog.take_write_failures();
        self.drop_items(
            DropReason::SpoolWriteFailed,
            failed as usize,
            "the spool could not store them and the memory queue was full",
        );
        self.stats.set_spool(self.backlog.spool_stats());
    }

    fn drop_items(&self, reason: DropReason, n: usize, detail: &str) {
        let _ = self.stats.dropped(reason, n as u64, detail);
    }

    /// Drops everything queued (counted as `purged`) and forgets any backoff; returns the count.
    /// Events handed over before the purge command are already in the backlog (commands are
    /// taken in order). A batch on the wire is not recalled: it stays until its outcome is
    /// known (a failure then counts it as `purged`, see `on_result`).
    fn purge(&mut self) -> u64 {
        let on_wire = if self.sending {
            self.inflight.pop_front()
        } else {
            None
        };
        let mut n = self.backlog.purge() as usize;
        n += self
            .inflight
            .drain(..)
            .map(|b| b.items.len())
            .sum::<usize>();
        self.backoff_until = None;
        self.connect_failures = 0;
        self.drop_items(DropReason::Purged, n, "consent denied");
        if let Some(batch) = on_wire {
            self.inflight.push_front(batch);
        }
        n as u64
    }

    /// Answers the purges that waited for the request on the wire.
    fn answer_purges(&mut self) {
        for p in self.purge_replies.drain(..) {
            let _ = p.reply.try_send(p.purged);
        }
    }

    /// Drops whatever is left (counted as `shutdown`) and answers every waiter. With a spool,
    /// what is left stays spooled (counted as `spooled`) for the next start instead.
    fn finish(mut self) {
        self.rx.close();
        let durable = self.backlog.is_durable();
        let mut replies = Vec::new();
        let mut left = 0;
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Command::Events(events) => {
                    self.admitted.fetch_sub(events.len(), Ordering::AcqRel);
                    if self.is_denied() {
                        self.drop_items(DropReason::Purged, events.len(), "consent denied");
                    } else if durable {
                        // Spool them too: they go out on the next start.
                        events.iter().for_each(|e| self.queue_event(e));
                    } else {
                        left += events.len();
                    }
                }
                Command::Flush { reply, .. } | Command::Shutdown { reply, .. } => {
                    replies.push(reply)
                }
                Command::Purge { reply } => replies.push(reply),
                Command::Wake => {}
            }
        }
        let (lost, spooled) = self.backlog.drain();
        left += lost.len();
        let why = "still queued at the shutdown deadline";
        self.tap(&lost, Self::dropped_outcome(DropReason::Shutdown, why));
        let batches: Vec<_> = self.inflight.drain(..).collect();
        let inflight = batches.iter().map(|b| b.items.len()).sum::<usize>();
        for b in &batches {
            match durable {
                true => self.tap(&b.items, || SentOutcome::Spooled),
                false => self.tap(&b.items, Self::dropped_outcome(DropReason::Shutdown, why)),
            }
        }
        let spooled = spooled as usize + if durable { inflight } else { 0 };
        left += if durable { 0 } else { inflight };
        self.drop_items(
            DropReason::Shutdown,
            left,
            "still queued at the shutdown deadline",
        );
        self.stats.spooled(spooled as u64);
        self.spool_tick(Instant::now());
        self.backlog.sync();
        self.stats.set_spool(self.backlog.spool_stats());
        // Release the spool (and its directory lock) before answering, so whoever waits for
        // the shutdown can open the same directory at once.
        drop(std::mem::replace(&mut self.backlog, Backlog::new(1)));
        let left = left + spooled;
        replies.extend(self.flushes.drain(..).map(|w| w.reply));
        replies.extend(self.purge_replies.drain(..).map(|p| p.reply));
        replies.extend(self.shutdown.take().and_then(|s| s.reply));
        for reply in replies {
            let _ = reply.try_send(left as u64);
        }
    }
}
