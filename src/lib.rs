//! closedloop-telemetry: privacy-first desktop telemetry built on `tracing` and OpenTelemetry.
//!
//! Application code writes ordinary `tracing` spans and events. One call at start-up adds
//! [`ClosedLoopLayer`] to the app's subscriber; from there every event with an
//! `event = "<category>"` field becomes an OpenTelemetry log record carrying the envelope, and
//! the exporters deliver it to PostHog and to the relay (or Datadog). Events with an
//! `activity` field feed the local-only activity log instead.
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//!
//! # fn main() -> Result<(), closedloop_telemetry::InitError> {
//! let telemetry = closedloop_telemetry::builder(env!("CARGO_PKG_VERSION")).from_env()?.build()?;
//! let (layer, guard) = telemetry.split();
//! tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer())
//!     .with(layer)
//!     .init();
//! guard.handle().gateway().set("gw-1");
//! tracing::info!(event = "connection.established");
//! drop(guard); // flushes both streams within 5 s
//! # Ok(()) }
//! ```
//!
//! The builder reads the environment ([`EnvOptions`]) and can be told the same in code; the
//! handle gives the gateway session, the activity log, consent, stats, flush and shutdown. The
//! exporters are also usable alone, under your own OpenTelemetry provider ([`exporters`]).
//!
//! # Features
//!
//! With default features the crate compiles no HTTP server. Two opt-in features:
//!
//! - `view`: the local view page ([`TelemetryHandle::serve_view`]), a loopback HTTP server.
//! - `testing`: the test kit (`testing::capture`), which records what each stream would send
//!   in memory (no server).
//!
//! The tools live in crates of their own under `tools/`: the local collector and the demo
//! session (`closedloop-telemetry-collector`) and the `closedloop-telemetry` command-line tool
//! (`closedloop-telemetry-cli`: `collect`, `verify`, `audit`, `schema`).
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod app_dirs;
mod builder;
mod config;
mod consent;
mod crash;
mod handle;
mod identity;
mod install;
mod layer;
mod orphans;
mod preview;
mod session;
mod settings;
mod streams;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(feature = "view")]
mod view;

#[doc(hidden)]
pub mod __private;

pub use builder::TelemetryBuilder;
pub use closedloop_telemetry_exporters::{Destination, RateLimit};
pub use closedloop_telemetry_layers::{
    ActivityEntry, ActivityKind, ActivityLogStore, ActivitySubscription, ActivityUpdate,
    GatewaySession, LayerStatsSnapshot,
};
pub use config::{
    ConfigError, DatadogOptions, EnvOptions, OtlpOptions, PostHogOptions, RelayOptions,
};
pub use consent::{Consent, ConsentError};
pub use handle::{DrainReport, StreamStats, TelemetryGuard, TelemetryHandle, TelemetryStats};
pub use layer::ClosedLoopLayer;
pub use orphans::OrphanSpool;
#[cfg(feature = "view")]
pub use view::ViewServer;

/// The exporters on their own, for an app that runs its own OpenTelemetry `SdkLoggerProvider`:
/// the four exporter builders (PostHog, relay, Datadog, OTLP), the one [`StreamExporter`](exporters::StreamExporter) they
/// build, [`FlushThrough`](exporters::FlushThrough), the delivery settings, the relay's
/// channel, and the types their signatures name (errors, reports, counters).
///
/// ```no_run
/// use closedloop_telemetry_exporters::{FlushThrough, PostHogExporterBuilder};
/// use opentelemetry_sdk::logs::{BatchLogProcessor, SdkLoggerProvider};
///
/// let exporter = PostHogExporterBuilder::from_env().build().unwrap();
/// let processor = BatchLogProcessor::builder(exporter.clone()).build();
/// let provider = SdkLoggerProvider::builder()
///     .with_log_processor(FlushThrough::new(processor, [exporter]))
///     .build();
/// ```
pub mod exporters {
    pub use closedloop_telemetry_exporters::{
        BuildError, Compression, DatadogExporterBuilder, DeliveryOptions, DeliveryOptionsBuilder,
        DeliveryReport, DeliveryStatsSnapshot, DropReason, DroppedCounts, FlushThrough,
        OtlpExporterBuilder, ParseRateLimitError, PostHogExporterBuilder, Protocol, RateLimit,
        RelayBatch, RelayConnection, RelayExporterBuilder, RetryPolicy, SpoolOptions,
        StreamExporter, VolumeOptions,
    };
}

/// Why telemetry could not start. Never a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A configuration value is malformed (names the variable).
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// An exporter could not be built.
    #[error("telemetry exporter: {0}")]
    Exporter(#[from] exporters::BuildError),
    /// A global subscriber was already installed (one-call variant only).
    #[error("a global tracing subscriber is already installed: {0}")]
    Subscriber(String),
}

/// Starts a builder for an app of this version (the default `release_version`).
pub fn builder(app_version: impl Into<String>) -> TelemetryBuilder {
    TelemetryBuilder::new(app_version.into())
}

/// One call for apps with no subscriber yet: reads the environment, starts the streams and
/// installs a global subscriber with just our layer. Keep the guard alive.
///
/// ```no_run
/// let _guard = closedloop_telemetry::init(env!("CARGO_PKG_VERSION"))?;
/// tracing::info!(event = "connection.established");
/// # Ok::<(), closedloop_telemetry::InitError>(())
/// ```
pub fn init(app_version: impl Into<String>) -> Result<TelemetryGuard, InitError> {
    builder(app_version).from_env()?.build()?.init_global()
}

/// A started telemetry pipeline: the layer to add to a subscriber and the guard to keep.
#[derive(Debug)]
pub struct Telemetry {
    /// Add this to the app's registry.
    pub layer: ClosedLoopLayer,
    /// Keep this alive; dropping it flushes and stops the streams.
    pub guard: TelemetryGuard,
}

impl Telemetry {
    /// The layer and the guard, separately.
    pub fn split(self) -> (ClosedLoopLayer, TelemetryGuard) {
        (self.layer, self.guard)
    }

    /// The handle (gateway session, activity log, stats, flush, shutdown).
    pub fn handle(&self) -> TelemetryHandle {
        self.guard.handle().clone()
    }

    /// Installs `registry().with(layer)` as the global default subscriber.
    pub fn init_global(self) -> Result<TelemetryGuard, InitError> {
        use tracing_subscriber::prelude::*;
        let (layer, guard) = self.split();
        tracing_subscriber::registry()
            .with(layer)
            .try_init()
            .map_err(|e| InitError::Subscriber(e.to_string()))?;
        Ok(guard)
    }
}
