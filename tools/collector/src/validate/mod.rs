//! The checks the real receivers apply, as pure functions over parsed JSON.
//!
//! **PostHog** (`POST /batch/`). PostHog's capture service (`PostHog/posthog`, crate
//! `rust/capture`: `CaptureError` and its `IntoResponse` in `api.rs`, `process_single_event` and
//! `RawEvent::extract_distinct_id`) rejects the **whole request** when any event fails:
//! - unparsable JSON, or an event whose `uuid` is not a UUID (the field is typed `Option<Uuid>`,
//!   so a malformed one fails parsing): 400;
//! - a batch with no event (`EmptyBatch`): 400;
//! - an event with an empty `event` name (`MissingEventName`): 400;
//! - no `distinct_id`, neither top-level nor in `properties`, or a null or empty one
//!   (`MissingDistinctId` / `EmptyDistinctId`): 400; a non-string id (a number) is stringified
//!   and accepted;
//! - no `api_key` (`NoTokenError`) or different keys within one batch (`MultipleTokensError`):
//!   401.
//!
//! On success it answers 200 `{"status":"Ok"}` (`CaptureResponse`). Its error bodies are plain
//! text; ours are `{"status": <code>, "reason": "<text>"}` so the reason is easy to log.
//!
//! **Datadog logs intake** (`POST /api/v2/logs`; "Send logs" in the Datadog API reference):
//! at most 5 MB uncompressed per payload and 1000 entries per array, larger payloads are 413;
//! success is 202. The v2 page lists 401 for a missing key and 403 for an invalid one, while the
//! intake itself answers a missing or invalid `DD-API-KEY` with 403 (`"API key is missing or
//! invalid"`, as Datadog's own logstash plugin tests expect); we answer 403, which every client
//! treats as a non-retryable auth failure either way. Datadog does not require `message`; we do,
//! because our items always carry the event name there, and check it against its published
//! definition in `docs/schema/datadog-item.v1.json` (a non-empty string).
//!
//! **Relay** (`POST /relay`): our own contract, so the published schema is the rule: an array of
//! messages, each valid against `docs/schema/relay-message.v1.json` (embedded as
//! [`crate::schema::RELAY_MESSAGE_V1`] and checked with the `boon` JSON Schema crate), whose
//! `trace.timestamp` is also a real calendar date; with a configured token,
//! `Authorization: Bearer <token>`.
//!
//! **OTLP/HTTP logs** (`POST /v1/logs`): the body decodes as an `ExportLogsServiceRequest`
//! with the OpenTelemetry project's generated types, protobuf or OTLP/JSON as its
//! `content-type` says (another content type is a 415, as the OTLP/HTTP spec says), and each
//! record follows our mapping (`docs/schema/otlp-logs.v1.md`): an `eventName`, a time and an
//! `event.id` UUID. Success is 200 with an empty `ExportLogsServiceResponse` in the same
//! encoding; an error body is a `Status`-shaped `{"code", "message"}`.
//!
//! What stays in code, and why:
//! - PostHog's checks: they are PostHog's capture rules, which accept more than the body we
//!   publish (any UUID form, a numeric `distinct_id`, per-event keys, a bare array).
//! - Datadog's size, count and key checks: they are the intake's, about the request, not an
//!   item. The intake requires no field, so of our published item only `message` is checked.
//! - The timestamp's calendar: a schema pattern can check its shape only.
//! - Body size limits, authentication and status codes: a schema describes a body, not a
//!   request.

use serde_json::Value;

use super::received::Destination;

mod datadog;
mod otlp;
mod posthog;
mod relay;
mod schemas;

pub use datadog::{datadog_auth, datadog_batch};
pub use otlp::{otlp_logs, OtlpEncoding};
pub use posthog::posthog_batch;
pub use relay::{is_iso8601, relay_auth, relay_batch};

/// The most bytes of (uncompressed) body the PostHog and relay endpoints accept.
pub const MAX_BODY_BYTES: usize = 20 * 1024 * 1024;
/// The most bytes of uncompressed body the Datadog endpoint accepts (5 MB).
pub const DATADOG_MAX_BODY_BYTES: usize = 5_000_000;
/// The most items one Datadog request may hold.
pub const DATADOG_MAX_ITEMS: usize = 1000;

/// A request the collector refuses: the status and the reason it answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status.
    pub status: u16,
    /// Why, for humans.
    pub reason: String,
}

impl Rejection {
    /// A rejection with `status` and `reason`.
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Rejection {
            status,
            reason: reason.into(),
        }
    }

    /// The JSON body answered for this rejection on `stream` (Datadog's `{"errors": [...]}`
    /// shape there, `{"status", "reason"}` elsewhere).
    pub fn body(&self, stream: Option<Destination>) -> Value {
        match stream {
            Some(Destination::Datadog) => serde_json::json!({ "errors": [self.reason] }),
            // google.rpc.Status as OTLP/JSON: `code` 3 (INVALID_ARGUMENT) and the message.
            Some(Destination::Otlp) => serde_json::json!({ "code": 3, "message": self.reason }),
            _ => serde_json::json!({ "status": self.status, "reason": self.reason }),
        }
    }
}

/// One event of an accepted request: its display name, id and JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// Event name (PostHog `event`, relay `event`, Datadog `message`, OTLP `eventName`).
    pub name: String,
    /// Event id (PostHog `uuid`, relay `id`, Datadog `id`, OTLP `event.id`), when present.
    pub id: Option<String>,
    /// The event's JSON.
    pub body: Value,
}

fn bad(reason: impl Into<String>) -> Rejection {
    Rejection::new(400, reason)
}

fn non_empty_str(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Whether `s` parses as a UUID (any form `uuid` accepts: hyphenated, simple, braced, urn).
pub fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok()
}
