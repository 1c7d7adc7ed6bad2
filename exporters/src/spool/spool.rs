//! The [`Spool`] itself: opening (recovery), appending (rotation and the cap) and syncing.
//! Reading and acknowledging live in `read.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::cursor::{self, CursorStatus, Position};
use super::error::SpoolError;
use super::lock::{lock_dir, DirLock};
use super::options::{SpoolOptions, WRITE_BUFFER_BYTES};
use super::segment::{scan_segment, Scanned};
use super::stats::{Recovery, SpoolStats};

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

/// The segment being appended to.
#[derive(Debug)]
pub(super) struct Active {
    pub(super) number: u64,
    pub(super) file: File,
    /// Bytes actually written to the file (the rest of `SegMeta::bytes` is in `write_buf`).
    pub(super) flushed: u64,
}

/// The bytes of one segment, loaded for reading.
#[derive(Debug, Default)]
pub(super) struct ReadBuf {
    pub(super) segment: u64,
    pub(super) base: u64,
    pub(super) data: Vec<u8>,
}

/// A durable, size-capped, append-only spool for one stream. See the [module docs](super).
pub struct Spool {
    pub(super) dir: PathBuf,
    pub(super) opts: SpoolOptions,
    _lock: DirLock,
    pub(super) segments: BTreeMap<u64, SegMeta>,
    pub(super) active: Option<Active>,
    pub(super) next_segment: u64,
    pub(super) write_buf: Vec<u8>,
    pub(super) buffered_records: u64,
    /// Buffered records whose write failed, for [`Spool::take_unstored`].
    pub(super) unstored: Vec<super::segment::SpoolItem>,
    /// The error of the last failed write of appended items.
    pub(super) write_error: Option<String>,
    /// Sealed segment files whose data is not yet fsynced.
    pub(super) unsynced_files: Vec<File>,
    pub(super) data_unsynced: bool,
    pub(super) dir_unsynced: bool,
    pub(super) cursor_unsynced: bool,
    pub(super) last_sync: Instant,
    /// Everything before this is acknowledged.
    pub(super) cursor: Position,
    /// Where the next `read_batch` starts.
    pub(super) read: Position,
    /// Positions handed out by `read_batch` and not yet acknowledged, ascending.
    pub(super) handed_out: VecDeque<Position>,
    /// Handed-out positions acknowledged by [`Spool::ack_items`] while an earlier one is not.
    pub(super) acked_ahead: BTreeSet<Position>,
    pub(super) read_buf: ReadBuf,
    /// Damage before this position has been counted already.
    pub(super) damage_counted_until: Position,
    pub(super) stats: SpoolStats,
    pub(super) warned: Warned,
    pub(super) recovery: Recovery,
}

/// Which first-of-a-kind warnings were logged.
#[derive(Debug, Default)]
pub(super) struct Warned {
    pub(super) damage: bool,
    pub(super) cap: bool,
    pub(super) io: bool,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("opts", &self.opts)
            .field("cursor", &self.cursor)
            .field("read", &self.read)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

pub(super) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:012}.seg"))
}

pub(super) fn segment_number(name: &std::ffi::OsStr) -> Option<u64> {
    let stem = name.to_str()?.strip_suffix(".seg")?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir` and takes its lock.
    ///
    /// Replay starts at the acknowledgement cursor; without a valid cursor it starts at the
    /// oldest segment ([`Spool::recovery`] says which). Fully acknowledged segments are deleted.
    /// Appends always go to a new segment, so a torn tail left by a crash is never appended to.
    /// Opening reads each kept segment once, to count the items to replay (at most the cap).
    ///
    /// Errors: [`SpoolError::Locked`] when another process holds the directory,
    /// [`SpoolError::Unusable`] when it cannot be created, listed or locked,
    /// [`SpoolError::Refused`] when it is not private to this user (Unix: another owner, or
    /// writable by group or others; see [`crate::private_fs`]),
    /// [`SpoolError::Io`] when a segment cannot be read, [`SpoolError::InvalidOptions`].
    pub fn open(dir: impl AsRef<Path>, opts: SpoolOptions) -> Result<Spool, SpoolError> {
        opts.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let unusable = |source| SpoolError::Unusable {
            dir: dir.clone(),
            source,
        };
        crate::private_fs::create_dir_all(&dir).map_err(unusable)?;
        crate::private_fs::check_private_dir(&dir).map_err(|reason| SpoolError::Refused {
            dir: dir.clone(),
            reason,
        })?;
        let lock = lock_dir(&dir)?;
        let _ = fs::remove_file(dir.join(cursor::CURSOR_TMP));

        let mut numbers = Vec::new();
        for entry in fs::read_dir(&dir).map_err(unusable)? {
            let entry = entry.map_err(unusable)?;
            if let Some(n) = segment_number(&entry.file_name()) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();

        let status = cursor::read(&dir);
        let start = match status {
            CursorStatus::Restored(p) => p,
            CursorStatus::Absent | CursorStatus::Corrupt => Position::default(),
        };
        if status == CursorStatus::Corrupt {
            tracing::warn!(
                dir = %dir.display(),
                "spool cursor file is damaged; replaying from the oldest segment (items may be sent twice)"
            );
        }

        let mut segments = BTreeMap::new();
        let mut dir_unsynced = false;
        for &n in &numbers {
            let path = segment_path(&dir, n);
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
            let mut meta = SegMeta {
                bytes: data.len() as u64,
                ..SegMeta::default()
            };
            for step in scan_segment(&data) {
                if let Scanned::Record { end, .. } = step {
                    meta.items += 1;
                    if n == start.segment && end as u64 <= start.offset {
                        meta.acked += 1;
                    }
                }
            }
            segments.insert(n, meta);
        }
        let last = numbers.last().copied().unwrap_or(0);
        let items_to_replay = segments.values().map(|m| m.items - m.acked).sum();
        let recovery = Recovery {
            cursor: status,
            items_to_replay,
            segments_found: segments.len(),
        };
        Ok(Spool {
            dir,
            opts,
            _lock: lock,
            segments,
            active: None,
            next_segment: last.max(start.segment) + 1,
            write_buf: Vec::with_capacity(WRITE_BUFFER_BYTES),
            buffered_records: 0,
            unstored: Vec::new(),
            write_error: None,
            unsynced_files: Vec::new(),
            data_unsynced: false,
            dir_unsynced,
            cursor_unsynced: false,
            last_sync: Instant::now(),
            cursor: start,
            read: start,
            handed_out: VecDeque::new(),
            acked_ahead: BTreeSet::new(),
            read_buf: ReadBuf::default(),
            damage_counted_until: start,
            stats: SpoolStats {
                pending_items: items_to_replay,
                ..SpoolStats::default()
            },
            warned: Warned::default(),
            recovery,
        })
    }

    /// The directory this spool lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options this spool was opened with.
    pub fn options(&self) -> SpoolOptions {
        self.opts
    }

    /// What opening found: cursor state and how many items will be replayed.
    pub fn recovery(&self) -> Recovery {
        self.recovery
    }

    /// Live counters.
    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            bytes_on_disk: self.total_bytes(),
            segments: self.segments.len(),
            ..self.stats
        }
    }

    /// The acknowledgement cursor: everything before it has been delivered.
    pub fn ack_position(&self) -> Position {
        self.cursor
    }

    pub(super) fn total_bytes(&self) -> u64 {
        self.segments.values().map(|m| m.bytes).sum()
    }
}

impl Drop for Spool {
    /// Writes buffered appends to the file (no fsync: call [`Spool::sync`] for that).
    fn drop(&mut self) {
        let _ = self.flush_writes();
    }
}
