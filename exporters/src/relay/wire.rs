//! The relay wire format (`docs/ARCHITECTURE.md`, "Wire formats"): `desktop.telemetry` messages,
//! framed as a JSON array, at most [`MAX_ITEMS`] messages and [`MAX_BODY_BYTES`] a request.
//!
//! ```json
//! [{"type": "desktop.telemetry", "event": "connection.established",
//!   "trace": {"schemaVersion": "1", "timestamp": "…", "computeTargetId": "…", "…": "…"},
//!   "diagnostics": {"exitCode": 1, "…": "…"},
//!   "id": "<UUID, stable across retries>"}]
//! ```
//!
//! Each message is encoded once, when it is queued ([`relay_item`]), and the stored bytes are
//! what every retry sends, so the `id` and the redaction never change between attempts.
//!
//! Every free-text string (`exitSignal`, `abortReason`, `errorStack`, the strings in
//! `spawnMeta`, `tokenUsage` and `extra`) goes through the [`Redactor`] whatever the verbose
//! setting; the verbose-only tails go through [`Redactor::redact_tail`].

use std::ops::Range;

use closedloop_telemetry_layers::__private::catalogue::CatalogueEntry;
use closedloop_telemetry_layers::__private::envelope::TraceEnvelope;
use serde::Serialize;
use uuid::Uuid;

use super::view::{encode_within, DiagnosticsView};
use crate::decode::Event;
use crate::redact::Redactor;

/// The `type` of every relay message.
pub const MESSAGE_TYPE: &str = "desktop.telemetry";
/// At most this many messages per request.
pub const MAX_ITEMS: usize = 100;
/// At most this many body bytes per request (uncompressed).
pub const MAX_BODY_BYTES: usize = 5_000_000;
/// A message larger than this is shrunk (see [`relay_item`]): the relay forwards each message
/// to Datadog, whose limit for one log is 1 MB.
pub const MAX_ITEM_BYTES: usize = 1_000_000;
pub use crate::diagnostics::DEFAULT_MAX_DELAY;

/// One relay message. Absent values are omitted, never `null`.
#[derive(Debug, Serialize)]
pub struct RelayMessage<'a> {
    /// Always [`MESSAGE_TYPE`].
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The catalogue's relay name, or the emitted name of a custom event.
    pub event: &'a str,
    /// The envelope and trace context, `otelTraceId` / `otelSpanId` included when present.
    pub trace: &'a TraceEnvelope,
    /// Diagnostics with redacted tails and free text; the key is omitted when empty.
    #[serde(skip_serializing_if = "view_is_empty")]
    pub diagnostics: &'a DiagnosticsView<'a>,
    /// The event's UUID, the same on every retry.
    pub id: &'a str,
    /// The sample rate the event was kept at, when its name is sampled (a backend counts it
    /// `1 / sampleRate` times); omitted otherwise.
    #[serde(rename = "sampleRate", skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<f64>,
}

fn view_is_empty(v: &&DiagnosticsView<'_>) -> bool {
    v.is_empty()
}

/// The diagnostics routing rule (relay and Datadog): an event with this catalogue row goes
/// when the row has a relay name; a custom (non-catalogue, `None`) event when `allow_custom`
/// is set.
pub fn routes_to_relay(entry: Option<&CatalogueEntry>, allow_custom: bool) -> bool {
    match entry {
        Some(entry) => entry.relay.is_some(),
        None => allow_custom,
    }
}

/// The name an event carries on the diagnostics stream (relay and Datadog).
pub(crate) fn stream_name(event: &Event) -> &str {
    event.entry.and_then(|e| e.relay).unwrap_or(&event.name)
}

/// Encodes one message as JSON bytes.
///
/// Free text always goes through the shared [`Redactor`] ([`Redactor::free_text`]); tails
/// (present only when verbose telemetry is on) through [`Redactor::redact_tail`]. A message over
/// [`MAX_ITEM_BYTES`] is shrunk — tails first, then the error stack, then the largest `extra`
/// entries — never dropped.
pub fn relay_item(event: &Event, id: Uuid) -> Vec<u8> {
    let mut buf = Uuid::encode_buffer();
    let id = &*id.hyphenated().encode_lower(&mut buf);
    let name = stream_name(event);
    let diagnostics = DiagnosticsView::new(&event.diagnostics, Redactor::shared());
    let capacity = 512 + diagnostics.text_len() + name.len();
    let (bytes, _shrunk) = encode_within(diagnostics, MAX_ITEM_BYTES, |diagnostics| {
        let message = RelayMessage {
            kind: MESSAGE_TYPE,
            event: name,
            trace: &event.trace,
            diagnostics,
            id,
            sample_rate: event.sample_rate,
        };
        to_json(&message, capacity)
    });
    bytes
}

/// Serializes into a buffer of the given starting capacity.
pub(crate) fn to_json(value: &impl Serialize, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    // Writing plain data (strings, integers, JSON values) into a Vec cannot fail.
    serde_json::to_writer(&mut out, value).expect("wire items serialize");
    out
}

/// Frames encoded items as one JSON array body: `[item,item,…]`.
pub fn frame(items: &[&[u8]]) -> Vec<u8> {
    let len = items.iter().map(|i| i.len() + 1).sum::<usize>() + 1;
    let mut body = Vec::with_capacity(len.max(2));
    body.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.push(b']');
    body
}

/// The size of [`frame`]'s output for items of these sizes.
pub fn framed_len(sizes: &[usize]) -> usize {
    2 + sizes.iter().sum::<usize>() + sizes.len().saturating_sub(1)
}

/// Splits items (given by their encoded sizes, in queue order) into consecutive request groups
/// of at most `max_items` items whose framed body is at most `max_body` bytes.
///
/// An item too big for `max_body` on its own gets a group of its own (the server will answer
/// 413 and the delivery engine drops it, counted). Every item is in exactly one group.
pub fn split_groups(sizes: &[usize], max_items: usize, max_body: usize) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut body) = (0, 2);
    for (i, &size) in sizes.iter().enumerate() {
        let count = i - start;
        let grown = body + size + usize::from(count > 0);
        if count > 0 && (count >= max_items.max(1) || grown > max_body) {
            groups.push(start..i);
            start = i;
            body = 2 + size;
        } else {
            body = grown;
        }
    }
    if start < sizes.len() {
        groups.push(start..sizes.len());
    }
    groups
}

/// [`split_groups`] with the relay's limits ([`MAX_ITEMS`], [`MAX_BODY_BYTES`]).
pub fn request_groups(sizes: &[usize]) -> Vec<Range<usize>> {
    split_groups(sizes, MAX_ITEMS, MAX_BODY_BYTES)
}

#[cfg(test)]
pub(crate) mod tests;
