//! Spool options and their defaults.

use std::time::Duration;

use super::error::SpoolError;

/// Default cap on a stream's spool: 64 MiB of segment files.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Default segment size before rotation: 1 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 1024 * 1024;
/// Default longest time appended data waits before an fsync: 3 s (the durability window for
/// power loss or an OS crash; a process kill loses nothing written out). A desktop app emitting
/// an event a second then fsyncs about every 3 s, not every second: each fsync costs the disk
/// a flush and the worker about three context switches.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(3);
/// Appends are buffered in memory up to this many bytes before being written to the file.
pub(crate) const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// How a spool sizes and syncs its files.
///
/// Defaults: `max_bytes` = [`DEFAULT_MAX_BYTES`] (64 MiB), `segment_bytes` =
/// [`DEFAULT_SEGMENT_BYTES`] (1 MiB), `sync_interval` = [`DEFAULT_SYNC_INTERVAL`] (3 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolOptions {
    /// Cap on the bytes of all segment files. Appending past it deletes the oldest segment.
    pub max_bytes: u64,
    /// A segment is closed and a new one started when the next record would take it past this.
    pub segment_bytes: u64,
    /// [`Spool::maybe_sync`](super::Spool::maybe_sync) fsyncs once this much time has passed
    /// since the last fsync and something was written.
    pub sync_interval: Duration,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            sync_interval: DEFAULT_SYNC_INTERVAL,
        }
    }
}

impl SpoolOptions {
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
