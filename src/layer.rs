//! [`ClosedLoopLayer`]: the one layer an app adds: telemetry records plus the activity log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use closedloop_telemetry_layers::ActivityLayer;
use closedloop_telemetry_layers::TelemetryLayer;
use opentelemetry_sdk::logs::SdkLogger;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The layer [`Telemetry`](crate::Telemetry) hands out: a [`TelemetryLayer`] feeding the
/// upstream streams (absent when telemetry is disabled) and an [`ActivityLayer`] feeding the
/// local activity log. Add it to any registry-based subscriber.
#[derive(Debug)]
pub struct ClosedLoopLayer {
    pub(crate) telemetry: Option<TelemetryLayer<SdkLogger>>,
    pub(crate) activity: ActivityLayer,
    /// Cleared while consent is denied: events then never become records.
    pub(crate) upstream: Arc<AtomicBool>,
}

impl<S> Layer<S> for ClosedLoopLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        if let Some(t) = &self.telemetry {
            t.on_new_span(attrs, id, ctx);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if let Some(t) = &self.telemetry {
            t.on_record(id, values, ctx);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        Layer::<S>::on_event(&self.activity, event, ctx.clone());
        if let Some(t) = &self.telemetry {
            if self.upstream.load(Ordering::Relaxed) {
                t.on_event(event, ctx);
            }
        }
    }
}
