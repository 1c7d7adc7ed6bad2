//! The PostHog wire format (`docs/ARCHITECTURE.md`, "Wire formats"): one event to a JSON object, a
//! batch to a `/batch/` request body. Pure functions, tested below.
//!
//! ```json
//! {"api_key": "<key>",
//!  "batch": [{"event": "command_completed", "distinct_id": "<computeTargetId>",
//!             "timestamp": "<ISO-8601>", "uuid": "<UUIDv7>",
//!             "properties": {"distinct_id": "...", "release_version": "...",
//!                            "$lib": "closedloop-telemetry", "$lib_version": "...", ...}}],
//!  "sent_at": "<ISO-8601 at send time>"}
//! ```
//!
//! Every free-text property (`exit_signal`, `abort_reason`, `error_stack`, the strings in
//! `spawn_meta`, `token_usage` and the `extra` properties) goes through the shared
//! [`Redactor`] first ([`Redactor::free_text`]), always. Tails are never sent to PostHog.

use closedloop_telemetry_layers::__private::catalogue::CatalogueEntry;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::decode::Event;
use crate::delivery::{join_items, InvalidEvent};
use crate::redact::{FreeText, Redactor};

/// The `$lib` property.
pub const LIB: &str = "closedloop-telemetry";
/// The `$lib_version` property: this crate's version.
pub const LIB_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Property keys this mapping writes itself (an `extra` field of the same name is skipped),
/// plus the tails, which never go to PostHog.
const RESERVED: &[&str] = &[
    "distinct_id",
    "release_version",
    "sample_rate",
    "$lib",
    "$lib_version",
    "reason",
    "gateway_session_id",
    "command_id",
    "operation_id",
    "loop_id",
    "job_id",
    "loop_session_id",
    "exit_code",
    "exit_signal",
    "elapsed_ms",
    "stdout_bytes",
    "abort_reason",
    "spawn_meta",
    "token_usage",
    "error_stack",
    "log_tail",
    "stderr_tail",
    "logTail",
    "stderrTail",
];

/// The PostHog routing rule: an event with this catalogue row goes to PostHog when the row has
/// a PostHog name (custom events, `None`, never do).
pub fn routes_to_posthog(entry: Option<&CatalogueEntry>) -> bool {
    entry.is_some_and(|e| e.posthog.is_some())
}

/// The PostHog event name of an event, if its catalogue row has one.
pub fn posthog_name(event: &Event) -> Option<&'static str> {
    event.entry.and_then(|e| e.posthog)
}

/// Maps and validates one event. PostHog rejects a whole batch for one bad event, so an event
/// without a PostHog name, with an empty `event`, or with a missing/blank `distinct_id` is
/// refused here. (The `uuid` is typed, so it cannot be malformed.) Free text is redacted (see
/// the [module docs](self)).
pub fn encode_event(event: &Event, id: Uuid) -> Result<Vec<u8>, InvalidEvent> {
    let name = posthog_name(event).ok_or(InvalidEvent("no PostHog event name"))?;
    if name.trim().is_empty() {
        return Err(InvalidEvent("empty PostHog event name"));
    }
    let distinct_id = event.trace.compute_target_id.as_str();
    if distinct_id.trim().is_empty() {
        return Err(InvalidEvent("missing distinct_id (computeTargetId)"));
    }
    if event.trace.timestamp.is_empty() {
        return Err(InvalidEvent("missing timestamp"));
    }
    let mut uuid = Uuid::encode_buffer();
    let free = Redactor::shared().free_text(&event.diagnostics);
    let wire = WireEvent {
        event: name,
        distinct_id,
        timestamp: &event.trace.timestamp,
        uuid: id.hyphenated().encode_lower(&mut uuid),
        properties: Properties {
            event,
            distinct_id,
            free: &free,
        },
    };
    let mut out = Vec::with_capacity(512);
    serde_json::to_writer(&mut out, &wire).map_err(|_| InvalidEvent("not serializable"))?;
    Ok(out)
}

#[derive(Serialize)]
struct WireEvent<'a> {
    event: &'a str,
    distinct_id: &'a str,
    timestamp: &'a str,
    uuid: &'a str,
    properties: Properties<'a>,
}

struct Properties<'a> {
    event: &'a Event,
    distinct_id: &'a str,
    /// The event's free-text fields, redacted.
    free: &'a FreeText<'a>,
}

impl Serialize for Properties<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (e, t, d, f) = (
            self.event,
            &self.event.trace,
            &self.event.diagnostics,
            self.free,
        );
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("distinct_id", self.distinct_id)?;
        if let Some(v) = &e.release_version {
            map.serialize_entry("release_version", v)?;
        }
        if let Some(rate) = e.sample_rate {
            map.serialize_entry("sample_rate", &rate)?;
        }
        map.serialize_entry("$lib", LIB)?;
        map.serialize_entry("$lib_version", LIB_VERSION)?;
        if let Some(reason) = e.entry.and_then(|r| r.posthog_reason) {
            map.serialize_entry("reason", reason)?;
        }
        let strings = [
            ("gateway_session_id", &t.gateway_session_id),
            ("command_id", &t.command_id),
            ("operation_id", &t.operation_id),
            ("loop_id", &t.loop_id),
            ("job_id", &t.job_id),
            ("loop_session_id", &t.loop_session_id),
        ];
        for (key, value) in strings {
            if let Some(v) = value {
                map.serialize_entry(key, v)?;
            }
        }
        for (key, value) in [
            ("exit_signal", &f.exit_signal),
            ("abort_reason", &f.abort_reason),
            ("error_stack", &f.error_stack),
        ] {
            if let Some(v) = value {
                map.serialize_entry(key, v)?;
            }
        }
        for (key, value) in [
            ("exit_code", d.exit_code),
            ("elapsed_ms", d.elapsed_ms),
            ("stdout_bytes", d.stdout_bytes),
        ] {
            if let Some(v) = value {
                map.serialize_entry(key, &v)?;
            }
        }
        for (key, value) in [
            ("spawn_meta", &f.spawn_meta),
            ("token_usage", &f.token_usage),
        ] {
            if let Some(v) = value {
                map.serialize_entry(key, v)?;
            }
        }
        // Tails (`d.log_tail`, `d.stderr_tail`) are never sent to PostHog.
        for (key, value) in f.extra.iter() {
            if !RESERVED.contains(&key.as_str()) && !matches!(value, Value::Null) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// Frames PostHog batch bodies; holds the JSON-escaped API key prefix.
#[derive(Clone)]
pub struct Framer {
    head: Vec<u8>,
}

impl std::fmt::Debug for Framer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Framer { api_key: \"[redacted]\" }")
    }
}

impl Framer {
    /// A framer for `api_key`.
    pub fn new(api_key: &str) -> Self {
        let mut head = br#"{"api_key":"#.to_vec();
        // Writing a string to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut head, api_key);
        head.extend_from_slice(br#","batch":["#);
        Framer { head }
    }

    /// Writes `{"api_key":..,"batch":[items],"sent_at":"<sent_at>"}` into `out`.
    pub fn frame(&self, items: &[&[u8]], sent_at: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head);
        join_items(items, out);
        out.extend_from_slice(br#"],"sent_at":"#);
        let _ = serde_json::to_writer(&mut *out, sent_at);
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests;
