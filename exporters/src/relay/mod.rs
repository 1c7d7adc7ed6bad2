//! The relay-bound diagnostics stream (`desktop.telemetry`): its wire format and the
//! `diagnostics` view it shares with the direct Datadog intake.

mod channel;
mod exporter;
pub(crate) mod view;
pub mod wire;

pub use channel::{RelayBatch, RelayConnection};
pub use exporter::RelayExporterBuilder;
