//! The worker of one destination: its backlog (memory and spool), its batches in flight, its
//! retry state and the flushes, shutdown and purges asked of it. It does no waiting of its
//! own: the pipeline's background (`background.rs`, one thread and one current-thread tokio
//! runtime for every destination, inside a telemetry-suppressed context) feeds it events,
//! asks it what is due and when it next needs to run, and carries its requests to the
//! transport, so one destination's slow request never holds another's.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Instant;

use super::backlog::Backlog;
use super::batcher::{due_at, fits_alone, Batch};
use super::command::Command;
use super::config::EngineConfig;
use super::range::deadline_after;
use super::stats::{DeliveryStats, DropReason};
use super::tap::{SentOutcome, TapSlot};
use super::transport::Transport;
use super::wire_format::{Item, WireFormat};
use crate::spool::Spool;

mod alarm;
pub(crate) mod background;
mod send;

/// The longest server reason text kept in `last_error` and logs.
const LAST_ERROR_MAX_BYTES: usize = 256;

pub(crate) struct Worker {
    stream: Arc<dyn WireFormat>,
    transport: Arc<dyn Transport>,
    cfg: EngineConfig,
    stats: Arc<DeliveryStats>,
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
    /// The TLS failures already logged (each distinct reason once; a few at most).
    warned_tls: HashSet<String>,
    /// Whether a partial success was logged (once per stream).
    warned_partial: bool,
    /// The consent gate (see `Delivery::purge`): while set nothing is queued or sent.
    denied: Arc<AtomicBool>,
    /// A request is on the wire (purges then wait for its outcome before answering).
    sending: bool,
    /// The attempts of the batch on the wire before this one.
    attempts: u32,
    /// Purges answered once the request on the wire has finished, with their counts.
    purge_replies: Vec<PendingPurge>,
    /// Events the closed gate dropped before the purge command came (it reports them).
    gate_drops: u64,
    /// The "sent" tap (see `Delivery::attach_tap`): empty unless a view is attached.
    tap: TapSlot,
    /// Finished: its spool released and every waiter answered.
    finished: bool,
}

/// A flush waiting for the queue to empty, answered by its deadline with what remains. It
/// also waits for the pipeline's queue to pass its ticket (what was queued before it).
struct Waiter {
    deadline: Instant,
    ticket: u64,
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

impl Worker {
    pub(crate) fn new(
        stream: Arc<dyn WireFormat>,
        transport: Arc<dyn Transport>,
        cfg: EngineConfig,
        stats: Arc<DeliveryStats>,
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
            inflight: VecDeque::new(),
            backoff_until: None,
            connect_failures: 0,
            flushes: Vec::new(),
            shutdown: None,
            warned_status: HashSet::new(),
            warned_tls: HashSet::new(),
            warned_partial: false,
            denied,
            sending: false,
            attempts: 0,
            purge_replies: Vec::new(),
            gate_drops: 0,
            tap: TapSlot::default(),
            finished: false,
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

    /// Whether it has finished (after its shutdown).
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// The live counters.
    /// Its destination's stream name (`posthog`, `relay`, …).
    pub(crate) fn stream_name(&self) -> &'static str {
        self.stream.name()
    }

    pub(crate) fn stats(&self) -> &DeliveryStats {
        &self.stats
    }

    /// The instant it must next run by itself: a send, a spool sync, a flush or shutdown
    /// deadline (`None`: nothing to do until something arrives).
    pub(crate) fn next_wake(&self, now: Instant) -> Option<Instant> {
        let send = if self.sending {
            None
        } else {
            self.send_at(now)
        };
        [send, self.next_deadline(), self.backlog.sync_due()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether a request should start now. A retry or a full batch goes when due (never
    /// before a backoff ends). A partial batch goes once its delay has passed; before that,
    /// when asked for (flush, shutdown) or due within `early` (it rides on this pass instead of
    /// a wake-up of its own a moment later: a batch delay is a most, never a least), but not
    /// while `more_coming` records wait in the pipeline's queue, which may fill it.
    pub(crate) fn send_due(
        &self,
        now: Instant,
        early: std::time::Duration,
        more_coming: bool,
    ) -> bool {
        if self.sending || self.finished {
            return false;
        }
        let Some(at) = self.send_at(now) else {
            return false;
        };
        if self.backoff_until.is_some_and(|b| b > now) {
            return false;
        }
        if !self.inflight.is_empty() || self.backlog.len() >= self.cfg.limits.max_items {
            return at <= now;
        }
        let timed = due_at(&self.backlog, &self.cfg.limits);
        if timed.is_some_and(|t| t <= now) {
            return true;
        }
        if more_coming {
            return false;
        }
        at <= now || timed.is_some_and(|t| t <= now + early)
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

    /// Carries out a command from its handle. `None`: every handle is gone, so it delivers
    /// what it can within the default deadline and stops.
    pub(crate) fn on_command(&mut self, cmd: Option<Command>) {
        match cmd {
            Some(Command::Flush {
                deadline,
                ticket,
                reply,
            }) => {
                self.backlog.sync();
                self.flushes.push(Waiter {
                    deadline,
                    ticket,
                    reply,
                });
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
                    // Answer once the request on the wire has finished.
                    self.purge_replies.push(PendingPurge { reply, purged });
                } else {
                    let _ = reply.try_send(purged);
                }
            }
            Some(Command::Adopt { dir }) => {
                if !self.finished {
                    let adopted = self.backlog.adopt(&dir, Instant::now());
                    // This run's own event (`Delivery::write_crash`): routed here, not replayed
                    // (a later start that adopts it instead counts it as replayed).
                    self.stats.enqueued(adopted);
                    self.stats.set_spool(self.backlog.spool_stats());
                }
            }
            // The background runs these itself (never handed to a worker).
            Some(Command::Run(work)) => work(),
            None => {
                if self.shutdown.is_none() {
                    self.shutdown = Some(PendingShutdown {
                        deadline: deadline_after(Instant::now(), self.cfg.shutdown_timeout),
                        reply: None,
                    });
                }
            }
        }
    }

    /// Takes in one event the pipeline routed here, first queued at `queued_at` (it is
    /// already counted as routed and queued). Dropped as `purged` while the consent gate is
    /// closed, and as `shutdown` once finished.
    pub(crate) fn accept(&mut self, event: &crate::decode::Event, queued_at: Instant) {
        if self.is_denied() {
            // Queued by a thread that passed the gate just before it closed.
            self.drop_items(DropReason::Purged, 1, "consent denied");
            self.gate_drops += 1;
            return;
        }
        if self.finished {
            self.drop_items(DropReason::Shutdown, 1, "the destination is shut down");
            return;
        }
        self.queue_event(event, queued_at);
    }

    /// Counts one event routed here that could not be decoded (`invalid`).
    pub(crate) fn reject(&mut self, why: &str) {
        self.drop_items(DropReason::Invalid, 1, why);
    }

    fn queue_event(&mut self, event: &crate::decode::Event, queued_at: Instant) {
        let id = uuid::Uuid::now_v7();
        let sampled;
        let event = match self.cfg.sample.get(&event.name) {
            Some(&rate) if !crate::volume::sampler::keeps(id, rate) => {
                self.stats.sampled_out(&event.name);
                return;
            }
            Some(&rate) => {
                // Kept: it carries its rate, so a backend can re-weight.
                sampled = crate::decode::Event {
                    sample_rate: Some(rate),
                    ..event.clone()
                };
                &sampled
            }
            None => event,
        };
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
                if let Some(old) = self.backlog.push(item, queued_at) {
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

    /// Answers the flushes that are done (nothing pending, and the pipeline's queue past
    /// their ticket: `queue_done`) or past their deadline (with what remains).
    pub(crate) fn settle_flushes(&mut self, now: Instant, queue_done: u64) {
        let pending = self.pending() == 0;
        let queued = self.stats.queued();
        self.flushes.retain(|w| {
            let idle = pending && queue_done >= w.ticket;
            let done = idle || w.deadline <= now;
            if done {
                let _ = w.reply.try_send(if idle { 0 } else { queued });
            }
            !done
        });
    }

    /// Whether its shutdown deadline has passed.
    pub(crate) fn shutdown_late(&self, now: Instant) -> bool {
        self.shutdown.as_ref().is_some_and(|s| s.deadline <= now)
    }

    /// Whether its shutdown is complete (nothing pending) or past its deadline.
    pub(crate) fn shutdown_done(&self, now: Instant) -> bool {
        self.shutdown
            .as_ref()
            .is_some_and(|s| self.pending() == 0 || s.deadline <= now)
    }

    /// Opens the configured spool (falling back to a per-process directory or memory, with
    /// one warning) and queues what it still holds for replay.
    pub(crate) fn open_spool(&mut self) {
        let Some(cfg) = self.cfg.spool.clone() else {
            return;
        };
        let dir = cfg.dir.join(self.stream.name());
        let Some(spool) = Spool::open_or_fallback(&dir, cfg.clone()).into_spool() else {
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
    pub(crate) fn spool_tick(&mut self, now: Instant) {
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
    /// what is left stays spooled (counted as `spooled`) for the next start instead. The
    /// background has handed it everything the pipeline's queue held for it first.
    pub(crate) fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let durable = self.backlog.is_durable();
        let mut replies = Vec::new();
        let mut left = 0;
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
        self.backlog = Backlog::new(1);
        let left = left + spooled;
        replies.extend(self.flushes.drain(..).map(|w| w.reply));
        replies.extend(self.purge_replies.drain(..).map(|p| p.reply));
        replies.extend(self.shutdown.take().and_then(|s| s.reply));
        for reply in replies {
            let _ = reply.try_send(left as u64);
        }
    }
}
