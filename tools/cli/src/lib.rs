//! The `closedloop-telemetry` command-line tool's library: what only the tool uses.
//!
//! - [`audit`]: replays a session (the demo one, or NDJSON lines) through the real layer and
//!   encoders, offline, and reports what would leave the machine;
//! - [`verify`]: the runbook check, a probe event sent through the real pipeline;
//! - [`collect_ui`]: `collect --ui`, the view page over what the local collector receives.
//!
//! The local collector itself and the published schemas are in `closedloop-telemetry-collector`.
#![warn(missing_docs, missing_debug_implementations)]

pub mod audit;
pub mod collect_ui;
mod collector_view;
pub mod verify;
