//! The published v1 wire schemas (JSON Schema draft 2020-12), as shipped in `docs/schema/`.
//!
//! `tools/cli/tests/commands/schema.rs` validates the real encoders' output for every catalogue row against these
//! files and checks their shared definitions against the Rust types, so they cannot drift.

/// The relay message (`desktop.telemetry`, schemaVersion "1"): one item of the relay body.
pub const RELAY_MESSAGE_V1: &str = include_str!("../../../docs/schema/relay-message.v1.json");
/// One Datadog logs-intake item.
pub const DATADOG_ITEM_V1: &str = include_str!("../../../docs/schema/datadog-item.v1.json");
/// The PostHog `/batch/` body this library sends.
pub const POSTHOG_BATCH_V1: &str = include_str!("../../../docs/schema/posthog-batch.v1.json");

/// Every schema: (short name, file name, text).
pub const ALL: [(&str, &str, &str); 3] = [
    ("relay", "relay-message.v1.json", RELAY_MESSAGE_V1),
    ("datadog", "datadog-item.v1.json", DATADOG_ITEM_V1),
    ("posthog", "posthog-batch.v1.json", POSTHOG_BATCH_V1),
];

/// The schema for a short name (`relay`, `datadog`, `posthog`).
///
/// ```
/// let s = closedloop_telemetry_collector::schema::get("relay").unwrap();
/// assert!(s.contains("desktop.telemetry"));
/// ```
pub fn get(name: &str) -> Option<&'static str> {
    ALL.iter().find(|(n, _, _)| *n == name).map(|(_, _, s)| *s)
}
