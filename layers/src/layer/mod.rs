//! [`TelemetryLayer`]: tracing events with an `event` field become OpenTelemetry log records.

mod event_fields;
mod intern;
mod record;
mod span_fields;
mod unknown;

pub use span_fields::current_trace_context;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use opentelemetry::logs::Logger;
use opentelemetry::StringValue;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::convention::CONTEXT_FIELDS;
use crate::gateway::GatewaySession;
use crate::stats::LayerStats;
use event_fields::{EventFields, EventName};

pub use unknown::MAX_WARNED_NAMES;
use unknown::{Sighting, UnknownNames};

/// Targets whose events are never turned into records: the crates of the HTTP stack our
/// exporters use (each by its exact crate name, as in `Cargo.lock`), and our own crates'
/// internals. A target matches an entry when it is that name or one of its `::` modules, so
/// `hyper` and `hyper::proto::h1` are ignored but an app crate named `hyper_dash` is not.
/// Together with the suppressed-context check this keeps the pipeline from capturing itself.
pub(crate) const IGNORED_TARGETS: &[&str] = &[
    "h2",
    "http",
    "http_body",
    "http_body_util",
    "httparse",
    "hyper",
    "hyper_rustls",
    "hyper_util",
    "reqwest",
    "rustls",
    "rustls_native_certs",
    "rustls_pki_types",
    "rustls_platform_verifier",
    "tokio_rustls",
    "tokio_util",
    "tower",
    "tower_http",
    "want",
    "webpki",
    "webpki_roots",
    "closedloop_telemetry_layers",
    "closedloop_telemetry_exporters",
    "closedloop_telemetry::internal",
];

/// The tracing layer that turns `event = "<category>"` events into OpenTelemetry log records.
///
/// Build it with [`TelemetryLayer::builder`]. Defaults: verbose off, custom events not
/// forwarded, `computeTargetId` `"unknown"` (the facade always sets a real one), no release
/// version, a fresh [`GatewaySession`].
///
/// ```
/// use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider};
/// use opentelemetry::logs::LoggerProvider;
/// use tracing_subscriber::prelude::*;
/// use closedloop_telemetry_layers::TelemetryLayer;
///
/// let exporter = InMemoryLogExporter::default();
/// let provider = SdkLoggerProvider::builder().with_simple_exporter(exporter.clone()).build();
/// let layer = TelemetryLayer::builder(provider.logger("app")).compute_target_id("ct-1").build();
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!(event = "job.completed", exit_code = 0);
/// });
/// let logs = exporter.get_emitted_logs().unwrap();
/// assert_eq!(logs[0].record.event_name(), Some("job.completed"));
/// ```
pub struct TelemetryLayer<L> {
    logger: L,
    verbose: bool,
    allow_custom: bool,
    compute_target_id: StringValue,
    release_version: Option<StringValue>,
    gateway: GatewaySession,
    unknown: UnknownNames,
    stats: Arc<LayerStats>,
    /// Bumped when a span records a context field late (see `span_fields`).
    context_epoch: AtomicU64,
    /// Leave the layer-constant attributes out: the exporter side fills them in.
    constants_from_exporter: bool,
}

/// A layer-constant value as a record string: interned (`&'static`, no reference count
/// touched per event) when possible.
fn constant(value: Arc<str>) -> StringValue {
    match intern::intern(&value) {
        Some(s) => StringValue::from(s),
        None => StringValue::from(value),
    }
}

/// The record keys of the context slots, computed once.
const CONTEXT_KEYS: [&str; CONTEXT_FIELDS.len()] = {
    let mut keys = [""; CONTEXT_FIELDS.len()];
    let mut i = 0;
    while i < keys.len() {
        keys[i] = CONTEXT_FIELDS[i].key();
        i += 1;
    }
    keys
};

impl<L> std::fmt::Debug for TelemetryLayer<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryLayer")
            .field("verbose", &self.verbose)
            .field("allow_custom", &self.allow_custom)
            .field("compute_target_id", &self.compute_target_id)
            .field("release_version", &self.release_version)
            .finish_non_exhaustive()
    }
}

/// Builder for [`TelemetryLayer`]; see the layer's docs for the defaults.
#[derive(Debug)]
pub struct TelemetryLayerBuilder<L> {
    layer: TelemetryLayer<L>,
}

impl<L: Logger> TelemetryLayer<L> {
    /// Starts a builder that emits through `logger`.
    pub fn builder(logger: L) -> TelemetryLayerBuilder<L> {
        TelemetryLayerBuilder {
            layer: TelemetryLayer {
                logger,
                verbose: false,
                allow_custom: false,
                compute_target_id: StringValue::from("unknown"),
                release_version: None,
                gateway: GatewaySession::default(),
                unknown: UnknownNames::default(),
                stats: Arc::default(),
                context_epoch: AtomicU64::new(0),
                constants_from_exporter: false,
            },
        }
    }

    /// The handle that sets `gatewaySessionId` at runtime.
    pub fn gateway_session(&self) -> GatewaySession {
        self.gateway.clone()
    }

    /// The layer's counters.
    pub fn stats(&self) -> Arc<LayerStats> {
        self.stats.clone()
    }
}

impl<L: Logger> TelemetryLayerBuilder<L> {
    /// Includes `log_tail` / `stderr_tail` (cut to their last 4096 bytes). Default off.
    pub fn verbose(mut self, on: bool) -> Self {
        self.layer.verbose = on;
        self
    }

    /// Forwards events whose name is not in the catalogue (as `event` attribute) instead of
    /// dropping them with a warning. Default off.
    pub fn allow_custom_events(mut self, on: bool) -> Self {
        self.layer.allow_custom = on;
        self
    }

    /// The `computeTargetId` of every record (unless the event sets its own).
    pub fn compute_target_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.layer.compute_target_id = constant(id.into());
        self
    }

    /// The `releaseVersion` of every record.
    pub fn release_version(mut self, version: impl Into<Arc<str>>) -> Self {
        self.layer.release_version = Some(constant(version.into()));
        self
    }

    /// Leaves `computeTargetId` and `releaseVersion` out of records when they would only repeat
    /// this layer's own values, for pipelines whose exporter side fills them in from the same
    /// settings (the facade's decoder does; `DecodeOptions` in the exporters crate). Saves two
    /// attributes per event on the app thread. Default off: records are self-contained.
    pub fn constants_from_exporter(mut self, on: bool) -> Self {
        self.layer.constants_from_exporter = on;
        self
    }

    /// Shares an existing gateway-session handle (e.g. one the app created first).
    pub fn gateway_session(mut self, gateway: GatewaySession) -> Self {
        self.layer.gateway = gateway;
        self
    }

    /// Shares an existing stats block.
    pub fn stats(mut self, stats: Arc<LayerStats>) -> Self {
        self.layer.stats = stats;
        self
    }

    /// Finishes the layer.
    pub fn build(self) -> TelemetryLayer<L> {
        self.layer
    }
}

/// Per byte: whether an [`IGNORED_TARGETS`] name starts with it. Most targets fail on their
/// first byte, so the per-event check is one load instead of a pass over the list.
const IGNORED_FIRST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < IGNORED_TARGETS.len() {
        table[IGNORED_TARGETS[i].as_bytes()[0] as usize] = true;
        i += 1;
    }
    table
};

/// Whether events from this target are ignored (see `IGNORED_TARGETS`).
pub fn is_ignored_target(target: &str) -> bool {
    let Some(&first) = target.as_bytes().first() else {
        return false;
    };
    if !IGNORED_FIRST_BYTES[first as usize] {
        return false;
    }
    IGNORED_TARGETS.iter().any(|name| {
        target
            .strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

impl<L> TelemetryLayer<L> {
    fn note_unknown(&self, name: &str) {
        LayerStats::add(&self.stats.unknown_name);
        match self.unknown.sight(name) {
            Sighting::First => tracing::warn!(
                target: "closedloop_telemetry_layers::unknown",
                event_name = name,
                "telemetry event name is not in the catalogue; not forwarded (warned once per name)"
            ),
            Sighting::Overflow => tracing::warn!(
                target: "closedloop_telemetry_layers::unknown",
                "more than {MAX_WARNED_NAMES} distinct unknown telemetry event names; further ones are only counted"
            ),
            Sighting::Known => {}
        }
    }
}

impl<S, L> tracing_subscriber::Layer<S> for TelemetryLayer<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Logger + Send + Sync + 'static,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        span_fields::on_new_span(attrs, ctx.span(id), &self.context_epoch);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        span_fields::on_record(values, ctx.span(id), &self.context_epoch);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !self.admits(meta) {
            return;
        }
        let mut record = self.logger.create_log_record();
        let mut fields = EventFields::new(&mut record, self.verbose, &self.stats);
        event.record(&mut fields);
        let (name, context_set, has_activity, has_ct, has_rel) = (
            std::mem::replace(&mut fields.name, EventName::Missing),
            fields.context_set,
            fields.has_activity,
            fields.has_compute_target,
            fields.has_release,
        );
        if has_activity {
            // Activity entries are local-only: never a telemetry record.
            return;
        }
        if !self.name_record(&mut record, name) {
            return;
        }
        self.add_context(&mut record, event, &ctx, context_set);
        self.add_constants(&mut record, has_ct, has_rel);
        self.stamp(&mut record, meta);
        self.logger.emit(record);
        LayerStats::add(&self.stats.emitted);
    }
}

#[cfg(test)]
mod tests {
    use super::is_ignored_target;

    #[test]
    fn ignored_targets_match_whole_crate_names() {
        assert!(is_ignored_target("hyper"));
        assert!(is_ignored_target("hyper_util::client"));
        assert!(is_ignored_target("h2::codec"));
        assert!(is_ignored_target("closedloop_telemetry_exporters::worker"));
        assert!(!is_ignored_target("h2o_app"));
        assert!(!is_ignored_target("closedloop_telemetry"));
        assert!(!is_ignored_target("desktop_client"));
        assert!(!is_ignored_target("hyper_dash"));
        assert!(!is_ignored_target("rustls_cfg::load"));
        assert!(!is_ignored_target("hyper:"));
        assert!(!is_ignored_target("closedloop_telemetry_layers_extra"));
        assert!(!is_ignored_target(""));
        assert!(!is_ignored_target("emit"));
        for name in super::IGNORED_TARGETS {
            assert!(is_ignored_target(name), "{name}");
            assert!(is_ignored_target(&format!("{name}::inner")), "{name}");
        }
    }
}
