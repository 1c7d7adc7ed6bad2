//! [`Settings`]: everything [`TelemetryBuilder::build`](crate::TelemetryBuilder::build)
//! resolved (defaults applied, ids and consent loaded), the one value the parts that start the
//! pipeline read. Knows nothing of the builder.

use std::path::PathBuf;
use std::time::Duration;

use closedloop_telemetry_exporters::RelayConnection;

use crate::config::{DatadogOptions, OtlpOptions, PostHogOptions, RelayOptions};
use crate::consent::Consent;

/// The finished configuration of one start.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The PostHog stream, if configured.
    pub(crate) posthog: Option<PostHogOptions>,
    /// The relay over HTTP, if configured.
    pub(crate) relay: Option<RelayOptions>,
    /// Direct Datadog intake, if configured (used only without a relay).
    pub(crate) datadog: Option<DatadogOptions>,
    /// OTLP/HTTP logs, if configured (beside the relay or Datadog).
    pub(crate) otlp: Option<OtlpOptions>,
    /// How every destination delivers (the shutdown deadline and spool are set per
    /// destination from the fields below).
    pub(crate) delivery: closedloop_telemetry_exporters::DeliveryOptions,
    /// Per destination, rate limits of single names (`TelemetryBuilder::rate_limit_for`).
    pub(crate) rate_limits: Vec<(
        closedloop_telemetry_exporters::Destination,
        String,
        Option<closedloop_telemetry_exporters::RateLimit>,
    )>,
    /// The app's own relay connection (the channel transport), if given.
    pub(crate) relay_connection: Option<RelayConnection>,
    /// `DO_NOT_TRACK`, `CL_TELEMETRY_DISABLED` or `disabled(true)`: no upstream stream runs.
    pub(crate) upstream_disabled: bool,
    /// The computeTargetId (given, or persisted in the data dir).
    pub(crate) compute_target_id: String,
    /// `release_version` (given, else the app version).
    pub(crate) release: String,
    /// Keep (redacted) log tails in diagnostics.
    pub(crate) verbose: bool,
    /// Forward events outside the catalogue to the diagnostics stream.
    pub(crate) allow_custom: bool,
    /// Deadline of shutdown (and of the engines when dropped).
    pub(crate) shutdown_timeout: Duration,
    /// How long a partial PostHog batch waits.
    pub(crate) posthog_flush_interval: Duration,
    /// How long a partial relay / Datadog batch waits.
    pub(crate) relay_max_delay: Duration,
    /// The spool base directory: the configured one, else the app's namespace in the OS cache
    /// dir (`None`: no usable directory, memory only).
    pub(crate) spool_base: Option<PathBuf>,
    /// How many activity-log entries are kept.
    pub(crate) activity_capacity: usize,
    /// Where the consent choice is persisted: the configured data dir, else the app's
    /// namespace in the OS data dir.
    pub(crate) data_dir: Option<PathBuf>,
    /// The consent in force at start (stored choice, else the default).
    pub(crate) consent: Consent,
    /// The app's name: its namespace in the default data and spool directories.
    pub(crate) app_name: String,
    /// Install the panic hook and keep a session marker (`crash.rs`, `session.rs`).
    pub(crate) capture_panics: bool,
    /// The test kit's transports (see [`TransportHook`]); `None` outside the kit.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) transport_hook: Option<TransportHook>,
}

/// The test kit's hook (feature `testing`): given a destination sent over HTTP and the
/// transport configured for it, returns the transport its stream uses instead (e.g. an
/// in-memory one). The destination's wire format, URL and key stay as configured.
#[cfg(any(test, feature = "testing"))]
#[derive(Clone)]
pub(crate) struct TransportHook(pub(crate) std::sync::Arc<TransportFn>);

/// What a [`TransportHook`] runs.
#[cfg(any(test, feature = "testing"))]
pub(crate) type TransportFn = dyn Fn(
        closedloop_telemetry_exporters::Destination,
        std::sync::Arc<dyn closedloop_telemetry_exporters::__private::delivery::Transport>,
    ) -> std::sync::Arc<dyn closedloop_telemetry_exporters::__private::delivery::Transport>
    + Send
    + Sync;

#[cfg(any(test, feature = "testing"))]
impl std::fmt::Debug for TransportHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransportHook")
    }
}
