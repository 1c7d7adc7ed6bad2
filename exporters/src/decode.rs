//! The attribute-to-envelope decoder: reads a log record written under the
//! [record convention](closedloop_telemetry_layers::__private::convention) into an owned [`Event`].
//!
//! This is the only place the exporters read record attributes. It runs on a pipeline's
//! background thread, once per record, before the record is handed to each destination's
//! worker for its wire mapping.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::logs::{AnyValue, Severity};
use opentelemetry_sdk::logs::SdkLogRecord;
use serde_json::{Map, Number, Value};

use closedloop_telemetry_layers::__private::catalogue::{self, CatalogueEntry};
use closedloop_telemetry_layers::__private::convention::{
    Field, Kind, CUSTOM_EVENT_NAME, EVENT, EXTRA_PREFIX,
};
use closedloop_telemetry_layers::__private::envelope::{
    format_timestamp, Diagnostics, TraceEnvelope,
};
use closedloop_telemetry_layers::__private::truncate::{
    keep_head, keep_tail, FIELD_MAX_BYTES, TAIL_MAX_BYTES,
};

/// How deep nested `extra` values are kept; deeper levels become the string `"…"`.
pub(crate) const MAX_EXTRA_DEPTH: usize = 8;
/// How many `extra` keys are kept per event; the rest are dropped.
pub(crate) const MAX_EXTRA_KEYS: usize = 64;

/// One telemetry event, decoded from a record and owned, ready for any wire mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The emitted dot name.
    pub name: String,
    /// Its catalogue row, or `None` for a custom event.
    pub entry: Option<&'static CatalogueEntry>,
    /// Event time (record timestamp, else observed timestamp, else decode time).
    pub time: SystemTime,
    /// The record's severity, when it had one.
    pub severity: Option<Severity>,
    /// The envelope and trace context (`trace` on the relay wire).
    pub trace: TraceEnvelope,
    /// `diagnostics`, tails included only when the decoder was asked to keep them.
    pub diagnostics: Diagnostics,
    /// `release_version`.
    pub release_version: Option<String>,
    /// The sample rate this event was kept at (`None`: not sampled), set by the destination's
    /// sampling; `sampleRate` on the diagnostics wire, `sample_rate` on PostHog.
    pub sample_rate: Option<f64>,
}

/// Defaults and switches for [`decode`].
#[derive(Debug, Clone, Default)]
pub struct DecodeOptions {
    /// Used when the record has no `computeTargetId`.
    pub compute_target_id: Option<String>,
    /// Used when the record has no `releaseVersion`.
    pub release_version: Option<String>,
    /// Keep `logTail` / `stderrTail` (verbose telemetry). Off: they are dropped here too, so a
    /// record from another bridge cannot leak them.
    pub keep_tails: bool,
}

/// Why a record could not become an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// No `event` attribute and no catalogue `event_name`.
    #[error("record has no event name")]
    NoEventName,
    /// The name was empty or whitespace.
    #[error("record has an empty event name")]
    EmptyEventName,
    /// No `computeTargetId` in the record and none configured.
    #[error("record has no computeTargetId")]
    NoComputeTargetId,
    /// The record is a local-only activity entry.
    #[error("record is an activity-log entry, which is local-only")]
    ActivityEntry,
}

/// Decodes one record.
pub fn decode(record: &SdkLogRecord, opts: &DecodeOptions) -> Result<Event, DecodeError> {
    let EventName { name, entry } = event_name(record)?;
    let mut trace = TraceEnvelope::new(String::new(), String::new());
    let mut diag = Diagnostics::default();
    let mut release = None;

    for (key, value) in record.attributes_iter() {
        let key = key.as_str();
        // The name (and `activity`, which `event_name` refused) are read by `event_name`.
        if key == EVENT || key == "message" {
            continue;
        }
        match Field::from_name(key) {
            Some(field) => put_field(field, value, opts, &mut trace, &mut diag, &mut release),
            None => put_extra(
                &mut diag.extra,
                key.strip_prefix(EXTRA_PREFIX).unwrap_or(key),
                value,
            ),
        }
    }

    if trace.compute_target_id.is_empty() {
        trace.compute_target_id = opts
            .compute_target_id
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or(DecodeError::NoComputeTargetId)?;
    }
    let time = record
        .timestamp()
        .or(record.observed_timestamp())
        .unwrap_or_else(SystemTime::now);
    trace.timestamp = format_timestamp(time);
    if let Some(tc) = record.trace_context() {
        if tc.trace_id != opentelemetry::TraceId::INVALID {
            trace.otel_trace_id = Some(format!("{:032x}", tc.trace_id));
            trace.otel_span_id = Some(format!("{:016x}", tc.span_id));
        }
    }
    let name = keep_head(&name, 128).to_string();
    Ok(Event {
        entry,
        name,
        time,
        severity: record.severity_number(),
        trace,
        diagnostics: diag,
        release_version: release.or_else(|| opts.release_version.clone()),
        sample_rate: None,
    })
}

/// A record's event name (trimmed) and its catalogue row (`None`: a custom event).
pub(crate) struct EventName<'r> {
    pub(crate) name: Cow<'r, str>,
    pub(crate) entry: Option<&'static CatalogueEntry>,
}

/// The one rule by which a record is named: a catalogue `event_name`, overridden by an `event`
/// attribute; no name, an empty one, or an `activity` attribute (a local-only activity entry)
/// make it no event at all. [`decode`] names events by it, and the pipeline's queue routes
/// records by it at the door (where it allocates nothing for the layer's records).
pub(crate) fn event_name(record: &SdkLogRecord) -> Result<EventName<'_>, DecodeError> {
    let mut named = record
        .event_name()
        .filter(|n| *n != CUSTOM_EVENT_NAME)
        .and_then(|n| catalogue::lookup(n).map(|e| (Cow::Borrowed(n), Some(e))));
    for (key, value) in record.attributes_iter() {
        match key.as_str() {
            "activity" => return Err(DecodeError::ActivityEntry),
            EVENT => {
                let name = match value {
                    AnyValue::String(s) => Cow::Borrowed(s.as_str()),
                    other => Cow::Owned(text(other)),
                };
                named = Some((name, None));
            }
            _ => {}
        }
    }
    let (name, entry) = named.ok_or(DecodeError::NoEventName)?;
    let name = match name {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
    };
    if name.is_empty() {
        return Err(DecodeError::EmptyEventName);
    }
    // A name from the `event` attribute is looked up now (the layer's own names were above).
    let entry = entry.or_else(|| catalogue::lookup(&name));
    Ok(EventName { name, entry })
}

/// A `LogProcessor` that decodes every record it is given, exactly as a pipeline's background
/// does, and keeps the events (nothing is sent): for tools that show what the destinations
/// would receive (the `audit` command).
///
/// ```
/// use closedloop_telemetry_exporters::__private::decode::{DecodeOptions, DecodingProcessor};
/// let capture = DecodingProcessor::new(DecodeOptions::default());
/// assert!(capture.take().is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct DecodingProcessor {
    opts: DecodeOptions,
    events: std::sync::Arc<std::sync::Mutex<Vec<Event>>>,
}

impl DecodingProcessor {
    /// Decodes with `opts`. Clones share the events.
    pub fn new(opts: DecodeOptions) -> Self {
        DecodingProcessor {
            opts,
            events: Default::default(),
        }
    }

    /// The events decoded so far (records that are not events are skipped), oldest first;
    /// leaves none behind.
    pub fn take(&self) -> Vec<Event> {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *events)
    }
}

impl opentelemetry_sdk::logs::LogProcessor for DecodingProcessor {
    fn emit(&self, record: &mut SdkLogRecord, _scope: &opentelemetry::InstrumentationScope) {
        if let Ok(event) = decode(record, &self.opts) {
            let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
            events.push(event);
        }
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(
        &self,
        _timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

fn put_field(
    field: Field,
    value: &AnyValue,
    opts: &DecodeOptions,
    trace: &mut TraceEnvelope,
    diag: &mut Diagnostics,
    release: &mut Option<String>,
) {
    let snake = field.snake();
    match field.kind() {
        Kind::Str => {
            let v = bounded_text(value, |t| keep_head(t, FIELD_MAX_BYTES));
            if field == Field::ComputeTargetId {
                trace.compute_target_id = v;
                return;
            }
            let s = Some(v);
            match field {
                Field::GatewaySessionId => trace.gateway_session_id = s,
                Field::CommandId => trace.command_id = s,
                Field::OperationId => trace.operation_id = s,
                Field::ReleaseVersion => *release = s,
                Field::LoopId => trace.loop_id = s,
                Field::JobId => trace.job_id = s,
                Field::LoopSessionId => trace.loop_session_id = s,
                Field::ExitSignal => diag.exit_signal = s,
                Field::AbortReason => diag.abort_reason = s,
                Field::ErrorStack => diag.error_stack = s,
                _ => {}
            }
        }
        Kind::Tail => {
            if opts.keep_tails {
                let s = Some(bounded_text(value, |t| keep_tail(t, TAIL_MAX_BYTES)));
                if field == Field::LogTail {
                    diag.log_tail = s;
                } else {
                    diag.stderr_tail = s;
                }
            }
        }
        Kind::Int | Kind::Count => {
            let n = match value {
                AnyValue::Int(n) => Some(*n),
                AnyValue::String(s) => s.as_str().trim().parse().ok(),
                AnyValue::Double(d) if d.fract() == 0.0 && d.abs() < 9.0e15 => Some(*d as i64),
                _ => None,
            }
            .filter(|n| field.kind() == Kind::Int || *n >= 0);
            match (n, field) {
                (Some(n), Field::ExitCode) => diag.exit_code = Some(n),
                (Some(n), Field::ElapsedMs) => diag.elapsed_ms = Some(n),
                (Some(n), Field::StdoutBytes) => diag.stdout_bytes = Some(n),
                _ => put_extra(&mut diag.extra, snake, value),
            }
        }
        Kind::Object => {
            let obj = match value {
                AnyValue::Map(_) => match to_json(value, 0) {
                    Value::Object(m) => Some(m),
                    _ => None,
                },
                AnyValue::String(s) => match serde_json::from_str::<Value>(s.as_str()) {
                    Ok(Value::Object(m)) => Some(m),
                    _ => None,
                },
                _ => None,
            };
            match (obj, field) {
                (Some(m), Field::SpawnMeta) => diag.spawn_meta = Some(m),
                (Some(m), Field::TokenUsage) => diag.token_usage = Some(m),
                _ => put_extra(&mut diag.extra, snake, value),
            }
        }
    }
}

fn put_extra(extra: &mut Map<String, Value>, key: &str, value: &AnyValue) {
    if extra.len() < MAX_EXTRA_KEYS || extra.contains_key(key) {
        extra.insert(keep_head(key, 128).to_string(), to_json(value, 0));
    }
}

/// [`text`] cut by `cut`, copied once: a string attribute is cut where it lies, and only the
/// part kept is copied (a tail is one copy, not two).
fn bounded_text(value: &AnyValue, cut: impl Fn(&str) -> &str) -> String {
    match value {
        AnyValue::String(s) => cut(s.as_str()).to_string(),
        other => {
            let t = text(other);
            match cut(&t) {
                kept if kept.len() == t.len() => t,
                kept => kept.to_string(),
            }
        }
    }
}

/// A value as text: strings as they are, everything else in its JSON form.
fn text(value: &AnyValue) -> String {
    match value {
        AnyValue::String(s) => s.as_str().to_string(),
        other => to_json(other, 0).to_string(),
    }
}

/// Converts an attribute value to JSON, bounded in depth and string length. Bytes become
/// lowercase hex.
pub(crate) fn to_json(value: &AnyValue, depth: usize) -> Value {
    if depth > MAX_EXTRA_DEPTH {
        return Value::String("…".into());
    }
    match value {
        AnyValue::Int(n) => Value::from(*n),
        AnyValue::Double(d) => Number::from_f64(*d).map_or(Value::Null, Value::Number),
        AnyValue::String(s) => Value::String(keep_head(s.as_str(), FIELD_MAX_BYTES).to_string()),
        AnyValue::Boolean(b) => Value::Bool(*b),
        AnyValue::Bytes(b) => Value::String(hex::encode(b.as_slice())),
        AnyValue::ListAny(items) => Value::Array(
            items
                .iter()
                .take(MAX_EXTRA_KEYS)
                .map(|v| to_json(v, depth + 1))
                .collect(),
        ),
        AnyValue::Map(map) => Value::Object(
            map.iter()
                .take(MAX_EXTRA_KEYS)
                .map(|(k, v)| (k.as_str().to_string(), to_json(v, depth + 1)))
                .collect(),
        ),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_become_lowercase_hex() {
        assert_eq!(
            to_json(&AnyValue::Bytes(Box::new(vec![0x0a, 0xff])), 0),
            "0aff"
        );
    }
}
