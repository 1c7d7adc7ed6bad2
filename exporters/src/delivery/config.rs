//! [`EngineConfig`]: the resolved settings one engine runs with. Read by the engine handle and
//! by the worker; imports neither.

use std::time::Duration;

use super::options::{scale, DeliveryOptions};
use super::retry::RetryPolicy;
use super::wire_format::Limits;
use crate::spool::SpoolOptions;

/// The settings one engine runs with: the stream's [`Limits`] and the [`DeliveryOptions`],
/// with the test-only clock divisor already applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EngineConfig {
    pub(crate) limits: Limits,
    pub(crate) queue_capacity: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) gzip: Option<u32>,
    pub(crate) retry: RetryPolicy,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) spool: Option<SpoolOptions>,
    /// Sample rates by event name (none: every event is kept).
    pub(crate) sample: std::collections::BTreeMap<String, f64>,
}

impl EngineConfig {
    /// `limits` and `options` resolved: with a test clock divisor above 1 the engine's clocks
    /// (retry backoffs and their cap, the `Retry-After` clamp, the request timeout, the batch
    /// delay) are divided by it; the retry rules, expiry age and shutdown deadline are not.
    pub(crate) fn new(mut limits: Limits, options: &DeliveryOptions) -> Self {
        let scale = |d| scale(d, options.test_clock_divisor());
        let mut retry = *options.retry_policy();
        retry.base = scale(retry.base);
        retry.max_backoff = scale(retry.max_backoff);
        retry.max_retry_after = scale(retry.max_retry_after);
        limits.max_delay = scale(limits.max_delay);
        EngineConfig {
            limits,
            queue_capacity: options.queue_capacity(),
            request_timeout: options.effective_timeout(),
            gzip: options.gzip_level(),
            retry,
            shutdown_timeout: options.shutdown_timeout(),
            spool: options.spool().cloned(),
            sample: options.volume().sample.clone(),
        }
    }
}
