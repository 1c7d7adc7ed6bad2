//! Starts the configured upstream streams.

use closedloop_telemetry_exporters::PostHogExporter;

use crate::builder::TelemetryBuilder;
use crate::sink::{Sink, StreamKind};
use crate::InitError;

/// Builds one sink per configured stream: PostHog, and the relay or else direct Datadog.
pub(crate) fn start(
    b: &TelemetryBuilder,
    compute_target_id: &str,
    release: &str,
) -> Result<Vec<Sink>, InitError> {
    let mut sinks = Vec::new();
    if let Some(ph) = &b.cfg.posthog {
        let mut builder = PostHogExporter::builder()
            .api_key(ph.api_key.clone())
            .host(ph.host.clone())
            .compute_target_id(compute_target_id)
            .release_version(release)
            .shutdown_timeout(b.shutdown_timeout);
        if let Some(i) = b.posthog_flush_interval {
            builder = builder.flush_interval(i);
        }
        let exporter = builder.build()?;
        sinks.push(Sink {
            kind: StreamKind::PostHog,
            delivery: exporter.delivery().clone(),
            allow_custom: false,
        });
    }
    Ok(sinks)
}
