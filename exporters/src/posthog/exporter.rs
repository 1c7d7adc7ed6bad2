//! [`PostHogExporter`]: an OpenTelemetry `LogExporter` that delivers catalogue events with a
//! PostHog name to `{host}/batch/` through the shared delivery engine.

use std::time::SystemTime;

use uuid::Uuid;

use closedloop_telemetry_layers::envelope::format_timestamp;

use super::wire::{self, Framer};
use crate::decode::Event;
use crate::delivery::{InvalidEvent, Stream};
use crate::exporter::StreamExporter;

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
/// use closedloop_telemetry_exporters::PostHogExporterBuilder;
/// use opentelemetry_sdk::logs::SdkLoggerProvider;
///
/// let exporter = PostHogExporterBuilder::default().api_key("phc_...").build()?;
/// let provider = SdkLoggerProvider::builder()
///     .with_batch_exporter(exporter.clone())
///     .build();
/// // ... install TelemetryLayer over `provider`, run the app ...
/// let _ = provider.force_flush();
/// let report = exporter.flush(std::time::Duration::from_secs(5));
/// println!("sent {} PostHog events", report.stats.sent);
/// # Ok::<(), closedloop_telemetry_exporters::delivery::BuildError>(())
/// ```
pub type PostHogExporter = StreamExporter;
