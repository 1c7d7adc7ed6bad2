//! What a spool reports: live counters and what it found when it was opened.

use super::cursor::CursorStatus;

/// Live counters of one spool. Every loss has its own counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Bytes of all segment files, including appends still in the write buffer.
    pub bytes_on_disk: u64,
    /// Segment files present.
    pub segments: usize,
    /// Items appended (or found on open) and not yet acknowledged, handed-out ones included.
    pub pending_items: u64,
    /// Items lost because the cap deleted the segment holding them before they were acked.
    pub dropped_by_cap: u64,
    /// Damaged stretches skipped while reading (torn, corrupt or truncated records). A stretch of
    /// adjacent damaged records counts once; re-reading after a rewind does not count again.
    pub corrupt_regions_skipped: u64,
    /// Bytes in those damaged stretches.
    pub corrupt_bytes_skipped: u64,
    /// Appended items whose write to the file failed (disk full, I/O error). They are not lost
    /// by the spool: [`Spool::take_unstored`](super::Spool::take_unstored) hands them back (the
    /// delivery engine keeps them in memory).
    pub write_failed_items: u64,
    /// Failed file operations of any kind (writes, fsyncs, deletions, cursor updates).
    pub io_errors: u64,
    /// Records moved in on open from `pid-<pid>` directories left by earlier processes (counted
    /// as appended; the cap may drop some of them like any other item).
    pub adopted_items: u64,
    /// `pid-<pid>` directories adopted on open and then removed.
    pub adopted_dirs: u64,
    /// fsync / fdatasync calls made so far (segment data, the cursor file and the directory
    /// each count one): what the spool costs a laptop's disk and battery. Zero while nothing
    /// changes; see the sync policy in the module docs (`spool/mod.rs`).
    pub fsyncs: u64,
}

/// What [`Spool::open`](super::Spool::open) found in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// The state of the acknowledgement cursor, and so where replay starts.
    pub cursor: CursorStatus,
    /// Valid items at or after the replay start: what the engine will resend. Includes what was
    /// adopted from earlier processes' `pid-<pid>` directories (see
    /// [`Spool::open_or_fallback`](super::Spool::open_or_fallback)).
    pub items_to_replay: u64,
    /// Segment files kept (not yet fully acknowledged).
    pub segments_found: usize,
}

/// What adoption adds to a spool's counters (`Spool::count_adoption`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AdoptionCounts {
    /// Directories whose records were moved and that were then removed.
    pub(super) dirs: u64,
    /// Records moved.
    pub(super) items: u64,
    /// Damaged stretches skipped in them, and their bytes.
    pub(super) damaged_regions: u64,
    pub(super) damaged_bytes: u64,
    /// Records larger than the adopting spool accepts (counted as dropped by the cap).
    pub(super) too_large: u64,
}
