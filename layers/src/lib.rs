//! The tracing side of closedloop-telemetry: the event catalogue, the envelope, the record
//! convention, and the layers that write it.
//!
//! Application code writes ordinary `tracing` spans and events; [`TelemetryLayer`] turns every
//! event that has an `event = "<category>"` field into an OpenTelemetry log record following
//! [`convention`]. This crate has no HTTP client and no async runtime.
#![warn(missing_docs, missing_debug_implementations)]

pub mod activity;
mod bounded;
pub mod catalogue;
pub mod convention;
pub mod envelope;
mod gateway;
mod layer;
mod stats;
pub mod truncate;

pub use gateway::GatewaySession;
pub use layer::{
    is_ignored_target, TelemetryLayer, TelemetryLayerBuilder, IGNORED_TARGETS, MAX_WARNED_NAMES,
};
pub use stats::{LayerStats, LayerStatsSnapshot};
