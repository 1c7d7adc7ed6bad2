//! The direct Datadog logs intake for the diagnostics stream (when there is no relay): its
//! wire format and its status contract.

pub(crate) mod status;
pub mod wire;

pub(crate) use status::DatadogOutcome;
mod exporter;

pub use exporter::{default_hostname, DatadogExporterBuilder};
