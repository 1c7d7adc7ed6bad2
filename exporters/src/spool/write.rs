//! The write path: appending (rotation and the size cap), writing out the buffer, and syncing.

use std::io::{self, Write};
use std::time::Instant;

use uuid::Uuid;

use super::cursor;
use super::error::SpoolError;
use super::options::WRITE_BUFFER_BYTES;
use super::segment::MAX_PAYLOAD_LEN;
use super::segment::{
    encode_record, record_len, scan_segment, Scanned, SpoolItem, HEADER_LEN, ITEM_PREFIX_LEN,
};
use super::spool::{segment_path, Active, SegMeta, Spool};

impl Spool {
    /// Appends one item. See [`Spool::append_parts`].
    pub fn append(&mut self, item: &SpoolItem) -> Result<(), SpoolError> {
        self.append_parts(item.id, item.created_ms, &item.bytes)
    }

    /// Appends one item from its parts, without an intermediate [`SpoolItem`].
    ///
    /// Never blocks on a sync: the record goes into a 64 KiB in-memory buffer that is written to
    /// the file when the next record would not fit and on [`maybe_sync`](Self::maybe_sync), [`sync`](Self::sync) and
    /// [`read_batch`](Self::read_batch). When the record would take the spool past
    /// `max_bytes`, the oldest segments are deleted first (counted in
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
        let size64 = size as u64;
        if let Some(active) = &self.active {
            let used = self.segments.get(&active.number).map_or(0, |m| m.bytes);
            if used > 0 && used + size64 > self.opts.segment_bytes {
                self.seal_active()?;
            }
        }
        self.make_room(size64)?;
        if self.active.is_none() {
            self.start_segment()?;
        }
        // Write out earlier appends first, so a failure never involves this item: it is either
        // buffered (`Ok`) or not (`Err`); earlier `Ok`s that fail go to `take_unstored`.
        if self.write_buf.len() + size > WRITE_BUFFER_BYTES {
            self.flush_writes()?;
        }
        let number = self.active.as_ref().map_or(0, |a| a.number);
        encode_record(&id, created_ms, bytes, &mut self.write_buf);
        self.buffered_records += 1;
        let meta = self.segments.entry(number).or_default();
        meta.bytes += size64;
        meta.items += 1;
        self.stats.pending_items += 1;
        self.data_unsynced = true;
        Ok(())
    }

    /// Deletes the oldest segments until `size` more bytes fit under the cap.
    fn make_room(&mut self, size: u64) -> Result<(), SpoolError> {
        while self.total_bytes() + size > self.opts.max_bytes {
            let Some((&oldest, _)) = self.segments.iter().next() else {
                break;
            };
            if self.active.as_ref().is_some_and(|a| a.number == oldest) {
                self.seal_active()?;
            }
            self.drop_segment_by_cap(oldest);
        }
        Ok(())
    }

    fn start_segment(&mut self) -> Result<(), SpoolError> {
        let number = self.next_segment;
        let file = crate::private_fs::file_options()
            .create_new(true)
            .append(true)
            .open(segment_path(&self.dir, number))
            .inspect_err(|e| {
                self.write_error = Some(e.to_string());
                self.count_io_error("create a segment");
            })?;
        self.next_segment += 1;
        self.segments.insert(number, SegMeta::default());
        self.active = Some(Active {
            number,
            file,
            flushed: 0,
        });
        self.dir_unsynced = true;
        Ok(())
    }

    /// Writes out the buffer and closes the active segment (its fsync is left to the next sync).
    pub(super) fn seal_active(&mut self) -> Result<(), SpoolError> {
        self.flush_writes()?;
        if let Some(active) = self.active.take() {
            self.unsynced_files.push(active.file);
        }
        Ok(())
    }

    /// Writes the in-memory buffer to the active segment (no fsync). After this a process kill
    /// cannot lose the buffered items. On failure the segment is cut back to its last whole
    /// record and closed (deleted when it holds nothing), and the buffered items are kept for
    /// [`take_unstored`](Self::take_unstored) and counted in `write_failed_items`.
    pub(super) fn flush_writes(&mut self) -> Result<(), SpoolError> {
        if self.write_buf.is_empty() {
            return Ok(());
        }
        let Some(active) = self.active.as_mut() else {
            // Unreachable in practice (buffered records always have an active segment); never
            // lose them silently all the same.
            self.unstore_buffer();
            return Ok(());
        };
        match active.file.write_all(&self.write_buf) {
            Ok(()) => {
                active.flushed += self.write_buf.len() as u64;
                self.write_buf.clear();
                self.buffered_records = 0;
                Ok(())
            }
            Err(e) => {
                let active = self.active.take().expect("checked above");
                // Best effort: cut off a partial write so the file ends on a record boundary.
                // If that fails too, readers skip the torn tail as damage (and a later open may
                // replay those records as duplicates, with their ids: never a loss).
                let _ = active.file.set_len(active.flushed);
                let lost = self.buffered_records;
                let number = active.number;
                if let Some(meta) = self.segments.get_mut(&number) {
                    meta.bytes = active.flushed;
                    meta.items = meta.items.saturating_sub(lost);
                }
                if self.segments.get(&number).is_some_and(|m| m.bytes == 0) {
                    // Nothing of it is stored: remove it rather than leave empty files behind.
                    drop(active);
                    self.segments.remove(&number);
                    let _ = std::fs::remove_file(segment_path(&self.dir, number));
                    self.dir_unsynced = true;
                } else {
                    self.unsynced_files.push(active.file);
                }
                self.stats.pending_items = self.stats.pending_items.saturating_sub(lost);
                self.unstore_buffer();
                // Not logged here: nothing is lost yet (the caller takes the items back and
                // reports the failure once); later I/O failures are only counted.
                self.stats.io_errors += 1;
                self.warned.io = true;
                self.write_error = Some(e.to_string());
                Err(e.into())
            }
        }
    }

    /// Moves every record of the write buffer to `unstored` (they are whole, valid records).
    fn unstore_buffer(&mut self) {
        for step in scan_segment(&self.write_buf) {
            if let Scanned::Record { item, .. } = step {
                self.unstored.push(item);
                self.stats.write_failed_items += 1;
            }
        }
        self.write_buf.clear();
        self.buffered_records = 0;
    }

    /// Items that [`append`](Self::append) accepted into its buffer but that could not be
    /// written to the file afterwards (disk full, I/O error), oldest first, with their ids,
    /// times and bytes. The spool no longer holds them: the caller keeps them (in memory) or
    /// counts them as dropped. Empty when nothing failed.
    pub fn take_unstored(&mut self) -> Vec<SpoolItem> {
        std::mem::take(&mut self.unstored)
    }

    /// The error of the last failed write of appended items (e.g. "No space left on device").
    pub fn last_write_error(&self) -> Option<&str> {
        self.write_error.as_deref()
    }

    pub(super) fn count_io_error(&mut self, what: &str) {
        self.stats.io_errors += 1;
        if !self.warned.io {
            self.warned.io = true;
            tracing::warn!(dir = %self.dir.display(), "spool: failed to {what}; counting further failures silently");
        }
    }

    /// Writes buffered appends to the file, then fsyncs if `sync_interval` has passed since the
    /// last fsync and anything changed. Call it after each batch of appends or acks and on a
    /// timer: the write-out bounds what a process kill can lose, the fsync what power loss can.
    pub fn maybe_sync(&mut self, now: Instant) -> Result<(), SpoolError> {
        self.flush_writes()?;
        let dirty = self.data_unsynced || self.cursor_unsynced || self.dir_unsynced;
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
        !self.write_buf.is_empty()
            || self.data_unsynced
            || self.cursor_unsynced
            || self.dir_unsynced
    }

    /// Makes everything durable now: buffered appends are written and fsynced, new and deleted
    /// segment files are made durable in the directory, and the cursor is rewritten with an
    /// fsync. Call it on flush and shutdown.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        self.flush_writes()?;
        let result = self.sync_all();
        if result.is_err() {
            self.count_io_error("fsync");
        }
        result.map_err(SpoolError::from)
    }

    fn sync_all(&mut self) -> io::Result<()> {
        if self.data_unsynced {
            for file in &self.unsynced_files {
                self.stats.fsyncs += 1;
                file.sync_data()?;
            }
            self.unsynced_files.clear();
            if let Some(active) = &self.active {
                self.stats.fsyncs += 1;
                active.file.sync_data()?;
            }
            self.data_unsynced = false;
        }
        if self.cursor_unsynced {
            // The new cursor file and the directory holding its rename.
            self.stats.fsyncs += 2;
            cursor::write(&self.dir, self.cursor, true)?;
            self.cursor_unsynced = false;
            self.dir_unsynced = false;
        }
        if self.dir_unsynced {
            self.stats.fsyncs += 1;
            cursor::sync_dir(&self.dir)?;
            self.dir_unsynced = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::{Spool, SpoolItem, SpoolOptions};

    #[test]
    fn fsyncs_are_counted_and_a_clean_spool_makes_none() {
        let dir = std::env::temp_dir().join(format!("cl-fsyncs-{}", uuid::Uuid::new_v4()));
        let opts = SpoolOptions::default().with_sync_interval(Duration::from_secs(3600));
        let mut spool = Spool::open(&dir, opts).unwrap();
        // Opening a fresh directory syncs nothing yet.
        let at_open = spool.stats().fsyncs;
        spool
            .append(&SpoolItem::new(uuid::Uuid::now_v7(), 1, b"{}".to_vec()))
            .unwrap();
        // Inside the interval: written out, not fsynced.
        spool.maybe_sync(Instant::now()).unwrap();
        assert_eq!(spool.stats().fsyncs, at_open);
        // A sync of new data: the segment's data and the directory holding the new file.
        spool.sync().unwrap();
        let after_append = spool.stats().fsyncs;
        assert_eq!(after_append, at_open + 2);
        // Nothing changed since: no fsync at all, however often it is asked.
        spool.sync().unwrap();
        spool
            .maybe_sync(Instant::now() + Duration::from_secs(7200))
            .unwrap();
        assert_eq!(spool.stats().fsyncs, after_append);
        // An acknowledgement: the cursor file and its directory.
        let batch = spool.read_batch(10, 1 << 20).unwrap();
        spool.ack(batch.last().unwrap().0).unwrap();
        spool.sync().unwrap();
        assert_eq!(spool.stats().fsyncs, after_append + 2);
        drop(spool);
        std::fs::remove_dir_all(&dir).ok();
    }
}
