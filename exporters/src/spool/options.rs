//! Spool options and their defaults.

use std::time::Duration;

use super::error::SpoolError;

/// Default cap on a stream's spool: 64 MiB of segment files.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Default segment size before rotation: 1 MiB.
pub(crate) const DEFAULT_SEGMENT_BYTES: u64 = 1024 * 1024;
/// Default longest time appended data waits before an fsync: 3 s (the durability window for
/// power loss or an OS crash; a process kill loses nothing written out). A desktop app emitting
/// an event a second then fsyncs about every 3 s, not every second: each fsync costs the disk
/// a flush and the worker about three context switches.
pub(crate) const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(3);
/// Appends are buffered in memory up to this many bytes before being written to the file.
pub(crate) const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Where a delivery engine spools, and how a spool sizes and syncs its files.
///
/// Defaults: `dir` empty (give one with [`SpoolOptions::new`]), `max_bytes` = 64 MiB,
/// `segment_bytes` = 1 MiB, `sync_interval` = 3 s, `purge_on_open` off.
///
/// Given to [`DeliveryOptionsBuilder::with_spool`](crate::DeliveryOptionsBuilder::with_spool),
/// each destination's spool lives in `dir/<stream name>`. With a spool every mapped item is
/// appended to disk, batches are read back from it and acknowledged after a 2xx (or a counted
/// drop); what was not acknowledged when the process ended is sent on the next start. If the
/// directory is locked by another process or unusable the engine falls back to
/// `dir/<stream>/pid-<pid>`, else to memory, with one warning naming the reason; one not
/// private to this user (Unix: another owner, or writable by group or others) is refused and
/// the stream runs in memory. See `docs/RELIABILITY.md`.
///
/// ```
/// use closedloop_telemetry_exporters::SpoolOptions;
/// let options = SpoolOptions::new("spool").with_max_bytes(8 << 20);
/// assert_eq!(options.dir, std::path::Path::new("spool"));
/// assert!(!options.purge_on_open);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolOptions {
    /// The base directory (`CL_TELEMETRY_SPOOL_DIR`); each stream uses a subdirectory.
    pub dir: std::path::PathBuf,
    /// Purge what the spool holds when it opens, before anything is sent (counted as
    /// `purged`): for an app whose user has withdrawn consent, so events spooled by an
    /// earlier run never leave the machine.
    pub purge_on_open: bool,
    /// Cap on the bytes of all segment files. Appending past it deletes the oldest segment.
    pub max_bytes: u64,
    /// A segment is closed and a new one started when the next record would take it past this.
    pub segment_bytes: u64,
    /// The spool fsyncs once this much time has passed since the last fsync and something was
    /// written.
    pub sync_interval: Duration,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        Self {
            dir: std::path::PathBuf::new(),
            purge_on_open: false,
            max_bytes: DEFAULT_MAX_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            sync_interval: DEFAULT_SYNC_INTERVAL,
        }
    }
}

impl SpoolOptions {
    /// A spool in `dir` (per-stream subdirectories) with default sizes.
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        SpoolOptions {
            dir: dir.into(),
            ..Self::default()
        }
    }

    /// Sets [`purge_on_open`](Self::purge_on_open).
    pub fn with_purge_on_open(mut self, on: bool) -> Self {
        self.purge_on_open = on;
        self
    }

    /// Sets the cap on bytes on disk.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Sets the segment size.
    pub fn with_segment_bytes(mut self, segment_bytes: u64) -> Self {
        self.segment_bytes = segment_bytes;
        self
    }

    /// Sets the sync interval.
    pub fn with_sync_interval(mut self, sync_interval: Duration) -> Self {
        self.sync_interval = sync_interval;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), SpoolError> {
        if self.max_bytes == 0 || self.segment_bytes == 0 {
            return Err(SpoolError::InvalidOptions("sizes must be positive"));
        }
        if self.segment_bytes > self.max_bytes {
            return Err(SpoolError::InvalidOptions(
                "segment_bytes must not exceed max_bytes",
            ));
        }
        Ok(())
    }
}
