//! closedloop-telemetry: privacy-first desktop telemetry built on `tracing` and OpenTelemetry.
//!
//! Application code writes ordinary `tracing` events; the layers crate turns them into log
//! records and the exporters deliver them to PostHog and to the relay (or Datadog). This facade
//! adds configuration, identity, and the local [`collector`], a loopback stand-in for all three
//! receivers.
#![warn(missing_docs, missing_debug_implementations)]

pub mod collector;
pub mod config;
pub mod identity;
