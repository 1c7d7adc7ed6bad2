//! [`StreamExporter`]: the `LogExporter` every stream uses (PostHog, relay, Datadog): it decodes
//! records on the caller's thread and hands them to the stream's delivery engine.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};

use crate::decode::{decode, DecodeError, DecodeOptions};
use crate::delivery::{
    Delivery, DeliveryReport, DeliveryStatsSnapshot, DropReason, DEFAULT_SHUTDOWN_TIMEOUT,
};

/// A `LogExporter` over one delivery engine: `export()` decodes and queues, never blocks, does
/// no I/O and needs no tokio runtime; delivery happens on the stream's own worker thread.
/// Clones share one worker. `Debug` shows the endpoint, never a credential.
///
/// Build one with [`PostHogExporterBuilder`](crate::PostHogExporterBuilder),
/// [`RelayExporterBuilder`](crate::relay::RelayExporterBuilder) or
/// [`DatadogExporterBuilder`](crate::datadog::DatadogExporterBuilder).
///
/// One type for every destination, under this one name: the three differ only in what their
/// builder plugs into the engine (wire format, routing, transport), and what an app does with
/// an exporter (install it, flush, shut down, read stats) is the same for all. The builder is
/// the per-destination type; there are no per-destination aliases.
#[derive(Clone)]
pub struct StreamExporter {
    pub(crate) delivery: Delivery,
    pub(crate) decode: Arc<DecodeOptions>,
    pub(crate) endpoint: Arc<str>,
}

impl std::fmt::Debug for StreamExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamExporter")
            .field("endpoint", &crate::redact_url(&self.endpoint))
            .field("credentials", &"[redacted]")
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

impl StreamExporter {
    /// The live delivery counters.
    pub fn stats(&self) -> DeliveryStatsSnapshot {
        self.delivery.stats()
    }

    /// The engine handle (stats handle, wake, submit of pre-decoded events).
    pub fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// Where requests go (`channel` for a channel transport).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends everything queued now and waits at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> DeliveryReport {
        self.delivery.flush(timeout)
    }

    /// Delivers what is queued within `timeout`, drops the rest and stops.
    pub fn shutdown_with_report(&self, timeout: Duration) -> Result<DeliveryReport, OTelSdkError> {
        self.delivery
            .shutdown(timeout)
            .map_err(|_| OTelSdkError::AlreadyShutdown)
    }

    /// The body of `LogExporter::export`: decodes each record on the calling thread, keeps the
    /// ones the stream routes, and hands them to the engine ([`Delivery::submit`]). Never
    /// blocks and never does I/O; losses are counted, not returned. After shutdown:
    /// `AlreadyShutdown`.
    fn export_now(&self, batch: &LogBatch<'_>) -> OTelSdkResult {
        if self.delivery.is_shutdown() {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let mut events = Vec::new();
        for (record, _scope) in batch.iter() {
            match decode(record, &self.decode) {
                Ok(event) if self.delivery.routes(event.entry) => events.push(event),
                Ok(_) | Err(DecodeError::NoEventName | DecodeError::ActivityEntry) => {
                    self.delivery.count_ignored(1)
                }
                Err(e) => self
                    .delivery
                    .count_refused(DropReason::Invalid, 1, &e.to_string()),
            }
        }
        self.delivery
            .submit(events)
            .map_err(|_| OTelSdkError::AlreadyShutdown)
    }

    /// Flushes with the default 5 s deadline; `Err(Timeout)` if events remain queued.
    pub fn force_flush(&self) -> OTelSdkResult {
        if self.delivery.is_shutdown() {
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
        // Decode and hand over now, on the caller's thread; the future is already complete.
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
