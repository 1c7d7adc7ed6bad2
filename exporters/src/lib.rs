//! OpenTelemetry log exporters for closedloop-telemetry: PostHog product analytics and the
//! relay-bound (or direct Datadog) diagnostics stream, with bounded, retried delivery.
#![warn(missing_docs, missing_debug_implementations)]

pub mod datadog;
pub mod decode;
pub mod delivery;
mod destination;
pub mod diagnostics;
pub mod env;
mod exporter;
mod flush_through;
pub mod otlp;
pub mod pipeline;
pub mod posthog;
pub mod priority;
pub mod private_fs;
pub mod redact;
pub mod relay;
#[doc(hidden)]
pub mod server_thread;
pub mod spool;
mod url_redact;

pub use delivery::{
    BuildError, Delivery, DeliveryReport, DeliverySpec, DeliveryStatsSnapshot, DropReason,
};
pub use destination::Destination;
pub use exporter::StreamExporter;
pub use flush_through::FlushThrough;
pub use pipeline::{Pipeline, PipelineProcessor};
pub use posthog::PostHogExporterBuilder;
pub use url_redact::redact_url;
