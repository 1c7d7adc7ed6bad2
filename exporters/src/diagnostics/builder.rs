//! Settings shared by the relay and the direct Datadog builders.

use std::time::Duration;

use crate::decode::DecodeOptions;
use crate::delivery::{
    check_range, BuildError, DeliveryConfig, Limits, RetryPolicy, SpoolConfig, DEFAULT_GZIP_LEVEL,
    DEFAULT_QUEUE_CAPACITY, DEFAULT_REQUEST_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, MAX_BATCH_DELAY,
    MAX_DURATION_SETTING,
};

/// Settings every diagnostics builder has. Defaults: verbose off, custom events off, max delay
/// 2 s, queue 4096 events, 10 s request timeout, gzip off, default retry policy, 5 s shutdown.
#[derive(Debug, Clone)]
pub struct DiagnosticsSettings {
    /// Keep (redacted) `logTail` / `stderrTail`.
    pub verbose: bool,
    /// Send events outside the catalogue.
    pub allow_custom_events: bool,
    /// How long the first queued message may wait before a partial batch goes.
    pub max_delay: Duration,
    /// Bound of the hand-over queue and the backlog, in events.
    pub queue_capacity: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Gzip request bodies.
    pub gzip: bool,
    /// Backoff and give-up rules.
    pub retry: RetryPolicy,
    /// Deadline used when every handle is dropped without a shutdown.
    pub shutdown_timeout: Duration,
    /// Fallback `computeTargetId` for records that lack one.
    pub compute_target_id: Option<String>,
    /// Fallback `release_version` for records that lack one.
    pub release_version: Option<String>,
    /// The durable on-disk spool (`dir/<stream>`). Default `None` (memory only).
    pub spool: Option<SpoolConfig>,
    /// Test-only: every engine clock is divided by this (see `test_clock_divisor`). Default 1.
    pub test_clock_divisor: u32,
}

impl Default for DiagnosticsSettings {
    fn default() -> Self {
        DiagnosticsSettings {
            verbose: false,
            allow_custom_events: false,
            max_delay: super::DEFAULT_MAX_DELAY,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            gzip: false,
            retry: RetryPolicy::default(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            compute_target_id: None,
            release_version: None,
            spool: None,
            test_clock_divisor: 1,
        }
    }
}

impl DiagnosticsSettings {
    /// The range checks, and `max_delay` at most [`MAX_BATCH_DELAY`] (60 s).
    pub(crate) fn check(&self) -> Result<(), BuildError> {
        check_range("max_delay", self.max_delay, Duration::ZERO, MAX_BATCH_DELAY)?;
        check_limits(
            self.timeout,
            self.shutdown_timeout,
            self.queue_capacity,
            &self.retry,
        )
    }

    pub(crate) fn delivery_config(&self, limits: Limits) -> DeliveryConfig {
        DeliveryKnobs {
            queue_capacity: self.queue_capacity,
            timeout: self.timeout,
            gzip: self.gzip,
            retry: self.retry,
            shutdown_timeout: self.shutdown_timeout,
            spool: self.spool.clone(),
            test_clock_divisor: self.test_clock_divisor,
        }
        .config(limits)
    }

    pub(crate) fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            compute_target_id: self.compute_target_id.clone(),
            release_version: self.release_version.clone(),
            keep_tails: self.verbose,
        }
    }
}

/// The delivery knobs every builder (PostHog, relay, Datadog) offers, with their defaults:
/// queue 4096 events, 10 s request timeout, gzip off, default retry policy, 5 s shutdown, no spool.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryKnobs {
    pub(crate) queue_capacity: usize,
    pub(crate) timeout: Duration,
    pub(crate) gzip: bool,
    pub(crate) retry: RetryPolicy,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) spool: Option<SpoolConfig>,
    pub(crate) test_clock_divisor: u32,
}

impl Default for DeliveryKnobs {
    fn default() -> Self {
        DeliveryKnobs {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            gzip: false,
            retry: RetryPolicy::default(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            spool: None,
            test_clock_divisor: 1,
        }
    }
}

impl DeliveryKnobs {
    /// The range checks.
    pub(crate) fn check(&self) -> Result<(), BuildError> {
        check_limits(
            self.timeout,
            self.shutdown_timeout,
            self.queue_capacity,
            &self.retry,
        )
    }

    /// The engine configuration for a stream with these `limits`.
    pub(crate) fn config(&self, limits: Limits) -> DeliveryConfig {
        let mut config = DeliveryConfig::new(limits);
        config.queue_capacity = self.queue_capacity;
        config.request_timeout = self.timeout;
        config.gzip = self.gzip.then_some(DEFAULT_GZIP_LEVEL);
        config.retry = self.retry;
        config.shutdown_timeout = self.shutdown_timeout;
        config.spool = self.spool.clone();
        scale_clocks(&mut config, self.test_clock_divisor);
        config
    }
}

/// Test-only: divides the engine's clocks (retry backoffs and their cap, the `Retry-After`
/// clamp, the connect and request timeouts, the batch delay) by `divisor`. The retry rules
/// themselves (attempt limit, what is an outage) and the expiry age are unchanged.
fn scale_clocks(config: &mut DeliveryConfig, divisor: u32) {
    if divisor <= 1 {
        return;
    }
    let retry = &mut config.retry;
    for d in [
        &mut retry.base,
        &mut retry.max_backoff,
        &mut retry.max_retry_after,
        &mut config.request_timeout,
        &mut config.limits.max_delay,
    ] {
        *d = (*d / divisor).max(Duration::from_millis(1));
    }
}

/// The range checks every builder applies (see `crate::delivery::check_range`): timeouts above
/// zero and at most [`MAX_DURATION_SETTING`], retry durations at most that, a queue of at least
/// one. Each error names the setting.
fn check_limits(
    timeout: Duration,
    shutdown_timeout: Duration,
    queue_capacity: usize,
    retry: &RetryPolicy,
) -> Result<(), BuildError> {
    for (setting, value) in [("timeout", timeout), ("shutdown_timeout", shutdown_timeout)] {
        check_range(
            setting,
            value,
            Duration::from_nanos(1),
            MAX_DURATION_SETTING,
        )?;
    }
    if queue_capacity == 0 {
        return Err(BuildError::InvalidValue {
            setting: "queue_capacity",
            reason: "must be at least 1".into(),
        });
    }
    crate::delivery::range::check_retry(retry)
}

/// Implements the shared setters on a builder that has a `settings: DiagnosticsSettings` field.
macro_rules! diagnostics_setters {
    ($builder:ty) => {
        impl $builder {
            /// Keeps (redacted) log tails. Default off.
            pub fn verbose(mut self, on: bool) -> Self {
                self.settings.verbose = on;
                self
            }
            /// Sends events outside the catalogue too. Default off.
            pub fn allow_custom_events(mut self, on: bool) -> Self {
                self.settings.allow_custom_events = on;
                self
            }
            /// How long the first queued message may wait. Default 2 s, at most 60 s.
            pub fn max_delay(mut self, delay: std::time::Duration) -> Self {
                self.settings.max_delay = delay;
                self
            }
            /// Bound of the queue, in events. Default 2048.
            pub fn queue_capacity(mut self, n: usize) -> Self {
                self.settings.queue_capacity = n;
                self
            }
            /// Per-request timeout. Default 10 s; above zero, at most 1 h.
            pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
                self.settings.timeout = timeout;
                self
            }
            /// Gzips request bodies. Default off.
            pub fn gzip(mut self, on: bool) -> Self {
                self.settings.gzip = on;
                self
            }
            /// Backoff and give-up rules.
            pub fn retry_policy(mut self, policy: $crate::delivery::RetryPolicy) -> Self {
                self.settings.retry = policy;
                self
            }
            /// Deadline used when dropped without shutdown. Default 5 s; above zero, at most 1 h.
            pub fn shutdown_timeout(mut self, timeout: std::time::Duration) -> Self {
                self.settings.shutdown_timeout = timeout;
                self
            }
            /// Fallback computeTargetId for records that lack one.
            pub fn compute_target_id(mut self, id: impl Into<String>) -> Self {
                self.settings.compute_target_id = Some(id.into());
                self
            }
            /// Fallback release version for records that lack one.
            pub fn release_version(mut self, version: impl Into<String>) -> Self {
                self.settings.release_version = Some(version.into());
                self
            }
            /// Spools events durably on disk in `dir/<stream>` (see `docs/RELIABILITY.md`).
            /// Default: no spool (memory only).
            pub fn spool_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
                self.settings.spool = Some($crate::delivery::SpoolConfig::new(dir));
                self
            }
            /// Like `spool_dir` with explicit spool options (cap, sync interval).
            pub fn spool(mut self, spool: $crate::delivery::SpoolConfig) -> Self {
                self.settings.spool = Some(spool);
                self
            }
            /// **Test-only.** Divides every engine clock (retry backoffs, their cap and the
            /// `Retry-After` clamp, the connect and request timeouts, the batch delay) by
            /// `divisor`, so fault tests run the default retry policy in seconds. The retry
            /// rules, the expiry age and shutdown deadlines are unchanged. Default 1; never set
            /// it in an application.
            pub fn test_clock_divisor(mut self, divisor: u32) -> Self {
                self.settings.test_clock_divisor = divisor.max(1);
                self
            }
        }
    };
}
pub(crate) use diagnostics_setters;
