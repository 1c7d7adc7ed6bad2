//! [`PostHogExporterBuilder`]: settings, defaults and validation.

use std::time::Duration;

use super::exporter::PostHogStream;
use super::wire::Framer;
use crate::decode::DecodeOptions;
use crate::delivery::{
    check_range, parse_http_url, BuildError, DeliveryOptions, DeliverySpec, HttpTransport, Limits,
};
use crate::env::Env;
use crate::exporter::StreamExporter;

/// PostHog's US cloud ingestion host.
pub const DEFAULT_HOST: &str = "https://us.i.posthog.com";
/// Events per request (also the most PostHog gets in one request).
pub(crate) const MAX_BATCH_SIZE: usize = 20;
/// How long the oldest waiting event may wait before a partial batch goes.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(30);
/// The longest [`flush_interval`](PostHogExporterBuilder::flush_interval) accepted: the spec's
/// cadence (20 events per 30 seconds).
pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(30);
/// The largest uncompressed request body; bigger batches are split before sending.
pub(crate) const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// Builds the PostHog [`StreamExporter`]: product-analytics events to `{host}/batch/`.
///
/// Only catalogue events with a PostHog name are kept; each becomes one PostHog event with a
/// UUIDv7 `uuid` that stays the same across retries. Log tails never go to PostHog. Batches of
/// at most 20 events go when 20 are waiting, `flush_interval` after the oldest, and on flush
/// and shutdown. Delivery happens on the `closedloop-telemetry-posthog` thread; `Debug` never
/// shows the API key.
///
/// | setting | default |
/// |---|---|
/// | [`api_key`](Self::api_key) | required (`CL_POSTHOG_API_KEY` with [`from_env`](Self::from_env)) |
/// | [`host`](Self::host) | `https://us.i.posthog.com` (`CL_POSTHOG_HOST`) |
/// | [`batch_size`](Self::batch_size) | 20 (also the maximum) |
/// | [`flush_interval`](Self::flush_interval) | 30 s (also the maximum) |
/// | [`compute_target_id`](Self::compute_target_id), [`release_version`](Self::release_version) | none: used only for records that lack them |
/// | [`delivery`](Self::delivery) | [`DeliveryOptions::default`] (queue 4096, 10 s timeout, gzip off, retries, 5 s shutdown, no spool) |
///
/// ```no_run
/// use closedloop_telemetry_exporters::PostHogExporterBuilder;
/// use closedloop_telemetry_exporters::DeliveryOptions;
/// use opentelemetry_sdk::logs::SdkLoggerProvider;
///
/// let exporter = PostHogExporterBuilder::default()
///     .api_key("phc_...")
///     .delivery(DeliveryOptions::builder().with_gzip(true).build())
///     .build()?;
/// let provider = SdkLoggerProvider::builder()
///     .with_batch_exporter(exporter.clone())
///     .build();
/// // ... install TelemetryLayer over `provider`, run the app ...
/// let _ = provider.force_flush();
/// let report = exporter.flush(std::time::Duration::from_secs(5));
/// println!("sent {} PostHog events", report.stats.sent);
/// # Ok::<(), closedloop_telemetry_exporters::BuildError>(())
/// ```
#[derive(Clone)]
pub struct PostHogExporterBuilder {
    api_key: Option<String>,
    host: String,
    batch_size: usize,
    flush_interval: Duration,
    delivery: DeliveryOptions,
    compute_target_id: Option<String>,
    release_version: Option<String>,
    /// The variable (`DO_NOT_TRACK` / `CL_TELEMETRY_DISABLED`) that disabled telemetry when
    /// [`from_env`](Self::from_env) read it; no setter clears it.
    disabled_by: Option<&'static str>,
}

impl std::fmt::Debug for PostHogExporterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostHogExporterBuilder")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("host", &crate::url_redact::redact_url(&self.host))
            .field("batch_size", &self.batch_size)
            .field("flush_interval", &self.flush_interval)
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

impl Default for PostHogExporterBuilder {
    fn default() -> Self {
        PostHogExporterBuilder {
            api_key: None,
            host: DEFAULT_HOST.to_string(),
            batch_size: MAX_BATCH_SIZE,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            delivery: DeliveryOptions::default(),
            compute_target_id: None,
            release_version: None,
            disabled_by: None,
        }
    }
}

impl PostHogExporterBuilder {
    /// A builder seeded from `CL_POSTHOG_API_KEY`, `CL_POSTHOG_HOST`, `CL_COMPUTE_TARGET_ID`
    /// and `CL_RELEASE_VERSION` (unset or empty variables keep the defaults).
    ///
    /// With `DO_NOT_TRACK` or `CL_TELEMETRY_DISABLED` set to anything but an off value
    /// (`0`, `false`, `no`, `off`), [`build`](Self::build) returns [`BuildError::Disabled`]
    /// whatever else is set: no worker, no connection.
    pub fn from_env() -> Self {
        Self::from_vars(&Env::from_env())
    }

    #[cfg(test)]
    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        Self::from_vars(&Env::from_lookup(get))
    }

    /// A builder seeded from an already-read environment (see [`from_env`](Self::from_env)).
    pub(crate) fn from_vars(env: &Env) -> Self {
        let get = |k: &str| env.get(k).map(str::to_string);
        let defaults = Self::default();
        PostHogExporterBuilder {
            api_key: get("CL_POSTHOG_API_KEY"),
            host: get("CL_POSTHOG_HOST").unwrap_or(defaults.host.clone()),
            compute_target_id: get("CL_COMPUTE_TARGET_ID"),
            release_version: get("CL_RELEASE_VERSION"),
            disabled_by: ["DO_NOT_TRACK", "CL_TELEMETRY_DISABLED"]
                .into_iter()
                .find(|k| get(k).is_some_and(|v| !is_off(&v))),
            ..defaults
        }
    }

    /// The project API key (required).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The PostHog base URL; requests go to `{host}/batch/`.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Events per request, 1–20.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// The longest an event waits for its batch to fill: at most [`MAX_FLUSH_INTERVAL`] (30 s),
    /// else `build` fails naming `flush_interval`.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// `distinct_id` for records that carry no `computeTargetId`.
    pub fn compute_target_id(mut self, id: impl Into<String>) -> Self {
        self.compute_target_id = Some(id.into());
        self
    }

    /// `release_version` for records that carry none.
    pub fn release_version(mut self, version: impl Into<String>) -> Self {
        self.release_version = Some(version.into());
        self
    }

    /// How to deliver: queue, timeout, gzip, retries, shutdown deadline, spool (in
    /// `dir/posthog`). Default [`DeliveryOptions::default`].
    pub fn delivery(mut self, options: DeliveryOptions) -> Self {
        self.delivery = options;
        self
    }

    /// The `/batch/` endpoint for a host, checked.
    fn endpoint(&self) -> Result<reqwest::Url, BuildError> {
        let host = parse_http_url("CL_POSTHOG_HOST", &self.host)?;
        if host.query().is_some() || host.fragment().is_some() {
            return Err(BuildError::invalid_url(
                "CL_POSTHOG_HOST",
                &self.host,
                "a host must not carry a query or fragment",
            ));
        }
        let base = host.as_str().trim_end_matches('/');
        parse_http_url("CL_POSTHOG_HOST", &format!("{base}/batch/"))
    }

    /// Checks the settings, starts the exporter's background thread and returns the exporter.
    pub fn build(self) -> Result<StreamExporter, BuildError> {
        StreamExporter::start(self.spec()?)
    }

    /// Checks the settings and returns the destination, not started (for a
    /// [`Pipeline`](crate::pipeline::Pipeline) of several).
    pub(crate) fn spec(self) -> Result<DeliverySpec, BuildError> {
        if let Some(var) = self.disabled_by {
            return Err(BuildError::Disabled(var));
        }
        let api_key = self
            .api_key
            .clone()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .ok_or(BuildError::Missing("api_key (CL_POSTHOG_API_KEY)"))?;
        let endpoint = self.endpoint()?;
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(BuildError::InvalidValue {
                setting: "batch_size",
                reason: format!("{} is not within 1..={MAX_BATCH_SIZE}", self.batch_size),
            });
        }
        check_range(
            "flush_interval",
            self.flush_interval,
            Duration::ZERO,
            MAX_FLUSH_INTERVAL,
        )?;
        self.delivery.check()?;
        let limits = Limits {
            max_items: self.batch_size,
            max_body_bytes: MAX_BODY_BYTES,
            max_delay: self.flush_interval,
            expiry: None,
        };
        let transport = HttpTransport::new(
            endpoint.clone(),
            &[("content-type", "application/json".to_string())],
            self.delivery.effective_timeout(),
        )?;
        let stream = PostHogStream {
            framer: Framer::new(&api_key),
            api_key,
        };
        Ok(
            DeliverySpec::new(stream, transport, limits, &self.delivery)?
                .with_decode(DecodeOptions {
                    compute_target_id: self.compute_target_id,
                    release_version: self.release_version,
                    keep_tails: false,
                })
                .with_endpoint(endpoint.as_str()),
        )
    }
}

/// An explicit off value of a flag variable; anything else set counts as on.
fn is_off(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "0" | "false" | "no" | "off"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let b = PostHogExporterBuilder::default();
        assert_eq!(b.flush_interval, Duration::from_secs(30));
        assert_eq!(b.batch_size, 20);
        assert_eq!(b.host, "https://us.i.posthog.com");
        assert_eq!(b.delivery.timeout(), Duration::from_secs(10));
        assert_eq!(
            b.endpoint().unwrap().as_str(),
            "https://us.i.posthog.com/batch/"
        );
    }

    #[test]
    fn endpoint_joins_paths_and_rejects_bad_hosts() {
        let ep = |h: &str| PostHogExporterBuilder::default().host(h).endpoint();
        assert_eq!(
            ep("https://eu.i.posthog.com/").unwrap().as_str(),
            "https://eu.i.posthog.com/batch/"
        );
        assert_eq!(
            ep("http://127.0.0.1:8000/ingest").unwrap().as_str(),
            "http://127.0.0.1:8000/ingest/batch/"
        );
        for bad in ["not a url", "ftp://x.example", "https://x.example/?a=1", ""] {
            let err = ep(bad).unwrap_err().to_string();
            assert!(err.contains("CL_POSTHOG_HOST"), "{bad}: {err}");
        }
    }

    #[test]
    fn build_checks_key_and_ranges() {
        let err = PostHogExporterBuilder::default().build().unwrap_err();
        assert!(err.to_string().contains("api_key"), "{err}");
        let key = || PostHogExporterBuilder::default().api_key("phc_test");
        assert!(key().batch_size(0).build().is_err());
        assert!(key().batch_size(21).build().is_err());
        let options = DeliveryOptions::builder();
        let zero_timeout = options.clone().with_timeout(Duration::ZERO).build();
        assert!(key().delivery(zero_timeout).build().is_err());
        let no_queue = options.with_queue_capacity(0).build();
        assert!(key().delivery(no_queue).build().is_err());
        let err = key().host("nope").build().unwrap_err().to_string();
        assert!(err.contains("invalid URL") && err.contains("nope"), "{err}");
    }

    #[test]
    fn env_lookup_seeds_the_builder_and_debug_hides_the_key() {
        let b = PostHogExporterBuilder::from_lookup(|k| match k {
            "CL_POSTHOG_API_KEY" => Some("phc_secret".into()),
            "CL_POSTHOG_HOST" => Some("http://127.0.0.1:9".into()),
            "CL_RELEASE_VERSION" => Some(" ".into()),
            _ => None,
        });
        assert_eq!(b.host, "http://127.0.0.1:9");
        assert_eq!(b.release_version, None);
        assert!(!format!("{b:?}").contains("phc_secret"));
        let exporter = b.build().unwrap();
        assert!(!format!("{exporter:?}").contains("phc_secret"));
        assert_eq!(exporter.endpoint(), "http://127.0.0.1:9/batch/");
    }

    #[test]
    fn do_not_track_in_the_environment_cannot_be_overridden() {
        for (var, value) in [
            ("DO_NOT_TRACK", "1"),
            ("CL_TELEMETRY_DISABLED", "true"),
            ("DO_NOT_TRACK", "maybe"),
        ] {
            let b = PostHogExporterBuilder::from_lookup(|k| match k {
                "CL_POSTHOG_API_KEY" => Some("phc_test".into()),
                k if k == var => Some(value.into()),
                _ => None,
            });
            let err = b.api_key("phc_other").host("http://127.0.0.1:9").build();
            assert!(
                matches!(err, Err(BuildError::Disabled(v)) if v == var),
                "{var}={value}"
            );
        }
        let off = PostHogExporterBuilder::from_lookup(|k| match k {
            "CL_POSTHOG_API_KEY" => Some("phc_test".into()),
            "DO_NOT_TRACK" => Some("0".into()),
            _ => None,
        });
        assert!(off.host("http://127.0.0.1:9").build().is_ok());
    }
}
