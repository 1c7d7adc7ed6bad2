//! The [`Spool`]: a writer, a reader and the ledger they share, behind one API.
//!
//! Each part owns its state and its file: the [writer](super::writer) the active segment and
//! the write buffer, the [reader](super::reader) the read position and what it handed out, the
//! [ledger](super::ledger) the segment table, the cursor and the counters. This file only opens
//! the three and passes each call to the part it concerns; the one thing that needs all three,
//! making room under the cap, is here.

use std::path::{Path, PathBuf};
use std::time::Instant;

use uuid::Uuid;

use super::cursor::{self, Position};
use super::error::SpoolError;
use super::ledger::Ledger;
use super::lock::{claim_dir, DirLock};
use super::options::SpoolOptions;
use super::reader::{CapLosses, Reader};
use super::segment::{record_len, SpoolItem, HEADER_LEN, ITEM_PREFIX_LEN, MAX_PAYLOAD_LEN};
use super::stats::{AdoptionCounts, Recovery, SpoolStats};
use super::writer::Writer;

/// A durable, size-capped, append-only spool for one stream. See the module docs (`spool/mod.rs`).
pub struct Spool {
    dir: PathBuf,
    opts: SpoolOptions,
    _lock: DirLock,
    ledger: Ledger,
    writer: Writer,
    reader: Reader,
    recovery: Recovery,
    last_sync: Instant,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("opts", &self.opts)
            .field("cursor", &self.ledger.cursor)
            .field("read", &self.reader.position())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
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
        let lock = claim_dir(&dir)?;
        let (status, start) = cursor::restore(&dir);
        let (ledger, highest) = Ledger::scan(&dir, opts.max_bytes, start)?;
        let recovery = Recovery {
            cursor: status,
            items_to_replay: ledger.stats.pending_items,
            segments_found: ledger.segments.len(),
        };
        Ok(Spool {
            dir,
            opts,
            _lock: lock,
            ledger,
            writer: Writer::new(highest.max(start.segment) + 1),
            reader: Reader::new(start),
            recovery,
            last_sync: Instant::now(),
        })
    }

    /// The directory this spool lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options this spool was opened with.
    pub fn options(&self) -> &SpoolOptions {
        &self.opts
    }

    /// What opening found: cursor state and how many items will be replayed.
    pub fn recovery(&self) -> Recovery {
        self.recovery
    }

    /// Live counters.
    pub fn stats(&self) -> SpoolStats {
        self.ledger.stats()
    }

    /// The acknowledgement cursor: everything before it has been delivered.
    pub fn ack_position(&self) -> Position {
        self.ledger.cursor
    }

    /// Appends one item. See [`Spool::append_parts`].
    pub fn append(&mut self, item: &SpoolItem) -> Result<(), SpoolError> {
        self.append_parts(item.id, item.created_ms, &item.bytes)
    }

    /// Appends one item from its parts, without an intermediate [`SpoolItem`].
    ///
    /// Never blocks on a sync: the record goes into a 64 KiB in-memory buffer that is written to
    /// the file when the next record would not fit and on [`maybe_sync`](Self::maybe_sync),
    /// [`sync`](Self::sync) and [`read_batch`](Self::read_batch). When the record would take
    /// the spool past `max_bytes`, the oldest segments are deleted first (counted in
    /// [`dropped_by_cap`](super::SpoolStats::dropped_by_cap)); the new item is never the one
    /// dropped.
    ///
    /// Errors: [`SpoolError::ItemTooLarge`], [`SpoolError::Io`]: this item is not stored. When
    /// writing the buffer out fails (disk full, I/O error), whatever was still buffered is not
    /// stored either: it is counted in
    /// [`write_failed_items`](super::SpoolStats::write_failed_items) and handed back by
    /// [`take_unstored`](Self::take_unstored), so the caller can keep it in memory.
    pub fn append_parts(
        &mut self,
        id: Uuid,
        created_ms: u64,
        bytes: &[u8],
    ) -> Result<(), SpoolError> {
        let size = record_len(bytes.len());
        let limit = (HEADER_LEN + MAX_PAYLOAD_LEN).min(self.opts.max_bytes as usize);
        if size > limit || ITEM_PREFIX_LEN + bytes.len() > MAX_PAYLOAD_LEN {
            return Err(SpoolError::ItemTooLarge { size, limit });
        }
        self.writer
            .rotate_for(&mut self.ledger, size as u64, self.opts.segment_bytes)?;
        self.make_room(size as u64)?;
        self.writer
            .push(&mut self.ledger, &id, created_ms, bytes, size)?;
        self.reader.appended();
        Ok(())
    }

    /// Deletes the oldest segments until `size` more bytes fit under the cap: the ledger counts
    /// the loss and moves the cursor, the reader forgets what it handed out of them.
    fn make_room(&mut self, size: u64) -> Result<(), SpoolError> {
        while self.ledger.total_bytes() + size > self.opts.max_bytes {
            let Some(&oldest) = self.ledger.segments.keys().next() else {
                break;
            };
            if self.writer.active_segment() == Some(oldest) {
                self.writer.seal(&mut self.ledger)?;
            }
            let lost = self.ledger.drop_by_cap(oldest);
            self.reader.segment_dropped(oldest, lost);
        }
        Ok(())
    }

    /// Items that [`append`](Self::append) accepted into its buffer but that could not be
    /// written to the file afterwards (disk full, I/O error), oldest first, with their ids,
    /// times and bytes. The spool no longer holds them: the caller keeps them (in memory) or
    /// counts them as dropped. Empty when nothing failed.
    pub fn take_unstored(&mut self) -> Vec<SpoolItem> {
        self.writer.take_unstored()
    }

    /// The error of the last failed write of appended items (e.g. "No space left on device").
    pub fn last_write_error(&self) -> Option<&str> {
        self.writer.last_error()
    }

    /// Reads up to `max_items` items forward from the read position, stopping early once their
    /// bytes reach `max_bytes` (at least one item is returned when any is pending, however big).
    ///
    /// Each item comes with the [`Position`] just past its record: pass the last one to
    /// [`ack`](Self::ack) once the batch is delivered (or counted as dropped). The read position
    /// starts at the ack cursor when the spool opens (that is the replay), moves forward with
    /// every call, and goes back to the cursor on [`rewind`](Self::rewind). Damaged records are
    /// skipped and counted. An empty result means nothing is pending past the read position.
    pub fn read_batch(
        &mut self,
        max_items: usize,
        max_bytes: usize,
    ) -> Result<Vec<(Position, SpoolItem)>, SpoolError> {
        // Counted inside; whatever reached the file is still readable.
        let _ = self.writer.flush(&mut self.ledger);
        let active = self.writer.active_segment();
        self.reader
            .read_batch(&mut self.ledger, active, max_items, max_bytes)
    }

    /// Moves the read position back to the ack cursor, so the next
    /// [`read_batch`](Self::read_batch) re-reads everything not yet acknowledged (e.g. after a
    /// failed send).
    pub fn rewind(&mut self) {
        self.reader.rewind(self.ledger.cursor);
    }

    /// Acknowledges every handed-out item whose position is at most `up_to` (pass the position
    /// of the last item of a delivered batch): the cursor moves just past the last of them
    /// (never backwards, never past what `read_batch` handed out, always onto a record
    /// boundary), the cursor file is replaced atomically (fsynced at the next sync), and fully
    /// acknowledged segments are deleted. Ack after a 2xx, or after the engine dropped and
    /// counted the items. Nothing to acknowledge is a no-op.
    pub fn ack(&mut self, up_to: Position) -> Result<(), SpoolError> {
        let active = self.writer.active_segment();
        self.reader.ack(&mut self.ledger, active, up_to)
    }

    /// Acknowledges exactly the handed-out items at `positions` (each the position
    /// [`read_batch`](Self::read_batch) returned with it), in any order.
    ///
    /// Unlike [`ack`](Self::ack), this never covers an item it was not given: the cursor moves
    /// only over the gap-free run of acknowledged items from the oldest one handed out. An item
    /// acknowledged while an earlier one is still outstanding (e.g. an expired item dropped
    /// while a fresher, earlier one is still being sent) is remembered and covered once every
    /// earlier item is acknowledged too; until then a restart replays it (a duplicate, never a
    /// loss). Positions not handed out (or already acknowledged) are ignored.
    pub fn ack_items(
        &mut self,
        positions: impl IntoIterator<Item = Position>,
    ) -> Result<(), SpoolError> {
        let active = self.writer.active_segment();
        self.reader.ack_items(&mut self.ledger, active, positions)
    }

    /// Like [`ack_items`](Self::ack_items), for the handed-out items with these ids (ids not
    /// handed out, or already acknowledged, are ignored). Returns how many were acknowledged;
    /// an error (the cursor file could not be replaced) means some were.
    pub(crate) fn ack_ids(
        &mut self,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> Result<usize, SpoolError> {
        let active = self.writer.active_segment();
        self.reader.ack_ids(&mut self.ledger, active, ids)
    }

    /// Acknowledges everything handed out so far.
    pub(crate) fn ack_all_read(&mut self) -> Result<(), SpoolError> {
        let active = self.writer.active_segment();
        self.reader.ack_all(&mut self.ledger, active)
    }

    /// Items stored and not yet handed out by [`read_batch`](Self::read_batch) (zero once it
    /// has read to the end of what is written, and after a failed read until the next append).
    pub(crate) fn unread_items(&self) -> u64 {
        self.reader.unread(&self.ledger)
    }

    /// What the cap deleted since the last call: how many unacknowledged items, and which of
    /// them had been handed out.
    pub(crate) fn take_cap_losses(&mut self) -> CapLosses {
        self.reader.take_cap_losses()
    }

    /// Writes buffered appends to the file, then fsyncs if `sync_interval` has passed since the
    /// last fsync and anything changed. Call it after each batch of appends or acks and on a
    /// timer: the write-out bounds what a process kill can lose, the fsync what power loss can.
    pub fn maybe_sync(&mut self, now: Instant) -> Result<(), SpoolError> {
        self.writer.flush(&mut self.ledger)?;
        let dirty =
            self.writer.is_dirty() || self.ledger.cursor_unsynced || self.ledger.dir_unsynced;
        if dirty && now.saturating_duration_since(self.last_sync) >= self.opts.sync_interval {
            self.sync()?;
        }
        Ok(())
    }

    /// When the last fsync round ended (or the spool was opened).
    pub(crate) fn last_sync(&self) -> Instant {
        self.last_sync
    }

    /// Whether anything appended, acknowledged or created is not yet fsynced.
    pub(crate) fn needs_sync(&self) -> bool {
        self.writer.is_dirty() || self.ledger.cursor_unsynced || self.ledger.dir_unsynced
    }

    /// Makes everything durable now: buffered appends are written and fsynced, new and deleted
    /// segment files are made durable in the directory, and the cursor is rewritten with an
    /// fsync. Call it on flush and shutdown.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        self.writer.flush(&mut self.ledger)?;
        let result = self
            .writer
            .sync_data(&mut self.ledger)
            .and_then(|()| self.ledger.sync_cursor_and_dir());
        if result.is_err() {
            self.ledger.count_io_error("fsync");
        } else {
            self.last_sync = Instant::now();
        }
        result.map_err(SpoolError::from)
    }

    /// Counts into this spool what adopting `pid-<pid>` directories did (see `adopt.rs`): the
    /// directories and records moved, the damage skipped in them and the records too large for
    /// this spool's cap; the items to replay then include the adopted ones.
    pub(super) fn count_adoption(&mut self, adopted: AdoptionCounts) {
        let stats = &mut self.ledger.stats;
        stats.adopted_dirs += adopted.dirs;
        stats.adopted_items += adopted.items;
        stats.corrupt_regions_skipped += adopted.damaged_regions;
        stats.corrupt_bytes_skipped += adopted.damaged_bytes;
        stats.dropped_by_cap += adopted.too_large;
        self.recovery.items_to_replay = stats.pending_items;
    }
}

impl Drop for Spool {
    /// Writes buffered appends to the file (no fsync: call [`Spool::sync`] for that).
    fn drop(&mut self) {
        let _ = self.writer.flush(&mut self.ledger);
    }
}
