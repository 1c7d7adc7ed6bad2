//! The steps of `TelemetryLayer::on_event`: whether the layer takes an event, and then the
//! record's name, trace context, constants and stamp (severity, target, time).

use std::time::SystemTime;

use opentelemetry::logs::{AnyValue, LogRecord, Logger, Severity};
use opentelemetry::Key;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::event_fields::EventName;
use super::{is_ignored_target, span_fields, TelemetryLayer, CONTEXT_KEYS};
use crate::convention::{Field, CONTEXT_FIELDS, CUSTOM_EVENT_NAME, EVENT};
use crate::stats::LayerStats;

impl<L: Logger> TelemetryLayer<L> {
    /// Whether the layer takes the event at all: it has an `event` field, and it is neither
    /// emitted inside a telemetry-suppressed scope nor from an ignored target (those are
    /// counted as `suppressed`).
    pub(super) fn admits(&self, meta: &Metadata<'_>) -> bool {
        if meta.fields().field(EVENT).is_none() {
            return false;
        }
        if opentelemetry::Context::is_current_telemetry_suppressed()
            || is_ignored_target(meta.target())
        {
            LayerStats::add(&self.stats.suppressed);
            return false;
        }
        true
    }

    /// Names the record after its catalogue row (or as a custom event when those are
    /// allowed). `false` when the event is not forwarded: unknown or invalid names are
    /// counted (and an unknown one warned about once).
    pub(super) fn name_record(&self, record: &mut L::LogRecord, name: EventName) -> bool {
        match name {
            EventName::Catalogue(entry) => record.set_event_name(entry.name),
            EventName::Custom(custom) if self.allow_custom => {
                record.set_event_name(CUSTOM_EVENT_NAME);
                record.add_attribute(Key::from_static_str(EVENT), AnyValue::from(custom));
            }
            EventName::Custom(custom) => {
                self.note_unknown(&custom);
                return false;
            }
            EventName::Missing | EventName::Invalid => {
                LayerStats::add(&self.stats.invalid_name);
                return false;
            }
        }
        true
    }

    /// Adds the trace context the event's own fields did not set (`context_set`: one bit per
    /// context field): from the span scope (merged per span when it was created), innermost
    /// value first, then the gateway session.
    pub(super) fn add_context<S>(
        &self,
        record: &mut L::LogRecord,
        event: &Event<'_>,
        ctx: &Context<'_, S>,
        mut context_set: u8,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        const ALL_SET: u8 = (1 << CONTEXT_FIELDS.len()) - 1;
        if context_set != ALL_SET {
            if let Some(span) = ctx.event_span(event) {
                span_fields::visible(span, &self.context_epoch, |flat| {
                    for (slot, value) in flat.iter().enumerate() {
                        if let (0, Some(v)) = (context_set & (1 << slot), value) {
                            record.add_attribute(
                                Key::from_static_str(CONTEXT_KEYS[slot]),
                                AnyValue::String(v.clone().into()),
                            );
                            context_set |= 1 << slot;
                        }
                    }
                });
            }
        }
        if context_set & 1 == 0 {
            if let Some(gw) = self.gateway.get() {
                record.add_attribute(
                    Key::from_static_str(Field::GatewaySessionId.key()),
                    AnyValue::String(gw.into()),
                );
            }
        }
    }

    /// Adds the computeTargetId and release the event did not carry, unless the exporter
    /// adds them (`constants_from_exporter`).
    pub(super) fn add_constants(&self, record: &mut L::LogRecord, has_ct: bool, has_rel: bool) {
        if !has_ct && !self.constants_from_exporter {
            record.add_attribute(
                Key::from_static_str(Field::ComputeTargetId.key()),
                AnyValue::String(self.compute_target_id.clone()),
            );
        }
        if let (false, false, Some(v)) =
            (has_rel, self.constants_from_exporter, &self.release_version)
        {
            record.add_attribute(
                Key::from_static_str(Field::ReleaseVersion.key()),
                AnyValue::String(v.clone()),
            );
        }
    }

    /// Severity from the level, the target, and one clock read for both timestamps (the SDK
    /// would otherwise read the clock again).
    pub(super) fn stamp(&self, record: &mut L::LogRecord, meta: &'static Metadata<'static>) {
        let (severity, text) = severity_of(meta.level());
        record.set_severity_number(severity);
        record.set_severity_text(text);
        record.set_target(meta.target());
        let now = SystemTime::now();
        record.set_timestamp(now);
        record.set_observed_timestamp(now);
    }
}

fn severity_of(level: &Level) -> (Severity, &'static str) {
    match *level {
        Level::TRACE => (Severity::Trace, "TRACE"),
        Level::DEBUG => (Severity::Debug, "DEBUG"),
        Level::INFO => (Severity::Info, "INFO"),
        Level::WARN => (Severity::Warn, "WARN"),
        _ => (Severity::Error, "ERROR"),
    }
}
