//! closedloop-telemetry: privacy-first desktop telemetry on `tracing` and OpenTelemetry.
#![warn(missing_docs, missing_debug_implementations)]

pub mod config;
pub mod identity;
