//! The path from the layer to the sinks: the provider over the hand-off, and the telemetry
//! layer writing to it, started from the resolved [`Settings`].

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use closedloop_telemetry_exporters::decode::DecodeOptions;
use closedloop_telemetry_layers::{GatewaySession, LayerStats, TelemetryLayer};
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};

use crate::handoff::Handoff;
use crate::processor::FanoutProcessor;
use crate::settings::Settings;
use crate::sink::Sink;
use crate::InitError;

/// What carries events from the layer to the sinks: the provider over the hand-off, and the
/// telemetry layer writing to it. All `None` (and empty stats) without a sink.
pub(crate) struct Upstream {
    pub(crate) provider: Option<SdkLoggerProvider>,
    pub(crate) handoff: Option<Arc<Handoff>>,
    pub(crate) layer: Option<TelemetryLayer<SdkLogger>>,
    pub(crate) stats: Arc<LayerStats>,
}

/// Whether records carry `log_tail` / `stderr_tail`: only with verbose on and a stream that
/// sends them (`Delivery::sends_tails`: relay or Datadog; PostHog never does). Otherwise the
/// layer does not read them, so nothing copies a tail that every stream would drop.
fn carries_tails(verbose: bool, sinks: &[Sink]) -> bool {
    verbose && sinks.iter().any(|s| s.delivery().sends_tails())
}

pub(crate) fn start(
    settings: &Settings,
    sinks: &Arc<Vec<Sink>>,
    gateway: &GatewaySession,
    invalid: &Arc<AtomicU64>,
) -> Result<Upstream, InitError> {
    if sinks.is_empty() {
        return Ok(Upstream {
            provider: None,
            handoff: None,
            layer: None,
            stats: Arc::default(),
        });
    }
    let compute_target_id = settings.compute_target_id.as_str();
    let release = settings.release.as_str();
    let tails = carries_tails(settings.verbose, sinks);
    let decode = DecodeOptions {
        compute_target_id: Some(compute_target_id.to_string()),
        release_version: Some(release.to_string()),
        keep_tails: tails,
    };
    let processor = FanoutProcessor::new(sinks.clone(), decode, invalid.clone())
        .map_err(closedloop_telemetry_exporters::BuildError::from)?;
    let handoff = processor.handoff();
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(processor)
        .build();
    let layer = TelemetryLayer::builder(provider.logger("closedloop-telemetry"))
        .compute_target_id(compute_target_id)
        .release_version(release)
        .verbose(tails)
        .allow_custom_events(settings.allow_custom)
        .gateway_session(gateway.clone())
        // The hand-off decodes with the same computeTargetId and release (above).
        .constants_from_exporter(true)
        .build();
    let stats = layer.stats();
    Ok(Upstream {
        provider: Some(provider),
        handoff: Some(handoff),
        layer: Some(layer),
        stats,
    })
}
