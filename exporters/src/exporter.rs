//! [`StreamExporter`]: the `LogExporter` every destination uses (PostHog, relay, Datadog): a
//! [`Pipeline`] of one destination. `export()` copies each record into the pipeline's queue;
//! its background decodes, routes and delivers it.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};

use crate::delivery::{
    BuildError, Delivery, DeliveryReport, DeliverySpec, DeliveryStatsSnapshot,
    DEFAULT_SHUTDOWN_TIMEOUT,
};
use crate::pipeline::Pipeline;

/// A `LogExporter` over one destination: `export()` queues, never blocks, does no I/O and
/// needs no tokio runtime; decoding and delivery happen on the exporter's own background
/// thread (`closedloop-telemetry-<stream>`), the same engine the facade runs for all its
/// destinations at once. Clones share one background. `Debug` shows the endpoint, never a
/// credential.
///
/// Build one with [`PostHogExporterBuilder`](crate::PostHogExporterBuilder),
/// [`RelayExporterBuilder`](crate::RelayExporterBuilder) or
/// [`DatadogExporterBuilder`](crate::DatadogExporterBuilder).
///
/// One type for every destination, under this one name: the three differ only in what their
/// builder plugs into the engine (wire format, routing, transport), and what an app does with
/// an exporter (install it, flush, shut down, read stats) is the same for all. The builder is
/// the per-destination type; there are no per-destination aliases.
#[derive(Clone)]
pub struct StreamExporter {
    pipeline: Pipeline,
    endpoint: Arc<str>,
}

impl std::fmt::Debug for StreamExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamExporter")
            .field("endpoint", &crate::url_redact::redact_url(&self.endpoint))
            .field("credentials", &"[redacted]")
            .field("delivery", self.delivery())
            .finish_non_exhaustive()
    }
}

impl StreamExporter {
    /// Starts `spec` alone: a pipeline of one destination, on a background thread of its own
    /// named `closedloop-telemetry-<stream>`. The exporter builders' `build()` calls this.
    pub(crate) fn start(spec: DeliverySpec) -> Result<Self, BuildError> {
        let endpoint: Arc<str> = Arc::from(spec.endpoint());
        let name = format!("closedloop-telemetry-{}", spec.stream.name());
        let decode = spec.decode_options().clone();
        let pipeline = Pipeline::start_named(vec![spec], decode, name)?;
        Ok(StreamExporter { pipeline, endpoint })
    }

    /// The live delivery counters.
    pub fn stats(&self) -> DeliveryStatsSnapshot {
        self.delivery().stats()
    }

    /// The destination's handle (stats handle, wake, submit of pre-decoded events).
    pub(crate) fn delivery(&self) -> &Delivery {
        &self.pipeline.deliveries()[0]
    }

    /// Where requests go (`channel` for a channel transport).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends everything queued now and waits at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> DeliveryReport {
        self.delivery().flush(timeout)
    }

    /// Delivers what is queued within `timeout`, drops the rest and stops.
    pub fn shutdown_with_report(&self, timeout: Duration) -> Result<DeliveryReport, OTelSdkError> {
        self.delivery()
            .shutdown(timeout)
            .map_err(|_| OTelSdkError::AlreadyShutdown)
    }

    /// The body of `LogExporter::export`: copies each record into the pipeline's queue (the
    /// batch only lends them), where the background decodes and routes it. Never blocks and
    /// never does I/O; losses are counted, not returned. After shutdown: `AlreadyShutdown`.
    fn export_now(&self, batch: &LogBatch<'_>) -> OTelSdkResult {
        if self.delivery().is_shutdown() {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        for (record, _scope) in batch.iter() {
            let mut copy = record.clone();
            self.pipeline.take(&mut copy);
        }
        Ok(())
    }

    /// Flushes with the default 5 s deadline; `Err(Timeout)` if events remain queued.
    pub fn force_flush(&self) -> OTelSdkResult {
        if self.delivery().is_shutdown() {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        if self.flush(DEFAULT_SHUTDOWN_TIMEOUT).is_complete() {
            Ok(())
        } else {
            Err(OTelSdkError::Timeout(DEFAULT_SHUTDOWN_TIMEOUT))
        }
    }
}

impl LogExporter for StreamExporter {
    fn export(
        &self,
        batch: LogBatch<'_>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        // Queued now, on the caller's thread; the future is already complete.
        std::future::ready(self.export_now(&batch))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let report = self.shutdown_with_report(timeout)?;
        if report.is_complete() {
            Ok(())
        } else {
            Err(OTelSdkError::Timeout(timeout))
        }
    }
}
