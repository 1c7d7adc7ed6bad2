//! The Datadog logs intake wire format (`docs/ARCHITECTURE.md`, "Wire formats"), used
//! for the diagnostics stream when there is no relay.
//!
//! `POST https://http-intake.logs.{DD_SITE}/api/v2/logs` ([`intake_url`]) with the API key in
//! the [`API_KEY_HEADER`] header and a JSON array of items (framed with
//! [`frame`](crate::relay::wire::frame)):
//!
//! ```json
//! {"ddsource": "closedloop-desktop", "service": "closedloop-desktop", "hostname": "…",
//!  "ddtags": "release_version:1.4.2,event:job.failed", "message": "job.failed",
//!  "status": "error", "timestamp": 1795598043120, "event": "job.failed",
//!  "trace": {…}, "diagnostics": {…},
//!  "dd.trace_id": "9532127138774266268", "dd.span_id": "13235353014750950193"}
//! ```
//!
//! - `timestamp` is the event time in **milliseconds since the Unix epoch**, as a number:
//!   `timestamp` is one of the attributes Datadog's default date remapper reads, and "UNIX (the
//!   milliseconds EPOCH format)" is one of its recognised formats (Datadog docs, "Log Date
//!   Remapper"). A number avoids any parsing ambiguity; the ISO form stays in
//!   `trace.timestamp`.
//! - `dd.trace_id` / `dd.span_id` are the decimal forms of the lower 64 bits of the OTel trace
//!   id and of the span id, which is how Datadog correlates OpenTelemetry logs with traces.
//! - Limits per request (Datadog docs, "Send logs"): at most [`MAX_ITEMS`] items and
//!   [`MAX_BODY_BYTES`] **uncompressed** (Datadog answers 413 above 5 MB uncompressed, whatever
//!   the gzip size); one item at most [`MAX_ITEM_BYTES`] — larger items are shrunk here rather
//!   than truncated arbitrarily by the intake. Items older than [`MAX_AGE`] are not accepted
//!   ("up to 18 hours in the past"): see [`is_expired`].

use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};
use uuid::Uuid;

use closedloop_telemetry_layers::__private::envelope::TraceEnvelope;
use serde::Serialize;

use crate::decode::Event;
use crate::redact::Redactor;
use crate::relay::view::{encode_within, DiagnosticsView};
use crate::relay::wire::{split_groups, stream_name, to_json};

/// `ddsource` and `service` of every item.
pub const SOURCE: &str = "closedloop-desktop";
/// The default `DD_SITE`.
pub const DEFAULT_SITE: &str = "datadoghq.com";
/// The header carrying `DD_API_KEY`.
pub const API_KEY_HEADER: &str = "DD-API-KEY";
/// At most this many items per request.
pub const MAX_ITEMS: usize = 1000;
/// At most this many body bytes per request, measured **uncompressed**.
pub const MAX_BODY_BYTES: usize = 5_000_000;
/// An item larger than this is shrunk (see [`datadog_item`]).
pub const MAX_ITEM_BYTES: usize = 1_000_000;
pub use crate::diagnostics::MAX_AGE;

/// The intake endpoint for a Datadog site (`datadoghq.com`, `datadoghq.eu`, `us3.datadoghq.com`,
/// …); an empty site means [`DEFAULT_SITE`]. `DD_LOGS_URL` overrides this entirely.
///
/// ```
/// use closedloop_telemetry_exporters::__private::datadog::wire::intake_url;
/// assert_eq!(intake_url("datadoghq.eu"), "https://http-intake.logs.datadoghq.eu/api/v2/logs");
/// assert_eq!(intake_url(""), "https://http-intake.logs.datadoghq.com/api/v2/logs");
/// ```
pub fn intake_url(site: &str) -> String {
    let site = site.trim().trim_matches('/');
    let site = if site.is_empty() { DEFAULT_SITE } else { site };
    format!("https://http-intake.logs.{site}/api/v2/logs")
}

/// One Datadog log item. Absent values are omitted, never `null`.
#[derive(Debug, Serialize)]
pub struct LogItem<'a> {
    /// Always [`SOURCE`].
    pub ddsource: &'static str,
    /// Always [`SOURCE`].
    pub service: &'static str,
    /// The machine's name; omitted when empty.
    #[serde(skip_serializing_if = "str_is_empty")]
    pub hostname: &'a str,
    /// `release_version:<v>,event:<name>` (the release tag only when known).
    pub ddtags: &'a str,
    /// The event name.
    pub message: &'a str,
    /// The catalogue's Datadog status (`info`, `warn`, `error`); `info` for custom events.
    pub status: &'static str,
    /// Event time, milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// The event name.
    pub event: &'a str,
    /// The envelope and trace context.
    pub trace: &'a TraceEnvelope,
    /// Diagnostics with redacted tails and free text; omitted when empty.
    #[serde(skip_serializing_if = "view_is_empty")]
    pub diagnostics: &'a DiagnosticsView<'a>,
    /// The event's id (UUIDv7, hyphenated), stable across retries, so a receiver can
    /// de-duplicate.
    pub id: HyphenatedId,
    /// Lower 64 bits of the OTel trace id, in decimal.
    #[serde(rename = "dd.trace_id", skip_serializing_if = "Option::is_none")]
    pub dd_trace_id: Option<DecimalId>,
    /// The OTel span id, in decimal.
    #[serde(rename = "dd.span_id", skip_serializing_if = "Option::is_none")]
    pub dd_span_id: Option<DecimalId>,
    /// The sample rate the event was kept at, when its name is sampled; omitted otherwise.
    #[serde(rename = "sampleRate", skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<f64>,
}

/// A UUID serialized as its hyphenated string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HyphenatedId(pub Uuid);

impl Serialize for HyphenatedId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.hyphenated())
    }
}

/// A 64-bit id serialized as a decimal string, as Datadog's `dd.*_id` attributes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalId(pub u64);

impl Serialize for DecimalId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

fn str_is_empty(s: &&str) -> bool {
    s.is_empty()
}

fn view_is_empty(v: &&DiagnosticsView<'_>) -> bool {
    v.is_empty()
}

/// An encoded item and whether it had to be shrunk to fit [`MAX_ITEM_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedItem {
    /// The item's JSON bytes.
    pub bytes: Vec<u8>,
    /// Whether tails (then the error stack, `extra`, …) were cut to fit; count it.
    pub shrunk: bool,
}

/// Encodes one item.
///
/// Free text always goes through the shared [`Redactor`] ([`Redactor::free_text`]), whatever
/// the verbose setting; tails (present only with verbose on) through
/// [`Redactor::redact_tail`]. An item over [`MAX_ITEM_BYTES`] is shrunk, never dropped: the
/// tails are cut first (keeping their ends), then the error stack (keeping its start), then the
/// largest `extra` entries, then `spawnMeta` / `tokenUsage`.
pub fn datadog_item(event: &Event, id: Uuid, hostname: &str) -> EncodedItem {
    let name = stream_name(event);
    let ddtags = match &event.release_version {
        Some(v) => format!("release_version:{},event:{}", tag_value(v), tag_value(name)),
        None => format!("event:{}", tag_value(name)),
    };
    let diagnostics = DiagnosticsView::new(&event.diagnostics, Redactor::shared());
    let capacity = 640 + diagnostics.text_len() + hostname.len() + 2 * name.len();
    let trace = &event.trace;
    let (bytes, shrunk) = encode_within(diagnostics, MAX_ITEM_BYTES, |diagnostics| {
        let item = LogItem {
            ddsource: SOURCE,
            service: SOURCE,
            hostname,
            ddtags: &ddtags,
            message: name,
            status: event.entry.map_or("info", |e| e.status.as_str()),
            timestamp: epoch_millis(event.time),
            event: name,
            trace,
            diagnostics,
            id: HyphenatedId(id),
            dd_trace_id: trace
                .otel_trace_id
                .as_deref()
                .and_then(dd_trace_id)
                .map(DecimalId),
            dd_span_id: trace
                .otel_span_id
                .as_deref()
                .and_then(dd_span_id)
                .map(DecimalId),
            sample_rate: event.sample_rate,
        };
        to_json(&item, capacity)
    });
    EncodedItem { bytes, shrunk }
}

/// A tag value with the characters that would break the `ddtags` list (`,`, whitespace)
/// replaced by `_`.
fn tag_value(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c == ',' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub fn epoch_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The lower 64 bits of a 32-hex-digit OTel trace id, as Datadog's `dd.trace_id`. `None` for
/// malformed or zero ids.
pub fn dd_trace_id(otel_trace_id: &str) -> Option<u64> {
    if otel_trace_id.len() != 32 {
        return None;
    }
    hex_u64(otel_trace_id.get(16..)?)
}

/// A 16-hex-digit OTel span id as Datadog's `dd.span_id`. `None` for malformed or zero ids.
pub fn dd_span_id(otel_span_id: &str) -> Option<u64> {
    if otel_span_id.len() != 16 {
        return None;
    }
    hex_u64(otel_span_id)
}

fn hex_u64(hex: &str) -> Option<u64> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().filter(|v| *v != 0)
}

/// Whether an event is too old for the intake: older than [`MAX_AGE`] at `now`. An event
/// exactly 18 h old is still sent; one in the future is not expired.
pub fn is_expired(event_time: SystemTime, now: SystemTime) -> bool {
    now.duration_since(event_time)
        .is_ok_and(|age| age > MAX_AGE)
}

/// [`split_groups`] with the intake's limits ([`MAX_ITEMS`], [`MAX_BODY_BYTES`]).
pub fn request_groups(sizes: &[usize]) -> Vec<Range<usize>> {
    split_groups(sizes, MAX_ITEMS, MAX_BODY_BYTES)
}

#[cfg(test)]
mod tests;
