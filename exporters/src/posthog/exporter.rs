//! [`PostHogExporter`]: an OpenTelemetry `LogExporter` that delivers catalogue events with a
//! PostHog name to `{host}/batch/` through the shared delivery engine.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use uuid::Uuid;

use closedloop_telemetry_layers::envelope::format_timestamp;

use super::builder::PostHogExporterBuilder;
use super::wire::{self, Framer};
use crate::decode::{DecodeOptions, Event};
use crate::delivery::{
    Delivery, DeliveryReport, DeliveryStatsSnapshot, InvalidEvent, Stream, DEFAULT_SHUTDOWN_TIMEOUT,
};

/// The PostHog stream plugged into the engine.
pub(crate) struct PostHogStream {
    pub(crate) framer: Framer,
    pub(crate) api_key: String,
}

impl Stream for PostHogStream {
    fn name(&self) -> &'static str {
        "posthog"
    }

    fn routes(&self, event: &Event) -> bool {
        wire::posthog_name(event).is_some()
    }

    fn encode(&self, event: &Event, id: Uuid) -> Result<Vec<u8>, InvalidEvent> {
        wire::encode_event(event, id)
    }

    fn frame(&self, items: &[&[u8]], out: &mut Vec<u8>) {
        self.framer
            .frame(items, &format_timestamp(SystemTime::now()), out);
    }

    fn redact(&self, text: &mut String) {
        if !self.api_key.is_empty() && text.contains(&self.api_key) {
            *text = text.replace(&self.api_key, "[redacted]");
        }
    }
}

/// Sends PostHog product-analytics events (DESIGN sections 3–4).
///
/// Only catalogue events with a PostHog name are kept; each becomes one PostHog event with a
/// UUIDv7 `uuid` that stays the same across retries. Log tails never go to PostHog. Batches of
/// at most 20 events go when 20 are waiting, `flush_interval` after the oldest, and on flush
/// and shutdown.
///
/// `export()` only decodes and queues (it never blocks, never does I/O and needs no tokio
/// runtime); delivery happens on the `closedloop-telemetry-posthog` thread. Clones share one
/// worker. `Debug` never shows the API key.
///
/// ```no_run
/// use closedloop_telemetry_exporters::PostHogExporter;
/// use opentelemetry_sdk::logs::SdkLoggerProvider;
///
/// let exporter = PostHogExporter::builder().api_key("phc_...").build()?;
/// let provider = SdkLoggerProvider::builder()
///     .with_batch_exporter(exporter.clone())
///     .build();
/// // ... install TelemetryLayer over `provider`, run the app ...
/// let _ = provider.force_flush();
/// let report = exporter.flush(std::time::Duration::from_secs(5));
/// println!("sent {} PostHog events", report.stats.sent);
/// # Ok::<(), closedloop_telemetry_exporters::delivery::BuildError>(())
/// ```
#[derive(Clone)]
pub struct PostHogExporter {
    pub(crate) delivery: Delivery,
    pub(crate) decode: Arc<DecodeOptions>,
    pub(crate) endpoint: Arc<str>,
}

impl std::fmt::Debug for PostHogExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostHogExporter")
            .field("endpoint", &self.endpoint)
            .field("api_key", &"[redacted]")
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

impl PostHogExporter {
    /// Starts a builder; see [`PostHogExporterBuilder`] for the defaults.
    pub fn builder() -> PostHogExporterBuilder {
        PostHogExporterBuilder::default()
    }

    /// The live delivery counters.
    pub fn stats(&self) -> DeliveryStatsSnapshot {
        self.delivery.stats()
    }

    /// The engine handle (stats handle, wake, submit of pre-decoded events).
    pub fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// The `/batch/` URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends everything queued now and waits at most `timeout`; see [`Delivery::flush`].
    pub fn flush(&self, timeout: Duration) -> DeliveryReport {
        self.delivery.flush(timeout)
    }

    /// Flushes with the default 5 s deadline; `Err(Timeout)` if events remain queued.
    pub fn force_flush(&self) -> OTelSdkResult {
        if self.delivery.is_shutdown() {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let report = self.flush(DEFAULT_SHUTDOWN_TIMEOUT);
        if report.is_complete() {
            Ok(())
        } else {
            Err(OTelSdkError::Timeout(DEFAULT_SHUTDOWN_TIMEOUT))
        }
    }

    /// Delivers what is queued within `timeout`, drops the rest and stops; returns what was
    /// left. A second call returns `AlreadyShutdown`.
    pub fn shutdown_with_report(&self, timeout: Duration) -> Result<DeliveryReport, OTelSdkError> {
        self.delivery.shutdown(timeout)
    }
}

impl LogExporter for PostHogExporter {
    fn export(
        &self,
        batch: LogBatch<'_>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        // All work happens now, on the caller's thread: decode and hand over. The returned
        // future is already complete, so any executor (or none) can drive it.
        std::future::ready(self.delivery.export(&batch, &self.decode))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let report = self.delivery.shutdown(timeout)?;
        if report.is_complete() {
            Ok(())
        } else {
            Err(OTelSdkError::Timeout(timeout))
        }
    }
}
