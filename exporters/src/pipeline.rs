//! [`Pipeline`]: the one path of an event, from the app thread to the wire, for several
//! destinations at once.
//!
//! ```text
//! app thread                                   │ background thread (one per pipeline)
//! ─────────────────────────────────────────────┼───────────────────────────────────────────
//! LogProcessor::emit (PipelineProcessor)       │
//!  └ queue (delivery/queue.rs): move the       │ decode each record once (decode.rs)
//!    record in with its destination mask,      │  └ per destination it routes to:
//!    past the bound into the compact overflow, │     Worker::accept → wire form → backlog
//!    past both: dropped, counted queue_full    │        (memory, spool)
//!    wakes the background only when it must ───┼► batches leave on the destinations' timers,
//!                                              │   each request a task on the same runtime
//! ```
//!
//! One bounded queue (plus its overflow), one background thread with one current-thread tokio
//! runtime, one worker per destination on it. Every drop is counted once, where it happens,
//! on the destination it concerns, and `routed + replayed = sent + dropped.total() + queued`
//! holds on each at every moment, records waiting in the queue included.
//!
//! The facade (`closedloop-telemetry`) starts one pipeline for all its destinations. A
//! [`StreamExporter`](crate::StreamExporter) is the same engine with one destination.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord};

use crate::decode::DecodeOptions;
use crate::delivery::{
    launch, BuildError, Core, Delivery, DeliveryReport, DeliverySpec, DEFAULT_SHUTDOWN_TIMEOUT,
};

/// The thread name of a pipeline's background.
pub(crate) const BACKGROUND_THREAD: &str = "closedloop-telemetry";

/// A running pipeline: its queue, its background thread and one [`Delivery`] per destination.
/// Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Pipeline {
    core: Arc<Core>,
    deliveries: Arc<[Delivery]>,
}

impl Pipeline {
    /// Starts one background thread ([`BACKGROUND_THREAD`]) for `destinations` (at most 8),
    /// decoding records with `decode`.
    pub fn start(
        destinations: Vec<DeliverySpec>,
        decode: DecodeOptions,
    ) -> Result<Self, BuildError> {
        Self::start_named(destinations, decode, BACKGROUND_THREAD.to_string())
    }

    /// Like [`start`](Self::start), telling `observer` each rate-limit report (see
    /// [`LimitObserver`](crate::volume::LimitObserver)).
    pub fn start_observed(
        destinations: Vec<DeliverySpec>,
        decode: DecodeOptions,
        observer: crate::volume::LimitObserver,
    ) -> Result<Self, BuildError> {
        let (core, deliveries) = launch(
            destinations,
            decode,
            BACKGROUND_THREAD.to_string(),
            Some(observer),
        )?;
        Ok(Pipeline {
            core,
            deliveries: deliveries.into(),
        })
    }

    pub(crate) fn start_named(
        destinations: Vec<DeliverySpec>,
        decode: DecodeOptions,
        thread: String,
    ) -> Result<Self, BuildError> {
        let (core, deliveries) = launch(destinations, decode, thread, None)?;
        Ok(Pipeline {
            core,
            deliveries: deliveries.into(),
        })
    }

    /// The destinations' handles, in the order they were given.
    pub fn deliveries(&self) -> &[Delivery] {
        &self.deliveries
    }

    /// The `LogProcessor` that feeds this pipeline (for an `SdkLoggerProvider`).
    pub fn processor(&self) -> PipelineProcessor {
        PipelineProcessor {
            pipeline: self.clone(),
        }
    }

    /// Moves the record in `slot` into the queue (leaving a blank record behind); never
    /// blocks. Records no destination routes are counted as ignored and left in place.
    pub fn take(&self, slot: &mut SdkLogRecord) {
        self.core.queue.take(slot);
    }

    /// Runs `work` on the pipeline's background thread, in order with the handles' commands,
    /// without waiting for it: for small file work the app's thread must not do (the facade's
    /// session marker). Returns `false`, dropping `work`, once the background has stopped.
    pub fn run_in_background(&self, work: impl FnOnce() + Send + 'static) -> bool {
        self.core.run_in_background(Box::new(work))
    }

    /// Records that routed somewhere but could not be decoded (no computeTargetId, an empty
    /// name; only records from other bridges), each also counted as `invalid` on its
    /// destinations.
    pub fn invalid_records(&self) -> u64 {
        self.core.invalid.load(Ordering::Relaxed)
    }

    /// Sends everything queued on every destination now, within one deadline; per destination
    /// what remained (it stays queued).
    pub fn flush(&self, timeout: Duration) -> Vec<DeliveryReport> {
        Delivery::flush_all(&self.deliveries, timeout)
    }

    /// Shuts every destination down within one deadline: what is queued is delivered, spooled
    /// or dropped and counted; records that come later are counted as `shutdown`. The
    /// background thread stops. Per destination, the reports of those not already shut down.
    pub fn shutdown(&self, timeout: Duration) -> Vec<DeliveryReport> {
        let reports = Delivery::shutdown_all(&self.deliveries, timeout);
        self.core.queue.close();
        reports
    }

    /// Consent withdrawn: closes every destination's gate, then purges each (the queue, the
    /// backlogs, the spools) within one deadline; the total purged. See [`Delivery::purge`].
    pub fn purge(&self, timeout: Duration) -> u64 {
        Delivery::purge_all(&self.deliveries, timeout)
    }

    /// Consent denied at start: closes every destination's gate without a purge (a purge
    /// command could reach the background after a later grant and drop what came after it;
    /// spools are purged as they open with `SpoolOptions::purge_on_open`).
    pub fn close_gates(&self) {
        for d in self.deliveries.iter() {
            d.close_gate();
        }
    }

    /// Consent granted again: every destination queues and sends again.
    pub fn resume(&self) {
        for d in self.deliveries.iter() {
            d.resume();
        }
    }
}

/// The `LogProcessor` of a [`Pipeline`]: `emit` moves each record (no clone, no decode) into
/// the pipeline's queue; `force_flush` and `shutdown` reach every destination.
#[derive(Debug)]
pub struct PipelineProcessor {
    pipeline: Pipeline,
}

impl LogProcessor for PipelineProcessor {
    fn emit(&self, record: &mut SdkLogRecord, _scope: &InstrumentationScope) {
        self.pipeline.take(record);
    }

    fn force_flush(&self) -> OTelSdkResult {
        let timeout = DEFAULT_SHUTDOWN_TIMEOUT;
        if self.pipeline.flush(timeout).iter().all(|r| r.is_complete()) {
            Ok(())
        } else {
            Err(OTelSdkError::Timeout(timeout))
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let reports = self.pipeline.shutdown(timeout);
        if reports.is_empty() && !self.pipeline.deliveries.is_empty() {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        Ok(())
    }
}
