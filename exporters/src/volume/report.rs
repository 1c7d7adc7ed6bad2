//! The `telemetry.rate_limited` event: what one destination's rate limits refused since the
//! previous report, made on the pipeline's background (never by the app, never limited).

use std::time::{Duration, SystemTime};

use closedloop_telemetry_layers::__private::catalogue;
use closedloop_telemetry_layers::__private::envelope::{
    format_timestamp, Diagnostics, TraceEnvelope,
};
use opentelemetry::logs::Severity;
use serde_json::{Map, Value};

use super::REPORT_EVENT;
use crate::decode::Event;

/// The report of `dropped` (name, count) over `window`, for the install `compute_target_id`
/// and `release_version`. `extra.window_s` is the window in whole seconds (at least 1);
/// `extra.dropped` maps each name to its count.
pub(crate) fn report_event(
    dropped: &[(String, u64)],
    window: Duration,
    compute_target_id: String,
    release_version: Option<String>,
) -> Event {
    let time = SystemTime::now();
    let mut extra = Map::new();
    extra.insert(
        "window_s".into(),
        Value::from(window.as_secs_f64().ceil().max(1.0) as u64),
    );
    extra.insert(
        "dropped".into(),
        Value::Object(
            dropped
                .iter()
                .map(|(name, n)| (name.clone(), Value::from(*n)))
                .collect(),
        ),
    );
    Event {
        name: REPORT_EVENT.to_string(),
        entry: catalogue::lookup(REPORT_EVENT),
        time,
        severity: Some(Severity::Warn),
        trace: TraceEnvelope::new(format_timestamp(time), compute_target_id),
        diagnostics: Diagnostics {
            extra,
            ..Diagnostics::default()
        },
        release_version,
        sample_rate: None,
    }
}
