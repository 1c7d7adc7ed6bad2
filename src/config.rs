//! Configuration from the environment (see the README's table); the builder offers the same
//! settings. The variables are looked up by the exporters' `env` module, here parsed.

use std::path::PathBuf;

use closedloop_telemetry_exporters::__private::datadog::wire::intake_url;
use closedloop_telemetry_exporters::__private::env::Env;
use closedloop_telemetry_exporters::RateLimit;

/// The default Datadog site (defined by the exporters).
pub(crate) use closedloop_telemetry_exporters::__private::datadog::wire::DEFAULT_SITE as DEFAULT_DD_SITE;
/// The default PostHog host (defined by the exporters).
pub(crate) use closedloop_telemetry_exporters::__private::posthog::DEFAULT_HOST as DEFAULT_POSTHOG_HOST;

/// A configuration value that could not be used. Names the variable and says what is wrong;
/// secret values are never echoed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    /// The variable (or builder setting) at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(var: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            var,
            reason: reason.into(),
        }
    }
}

/// PostHog stream settings.
#[derive(Clone, PartialEq, Eq)]
pub struct PostHogOptions {
    /// The project API key (`phc_…`).
    pub api_key: String,
    /// Base URL, e.g. `https://us.i.posthog.com`.
    pub host: String,
}

/// Relay stream settings.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayOptions {
    /// Where messages are POSTed.
    pub url: String,
    /// Bearer token, if any.
    pub token: Option<String>,
}

/// Direct Datadog intake settings (used when there is no relay).
#[derive(Clone, PartialEq, Eq)]
pub struct DatadogOptions {
    /// `DD-API-KEY`.
    pub api_key: String,
    /// The full intake endpoint (from `DD_LOGS_URL`, else built from `DD_SITE`).
    pub logs_url: String,
}

/// OTLP/HTTP logs settings: the diagnostics stream to an OpenTelemetry Collector, beside the
/// relay or Datadog. Read from `CL_OTLP_*` only, never from the standard
/// `OTEL_EXPORTER_OTLP_*` variables: an app's own tracing endpoint must not start receiving user
/// telemetry because this library was added.
#[derive(Clone, PartialEq, Eq)]
pub struct OtlpOptions {
    /// The collector's base URL (`CL_OTLP_ENDPOINT`); records go to `{endpoint}/v1/logs`.
    pub endpoint: String,
    /// Extra request headers (`CL_OTLP_HEADERS`, `k=v,k2=v2`, values percent-decoded).
    pub headers: Vec<(String, String)>,
    /// `http/protobuf` (default) or `http/json` (`CL_OTLP_PROTOCOL`).
    pub protocol: closedloop_telemetry_exporters::Protocol,
    /// `gzip` (default) or `none` (`CL_OTLP_COMPRESSION`).
    pub compression: closedloop_telemetry_exporters::Compression,
}

impl std::fmt::Debug for OtlpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpOptions")
            .field(
                "endpoint",
                &closedloop_telemetry_exporters::__private::redact_url(&self.endpoint),
            )
            .field("headers", &names)
            .field("protocol", &self.protocol)
            .field("compression", &self.compression)
            .finish()
    }
}

macro_rules! redacted_debug {
    ($t:ty, $name:literal, $($field:ident),*) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct($name)
                    $(.field(
                        stringify!($field),
                        &closedloop_telemetry_exporters::__private::redact_url(&self.$field),
                    ))*
                    .finish_non_exhaustive()
            }
        }
    };
}
redacted_debug!(PostHogOptions, "PostHogOptions", host);
redacted_debug!(RelayOptions, "RelayOptions", url);
redacted_debug!(DatadogOptions, "DatadogOptions", logs_url);

/// Everything the environment can say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvOptions {
    /// `CL_POSTHOG_API_KEY` (+ `CL_POSTHOG_HOST`).
    pub posthog: Option<PostHogOptions>,
    /// `CL_RELAY_URL` (+ `CL_RELAY_TOKEN`).
    pub relay: Option<RelayOptions>,
    /// `DD_API_KEY` (+ `DD_SITE` / `DD_LOGS_URL`).
    pub datadog: Option<DatadogOptions>,
    /// `CL_OTLP_ENDPOINT` (+ `CL_OTLP_HEADERS`, `CL_OTLP_PROTOCOL`, `CL_OTLP_COMPRESSION`).
    pub otlp: Option<OtlpOptions>,
    /// `CL_COMPUTE_TARGET_ID`.
    pub compute_target_id: Option<String>,
    /// `CL_RELEASE_VERSION`.
    pub release_version: Option<String>,
    /// `CL_TELEMETRY_VERBOSE=1`.
    pub verbose: bool,
    /// `CL_TELEMETRY_DISABLED=1` or `DO_NOT_TRACK=1`.
    pub disabled: bool,
    /// `CL_TELEMETRY_SPOOL_DIR`.
    pub spool_dir: Option<PathBuf>,
    /// `CL_TELEMETRY_RATE_LIMIT`: the rate limit of every event name on every destination
    /// (`Some(None)` for `off`; `None` when unset).
    pub rate_limit: Option<Option<RateLimit>>,
}

impl EnvOptions {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&Env::from_env())
    }

    /// Reads variables through `get` (tests pass a map).
    ///
    /// ```
    /// use closedloop_telemetry::EnvOptions;
    /// let cfg = EnvOptions::from_lookup(|k| (k == "CL_POSTHOG_API_KEY").then(|| "phc_x".into())).unwrap();
    /// assert_eq!(cfg.posthog.unwrap().host, "https://us.i.posthog.com");
    /// let err = EnvOptions::from_lookup(|k| (k == "CL_RELAY_URL").then(|| "not a url".into())).unwrap_err();
    /// assert_eq!(err.var, "CL_RELAY_URL");
    /// ```
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_vars(&Env::from_lookup(get))
    }

    /// Reads an already-read environment (each value trimmed; blank counts as unset).
    pub fn from_vars(env: &Env) -> Result<Self, ConfigError> {
        let var = |k: &str| env.get(k).map(|v| v.trim().to_string());
        let posthog = match var("CL_POSTHOG_API_KEY") {
            Some(api_key) => Some(PostHogOptions {
                api_key,
                host: parse_url(
                    "CL_POSTHOG_HOST",
                    var("CL_POSTHOG_HOST")
                        .as_deref()
                        .unwrap_or(DEFAULT_POSTHOG_HOST),
                )?,
            }),
            None => {
                // Validate the host even when the key is missing: a typo should surface early.
                if let Some(h) = var("CL_POSTHOG_HOST") {
                    parse_url("CL_POSTHOG_HOST", &h)?;
                }
                None
            }
        };
        let relay = match var("CL_RELAY_URL") {
            Some(url) => Some(RelayOptions {
                url: parse_url("CL_RELAY_URL", &url)?,
                token: var("CL_RELAY_TOKEN"),
            }),
            None => None,
        };
        let datadog = match var("DD_API_KEY") {
            Some(api_key) => {
                let logs_url = match var("DD_LOGS_URL") {
                    Some(u) => parse_url("DD_LOGS_URL", &u)?,
                    None => {
                        let site = var("DD_SITE").unwrap_or_else(|| DEFAULT_DD_SITE.into());
                        if site.contains('/') || site.contains(char::is_whitespace) {
                            return Err(ConfigError::new(
                                "DD_SITE",
                                "expected a site name such as datadoghq.eu, not a URL",
                            ));
                        }
                        parse_url("DD_SITE", &intake_url(&site))?
                    }
                };
                Some(DatadogOptions { api_key, logs_url })
            }
            None => None,
        };
        let otlp = match var("CL_OTLP_ENDPOINT") {
            Some(endpoint) => Some(otlp_options(&endpoint, &var)?),
            None => None,
        };
        Ok(EnvOptions {
            posthog,
            relay,
            datadog,
            otlp,
            compute_target_id: var("CL_COMPUTE_TARGET_ID"),
            release_version: var("CL_RELEASE_VERSION"),
            verbose: parse_flag("CL_TELEMETRY_VERBOSE", var("CL_TELEMETRY_VERBOSE"))?,
            disabled: parse_flag("CL_TELEMETRY_DISABLED", var("CL_TELEMETRY_DISABLED"))?
                || parse_flag("DO_NOT_TRACK", var("DO_NOT_TRACK"))?,
            spool_dir: var("CL_TELEMETRY_SPOOL_DIR").map(PathBuf::from),
            rate_limit: match var("CL_TELEMETRY_RATE_LIMIT") {
                Some(v) => Some(
                    RateLimit::parse(&v)
                        .map_err(|e| ConfigError::new("CL_TELEMETRY_RATE_LIMIT", e.to_string()))?,
                ),
                None => None,
            },
        })
    }
}

/// The `CL_OTLP_*` settings, `CL_OTLP_ENDPOINT` being set.
fn otlp_options(
    endpoint: &str,
    var: &impl Fn(&str) -> Option<String>,
) -> Result<OtlpOptions, ConfigError> {
    use closedloop_telemetry_exporters::__private::otlp::wire::parse_headers;
    use closedloop_telemetry_exporters::{Compression, Protocol};
    let endpoint = parse_url("CL_OTLP_ENDPOINT", endpoint)?;
    let headers = match var("CL_OTLP_HEADERS") {
        Some(h) => parse_headers(&h).map_err(|e| ConfigError::new("CL_OTLP_HEADERS", e))?,
        None => Vec::new(),
    };
    let protocol = match var("CL_OTLP_PROTOCOL") {
        Some(p) => Protocol::parse(&p).ok_or_else(|| {
            ConfigError::new(
                "CL_OTLP_PROTOCOL",
                format!("expected http/protobuf or http/json, got {p:?}"),
            )
        })?,
        None => Protocol::default(),
    };
    let compression = match var("CL_OTLP_COMPRESSION") {
        Some(c) => Compression::parse(&c).ok_or_else(|| {
            ConfigError::new(
                "CL_OTLP_COMPRESSION",
                format!("expected gzip or none, got {c:?}"),
            )
        })?,
        None => Compression::default(),
    };
    Ok(OtlpOptions {
        endpoint,
        headers,
        protocol,
        compression,
    })
}

/// Parses an on/off flag: `1/true/yes/on` and `0/false/no/off` (any case).
pub(crate) fn parse_flag(var: &'static str, value: Option<String>) -> Result<bool, ConfigError> {
    let Some(v) = value else { return Ok(false) };
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(
            var,
            format!("expected 1/0 (or true/false, yes/no, on/off), got {v:?}"),
        )),
    }
}

/// Checks that `value` is an absolute http(s) URL and returns it without a trailing slash.
pub(crate) fn parse_url(var: &'static str, value: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(value)
        .map_err(|e| ConfigError::new(var, format!("not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(
            var,
            format!(
                "expected an http:// or https:// URL, got scheme {:?}",
                url.scheme()
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(var, "the URL has no host"));
    }
    Ok(value.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<EnvOptions, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvOptions::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_set_means_every_stream_off() {
        assert_eq!(cfg(&[]).unwrap(), EnvOptions::default());
    }

    #[test]
    fn streams_and_defaults() {
        let c = cfg(&[
            ("CL_POSTHOG_API_KEY", "phc_test"),
            ("CL_RELAY_URL", "http://127.0.0.1:9/relay"),
            ("CL_RELAY_TOKEN", "tok"),
            ("DD_API_KEY", "k"),
            ("DD_SITE", "datadoghq.eu"),
            ("CL_TELEMETRY_VERBOSE", "true"),
            ("CL_TELEMETRY_SPOOL_DIR", "spool"),
        ])
        .unwrap();
        assert_eq!(c.posthog.unwrap().host, DEFAULT_POSTHOG_HOST);
        assert_eq!(c.relay.unwrap().token.as_deref(), Some("tok"));
        assert_eq!(
            c.datadog.unwrap().logs_url,
            "https://http-intake.logs.datadoghq.eu/api/v2/logs"
        );
        assert!(c.verbose && !c.disabled);
        assert_eq!(c.spool_dir, Some(PathBuf::from("spool")));
    }

    #[test]
    fn malformed_values_name_the_variable() {
        let e = cfg(&[
            ("CL_POSTHOG_API_KEY", "k"),
            ("CL_POSTHOG_HOST", "us.i.posthog.com"),
        ]);
        assert_eq!(e.unwrap_err().var, "CL_POSTHOG_HOST");
        assert_eq!(
            cfg(&[("CL_RELAY_URL", "ftp://x")]).unwrap_err().var,
            "CL_RELAY_URL"
        );
        assert_eq!(
            cfg(&[("DO_NOT_TRACK", "maybe")]).unwrap_err().var,
            "DO_NOT_TRACK"
        );
        assert_eq!(
            cfg(&[("CL_TELEMETRY_VERBOSE", "2")]).unwrap_err().var,
            "CL_TELEMETRY_VERBOSE"
        );
        let e = cfg(&[("DD_API_KEY", "k"), ("DD_SITE", "https://x")]).unwrap_err();
        assert_eq!(e.var, "DD_SITE");
        assert!(e.to_string().starts_with("DD_SITE: "));
    }

    #[test]
    fn do_not_track_or_disabled_turn_upstream_off() {
        assert!(cfg(&[("DO_NOT_TRACK", "1")]).unwrap().disabled);
        assert!(cfg(&[("CL_TELEMETRY_DISABLED", "yes")]).unwrap().disabled);
        assert!(!cfg(&[("DO_NOT_TRACK", "0")]).unwrap().disabled);
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let c = cfg(&[
            ("CL_POSTHOG_API_KEY", "phc_SECRET"),
            ("CL_RELAY_URL", "http://127.0.0.1:1"),
            ("CL_RELAY_TOKEN", "TOKEN_SECRET"),
            ("DD_API_KEY", "DD_SECRET"),
        ])
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
    }
}
