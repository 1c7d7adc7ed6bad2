//! The build/config error every exporter builder returns, and the error of a call after
//! shutdown.

/// A configuration problem found while building an exporter. Building never panics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A required setting was not given.
    #[error("missing setting: {0}")]
    Missing(&'static str),
    /// A URL did not parse or is not usable (names the setting, the value and the problem).
    /// The value is shown with its userinfo and every query and fragment value replaced by
    /// `[REDACTED]`: no credential in it is ever printed.
    #[error("invalid URL for {setting} ({:?}): {reason}", crate::url_redact::redact_url(.url))]
    InvalidUrl {
        /// The setting, e.g. `CL_POSTHOG_HOST`.
        setting: &'static str,
        /// The value given, already redacted (see [`BuildError::invalid_url`]).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid value for {setting}: {reason}")]
    InvalidValue {
        /// The setting, e.g. `batch_size`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be created (e.g. TLS initialisation failed).
    #[error("cannot create the HTTP client: {0}")]
    HttpClient(String),
    /// `DO_NOT_TRACK` or `CL_TELEMETRY_DISABLED` (named) was set when the builder read the
    /// environment: telemetry is off and no exporter is started. No builder call overrides it.
    #[error("telemetry is disabled by {0}; no exporter is started")]
    Disabled(&'static str),
    /// The worker thread could not be started.
    #[error("cannot start the delivery worker thread: {0}")]
    Worker(#[from] std::io::Error),
}

impl BuildError {
    /// [`BuildError::InvalidUrl`] holding `url` redacted (userinfo and every query and fragment
    /// value replaced by `[REDACTED]`), so neither `Display` nor `Debug` can show a credential.
    pub fn invalid_url(setting: &'static str, url: &str, reason: impl Into<String>) -> Self {
        BuildError::InvalidUrl {
            setting,
            url: crate::url_redact::redact_url(url),
            reason: reason.into(),
        }
    }
}

/// The engine was already shut down: nothing was queued (or no second shutdown ran).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the delivery engine is already shut down")]
pub struct AlreadyShutdown;
