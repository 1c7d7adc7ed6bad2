//! The stream settings the relay and the direct Datadog builders share (delivery settings are
//! [`DeliveryOptions`](crate::delivery::DeliveryOptions), common to every builder).

use std::time::Duration;

use crate::decode::DecodeOptions;
use crate::delivery::{check_range, BuildError, Limits, MAX_BATCH_DELAY};

/// What a diagnostics builder holds besides its destination and its delivery options.
#[derive(Debug, Clone)]
pub(crate) struct DiagnosticsSettings {
    /// Keep (redacted) `logTail` / `stderrTail`. Default off.
    pub(crate) verbose: bool,
    /// Send events outside the catalogue. Default off.
    pub(crate) allow_custom_events: bool,
    /// How long the first queued message may wait before a partial batch goes. Default
    /// [`DEFAULT_MAX_DELAY`](super::DEFAULT_MAX_DELAY), at most [`MAX_BATCH_DELAY`].
    pub(crate) max_delay: Duration,
    /// Fallback `computeTargetId` for records that lack one.
    pub(crate) compute_target_id: Option<String>,
    /// Fallback `release_version` for records that lack one.
    pub(crate) release_version: Option<String>,
}

impl Default for DiagnosticsSettings {
    fn default() -> Self {
        DiagnosticsSettings {
            verbose: false,
            allow_custom_events: false,
            max_delay: super::DEFAULT_MAX_DELAY,
            compute_target_id: None,
            release_version: None,
        }
    }
}

impl DiagnosticsSettings {
    /// `max_delay` at most [`MAX_BATCH_DELAY`] (60 s).
    pub(crate) fn check(&self) -> Result<(), BuildError> {
        check_range("max_delay", self.max_delay, Duration::ZERO, MAX_BATCH_DELAY)
    }

    /// The batch limits of a diagnostics destination: its item and body caps, this delay and
    /// the [`MAX_AGE`](super::MAX_AGE) expiry.
    pub(crate) fn limits(&self, max_items: usize, max_body_bytes: usize) -> Limits {
        Limits {
            max_items,
            max_body_bytes,
            max_delay: self.max_delay,
            expiry: Some(super::MAX_AGE),
        }
    }

    pub(crate) fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            compute_target_id: self.compute_target_id.clone(),
            release_version: self.release_version.clone(),
            keep_tails: self.verbose,
        }
    }
}
