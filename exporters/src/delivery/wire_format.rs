//! What a stream plugs into the engine: the item it delivers and the [`WireFormat`] trait that maps
//! events to items and frames items into request bodies.

use std::time::{Duration, SystemTime};

use uuid::Uuid;

use closedloop_telemetry_layers::__private::catalogue::CatalogueEntry;

use crate::decode::Event;

/// One pre-encoded event on its way out: the unit the engine queues, batches, retries and drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// A UUIDv7 assigned once, when the event was mapped; the same on every retry, so the
    /// receiver can de-duplicate.
    pub id: Uuid,
    /// The event time (used for the stream's expiry age).
    pub created: SystemTime,
    /// Exactly one JSON value (the stream's wire form of the event).
    pub bytes: Vec<u8>,
}

/// Why a stream refused to map an event; the event is dropped and counted as `invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid event: {0}")]
pub struct InvalidEvent(pub &'static str);

/// The size and timing rules of a stream's batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most items one request carries (at least 1).
    pub max_items: usize,
    /// The largest uncompressed request body; an item that cannot fit alone is `too_large`.
    pub max_body_bytes: usize,
    /// How long the oldest queued item may wait before a partial batch goes.
    pub max_delay: Duration,
    /// Items older than this (by `Item::created`) are dropped as `expired`, never sent.
    pub expiry: Option<Duration>,
}

/// A destination's wire format. The engine calls [`WireFormat::routes`] on the exporting thread and
/// everything else on its pipeline's background thread.
///
/// Implementations are pure (no I/O) and cheap to share; they hold only configuration (API
/// key, default properties).
pub trait WireFormat: Send + Sync + 'static {
    /// A short name for the thread of an exporter alone, logs and stats, e.g. `"posthog"`.
    fn name(&self) -> &'static str;

    /// Whether an event with this catalogue row (`None`: a custom event, outside the
    /// catalogue) belongs on this stream at all (e.g. "has a PostHog name"): the stream's one
    /// routing rule, which the facade asks too. Events that do not are counted as `ignored`,
    /// never queued. Runs on the exporting thread: keep it a pure field check, with no side
    /// effect. Default: every event.
    fn routes(&self, entry: Option<&CatalogueEntry>) -> bool {
        let _ = entry;
        true
    }

    /// Whether this stream's wire format carries an event's subprocess tails (`log_tail`,
    /// `stderr_tail`) when the event has them. The facade asks it so that, with verbose on, the
    /// layer reads tails only when some stream sends them. Default: no.
    fn sends_tails(&self) -> bool {
        false
    }

    /// Validates and maps one event to its wire JSON (one value, no trailing newline). `id` is
    /// the item's stable UUIDv7 and belongs in the value if the wire format carries an id.
    fn encode(&self, event: &Event, id: Uuid) -> Result<Vec<u8>, InvalidEvent>;

    /// Writes one request body around `items` (each a JSON value from [`WireFormat::encode`]) into
    /// `out` (empty on entry). Called again on every attempt, so per-request values such as
    /// PostHog's `sent_at` are fresh each time. With no items it must write the bare frame: the
    /// engine measures it once to know the framing overhead.
    fn frame(&self, items: &[&[u8]], out: &mut Vec<u8>);

    /// Removes secrets (e.g. the API key) from a server's reason text before it is logged or
    /// stored as the last error. Default: no change.
    fn redact(&self, text: &mut String) {
        let _ = text;
    }

    /// What an error status means for this destination, for logs and `last_error`
    /// (e.g. Datadog's 403: "forbidden: the API key is invalid"). Default: nothing.
    fn explain(&self, status: u16) -> Option<&'static str> {
        let _ = status;
        None
    }

    /// Whether an error status may be retried at all (then the retry policy decides how); a
    /// status this refuses drops the batch as `rejected` at once. Default: every status (the
    /// policy alone decides: 408, 429 and 5xx are retried). OTLP/HTTP retries only 429, 502,
    /// 503 and 504 (and splits on 413).
    fn retries(&self, status: u16) -> bool {
        let _ = status;
        true
    }

    /// The server's reason, read from an error answer's body when the destination has a format
    /// for it (OTLP's `google.rpc.Status` message); `None` keeps the body's text. Default:
    /// `None`.
    fn reason(&self, body: &[u8]) -> Option<String> {
        let _ = body;
        None
    }

    /// For a 2xx answer: how many of the batch's items the server says it rejected, and its
    /// message (OTLP's `partial_success`). Those are counted as `rejected`, the rest as sent.
    /// Default: `None` (a 2xx accepts the whole batch).
    fn partially_rejected(&self, body: &[u8]) -> Option<(u64, String)> {
        let _ = body;
        None
    }
}

/// Frames items as a JSON array `[a,b,c]`: the body of the relay and Datadog streams.
///
/// ```
/// use closedloop_telemetry_exporters::__private::delivery::frame_json_array;
/// let mut out = Vec::new();
/// frame_json_array(&[br#"{"a":1}"#, b"2"], &mut out);
/// assert_eq!(out, br#"[{"a":1},2]"#);
/// ```
pub fn frame_json_array(items: &[&[u8]], out: &mut Vec<u8>) {
    out.push(b'[');
    join_items(items, out);
    out.push(b']');
}

/// Writes `items` separated by commas (the inside of a JSON array).
pub(crate) fn join_items(items: &[&[u8]], out: &mut Vec<u8>) {
    out.reserve(items.iter().map(|i| i.len() + 1).sum());
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
}
