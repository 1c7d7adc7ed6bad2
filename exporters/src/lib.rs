//! OpenTelemetry log exporters for closedloop-telemetry: PostHog product analytics and the
//! relay-bound (or direct Datadog) diagnostics stream, with bounded, retried delivery.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod datadog;
mod decode;
mod delivery;
mod destination;
mod diagnostics;
mod env;
mod exporter;
mod flush_through;
mod otlp;
mod pipeline;
mod posthog;
mod priority;
mod private_fs;
mod redact;
mod relay;
mod server_thread;
mod spool;
mod url_redact;
mod volume;

#[doc(hidden)]
pub mod __private;

pub use datadog::DatadogExporterBuilder;
pub use delivery::{
    BuildError, DeliveryOptions, DeliveryOptionsBuilder, DeliveryReport, DeliveryStatsSnapshot,
    DropReason, DroppedCounts, RetryPolicy,
};
pub use destination::Destination;
pub use exporter::StreamExporter;
pub use flush_through::FlushThrough;
pub use otlp::{Compression, OtlpExporterBuilder, Protocol};
pub use posthog::PostHogExporterBuilder;
pub use relay::{RelayBatch, RelayConnection, RelayExporterBuilder};
pub use spool::SpoolOptions;
pub use volume::{ParseRateLimitError, RateLimit, VolumeOptions};
