//! Installs the exporters' one pipeline: starts it for the configured destinations and puts
//! the telemetry layer in front of it (a provider whose only processor is the pipeline's).
//! The facade decodes and routes nothing itself.

use closedloop_telemetry_exporters::__private::decode::DecodeOptions;
use closedloop_telemetry_exporters::__private::delivery::DeliverySpec;
use closedloop_telemetry_exporters::__private::pipeline::LimitObserver;
use closedloop_telemetry_exporters::__private::pipeline::Pipeline;
use closedloop_telemetry_exporters::Destination;
use closedloop_telemetry_layers::{
    ActivityKind, ActivityLogStore, GatewaySession, LayerStats, TelemetryLayer,
};
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use std::sync::Arc;

use crate::settings::Settings;
use crate::InitError;

/// What carries events from the layer to the destinations: the pipeline, the provider over it
/// and the telemetry layer writing to it. All `None` (and empty stats) without a destination.
pub(crate) struct Installed {
    pub(crate) pipeline: Option<Pipeline>,
    pub(crate) destinations: Vec<Destination>,
    pub(crate) provider: Option<SdkLoggerProvider>,
    pub(crate) layer: Option<TelemetryLayer<SdkLogger>>,
    pub(crate) stats: Arc<LayerStats>,
}

/// Writes each rate-limit report of the pipeline to the local activity log: one entry per
/// destination that limited something, the counts by name in its body (PostHog's too, which
/// gets no report event).
fn limits_to_activity(activity: ActivityLogStore) -> LimitObserver {
    Arc::new(move |stream, window, dropped| {
        let total: u64 = dropped.iter().map(|(_, n)| n).sum();
        let body = dropped
            .iter()
            .map(|(name, n)| format!("{name}: {n}"))
            .collect::<Vec<_>>()
            .join("\n");
        activity.record(
            ActivityKind::Request,
            format!(
                "telemetry.rate_limited: {stream} dropped {total} events over {} s",
                window.as_secs().max(1)
            ),
            body,
        );
    })
}

/// Whether records carry `log_tail` / `stderr_tail`: only with verbose on and a destination
/// that sends them (`DeliverySpec::sends_tails`: relay or Datadog; PostHog never does).
/// Otherwise the layer does not read them, so nothing copies a tail every destination drops.
fn carries_tails(verbose: bool, specs: &[(Destination, DeliverySpec)]) -> bool {
    verbose && specs.iter().any(|(_, s)| s.sends_tails())
}

pub(crate) fn start(
    settings: &Settings,
    specs: Vec<(Destination, DeliverySpec)>,
    gateway: &GatewaySession,
    activity: &ActivityLogStore,
) -> Result<Installed, InitError> {
    if specs.is_empty() {
        return Ok(Installed {
            pipeline: None,
            destinations: Vec::new(),
            provider: None,
            layer: None,
            stats: Arc::default(),
        });
    }
    let compute_target_id = settings.compute_target_id.as_str();
    let release = settings.release.as_str();
    let tails = carries_tails(settings.verbose, &specs);
    let decode = DecodeOptions {
        compute_target_id: Some(compute_target_id.to_string()),
        release_version: Some(release.to_string()),
        keep_tails: tails,
    };
    let destinations = specs.iter().map(|(d, _)| *d).collect();
    let pipeline = Pipeline::start_observed(
        specs.into_iter().map(|(_, s)| s).collect(),
        decode,
        limits_to_activity(activity.clone()),
    )?;
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(pipeline.processor())
        .build();
    let layer = TelemetryLayer::builder(provider.logger("closedloop-telemetry"))
        .compute_target_id(compute_target_id)
        .release_version(release)
        .verbose(tails)
        .allow_custom_events(settings.allow_custom)
        .gateway_session(gateway.clone())
        // The pipeline decodes with the same computeTargetId and release (above).
        .constants_from_exporter(true)
        .build();
    let stats = layer.stats();
    Ok(Installed {
        pipeline: Some(pipeline),
        destinations,
        provider: Some(provider),
        layer: Some(layer),
        stats,
    })
}
