//! The environment variables the library reads, each looked up here and nowhere else: the
//! facade's configuration and [`PostHogExporterBuilder::from_env`](crate::PostHogExporterBuilder::from_env)
//! both take their values from an [`Env`].

use std::collections::BTreeMap;

/// Every environment variable the library reads.
pub const VARS: &[&str] = &[
    "CL_POSTHOG_API_KEY",
    "CL_POSTHOG_HOST",
    "CL_RELAY_URL",
    "CL_RELAY_TOKEN",
    "DD_API_KEY",
    "DD_SITE",
    "DD_LOGS_URL",
    "CL_OTLP_ENDPOINT",
    "CL_OTLP_HEADERS",
    "CL_OTLP_PROTOCOL",
    "CL_OTLP_COMPRESSION",
    "CL_COMPUTE_TARGET_ID",
    "CL_RELEASE_VERSION",
    "CL_TELEMETRY_VERBOSE",
    "CL_TELEMETRY_DISABLED",
    "DO_NOT_TRACK",
    "CL_TELEMETRY_SPOOL_DIR",
    "CL_TELEMETRY_RATE_LIMIT",
];

/// The values of [`VARS`] that are set to something other than blanks, as given (not
/// trimmed). `Debug` shows only which variables are set, never a value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Env {
    values: BTreeMap<&'static str, String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("set", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Env {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads each of [`VARS`] through `get` (tests pass a map).
    ///
    /// ```
    /// use closedloop_telemetry_exporters::__private::env::Env;
    /// let env = Env::from_lookup(|k| (k == "DD_SITE").then(|| " datadoghq.eu ".into()));
    /// assert_eq!(env.get("DD_SITE"), Some(" datadoghq.eu "));
    /// assert_eq!(env.get("DD_API_KEY"), None);
    /// ```
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let values = VARS
            .iter()
            .filter_map(|&k| get(k).filter(|v| !v.trim().is_empty()).map(|v| (k, v)))
            .collect();
        Env { values }
    }

    /// The value of `var` when it is set and not blank.
    pub fn get(&self, var: &str) -> Option<&str> {
        self.values.get(var).map(String::as_str)
    }
}
