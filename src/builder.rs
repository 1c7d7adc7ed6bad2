//! [`TelemetryBuilder`]: configuration in, a running [`Telemetry`] out.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use closedloop_telemetry_exporters::__private::delivery::{
    check_range, MAX_BATCH_DELAY, MAX_DURATION_SETTING,
};
use closedloop_telemetry_exporters::__private::diagnostics::DEFAULT_MAX_DELAY;
use closedloop_telemetry_exporters::__private::posthog::{
    DEFAULT_FLUSH_INTERVAL, MAX_FLUSH_INTERVAL,
};
use closedloop_telemetry_exporters::BuildError;
use closedloop_telemetry_exporters::DeliveryOptions;
use closedloop_telemetry_exporters::{Destination, RateLimit, RelayConnection};
use closedloop_telemetry_layers::__private::DEFAULT_CAPACITY;
use closedloop_telemetry_layers::GatewaySession;
use closedloop_telemetry_layers::{ActivityLayer, ActivityLogStore};

use crate::config::{DatadogOptions, EnvOptions, OtlpOptions, PostHogOptions, RelayOptions};
use crate::consent::Consent;
use crate::handle::{HandleInner, TelemetryGuard, TelemetryHandle};
use crate::layer::ClosedLoopLayer;
use crate::settings::Settings;
use crate::{install, streams};
use crate::{InitError, Telemetry};
use closedloop_telemetry_exporters::__private::delivery::DEFAULT_SHUTDOWN_TIMEOUT;

/// The most activity-log entries [`TelemetryBuilder::activity_capacity`] accepts.
pub(crate) const MAX_ACTIVITY_CAPACITY: usize = 100_000;

/// Builds a [`Telemetry`]. Start with [`crate::builder`].
///
/// | setting | default |
/// |---|---|
/// | PostHog ([`posthog`](Self::posthog)) | off (`CL_POSTHOG_API_KEY`, `CL_POSTHOG_HOST`) |
/// | relay ([`relay`](Self::relay)) | off (`CL_RELAY_URL`, `CL_RELAY_TOKEN`) |
/// | Datadog ([`datadog`](Self::datadog)) | off; used only without a relay (`DD_API_KEY`, `DD_SITE`, `DD_LOGS_URL`) |
/// | OTLP ([`otlp`](Self::otlp), [`otlp_options`](Self::otlp_options)) | off; beside the relay or Datadog (`CL_OTLP_ENDPOINT`, `CL_OTLP_HEADERS`, `CL_OTLP_PROTOCOL`, `CL_OTLP_COMPRESSION`; never `OTEL_EXPORTER_OTLP_*`) |
/// | [`compute_target_id`](Self::compute_target_id) | `CL_COMPUTE_TARGET_ID`, else an id persisted in the OS data dir |
/// | [`release_version`](Self::release_version) | `CL_RELEASE_VERSION`, else the app version given to [`crate::builder`] |
/// | [`verbose`](Self::verbose) | off (`CL_TELEMETRY_VERBOSE`) |
/// | [`disabled`](Self::disabled) | off (`CL_TELEMETRY_DISABLED`, `DO_NOT_TRACK`) |
/// | [`allow_custom_events`](Self::allow_custom_events) | off |
/// | [`shutdown_timeout`](Self::shutdown_timeout) | 5 s (above zero, at most 1 h) |
/// | [`activity_capacity`](Self::activity_capacity) | 200 entries (at most 100,000) |
/// | [`app_name`](Self::app_name) | the executable's file name (without `.exe`), made a safe directory name |
/// | [`data_dir`](Self::data_dir) | the OS data dir + `closedloop-telemetry/apps/<app name>` |
/// | [`spool_dir`](Self::spool_dir) | `CL_TELEMETRY_SPOOL_DIR`, else the OS cache dir + `closedloop-telemetry/apps/<app name>` |
/// | [`posthog_flush_interval`](Self::posthog_flush_interval) | 30 s (also the maximum: the spec's cadence) |
/// | [`relay_max_delay`](Self::relay_max_delay) | 2 s (at most 60 s) |
/// | [`relay_connection`](Self::relay_connection) | none: HTTP to `CL_RELAY_URL` |
/// | [`default_consent`](Self::default_consent) | `Granted` (a choice stored in the data dir wins) |
/// | [`capture_panics`](Self::capture_panics) | on: panics become `app.panicked`, an abnormal exit `app.crashed` at the next start |
/// | [`delivery`](Self::delivery) | [`DeliveryOptions::default`] (queue, request timeout, gzip, retries); the shutdown deadline and the spool come from the settings above |
/// | [`rate_limit`](Self::rate_limit) | 10 events/s with a burst of 100 per event name and destination (`CL_TELEMETRY_RATE_LIMIT`, e.g. `10/s,burst=100` or `off`) |
/// | [`rate_limit_for`](Self::rate_limit_for) | none: every name has the default limit |
/// | [`sample_rate`](Self::sample_rate) | none: every event is kept |
///
/// Settings apply in call order, so `from_env()` after a setter lets the environment win, and
/// a setter after `from_env()` lets the code win. A value outside its range makes
/// [`build`](Self::build) fail with a [`BuildError`] naming the setting; nothing panics. The one
/// exception to "the code wins": once `from_env()` (or [`merge_env`](Self::merge_env)) has seen
/// `DO_NOT_TRACK=1` or `CL_TELEMETRY_DISABLED=1`, no later call turns the streams back on, not
/// even [`disabled(false)`](Self::disabled).
#[derive(Debug, Clone)]
pub struct TelemetryBuilder {
    pub(crate) app_version: String,
    pub(crate) cfg: EnvOptions,
    pub(crate) app_name: Option<String>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) allow_custom: bool,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) activity_capacity: usize,
    pub(crate) posthog_flush_interval: Option<Duration>,
    pub(crate) relay_max_delay: Option<Duration>,
    pub(crate) relay_connection: Option<RelayConnection>,
    pub(crate) default_consent: Consent,
    pub(crate) delivery: DeliveryOptions,
    pub(crate) capture_panics: bool,
    /// Per destination, rate limits of single names.
    pub(crate) rate_limits: Vec<(Destination, String, Option<RateLimit>)>,
    /// `DO_NOT_TRACK` / `CL_TELEMETRY_DISABLED` seen in the environment: sticky, no setter
    /// clears it.
    pub(crate) env_disabled: bool,
    /// The test kit's transports (see [`transport_hook`](Self::transport_hook)).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) transport_hook: Option<crate::settings::TransportHook>,
}

impl TelemetryBuilder {
    pub(crate) fn new(app_version: String) -> Self {
        TelemetryBuilder {
            app_version,
            cfg: EnvOptions::default(),
            app_name: None,
            data_dir: None,
            allow_custom: false,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            activity_capacity: DEFAULT_CAPACITY,
            posthog_flush_interval: None,
            relay_max_delay: None,
            relay_connection: None,
            default_consent: Consent::Granted,
            delivery: DeliveryOptions::default(),
            capture_panics: true,
            rate_limits: Vec::new(),
            env_disabled: false,
            #[cfg(any(test, feature = "testing"))]
            transport_hook: None,
        }
    }

    /// Applies the environment variables that are set (`docs/ARCHITECTURE.md`, "Configuration").
    pub fn from_env(self) -> Result<Self, InitError> {
        let env = EnvOptions::from_env()?;
        Ok(self.merge_env(env))
    }

    /// Applies an already-read environment (see [`EnvOptions::from_lookup`]).
    pub fn merge_env(mut self, env: EnvOptions) -> Self {
        let c = &mut self.cfg;
        c.posthog = env.posthog.or(c.posthog.take());
        c.relay = env.relay.or(c.relay.take());
        c.datadog = env.datadog.or(c.datadog.take());
        c.otlp = env.otlp.or(c.otlp.take());
        c.compute_target_id = env.compute_target_id.or(c.compute_target_id.take());
        c.release_version = env.release_version.or(c.release_version.take());
        c.verbose |= env.verbose;
        c.disabled |= env.disabled;
        c.spool_dir = env.spool_dir.or(c.spool_dir.take());
        if let Some(limit) = env.rate_limit {
            c.rate_limit = Some(limit);
            self = self.rate_limit(limit);
        }
        self.env_disabled |= env.disabled;
        self
    }

    /// Enables PostHog with this project key and base URL.
    pub fn posthog(mut self, api_key: impl Into<String>, host: impl Into<String>) -> Self {
        self.cfg.posthog = Some(PostHogOptions {
            api_key: api_key.into(),
            host: host.into(),
        });
        self
    }

    /// Enables the relay stream.
    pub fn relay(mut self, url: impl Into<String>, token: Option<String>) -> Self {
        self.cfg.relay = Some(RelayOptions {
            url: url.into(),
            token,
        });
        self
    }

    /// Enables direct Datadog intake (used only when no relay is configured).
    pub fn datadog(mut self, api_key: impl Into<String>, logs_url: impl Into<String>) -> Self {
        self.cfg.datadog = Some(DatadogOptions {
            api_key: api_key.into(),
            logs_url: logs_url.into(),
        });
        self
    }

    /// Also sends the diagnostics stream to an OpenTelemetry Collector over OTLP/HTTP (beside
    /// the relay or Datadog): `endpoint` is its base URL (records go to `{endpoint}/v1/logs`),
    /// protobuf and gzip by default. See [`otlp_options`](Self::otlp_options) for headers, the
    /// protocol and compression.
    pub fn otlp(mut self, endpoint: impl Into<String>) -> Self {
        self.cfg.otlp = Some(OtlpOptions {
            endpoint: endpoint.into(),
            headers: Vec::new(),
            protocol: Default::default(),
            compression: Default::default(),
        });
        self
    }

    /// Sends the diagnostics stream to an OpenTelemetry Collector with these settings (what
    /// `CL_OTLP_*` set).
    pub fn otlp_options(mut self, options: OtlpOptions) -> Self {
        self.cfg.otlp = Some(options);
        self
    }

    /// Sets the computeTargetId (the PostHog `distinct_id`).
    pub fn compute_target_id(mut self, id: impl Into<String>) -> Self {
        self.cfg.compute_target_id = Some(id.into());
        self
    }

    /// Sets `release_version`.
    pub fn release_version(mut self, version: impl Into<String>) -> Self {
        self.cfg.release_version = Some(version.into());
        self
    }

    /// Includes (redacted) log tails in diagnostics.
    pub fn verbose(mut self, on: bool) -> Self {
        self.cfg.verbose = on;
        self
    }

    /// Turns both upstream streams off; the activity log keeps working. `disabled(false)`
    /// cannot undo `DO_NOT_TRACK=1` / `CL_TELEMETRY_DISABLED=1` read by `from_env()`.
    pub fn disabled(mut self, on: bool) -> Self {
        self.cfg.disabled = on || self.env_disabled;
        self
    }

    /// Forwards events outside the catalogue to the diagnostics stream.
    pub fn allow_custom_events(mut self, on: bool) -> Self {
        self.allow_custom = on;
        self
    }

    /// How long shutdown (and dropping the guard) may take.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How many activity-log entries are kept.
    pub fn activity_capacity(mut self, n: usize) -> Self {
        self.activity_capacity = n;
        self
    }

    /// The app's name, which keeps its state apart from other apps that use this library: the
    /// default data and spool directories are `closedloop-telemetry/apps/<name>/` under the OS
    /// data and cache directories, so one app's start never deletes another's spool and one
    /// app's consent choice is not another's. Default: the running executable's file name
    /// without `.exe`. The name is lowercased and every character other than ASCII letters,
    /// digits, `-`, `_` and `.` becomes `_` (at most 64 bytes); one that leaves nothing makes
    /// [`build`](Self::build) fail. Directories given with [`data_dir`](Self::data_dir) or
    /// [`spool_dir`](Self::spool_dir) are used as given.
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = Some(name.into());
        self
    }

    /// Where the persisted computeTargetId (and consent) live, as given (no app namespace).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The durable spool location (`CL_TELEMETRY_SPOOL_DIR`), as given (no app namespace):
    /// each destination's spool is a directory in it, and consent denial and the clean-up of
    /// directories no stream uses act on everything in it, so give each app its own.
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cfg.spool_dir = Some(dir.into());
        self
    }

    /// How long a partial PostHog batch waits (default 30 s).
    pub fn posthog_flush_interval(mut self, interval: Duration) -> Self {
        self.posthog_flush_interval = Some(interval);
        self
    }

    /// How long a partial relay / Datadog batch waits (default 2 s).
    pub fn relay_max_delay(mut self, delay: Duration) -> Self {
        self.relay_max_delay = Some(delay);
        self
    }

    /// Sends diagnostics through the app's own relay connection (the channel transport)
    /// instead of HTTP. Enables the relay stream even without `CL_RELAY_URL`.
    pub fn relay_connection(mut self, connection: RelayConnection) -> Self {
        self.relay_connection = Some(connection);
        self
    }

    /// The consent used when the user has not chosen yet (no stored choice in the data dir).
    /// Default `Granted`; apps that ask first pass `Consent::Denied`.
    pub fn default_consent(mut self, consent: Consent) -> Self {
        self.default_consent = consent;
        self
    }

    /// Reports crashes (on by default; `README.md`, "Crashes"). `build` then installs a panic
    /// hook, once per process, in front of the hook installed before (the app's own, or the
    /// default one that prints the message), which still runs after it. On a panic it writes an
    /// `app.panicked` event (the message, the location and backtrace, the thread's name, the
    /// current span's trace context; free text redacted) straight into the spool of every
    /// destination and fsyncs it: this process delivers it if it lives on, else the next start.
    /// The run also keeps a session marker in the data directory, removed by a clean shutdown;
    /// a start that finds the marker of a run that died without one (SIGKILL, OOM kill, power
    /// loss) sends one `app.crashed`. With telemetry disabled or consent denied neither writes
    /// anything. `false`: no hook (one installed by an earlier `build` in the process stays, and
    /// writes for that telemetry only) and no marker.
    pub fn capture_panics(mut self, on: bool) -> Self {
        self.capture_panics = on;
        self
    }

    /// How every destination delivers: queue and overflow bounds, request timeout, gzip,
    /// retry rules (see [`DeliveryOptions`]). The shutdown deadline is
    /// [`shutdown_timeout`](Self::shutdown_timeout) and each destination's spool is chosen by
    /// the facade (`CL_TELEMETRY_SPOOL_DIR`); those two fields of `options` are ignored.
    pub fn delivery(mut self, options: DeliveryOptions) -> Self {
        self.delivery = options;
        self
    }

    /// The rate limit of every event name on every destination (`None`: off), replacing
    /// `CL_TELEMETRY_RATE_LIMIT` when called after `from_env()`. Each destination keeps a token
    /// bucket per name at the pipeline's door: an event over it is dropped before it is
    /// queued, counted as `rate_limited` (by name in [`TelemetryStats`](crate::TelemetryStats)),
    /// and reported once a minute at most (and at flush and shutdown) as one
    /// `telemetry.rate_limited` event on the diagnostics destinations (relay, Datadog, OTLP).
    /// Default: 10 events/s with a burst of 100, posthog-js's figures.
    ///
    /// ```
    /// use closedloop_telemetry::RateLimit;
    /// let builder = closedloop_telemetry::builder("1.0.0")
    ///     .rate_limit(RateLimit::new(50.0, 500))
    ///     .rate_limit_for(closedloop_telemetry::Destination::PostHog, "connection.degraded", RateLimit::new(1.0, 10))
    ///     .rate_limit_for(closedloop_telemetry::Destination::Relay, "job.completed", None)
    ///     .sample_rate("queue.stats_changed", 0.1);
    /// # let _ = builder;
    /// ```
    pub fn rate_limit(mut self, limit: impl Into<Option<RateLimit>>) -> Self {
        self.delivery = self.delivery.to_builder().with_rate_limit(limit).build();
        self
    }

    /// The rate limit of the events named `name` (the emitted dot name) on `destination`,
    /// replacing the default there; `None`: never limited there.
    pub fn rate_limit_for(
        mut self,
        destination: Destination,
        name: impl Into<String>,
        limit: impl Into<Option<RateLimit>>,
    ) -> Self {
        self.rate_limits
            .push((destination, name.into(), limit.into()));
        self
    }

    /// Keeps only the fraction `rate` (0 to 1, checked by [`build`](Self::build)) of the
    /// events named `name` on every destination, decided by each event's id (a retried event
    /// stays in or out). The others are counted as `sampled_out`; each kept one carries its
    /// rate (`sampleRate` in the relay message, Datadog item and OTLP record; `sample_rate` on
    /// PostHog), so a backend can re-weight. Off for every name by default.
    pub fn sample_rate(mut self, name: impl Into<String>, rate: f64) -> Self {
        self.delivery = self
            .delivery
            .to_builder()
            .with_sample_rate(name, rate)
            .build();
        self
    }

    /// The test kit's hook (feature `testing`, crate-private): each destination sent over HTTP
    /// (PostHog, the relay unless it goes through [`relay_connection`](Self::relay_connection),
    /// Datadog) uses `hook(destination, configured transport)` instead of its configured
    /// transport; everything else about it (wire format, URL, key, limits) stays as configured.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn transport_hook(
        mut self,
        hook: impl Fn(
                closedloop_telemetry_exporters::Destination,
                Arc<dyn closedloop_telemetry_exporters::__private::delivery::Transport>,
            )
                -> Arc<dyn closedloop_telemetry_exporters::__private::delivery::Transport>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.transport_hook = Some(crate::settings::TransportHook(Arc::new(hook)));
        self
    }

    /// The ranges of the duration and size settings (see the table above). Checked whether or
    /// not a stream runs; an out-of-range value is a [`BuildError`] naming the setting.
    fn check_ranges(&self) -> Result<(), BuildError> {
        self.delivery.check()?;
        let positive = Duration::from_nanos(1);
        check_range(
            "shutdown_timeout",
            self.shutdown_timeout,
            positive,
            MAX_DURATION_SETTING,
        )?;
        if let Some(i) = self.posthog_flush_interval {
            check_range(
                "posthog_flush_interval",
                i,
                Duration::ZERO,
                MAX_FLUSH_INTERVAL,
            )?;
        }
        if let Some(d) = self.relay_max_delay {
            check_range("relay_max_delay", d, Duration::ZERO, MAX_BATCH_DELAY)?;
        }
        if self.activity_capacity > MAX_ACTIVITY_CAPACITY {
            return Err(BuildError::InvalidValue {
                setting: "activity_capacity",
                reason: format!(
                    "{} is more than {MAX_ACTIVITY_CAPACITY}",
                    self.activity_capacity
                ),
            });
        }
        Ok(())
    }

    /// Everything [`build`](Self::build) needs, resolved: ranges checked, defaults applied,
    /// the computeTargetId (given, or persisted in the data dir) and the stored consent loaded.
    fn settings(self) -> Result<Settings, BuildError> {
        self.check_ranges()?;
        let app_name =
            crate::app_dirs::name(self.app_name.as_deref()).ok_or(BuildError::InvalidValue {
                setting: "app_name",
                reason: "nothing is left once made a directory name".into(),
            })?;
        let data_dirs = crate::app_dirs::data_dirs(self.data_dir.as_deref(), &app_name);
        let compute_target_id = match self.cfg.compute_target_id {
            Some(id) => id,
            None => crate::identity::resolve(&data_dirs),
        };
        let release = self.cfg.release_version.unwrap_or(self.app_version);
        let consent = crate::consent::stored(&data_dirs).unwrap_or(self.default_consent);
        // The app's namespace in the OS cache dir unless given (`None`: memory only).
        let spool_base = self
            .cfg
            .spool_dir
            .or_else(|| crate::app_dirs::default_spool_base(&app_name));
        Ok(Settings {
            posthog: self.cfg.posthog,
            relay: self.cfg.relay,
            datadog: self.cfg.datadog,
            otlp: self.cfg.otlp,
            relay_connection: self.relay_connection,
            delivery: self.delivery,
            rate_limits: self.rate_limits,
            upstream_disabled: self.cfg.disabled || self.env_disabled,
            compute_target_id,
            release,
            verbose: self.cfg.verbose,
            allow_custom: self.allow_custom,
            shutdown_timeout: self.shutdown_timeout,
            posthog_flush_interval: self
                .posthog_flush_interval
                .unwrap_or(DEFAULT_FLUSH_INTERVAL),
            relay_max_delay: self.relay_max_delay.unwrap_or(DEFAULT_MAX_DELAY),
            spool_base,
            activity_capacity: self.activity_capacity,
            data_dir: data_dirs.dir,
            consent,
            app_name,
            capture_panics: self.capture_panics,
            #[cfg(any(test, feature = "testing"))]
            transport_hook: self.transport_hook,
        })
    }

    /// Starts the streams and returns the layer and the guard.
    pub fn build(self) -> Result<Telemetry, InitError> {
        let settings = self.settings()?;
        let streams::Configured {
            specs,
            orphans: orphan_spools,
            spool_dirs,
        } = streams::configure(&settings)?;
        let gateway = GatewaySession::default();
        let activity = ActivityLogStore::with_capacity(settings.activity_capacity);
        let upstream = install::start(&settings, specs, &gateway, &activity)?;
        if let (Some(p), Consent::Denied) = (&upstream.pipeline, settings.consent) {
            // Closes every destination's gate (their spools were purged as they opened).
            p.close_gates();
        }
        let admitted = Arc::new(AtomicBool::new(settings.consent == Consent::Granted));
        let handle = TelemetryHandle {
            inner: Arc::new(HandleInner {
                provider: upstream.provider,
                pipeline: upstream.pipeline,
                destinations: upstream.destinations,
                gateway,
                activity: activity.clone(),
                layer_stats: upstream.stats,
                upstream: admitted.clone(),
                compute_target_id: settings.compute_target_id,
                orphan_spools: Mutex::new(orphan_spools),
                shutdown_timeout: settings.shutdown_timeout,
                final_report: Mutex::new(None),
                consent: Mutex::new(settings.consent),
                consent_change: Mutex::new(()),
                data_dir: settings.data_dir,
                spool_base: settings.spool_base,
                spool_dirs,
                app_name: settings.app_name,
                release: settings.release,
                capture_panics: settings.capture_panics,
                session: Arc::default(),
            }),
        };
        if settings.capture_panics {
            crate::crash::start(&handle);
        }
        Ok(Telemetry {
            layer: ClosedLoopLayer {
                telemetry: upstream.layer,
                activity: ActivityLayer::new(activity),
                upstream: admitted,
            },
            guard: TelemetryGuard { handle },
        })
    }
}
