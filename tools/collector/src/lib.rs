//! A local collector: a loopback HTTP server standing in for PostHog, the relay and the Datadog
//! logs intake, so the whole pipeline can be watched working with no accounts.
//!
//! It accepts PostHog `POST /batch/`, relay `POST /relay`, Datadog `POST /api/v2/logs` and
//! OTLP/HTTP logs `POST /v1/logs` (protobuf or OTLP/JSON; gzip bodies too), applies the checks the real receivers apply ([`validate`] lists them and
//! where they come from), records every accepted event as a [`Received`], and answers the
//! status codes the real services answer. Any other path is a 404.
//!
//! What it keeps is bounded, oldest dropped first and counted in [`Counts`]: accepted events up
//! to [`DEFAULT_MAX_KEPT`] and [`DEFAULT_MAX_KEPT_BYTES`] (both set on [`CollectorBuilder`]),
//! the last [`MAX_KEPT_REJECTIONS`] rejected requests, each reason cut to [`MAX_REASON_BYTES`].
//!
//! ```
//! use std::time::Duration;
//! use closedloop_telemetry_collector::{Collector, Destination};
//!
//! let collector = Collector::start("127.0.0.1:0".parse().unwrap()).unwrap();
//! // Point the exporters at it:
//! //   CL_POSTHOG_HOST = collector.posthog_host()
//! //   CL_RELAY_URL    = collector.relay_url()
//! //   DD_LOGS_URL     = collector.datadog_url()
//! let arrived = collector.wait_for(0, Duration::from_millis(1));
//! assert!(arrived.is_empty());
//! assert!(collector.unique_ids(Destination::Relay).is_empty());
//! collector.shutdown();
//! ```

pub mod demo;
mod handle;
mod kept;
pub mod print;
mod received;
mod recorder;
pub mod schema;
mod server;
pub mod validate;

pub use handle::{Collector, CollectorBuilder};
pub use print::{format_arrival, format_received, format_rejected, PrintFormat};
pub use received::{Arrival, Counts, Destination, Received, Rejected};
#[doc(hidden)]
pub use recorder::Recorder;
pub use recorder::{
    DEFAULT_MAX_KEPT, DEFAULT_MAX_KEPT_BYTES, MAX_KEPT_REJECTIONS, MAX_REASON_BYTES,
    SUBSCRIPTION_BUFFER,
};
pub use server::{DATADOG_PATH, OTLP_PATH, POSTHOG_PATH, RELAY_PATH};
