//! The ledger: what the writer and the reader share, and nothing either keeps for itself.
//!
//! It holds the segment table (bytes, records and acknowledged records of every segment file),
//! the acknowledgement cursor, the counters of [`SpoolStats`], the first-of-a-kind warnings, and
//! what the directory and the cursor file still need to have fsynced. The writer adds records
//! and segments to it; the reader counts acknowledgements and damage in it and moves the
//! cursor; both delete segment files through it. Building one is the scan step of
//! [`Spool::open`](super::Spool::open): list the segments, delete those wholly before the cursor
//! and the empty ones, and count the records of the rest.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::cursor::{CursorFile, Position};
use super::error::SpoolError;
use super::segment::{scan_segment, Scanned};
use super::stats::SpoolStats;

/// Book-keeping for one segment file.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SegMeta {
    /// Logical size: bytes written plus, for the active segment, bytes still buffered.
    pub(super) bytes: u64,
    /// Valid records in the segment.
    pub(super) items: u64,
    /// Of those, how many are acknowledged.
    pub(super) acked: u64,
}

/// Which first-of-a-kind warnings were logged.
#[derive(Debug, Default)]
struct Warned {
    damage: bool,
    cap: bool,
    io: bool,
}

/// The state the writer and the reader share. See the [module docs](self).
#[derive(Debug)]
pub(super) struct Ledger {
    dir: PathBuf,
    /// The cap, for the warning when it first drops items.
    max_bytes: u64,
    /// Every segment file, by number.
    pub(super) segments: BTreeMap<u64, SegMeta>,
    /// Everything before this is acknowledged.
    pub(super) cursor: Position,
    /// Counters; `bytes_on_disk` and `segments` are computed by [`Ledger::stats`].
    pub(super) stats: SpoolStats,
    warned: Warned,
    /// Segment files were created or deleted since the last directory fsync.
    pub(super) dir_unsynced: bool,
    /// The cursor file was rewritten since its last fsync.
    pub(super) cursor_unsynced: bool,
    /// The cursor file, overwritten in place.
    cursor_file: CursorFile,
}

/// The path of segment `number` in `dir`.
pub(super) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:012}.seg"))
}

/// The number of a segment file from its name (`{number:012}.seg`), if it is one.
pub(super) fn segment_number(name: &std::ffi::OsStr) -> Option<u64> {
    let stem = name.to_str()?.strip_suffix(".seg")?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

impl Ledger {
    /// Scans `dir` for segments from the replay start `start` (the cursor): deletes segments
    /// wholly before it and empty ones, and counts the valid records of the rest (those before
    /// `start` in its segment as acknowledged). Also returns the highest segment number seen,
    /// deleted ones included, so that numbers are never reused.
    pub(super) fn scan(
        dir: &Path,
        max_bytes: u64,
        start: Position,
    ) -> Result<(Ledger, u64), SpoolError> {
        let mut numbers = Vec::new();
        let unusable = |source| SpoolError::Unusable {
            dir: dir.to_path_buf(),
            source,
        };
        for entry in fs::read_dir(dir).map_err(unusable)? {
            let entry = entry.map_err(unusable)?;
            if let Some(n) = segment_number(&entry.file_name()) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();

        let mut segments = BTreeMap::new();
        let mut dir_unsynced = false;
        for &n in &numbers {
            let path = segment_path(dir, n);
            if n < start.segment {
                let _ = fs::remove_file(&path);
                dir_unsynced = true;
                continue;
            }
            let data = fs::read(&path)?;
            if data.is_empty() {
                let _ = fs::remove_file(&path);
                dir_unsynced = true;
                continue;
            }
            segments.insert(n, count_records(&data, n, start));
        }
        let pending_items = segments.values().map(|m| m.items - m.acked).sum();
        let ledger = Ledger {
            dir: dir.to_path_buf(),
            max_bytes,
            segments,
            cursor: start,
            stats: SpoolStats {
                pending_items,
                ..SpoolStats::default()
            },
            warned: Warned::default(),
            dir_unsynced,
            cursor_unsynced: false,
            cursor_file: CursorFile::default(),
        };
        Ok((ledger, numbers.last().copied().unwrap_or(0)))
    }

    /// The spool's directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The counters, with the bytes and segments on disk filled in.
    pub(super) fn stats(&self) -> SpoolStats {
        SpoolStats {
            bytes_on_disk: self.total_bytes(),
            segments: self.segments.len(),
            ..self.stats
        }
    }

    /// Bytes of all segment files, buffered appends included.
    pub(super) fn total_bytes(&self) -> u64 {
        self.segments.values().map(|m| m.bytes).sum()
    }

    /// Counts one failed file operation; the first is logged.
    pub(super) fn count_io_error(&mut self, what: &str) {
        self.stats.io_errors += 1;
        if !self.warned.io {
            self.warned.io = true;
            tracing::warn!(dir = %self.dir.display(), "spool: failed to {what}; counting further failures silently");
        }
    }

    /// Counts a failed write of appended items without logging it: nothing is lost yet (the
    /// caller takes the items back and reports the failure once); later failures are only
    /// counted.
    pub(super) fn count_write_failure(&mut self) {
        self.stats.io_errors += 1;
        self.warned.io = true;
    }

    /// Counts one damaged stretch of `bytes` bytes; the first is logged.
    pub(super) fn count_damage(&mut self, bytes: u64) {
        self.stats.corrupt_regions_skipped += 1;
        self.stats.corrupt_bytes_skipped += bytes;
        if !self.warned.damage {
            self.warned.damage = true;
            tracing::warn!(dir = %self.dir.display(), bytes, "spool: skipped damaged records");
        }
    }

    /// Counts one item at `p` as acknowledged (no longer pending).
    pub(super) fn count_acked(&mut self, p: Position) {
        if let Some(meta) = self.segments.get_mut(&p.segment) {
            meta.acked += 1;
            self.stats.pending_items = self.stats.pending_items.saturating_sub(1);
        }
    }

    /// Moves the cursor to `to`, deletes the segments now wholly before it (except `active`,
    /// the one being appended to), and overwrites the cursor file (fsynced at the next sync).
    pub(super) fn advance_cursor(
        &mut self,
        to: Position,
        active: Option<u64>,
    ) -> Result<(), SpoolError> {
        self.cursor = to;
        self.delete_acked_segments(active);
        self.cursor_unsynced = true;
        self.write_cursor().inspect_err(|_| {
            self.count_io_error("write the cursor");
        })?;
        Ok(())
    }

    /// Overwrites the cursor file with the cursor; a newly created file needs a directory fsync.
    fn write_cursor(&mut self) -> std::io::Result<()> {
        if self.cursor_file.write(&self.dir, self.cursor)? {
            self.dir_unsynced = true;
        }
        Ok(())
    }

    /// Fsyncs the cursor file and the directory, if they changed since their last fsync (each
    /// fsync counts in `fsyncs`).
    pub(super) fn sync_cursor_and_dir(&mut self) -> std::io::Result<()> {
        if self.cursor_unsynced {
            // Written again (a page-cache write; it redoes an ack's failed one), then fsynced.
            self.write_cursor()?;
            self.stats.fsyncs += 1;
            self.cursor_file.sync()?;
            self.cursor_unsynced = false;
        }
        if self.dir_unsynced {
            self.stats.fsyncs += 1;
            crate::private_fs::sync_dir(&self.dir)?;
            self.dir_unsynced = false;
        }
        Ok(())
    }

    /// Deletes the segments that lie wholly before the cursor, except `active` (the one being
    /// appended to).
    fn delete_acked_segments(&mut self, active: Option<u64>) {
        let cursor = self.cursor;
        let done: Vec<u64> = self
            .segments
            .iter()
            .take_while(|(&n, meta)| {
                n < cursor.segment
                    || (n == cursor.segment && cursor.offset >= meta.bytes && Some(n) != active)
            })
            .map(|(&n, _)| n)
            .collect();
        for n in done {
            // A segment another program holds open cannot be deleted on Windows: it stays
            // listed (and counted on disk) and the next acknowledgement tries again.
            if !self.remove_file(n) {
                continue;
            }
            if let Some(meta) = self.segments.remove(&n) {
                // Normally zero; corrects the count if the file held fewer records than known.
                let unread = meta.items.saturating_sub(meta.acked);
                self.stats.pending_items = self.stats.pending_items.saturating_sub(unread);
            }
        }
    }

    /// Deletes segment `n` to make room, counting its unacknowledged items as dropped by the
    /// cap, and moves the cursor past it. Returns how many items were lost.
    pub(super) fn drop_by_cap(&mut self, n: u64) -> u64 {
        let Some(meta) = self.segments.remove(&n) else {
            return 0;
        };
        let lost = meta.items.saturating_sub(meta.acked);
        self.stats.dropped_by_cap += lost;
        self.stats.pending_items = self.stats.pending_items.saturating_sub(lost);
        if lost > 0 && !self.warned.cap {
            self.warned.cap = true;
            tracing::warn!(
                dir = %self.dir.display(),
                lost,
                max_bytes = self.max_bytes,
                "spool: cap reached, oldest segment deleted"
            );
        }
        self.cursor = self.cursor.max(Position::new(n + 1, 0));
        // Left in place when it cannot be deleted now: it is before the cursor, so the next
        // open deletes it.
        self.remove_file(n);
        lost
    }

    /// Deletes the file of segment `n`; false when it is still there (an I/O error, counted).
    pub(super) fn remove_file(&mut self, n: u64) -> bool {
        match fs::remove_file(segment_path(&self.dir, n)) {
            Ok(()) => self.dir_unsynced = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => {
                self.count_io_error("delete a segment");
                return false;
            }
        }
        true
    }
}

/// Counts the valid records of segment `n`, those ending at or before `start` (when it is in
/// this segment) as acknowledged.
fn count_records(data: &[u8], n: u64, start: Position) -> SegMeta {
    let mut meta = SegMeta {
        bytes: data.len() as u64,
        ..SegMeta::default()
    };
    for step in scan_segment(data) {
        if let Scanned::Record { end, .. } = step {
            meta.items += 1;
            if n == start.segment && end as u64 <= start.offset {
                meta.acked += 1;
            }
        }
    }
    meta
}
