//! OTLP/HTTP logs for the diagnostics stream: any OpenTelemetry Collector as a destination,
//! beside the relay or Datadog (`docs/schema/otlp-logs.v1.md`).

mod exporter;
pub mod wire;

pub use exporter::OtlpExporterBuilder;
pub use wire::{Compression, Protocol};
