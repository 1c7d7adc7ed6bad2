//! [`DeliveryOptions`]: the delivery settings every exporter builder takes (one value, built
//! with [`DeliveryOptionsBuilder`], in the style of `opentelemetry_sdk`'s `BatchConfig`), and
//! the spool's [`SpoolOptions`](crate::spool::SpoolOptions) among them.

use std::path::PathBuf;
use std::time::Duration;

use super::body::DEFAULT_GZIP_LEVEL;
use super::error::BuildError;
use super::range::{check_range, check_retry, check_timeout, MAX_DURATION_SETTING};
use super::retry::RetryPolicy;

/// Default bound of the pipeline's queue and of the backlog's memory, in events. Sized by measurement
/// (BENCHMARKS.md): 4096 keeps 100k events/s sustained on loopback free of drops (2048 evicted a
/// few hundred per million when a send lagged behind a hand-over), while a 1M-event flood stays
/// within 16 MiB of extra memory.
pub(crate) const DEFAULT_QUEUE_CAPACITY: usize = 4096;
/// Default bound of the queue's overflow in bytes: records past [`DEFAULT_QUEUE_CAPACITY`] are
/// held in a compact form (about 140 bytes each) up to this many bytes, about 100,000 events.
pub(crate) const DEFAULT_OVERFLOW_BYTES: usize = 16 << 20;
/// Default per-request timeout.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default deadline of flush and shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How an exporter delivers, whatever its destination: queue bound, request timeout, gzip,
/// retry rules, shutdown deadline and the durable spool. Pass it to an exporter builder's
/// `delivery(..)` ([`PostHogExporterBuilder`](crate::PostHogExporterBuilder),
/// [`RelayExporterBuilder`](crate::RelayExporterBuilder),
/// [`DatadogExporterBuilder`](crate::DatadogExporterBuilder)). `Default` is every default
/// listed on [`DeliveryOptionsBuilder`]; ranges are checked when the exporter is built.
///
/// ```
/// use std::time::Duration;
/// use closedloop_telemetry_exporters::DeliveryOptions;
///
/// let options = DeliveryOptions::builder()
///     .with_timeout(Duration::from_secs(5))
///     .with_gzip(true)
///     .build();
/// assert_eq!(options.queue_capacity(), 4096);
/// assert!(options.check().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryOptions {
    queue_capacity: usize,
    overflow_bytes: usize,
    timeout: Duration,
    gzip: Option<u32>,
    retry: RetryPolicy,
    shutdown_timeout: Duration,
    spool: Option<crate::spool::SpoolOptions>,
    volume: crate::volume::VolumeOptions,
    test_clock_divisor: u32,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            overflow_bytes: DEFAULT_OVERFLOW_BYTES,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            gzip: None,
            retry: RetryPolicy::default(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            spool: None,
            volume: crate::volume::VolumeOptions::default(),
            test_clock_divisor: 1,
        }
    }
}

impl DeliveryOptions {
    /// A builder starting from the defaults.
    pub fn builder() -> DeliveryOptionsBuilder {
        DeliveryOptionsBuilder::default()
    }

    /// A builder starting from these options (to change a few).
    pub fn to_builder(&self) -> DeliveryOptionsBuilder {
        DeliveryOptionsBuilder {
            options: self.clone(),
        }
    }

    /// The bound of the pipeline's queue (records held as they are) and of the backlog's
    /// memory, in events.
    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }

    /// The bound of the queue's compact overflow, in bytes (0: no overflow).
    pub fn overflow_bytes(&self) -> usize {
        self.overflow_bytes
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The gzip level of request bodies, `None` when bodies are not compressed.
    pub fn gzip_level(&self) -> Option<u32> {
        self.gzip
    }

    /// These options with gzip on at [`DEFAULT_GZIP_LEVEL`] (a destination whose protocol
    /// compresses by default, like OTLP).
    pub(crate) fn gzipped(mut self) -> Self {
        self.gzip = Some(DEFAULT_GZIP_LEVEL);
        self
    }

    /// The backoff and give-up rules.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The deadline used when every handle is dropped without an explicit shutdown.
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// The durable spool, if any.
    pub fn spool(&self) -> Option<&crate::spool::SpoolOptions> {
        self.spool.as_ref()
    }

    /// Rate limits and sample rates (see [`VolumeOptions`](crate::VolumeOptions)).
    pub fn volume(&self) -> &crate::volume::VolumeOptions {
        &self.volume
    }

    /// The test-only clock divisor (1 outside tests).
    pub(crate) fn test_clock_divisor(&self) -> u32 {
        self.test_clock_divisor
    }

    /// The per-request timeout the engine and its transport use: [`timeout`](Self::timeout)
    /// divided by the test clock divisor (at least 1 ms), itself outside tests.
    pub(crate) fn effective_timeout(&self) -> Duration {
        scale(self.timeout, self.test_clock_divisor)
    }

    /// The range checks every exporter applies when it is built: `timeout` and
    /// `shutdown_timeout` above zero and at most 1 h, the retry
    /// durations and the spool's sync interval at most that too, a queue of at least one.
    /// The error names the setting at fault (see `docs/RELIABILITY.md`, "Configuration ranges").
    pub fn check(&self) -> Result<(), BuildError> {
        check_timeout("timeout", self.timeout)?;
        check_timeout("shutdown_timeout", self.shutdown_timeout)?;
        if self.queue_capacity == 0 {
            return Err(BuildError::InvalidValue {
                setting: "queue_capacity",
                reason: "must be at least 1".into(),
            });
        }
        check_retry(&self.retry)?;
        for (name, rate) in &self.volume.sample {
            if !(0.0..=1.0).contains(rate) {
                return Err(BuildError::InvalidValue {
                    setting: "sample_rate",
                    reason: format!("{name}: {rate} is not between 0 and 1"),
                });
            }
        }
        if let Some(spool) = &self.spool {
            check_range(
                "spool sync_interval",
                spool.sync_interval,
                Duration::ZERO,
                MAX_DURATION_SETTING,
            )?;
        }
        Ok(())
    }
}

/// Builds [`DeliveryOptions`]. Every setting is optional:
///
/// | setting | default |
/// |---|---|
/// | [`with_queue_capacity`](Self::with_queue_capacity) | 4096 events, at least 1 |
/// | [`with_overflow_bytes`](Self::with_overflow_bytes) | 16 MiB |
/// | [`with_timeout`](Self::with_timeout) | 10 s per request; above zero, at most 1 h |
/// | [`with_gzip`](Self::with_gzip) | off (on: gzip level 1) |
/// | [`with_retry_policy`](Self::with_retry_policy) | [`RetryPolicy::default`] |
/// | [`with_shutdown_timeout`](Self::with_shutdown_timeout) | 5 s, used when dropped without shutdown; above zero, at most 1 h |
/// | [`with_spool_dir`](Self::with_spool_dir), [`with_spool`](Self::with_spool) | none: memory only |
/// | [`with_rate_limit`](Self::with_rate_limit) | 10 events/s with a burst of 100, per event name |
/// | [`with_rate_limit_for`](Self::with_rate_limit_for) | none: every name has the default limit |
/// | [`with_sample_rate`](Self::with_sample_rate) | none: every event is kept |
#[derive(Debug, Clone, Default)]
pub struct DeliveryOptionsBuilder {
    options: DeliveryOptions,
}

impl DeliveryOptionsBuilder {
    /// At most this many records wait in the pipeline's queue as they are (beyond that, in
    /// the compact overflow), and at most this many mapped items wait to be sent in memory
    /// (the backlog evicts its oldest when full). With a spool the backlog lives on disk,
    /// bounded by the spool's cap instead.
    pub fn with_queue_capacity(mut self, n: usize) -> Self {
        self.options.queue_capacity = n;
        self
    }

    /// How many bytes of records the queue holds in its compact overflow once
    /// [`with_queue_capacity`](Self::with_queue_capacity) records wait; past both, records are
    /// dropped and counted as `queue_full`. 0 turns the overflow off.
    pub fn with_overflow_bytes(mut self, n: usize) -> Self {
        self.options.overflow_bytes = n;
        self
    }

    /// The per-request timeout. It bounds connecting (a destination that never accepts is a
    /// connection failure: an outage, retried without limit), and then sending and the
    /// answer, with extra time for the body at 50 KB/s: one exchange may take
    /// `2 × timeout + body / 50 KB/s` before it counts as timed out.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// Gzips request bodies (`Content-Encoding: gzip`, level 1).
    pub fn with_gzip(mut self, on: bool) -> Self {
        self.options.gzip = on.then_some(DEFAULT_GZIP_LEVEL);
        self
    }

    /// Backoff and give-up rules.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.options.retry = policy;
        self
    }

    /// The delivery deadline used when the exporter is dropped without a shutdown.
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.options.shutdown_timeout = timeout;
        self
    }

    /// Spools events durably on disk in `dir/<stream>` (see `docs/RELIABILITY.md`): nothing
    /// undelivered is lost on shutdown, outage or crash up to the spool's cap.
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.spool = Some(crate::spool::SpoolOptions::new(dir));
        self
    }

    /// Like [`with_spool_dir`](Self::with_spool_dir) with explicit spool options (directory,
    /// cap, sync interval, purge on open); `None` keeps events in memory only.
    pub fn with_spool(mut self, spool: impl Into<Option<crate::spool::SpoolOptions>>) -> Self {
        self.options.spool = spool.into();
        self
    }

    /// The rate limit of every event name without one of its own: a token bucket per name,
    /// applied at the pipeline's door before anything is queued; an event over it is dropped
    /// and counted as `rate_limited`. `None` turns the default limit off. Default:
    /// [`RateLimit::default`](crate::RateLimit) (10/s, burst 100).
    pub fn with_rate_limit(mut self, limit: impl Into<Option<crate::RateLimit>>) -> Self {
        self.options.volume.default = limit.into();
        self
    }

    /// The rate limit of the events named `name` (the emitted dot name), replacing the
    /// default for that name; `None`: that name is never limited.
    pub fn with_rate_limit_for(
        mut self,
        name: impl Into<String>,
        limit: impl Into<Option<crate::RateLimit>>,
    ) -> Self {
        self.options
            .volume
            .per_name
            .insert(name.into(), limit.into());
        self
    }

    /// Keeps only the fraction `rate` (0 to 1; checked when the exporter is built) of the
    /// events named `name`, decided by each event's id, so a retried event stays in or out.
    /// The others are dropped and counted as `sampled_out`; the kept ones carry the rate
    /// (`sampleRate` on the diagnostics wire, `sample_rate` on PostHog).
    pub fn with_sample_rate(mut self, name: impl Into<String>, rate: f64) -> Self {
        self.options.volume.sample.insert(name.into(), rate);
        self
    }

    /// **Test-only.** Divides every engine clock (retry backoffs, their cap and the
    /// `Retry-After` clamp, the connect and request timeouts, the batch delay or flush
    /// interval) by `divisor`, so fault tests run the default retry policy in seconds. The
    /// retry rules, the expiry age and shutdown deadlines are unchanged. Never set it in an
    /// application. Only with the `testing` feature.
    #[cfg(any(test, feature = "testing"))]
    pub fn with_test_clock_divisor(mut self, divisor: u32) -> Self {
        self.options.test_clock_divisor = divisor.max(1);
        self
    }

    /// The options.
    pub fn build(self) -> DeliveryOptions {
        self.options
    }
}

/// `d / divisor` (at least 1 ms) for a divisor above 1, else `d`: the test-only clock scaling.
pub(crate) fn scale(d: Duration, divisor: u32) -> Duration {
    if divisor <= 1 {
        d
    } else {
        (d / divisor).max(Duration::from_millis(1))
    }
}
