//! OpenTelemetry log exporters for closedloop-telemetry: PostHog product analytics and the
//! relay-bound (or direct Datadog) diagnostics stream, with bounded, retried delivery.
#![warn(missing_docs, missing_debug_implementations)]

pub mod decode;
pub mod spool;
