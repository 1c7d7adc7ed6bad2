//! The direct Datadog logs intake for the diagnostics stream (when there is no relay): its
//! wire format and its status contract.

pub mod status;
pub mod wire;

pub use status::{classify, DatadogOutcome};
mod exporter;

pub use exporter::{default_hostname, DatadogExporterBuilder};
