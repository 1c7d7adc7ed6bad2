//! [`DeliveryConfig`] and [`SpoolConfig`]: how one engine delivers. Read by the engine handle
//! and by the worker; imports neither.

use std::time::Duration;

use super::error::BuildError;
use super::range::{check_range, check_retry, check_timeout, MAX_DURATION_SETTING};
use super::retry::RetryPolicy;
use super::stream::Limits;

/// Default bound of the hand-over queue and of the backlog, in events. Sized by measurement
/// (BENCHMARKS.md): 4096 keeps 100k events/s sustained on loopback free of drops (2048 evicted a
/// few hundred per million when a send lagged behind a hand-over), while a 1M-event flood stays
/// within 16 MiB of extra memory.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;
/// Default per-request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default deadline of flush and shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How one engine delivers. Build with [`DeliveryConfig::new`] and adjust the fields.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// Batch size, body size, delay and expiry rules of the stream.
    pub limits: Limits,
    /// At most this many events wait to be mapped, and at most this many mapped items wait to
    /// be sent (the backlog evicts its oldest when full). With a [`spool`](Self::spool) the
    /// backlog lives on disk, bounded by the spool's cap instead. Default
    /// [`DEFAULT_QUEUE_CAPACITY`].
    pub queue_capacity: usize,
    /// Per-request timeout. Default [`DEFAULT_REQUEST_TIMEOUT`]. It bounds connecting (a
    /// destination that never accepts is a connection failure: an outage, retried without
    /// limit), and then sending and the answer, with extra time for the body at 50 KB/s: one
    /// exchange may take `2 × request_timeout + body / 50 KB/s` before it counts as timed out.
    pub request_timeout: Duration,
    /// `Some(level)` gzips bodies and sends `Content-Encoding: gzip`. Default `None`.
    pub gzip: Option<u32>,
    /// Backoff and give-up rules. Default [`RetryPolicy::default`].
    pub retry: RetryPolicy,
    /// Deadline used when every handle is dropped without an explicit shutdown.
    /// Default [`DEFAULT_SHUTDOWN_TIMEOUT`].
    pub shutdown_timeout: Duration,
    /// The durable on-disk spool under the backlog. Default `None` (memory only).
    pub spool: Option<SpoolConfig>,
}

/// Where and how an engine spools: the stream's spool lives in `dir/<stream name>`.
///
/// With a spool every mapped item is appended to disk, batches are read back from it and
/// acknowledged after a 2xx (or a counted drop); what was not acknowledged when the process
/// ended is sent on the next start. If the directory is locked by another process or
/// unusable the engine falls back to `dir/<stream>/pid-<pid>`, else to memory, with one
/// warning naming the reason; one not private to this user (Unix: another owner, or writable by
/// group or others) is refused and the stream runs in memory. See `docs/RELIABILITY.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// The base directory (`CL_TELEMETRY_SPOOL_DIR`); each stream uses a subdirectory.
    pub dir: std::path::PathBuf,
    /// Cap, segment size and sync interval.
    pub options: crate::spool::SpoolOptions,
    /// Purge what the spool holds when it opens, before anything is sent (counted as
    /// `purged`): for an app whose user has withdrawn consent, so events spooled by an
    /// earlier run never leave the machine. Default `false`.
    pub purge_on_open: bool,
}

impl SpoolConfig {
    /// A spool in `dir` (per-stream subdirectories) with default options.
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        SpoolConfig {
            dir: dir.into(),
            options: crate::spool::SpoolOptions::default(),
            purge_on_open: false,
        }
    }

    /// Sets [`purge_on_open`](Self::purge_on_open).
    pub fn purge_on_open(mut self, on: bool) -> Self {
        self.purge_on_open = on;
        self
    }
}

impl DeliveryConfig {
    /// The range checks [`Delivery::start`] applies (see [`super::check_range`]): sizes of at
    /// least 1, timeouts above zero and at most [`MAX_DURATION_SETTING`], the batch delay,
    /// retry and spool sync durations at most that too. Names the setting at fault.
    pub fn check(&self) -> Result<(), BuildError> {
        if self.limits.max_items == 0 || self.queue_capacity == 0 {
            return Err(BuildError::InvalidValue {
                setting: "batch size / queue capacity",
                reason: "must be at least 1".into(),
            });
        }
        check_timeout("timeout", self.request_timeout)?;
        check_timeout("shutdown_timeout", self.shutdown_timeout)?;
        check_range(
            "max_delay",
            self.limits.max_delay,
            Duration::ZERO,
            MAX_DURATION_SETTING,
        )?;
        check_retry(&self.retry)?;
        if let Some(spool) = &self.spool {
            check_range(
                "spool sync_interval",
                spool.options.sync_interval,
                Duration::ZERO,
                MAX_DURATION_SETTING,
            )?;
        }
        Ok(())
    }

    /// A configuration with the given limits and every other field at its default.
    pub fn new(limits: Limits) -> Self {
        DeliveryConfig {
            limits,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            gzip: None,
            retry: RetryPolicy::default(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            spool: None,
        }
    }
}
