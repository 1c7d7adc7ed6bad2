//! What the relay and direct-Datadog exporters share: their builder settings and the exporter
//! shell around a delivery engine.

mod builder;
mod exporter;

pub(crate) use builder::diagnostics_setters;
pub use builder::DiagnosticsSettings;
pub use exporter::DiagnosticsExporter;
