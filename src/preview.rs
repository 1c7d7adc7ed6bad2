//! What a builder would run with, resolved without starting anything: the configured streams,
//! the stored consent and computeTargetId, the layer's options. The command-line tool's `audit`
//! reads it to replay a session offline exactly as the app would (not API: hidden from the
//! docs, and free to change).

use closedloop_telemetry_exporters::Destination;

use crate::consent::Consent;
use crate::TelemetryBuilder;

/// A builder's configuration as `build()` would resolve it, read without side effects (no
/// directory is created, no identity is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// The upstream streams configured, in order (empty when none is).
    pub streams: Vec<Destination>,
    /// The computeTargetId set on the builder, else the one stored in the app's data
    /// directory; `None` when neither exists (`build()` would create one).
    pub compute_target_id: Option<String>,
    /// The release version every event carries.
    pub release_version: String,
    /// Verbose diagnostics (tails) on.
    pub verbose: bool,
    /// Custom (uncatalogued) events forwarded.
    pub allow_custom_events: bool,
    /// `DO_NOT_TRACK` / `CL_TELEMETRY_DISABLED` (or `disabled(true)`): no stream runs.
    pub disabled: bool,
    /// The stored consent choice, else the builder's default.
    pub consent: Consent,
    /// The activity log's capacity.
    pub activity_capacity: usize,
}

impl TelemetryBuilder {
    /// This builder's configuration as `build()` would resolve it (for the command-line
    /// tool's `audit`; not API).
    pub(crate) fn preview(&self) -> Preview {
        let cfg = &self.cfg;
        let app = crate::app_dirs::name(self.app_name.as_deref())
            .unwrap_or_else(crate::app_dirs::default_name);
        let data_dirs = crate::app_dirs::data_dirs(self.data_dir.as_deref(), &app);
        let mut streams = Vec::new();
        if cfg.posthog.is_some() {
            streams.push(Destination::PostHog);
        }
        if cfg.relay.is_some() || self.relay_connection.is_some() {
            streams.push(Destination::Relay);
        } else if cfg.datadog.is_some() {
            streams.push(Destination::Datadog);
        }
        Preview {
            streams,
            compute_target_id: cfg
                .compute_target_id
                .clone()
                .or_else(|| crate::identity::stored(&data_dirs)),
            release_version: cfg
                .release_version
                .clone()
                .unwrap_or_else(|| self.app_version.clone()),
            verbose: cfg.verbose,
            allow_custom_events: self.allow_custom,
            disabled: cfg.disabled,
            consent: crate::consent::stored(&data_dirs).unwrap_or(self.default_consent),
            activity_capacity: self.activity_capacity,
        }
    }
}
