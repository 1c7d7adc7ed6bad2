//! The pipeline's background: ONE named thread with one current-thread tokio runtime, inside
//! `Context::enter_telemetry_suppressed_scope()`, for every destination of the pipeline.
//!
//! One loop does everything, so nothing waits on another thread:
//! - it takes what the pipeline's queue holds (records, overflow, decoded events), decodes
//!   each record once and hands the event to the workers its mask names ([`Worker::accept`]:
//!   mapped to the wire form and put in the backlog, spooled when there is a spool);
//! - it carries out the handles' commands (flush, shutdown, purge, wake);
//! - it starts each destination's due request as a task of its own on the same runtime, so a
//!   destination that is slow or down never delays another's sends, and applies each outcome
//!   when it comes;
//! - then it sleeps on one timer, set to the earliest thing any destination must do on its own
//!   (a batch, a retry, a spool sync, a deadline), or to when records waiting in the queue must
//!   be looked at; the door wakes it otherwise only when it must (`queue.rs`).
//!
//! A spool fsync runs on this thread and so can hold the other destinations' sends for its
//! duration (milliseconds, once per sync interval): within the durability window, by design.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::{AbortHandle, JoinSet};

use super::alarm::Alarm;
use super::Worker;
use crate::decode::{decode, DecodeOptions};
use crate::delivery::command::Command;
use crate::delivery::queue::{count, destinations, Queue, Taken, MAX_DESTINATIONS};
use crate::delivery::transport::{Response, TransportError};
use crate::volume::report::report_event;
use crate::volume::{LimitObserver, REPORT_EVENT};

/// The most records one pass of the loop decodes and hands on before it lets requests in
/// flight progress.
const SLICE: usize = 64;
/// How long the background lets records gather after the door woke it.
const GATHER: Duration = Duration::from_millis(2);

/// What one exchange task reports: its destination and the transport's answer.
type Exchange = (usize, Result<Response, TransportError>);

/// The background of one pipeline.
pub(crate) struct Background {
    queue: Arc<Queue>,
    workers: Vec<Worker>,
    control: UnboundedReceiver<(usize, Command)>,
    control_open: bool,
    decode: DecodeOptions,
    /// Records no destination could decode (shared with the pipeline handle).
    invalid: Arc<AtomicU64>,
    exchanges: JoinSet<Exchange>,
    /// Per destination: the exchange task on the wire, if any.
    on_wire: Vec<Option<AbortHandle>>,
    alarm: Alarm,
    taken: Taken,
    /// How many of `taken.records` were handed on.
    taken_pos: usize,
    /// The shortest window of any destination: after a pass that took records, the background
    /// looks again within it by itself, so a steady trickle never needs the door to wake it.
    window: Duration,
    /// The install's computeTargetId and release for the pipeline's own reports: the
    /// decoder's defaults, else the first decoded event's.
    report_ids: (Option<String>, Option<String>),
    observer: Option<LimitObserver>,
}

impl Background {
    pub(crate) fn new(
        queue: Arc<Queue>,
        workers: Vec<Worker>,
        control: UnboundedReceiver<(usize, Command)>,
        decode: DecodeOptions,
        invalid: Arc<AtomicU64>,
        observer: Option<LimitObserver>,
    ) -> Self {
        let window = queue
            .lanes()
            .iter()
            .map(|l| l.window)
            .min()
            .unwrap_or(Duration::from_secs(1));
        let report_ids = (
            decode.compute_target_id.clone(),
            decode.release_version.clone(),
        );
        Background {
            on_wire: workers.iter().map(|_| None).collect(),
            queue,
            workers,
            control,
            control_open: true,
            decode,
            invalid,
            exchanges: JoinSet::new(),
            alarm: Alarm::tokio(),
            taken: Taken::default(),
            taken_pos: 0,
            window,
            report_ids,
            observer,
        }
    }

    /// Starts the thread `name` (detached: it stops once every handle is gone).
    pub(crate) fn spawn(self, name: String) -> std::io::Result<()> {
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
                Ok(rt) => rt.block_on(self.run()),
                Err(e) => {
                    tracing::warn!(error = %e, "telemetry background could not start its runtime");
                    for w in &self.workers {
                        w.stats().set_last_error(format!("runtime: {e}"));
                    }
                    self.queue.close();
                }
            }
        })?;
        Ok(())
    }

    async fn run(mut self) {
        self.alarm = Alarm::new();
        for w in &mut self.workers {
            w.open_spool();
        }
        let mut door = false;
        loop {
            // A lone record (an app at rest emitting one event) is taken at once.
            let burst = self.queue.pushed().saturating_sub(self.queue.done()) > 1;
            if std::mem::take(&mut door) && burst {
                // Woken by the door (a batch's worth, or a record that may not wait for our
                // timer): let the rest of a burst arrive first, so the app's threads and this
                // one do not take turns on the queue record by record. The door does not wake
                // a running background, and the overflow absorbs what the queue cannot hold.
                self.alarm.until(Instant::now().checked_add(GATHER)).await;
            }
            self.take_commands();
            // Answers that came while this loop was busy taking records in.
            while let Some(done) = self.exchanges.try_join_next_with_id() {
                self.on_exchange(done);
            }
            let took = self.intake();
            let now = Instant::now();
            self.settle_door_drops();
            self.report_limits(now, false);
            let done = self.queue.done();
            let coming = self.coming();
            for (d, coming) in coming.iter().enumerate().take(self.workers.len()) {
                let w = &mut self.workers[d];
                if w.is_finished() {
                    continue;
                }
                w.spool_tick(now);
                w.settle_flushes(now, done);
                // Done once nothing is pending here nor on its way in (a flood may still hold
                // some), or at the deadline.
                if w.shutdown_done(now) && (!coming || w.shutdown_late(now)) {
                    self.finish_worker(d);
                }
            }
            if self.workers.iter().all(Worker::is_finished) {
                break;
            }
            self.start_sends(now, &coming);
            if took > 0 && !self.queue_is_drained() {
                // More waits: let the exchanges' connections progress, then take more.
                tokio::task::yield_now().await;
                continue;
            }
            let mut next = self
                .workers
                .iter()
                .filter(|w| !w.is_finished())
                .filter_map(|w| w.next_wake(now))
                .min();
            if took > 0 {
                next = [next, now.checked_add(self.window)]
                    .into_iter()
                    .flatten()
                    .min();
            }
            let at = self.queue.park(next);
            if at.is_some_and(|t| t <= Instant::now()) {
                self.queue.set_running();
                tokio::task::yield_now().await;
                continue;
            }
            door = self.select(at).await;
            // Awake: the door need not wake us until we park again.
            self.queue.set_running();
        }
        self.queue.close();
        // Records that raced with the close are counted by the door as `shutdown`; what
        // remains queued is handed to the (finished) workers, which count it.
        self.drain_all();
        self.settle_door_drops();
        self.answer_late_commands();
    }

    /// Sleeps until an exchange answers, a command comes, the door wakes us or `at`; returns
    /// whether the door woke us.
    async fn select(&mut self, at: Option<Instant>) -> bool {
        tokio::select! {
            Some(done) = self.exchanges.join_next_with_id(), if !self.exchanges.is_empty() => {
                self.on_exchange(done);
                false
            }
            cmd = self.control.recv(), if self.control_open => {
                self.on_control(cmd);
                false
            }
            _ = self.queue.notified() => true,
            _ = self.alarm.until(at) => false,
        }
    }

    /// Whether the queue is empty after this pass's intake.
    fn queue_is_drained(&self) -> bool {
        self.queue.done() >= self.queue.pushed()
    }

    /// Takes every command already waiting.
    fn take_commands(&mut self) {
        while self.control_open {
            match self.control.try_recv() {
                Ok((d, cmd)) => self.on_command(d, cmd),
                Err(TryRecvError::Disconnected) => self.on_control(None),
                Err(TryRecvError::Empty) => break,
            }
        }
    }

    fn on_control(&mut self, cmd: Option<(usize, Command)>) {
        match cmd {
            Some((d, cmd)) => self.on_command(d, cmd),
            None => {
                // Every handle is gone: each destination delivers what it can within its
                // default deadline, then the thread stops.
                self.report_limits(Instant::now(), true);
                self.control_open = false;
                for w in &mut self.workers {
                    w.on_command(None);
                }
            }
        }
    }

    fn on_command(&mut self, d: usize, cmd: Command) {
        let cmd = match cmd {
            Command::Run(work) => {
                work();
                return;
            }
            cmd => cmd,
        };
        if matches!(cmd, Command::Purge { .. }) {
            // The purge's count includes everything queued before it.
            self.drain_all();
        }
        if matches!(cmd, Command::Flush { .. } | Command::Shutdown { .. }) {
            // What the rate limits refused and was not reported yet goes with this flush, so
            // a short-lived process still says what it dropped. The report needs the
            // install's computeTargetId, which a bare exporter learns from the first event it
            // decodes: when it has none yet, the records queued before this command (which
            // the flush covers anyway) are taken first.
            if self.report_ids.0.is_none() && self.queue.report_open() {
                self.drain_all();
            }
            self.report_limits(Instant::now(), true);
        }
        let Some(w) = self.workers.get_mut(d) else {
            return;
        };
        if w.is_finished() {
            Self::answer_finished(cmd);
            return;
        }
        w.on_command(Some(cmd));
    }

    /// A command for a finished destination: nothing is left (its spool holds what remains).
    fn answer_finished(cmd: Command) {
        match cmd {
            Command::Flush { reply, .. }
            | Command::Shutdown { reply, .. }
            | Command::Purge { reply } => {
                let _ = reply.try_send(0);
            }
            // Left where it is: the next start adopts it.
            Command::Wake | Command::Adopt { .. } | Command::Run(_) => {}
        }
    }

    /// Commands that came after every destination finished.
    fn answer_late_commands(&mut self) {
        self.control.close();
        while let Ok((_, cmd)) = self.control.try_recv() {
            Self::answer_finished(cmd);
        }
    }

    /// Finishes destination `d`: hands it what the queue holds first, abandons its request on
    /// the wire (the shutdown deadline passed), then lets it settle and answer.
    fn finish_worker(&mut self, d: usize) {
        self.drain_all();
        if let Some(h) = self.on_wire[d].take() {
            h.abort();
            self.workers[d].finish_send(None);
        }
        self.workers[d].finish();
    }

    /// Takes everything the queue held when called.
    fn drain_all(&mut self) {
        let target = self.queue.pushed();
        while self.queue.done() < target && self.intake() > 0 {}
    }

    /// One intake step: the queued records and events, else one overflow chunk. Decodes each
    /// record once and hands the event to every destination its mask names. Returns how many
    /// entries it took.
    fn intake(&mut self) -> usize {
        let mut taken = std::mem::take(&mut self.taken);
        let mut events = 0;
        if self.taken_pos >= taken.records.len() {
            taken.records.clear();
            taken.masks.clear();
            self.taken_pos = 0;
            self.queue.take_front(&mut taken);
            if taken.is_empty() {
                self.taken = taken;
                return self.intake_chunk();
            }
            // Counted off the lock, then moved from the queue's counts to the destinations'.
            let mut counts = [0u64; MAX_DESTINATIONS];
            for mask in taken
                .masks
                .iter()
                .chain(taken.events.iter().map(|(m, _)| m))
            {
                count(&mut counts, *mask);
            }
            self.queue.hand_over(&counts);
            self.enqueued(&counts);
            let first_at = taken.first_at.unwrap_or_else(Instant::now);
            events = taken.events.len();
            for (mask, event) in taken.events.drain(..) {
                for d in destinations(mask) {
                    if let Some(w) = self.workers.get_mut(d) {
                        w.accept(&event, first_at);
                    }
                }
            }
        }
        // At most a slice of the records per pass: requests in flight progress in between
        // (they run on this thread too), so sending keeps pace with taking in.
        let first_at = taken.first_at.unwrap_or_else(Instant::now);
        let end = taken.records.len().min(self.taken_pos + SLICE);
        for i in self.taken_pos..end {
            self.deliver_record(&taken.records[i], taken.masks[i], first_at);
        }
        let records = end - self.taken_pos;
        self.taken_pos = end;
        self.queue.finish(records, 0, (records + events) as u64);
        self.taken = taken;
        records + events
    }

    /// Takes one overflow chunk, rebuilds its records and delivers them.
    fn intake_chunk(&mut self) -> usize {
        let Some((chunk, keys, first_at)) = self.queue.take_chunk() else {
            return 0;
        };
        let first_at = first_at.unwrap_or_else(Instant::now);
        let mut records = Vec::new();
        let mut counts = [0u64; MAX_DESTINATIONS];
        let mut reader = crate::delivery::overflow::Reader::new(&chunk);
        while let Some((mask, record)) = reader.next(&keys, self.queue.blank()) {
            count(&mut counts, mask);
            records.push((mask, record));
        }
        self.queue.hand_over(&counts);
        self.enqueued(&counts);
        let n = records.len();
        for (mask, record) in records {
            self.deliver_record(&record, mask, first_at);
        }
        self.queue.finish(0, chunk.len(), n as u64);
        n
    }

    /// Counts entries taken from the queue in their destinations' own counters.
    fn enqueued(&self, counts: &[u64; MAX_DESTINATIONS]) {
        for (w, n) in self.workers.iter().zip(counts) {
            if *n > 0 {
                w.stats().enqueued(*n);
            }
        }
    }

    fn deliver_record(
        &mut self,
        record: &opentelemetry_sdk::logs::SdkLogRecord,
        mask: u8,
        first_at: Instant,
    ) {
        match decode(record, &self.decode) {
            Ok(event) => {
                if self.report_ids.0.is_none() {
                    self.report_ids = (
                        Some(event.trace.compute_target_id.clone()),
                        event.release_version.clone(),
                    );
                }
                for d in destinations(mask) {
                    if let Some(w) = self.workers.get_mut(d) {
                        w.accept(&event, first_at);
                    }
                }
            }
            Err(e) => {
                // Only records from other bridges can get here (the layer always sets a
                // name and a computeTargetId).
                self.invalid.fetch_add(1, Ordering::Relaxed);
                let why = e.to_string();
                for d in destinations(mask) {
                    if let Some(w) = self.workers.get_mut(d) {
                        w.reject(&why);
                    }
                }
            }
        }
    }

    /// Makes the rate limiter's report when it is due (or `force`d): one `telemetry.rate_limited`
    /// event for each destination that routes it (the diagnostics destinations) and limited
    /// something, queued like any event (counted as routed), and each destination's counts
    /// told to the observer. Every limited event is in exactly one report.
    fn report_limits(&mut self, now: Instant, force: bool) {
        if !self.queue.report_open() {
            return;
        }
        let Some(ctid) = self.report_ids.0.clone() else {
            // No event decoded yet and none configured: the counts wait (they are in the
            // stats), taken by the first report that can be made.
            return;
        };
        let Some(report) = self.queue.take_limit_report(now, force) else {
            return;
        };
        let entry = closedloop_telemetry_layers::__private::catalogue::lookup(REPORT_EVENT);
        for (d, dropped) in report.per_destination.iter().enumerate() {
            if dropped.is_empty() {
                continue;
            }
            let Some(w) = self.workers.get_mut(d) else {
                continue;
            };
            let stream = w.stream_name();
            let total: u64 = dropped.iter().map(|(_, n)| n).sum();
            tracing::info!(
                stream,
                rate_limited = total,
                window_s = report.window.as_secs(),
                "telemetry events were rate-limited"
            );
            if let Some(observer) = &self.observer {
                observer(stream, report.window, dropped);
            }
            if w.is_finished() || !self.queue.lanes()[d].stream.routes(entry) {
                continue;
            }
            let event = report_event(
                dropped,
                report.window,
                ctid.clone(),
                self.report_ids.1.clone(),
            );
            w.stats().enqueued(1);
            w.accept(&event, now);
        }
    }

    /// Moves the door's `queue_full` counts into the destinations' counters.
    fn settle_door_drops(&self) {
        for (d, w) in self.workers.iter().enumerate() {
            let n = self.queue.take_door_drops(d);
            if n > 0 {
                w.stats().refused(
                    crate::delivery::DropReason::QueueFull,
                    n,
                    "the pipeline's queue and its overflow are full",
                );
            }
        }
    }

    /// Starts a request for every destination that has one due.
    /// `coming[d]`: records for destination `d` are still on their way in (they may fill a
    /// partial batch).
    fn start_sends(&mut self, now: Instant, coming: &[bool; MAX_DESTINATIONS]) {
        for (d, coming) in coming.iter().enumerate().take(self.workers.len()) {
            let w = &mut self.workers[d];
            if !w.send_due(now, self.window / 2, *coming) {
                continue;
            }
            let Some(request) = w.start_send() else {
                continue;
            };
            let transport = w.transport();
            let budget = w.budget(&request);
            let handle = self.exchanges.spawn(async move {
                let result = tokio::time::timeout(budget, transport.send(request))
                    .await
                    .unwrap_or(Err(TransportError::Timeout));
                (d, result)
            });
            self.on_wire[d] = Some(handle);
        }
    }

    /// Per destination: whether records for it are still on their way in, in the queue or
    /// taken and not yet handed on.
    fn coming(&self) -> [bool; MAX_DESTINATIONS] {
        let unfinished = self.taken_pos < self.taken.records.len();
        let waiting = match self.queue_is_drained() {
            true => [0; MAX_DESTINATIONS],
            false => self.queue.waiting_all(),
        };
        waiting.map(|n| unfinished || n > 0)
    }

    /// The answer to a request (unless it was abandoned meanwhile; an aborted task's
    /// cancellation needs nothing).
    fn on_exchange(&mut self, done: Result<(tokio::task::Id, Exchange), tokio::task::JoinError>) {
        let Ok((id, (d, result))) = done else {
            return;
        };
        if self.on_wire[d].as_ref().map(AbortHandle::id) != Some(id) {
            return;
        }
        self.on_wire[d] = None;
        self.workers[d].finish_send(Some(result));
    }
}
