//! The facade's log processor: moves each record (no clone, no decode) into the
//! [hand-off](crate::handoff) whose worker decodes it once and submits the event to every sink
//! that routes it. The exporters batch, retry and spool on their own workers, so the app
//! thread's share of an event ends at the move.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use closedloop_telemetry_exporters::decode::DecodeOptions;
use closedloop_telemetry_exporters::delivery::{Delivery, DeliveryReport};
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord};

use crate::handoff::Handoff;
use crate::sink::{Sink, StreamKind};

/// Moves each record into the hand-off; flush and shutdown push the hand-off through first.
#[derive(Debug)]
pub(crate) struct FanoutProcessor {
    sinks: Arc<Vec<Sink>>,
    handoff: Arc<Handoff>,
}

impl FanoutProcessor {
    /// Starts the hand-off worker; `None` when the thread cannot be spawned.
    pub(crate) fn new(
        sinks: Arc<Vec<Sink>>,
        decode: DecodeOptions,
        invalid: Arc<AtomicU64>,
    ) -> std::io::Result<Self> {
        let handoff = Arc::new(Handoff::start(sinks.clone(), decode, invalid)?);
        Ok(FanoutProcessor { sinks, handoff })
    }

    /// The hand-off, for the telemetry handle's flush and shutdown.
    pub(crate) fn handoff(&self) -> Arc<Handoff> {
        self.handoff.clone()
    }
}

impl LogProcessor for FanoutProcessor {
    fn emit(&self, record: &mut SdkLogRecord, _scope: &InstrumentationScope) {
        self.handoff.take(record);
    }

    fn force_flush(&self) -> OTelSdkResult {
        let timeout = crate::DEFAULT_SHUTDOWN_TIMEOUT;
        let report = flush_all(Some(&self.handoff), &self.sinks, timeout);
        if report.iter().all(|(_, r)| r.is_complete()) {
            Ok(())
        } else {
            Err(OTelSdkError::Timeout(timeout))
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        shutdown_all(Some(&self.handoff), &self.sinks, timeout).map(|_| ())
    }
}

/// Pushes the hand-off through, then flushes every sink in parallel, all within one deadline.
pub(crate) fn flush_all(
    handoff: Option<&Handoff>,
    sinks: &[Sink],
    timeout: Duration,
) -> Vec<(StreamKind, DeliveryReport)> {
    let left = pass_handoff(handoff, timeout, Handoff::flush);
    in_parallel(sinks, |d| d.flush(left))
}

/// Shuts every sink down in parallel, all within one deadline. `AlreadyShutdown` when every
/// sink was already shut.
pub(crate) fn shutdown_all(
    handoff: Option<&Handoff>,
    sinks: &[Sink],
    timeout: Duration,
) -> Result<Vec<(StreamKind, DeliveryReport)>, OTelSdkError> {
    let left = pass_handoff(handoff, timeout, Handoff::shutdown);
    let reports: Vec<_> = in_parallel(sinks, |d| d.shutdown(left))
        .into_iter()
        .filter_map(|(kind, r)| r.ok().map(|r| (kind, r)))
        .collect();
    if reports.is_empty() && !sinks.is_empty() {
        return Err(OTelSdkError::AlreadyShutdown);
    }
    Ok(reports)
}

/// Runs `step` on the hand-off (if any) within `timeout`; returns the time left for the sinks.
fn pass_handoff(
    handoff: Option<&Handoff>,
    timeout: Duration,
    step: impl FnOnce(&Handoff, Instant) -> bool,
) -> Duration {
    let Some(handoff) = handoff else {
        return timeout;
    };
    let deadline =
        closedloop_telemetry_exporters::delivery::deadline_after(Instant::now(), timeout);
    step(handoff, deadline);
    deadline.saturating_duration_since(Instant::now())
}

/// Runs `f` on every sink's engine, each on its own scoped thread; the results by stream.
fn in_parallel<T: Send>(sinks: &[Sink], f: impl Fn(&Delivery) -> T + Sync) -> Vec<(StreamKind, T)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = sinks
            .iter()
            .map(|sink| {
                let f = &f;
                (sink.kind, s.spawn(move || f(sink.delivery())))
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|(kind, h)| h.join().ok().map(|r| (kind, r)))
            .collect()
    })
}
