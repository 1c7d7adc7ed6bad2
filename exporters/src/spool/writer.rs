//! The writer: the segment being appended to, the in-memory write buffer, the items whose
//! write failed, and the segment files whose data is not yet fsynced.
//!
//! It records every segment it starts and every record it buffers in the
//! [ledger](super::ledger), and nothing else there. Making room under the cap is not its
//! business: the [`Spool`](super::Spool) deletes the oldest segments between
//! [`Writer::rotate_for`] and [`Writer::push`], since that also concerns the reader.

use std::fs::File;
use std::io::{self, Write};

use uuid::Uuid;

use super::error::SpoolError;
use super::ledger::{segment_path, Ledger};
use super::options::WRITE_BUFFER_BYTES;
use super::segment::{encode_record, scan_segment, Scanned, SpoolItem};

/// The segment being appended to.
#[derive(Debug)]
struct Active {
    number: u64,
    file: File,
    /// Bytes actually written to the file (the rest of the segment's size is in the buffer).
    flushed: u64,
}

/// The write side of a spool. See the [module docs](self).
#[derive(Debug)]
pub(super) struct Writer {
    active: Option<Active>,
    /// The number of the next segment to start; numbers are never reused.
    next_segment: u64,
    buf: Vec<u8>,
    /// Records in `buf`.
    buffered_records: u64,
    /// Buffered records whose write failed, for [`Writer::take_unstored`].
    unstored: Vec<SpoolItem>,
    /// The error of the last failed write of appended items.
    last_error: Option<String>,
    /// Sealed segment files whose data is not yet fsynced.
    unsynced_files: Vec<File>,
    /// Data was written (or buffered) since the last fsync.
    data_unsynced: bool,
}

impl Writer {
    /// A writer that starts its first segment at `next_segment` (on the first append: opening
    /// never appends to a segment a crash may have torn).
    pub(super) fn new(next_segment: u64) -> Self {
        Writer {
            active: None,
            next_segment,
            buf: Vec::with_capacity(WRITE_BUFFER_BYTES),
            buffered_records: 0,
            unstored: Vec::new(),
            last_error: None,
            unsynced_files: Vec::new(),
            data_unsynced: false,
        }
    }

    /// The number of the segment being appended to, if any.
    pub(super) fn active_segment(&self) -> Option<u64> {
        self.active.as_ref().map(|a| a.number)
    }

    /// Whether data was written since the last fsync.
    pub(super) fn is_dirty(&self) -> bool {
        self.data_unsynced
    }

    /// Seals the active segment when a record of `size` bytes would take it past
    /// `segment_bytes` (a record never spans two segments; an empty segment takes any record).
    pub(super) fn rotate_for(
        &mut self,
        ledger: &mut Ledger,
        size: u64,
        segment_bytes: u64,
    ) -> Result<(), SpoolError> {
        if let Some(active) = &self.active {
            let used = ledger.segments.get(&active.number).map_or(0, |m| m.bytes);
            if used > 0 && used + size > segment_bytes {
                self.seal(ledger)?;
            }
        }
        Ok(())
    }

    /// Buffers one record (whose size the caller has checked), starting a segment first when
    /// none is active and writing out earlier appends when the buffer would overflow.
    pub(super) fn push(
        &mut self,
        ledger: &mut Ledger,
        id: &Uuid,
        created_ms: u64,
        bytes: &[u8],
        size: usize,
    ) -> Result<(), SpoolError> {
        if self.active.is_none() {
            self.start_segment(ledger)?;
        }
        // Write out earlier appends first, so a failure never involves this item: it is either
        // buffered (`Ok`) or not (`Err`); earlier `Ok`s that fail go to `take_unstored`.
        if self.buf.len() + size > WRITE_BUFFER_BYTES {
            self.flush(ledger)?;
        }
        let number = self.active_segment().unwrap_or(0);
        encode_record(id, created_ms, bytes, &mut self.buf);
        self.buffered_records += 1;
        let meta = ledger.segments.entry(number).or_default();
        meta.bytes += size as u64;
        meta.items += 1;
        ledger.stats.pending_items += 1;
        self.data_unsynced = true;
        Ok(())
    }

    fn start_segment(&mut self, ledger: &mut Ledger) -> Result<(), SpoolError> {
        let number = self.next_segment;
        let file = crate::private_fs::file_options()
            .create_new(true)
            .append(true)
            .open(segment_path(ledger.dir(), number))
            .inspect_err(|e| {
                self.last_error = Some(e.to_string());
                ledger.count_io_error("create a segment");
            })?;
        self.next_segment += 1;
        ledger.segments.insert(number, Default::default());
        self.active = Some(Active {
            number,
            file,
            flushed: 0,
        });
        ledger.dir_unsynced = true;
        Ok(())
    }

    /// Writes out the buffer and closes the active segment (its fsync is left to the next sync).
    pub(super) fn seal(&mut self, ledger: &mut Ledger) -> Result<(), SpoolError> {
        self.flush(ledger)?;
        if let Some(active) = self.active.take() {
            self.unsynced_files.push(active.file);
        }
        Ok(())
    }

    /// Writes the in-memory buffer to the active segment (no fsync). After this a process kill
    /// cannot lose the buffered items. On failure the segment is cut back to its last whole
    /// record and closed (deleted when it holds nothing), and the buffered items are kept for
    /// [`take_unstored`](Self::take_unstored) and counted in `write_failed_items`.
    pub(super) fn flush(&mut self, ledger: &mut Ledger) -> Result<(), SpoolError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(active) = self.active.as_mut() else {
            // Unreachable in practice (buffered records always have an active segment); never
            // lose them silently all the same.
            self.unstore_buffer(ledger);
            return Ok(());
        };
        let e = match active.file.write_all(&self.buf) {
            Ok(()) => {
                active.flushed += self.buf.len() as u64;
                self.buf.clear();
                self.buffered_records = 0;
                return Ok(());
            }
            Err(e) => e,
        };
        let active = self.active.take().expect("checked above");
        // Best effort: cut off a partial write so the file ends on a record boundary. If that
        // fails too, readers skip the torn tail as damage (and a later open may replay those
        // records as duplicates, with their ids: never a loss).
        let _ = active.file.set_len(active.flushed);
        let lost = self.buffered_records;
        let number = active.number;
        if let Some(meta) = ledger.segments.get_mut(&number) {
            meta.bytes = active.flushed;
            meta.items = meta.items.saturating_sub(lost);
        }
        if ledger.segments.get(&number).is_some_and(|m| m.bytes == 0) {
            // Nothing of it is stored: remove it rather than leave empty files behind.
            drop(active);
            ledger.segments.remove(&number);
            let _ = std::fs::remove_file(segment_path(ledger.dir(), number));
            ledger.dir_unsynced = true;
        } else {
            self.unsynced_files.push(active.file);
        }
        ledger.stats.pending_items = ledger.stats.pending_items.saturating_sub(lost);
        self.unstore_buffer(ledger);
        ledger.count_write_failure();
        self.last_error = Some(e.to_string());
        Err(e.into())
    }

    /// Moves every record of the buffer to `unstored` (they are whole, valid records).
    fn unstore_buffer(&mut self, ledger: &mut Ledger) {
        for step in scan_segment(&self.buf) {
            if let Scanned::Record { item, .. } = step {
                self.unstored.push(item);
                ledger.stats.write_failed_items += 1;
            }
        }
        self.buf.clear();
        self.buffered_records = 0;
    }

    /// The items whose write failed since the last call, oldest first.
    pub(super) fn take_unstored(&mut self) -> Vec<SpoolItem> {
        std::mem::take(&mut self.unstored)
    }

    /// The error of the last failed write of appended items.
    pub(super) fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Fsyncs the data of every segment written since the last fsync.
    /// Each call counts in `ledger`'s `fsyncs`.
    pub(super) fn sync_data(&mut self, ledger: &mut Ledger) -> io::Result<()> {
        if self.data_unsynced {
            for file in &self.unsynced_files {
                ledger.stats.fsyncs += 1;
                file.sync_data()?;
            }
            self.unsynced_files.clear();
            if let Some(active) = &self.active {
                ledger.stats.fsyncs += 1;
                active.file.sync_data()?;
            }
            self.data_unsynced = false;
        }
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
        // The first acknowledgement: the new cursor file and the directory holding it.
        let batch = spool.read_batch(10, 1 << 20).unwrap();
        spool.ack(batch.last().unwrap().0).unwrap();
        spool.sync().unwrap();
        let after_ack = spool.stats().fsyncs;
        assert_eq!(after_ack, after_append + 2);
        // Later ones overwrite the cursor in place: one fsync of it, none of the directory.
        spool
            .append(&SpoolItem::new(uuid::Uuid::now_v7(), 1, b"{}".to_vec()))
            .unwrap();
        let batch = spool.read_batch(10, 1 << 20).unwrap();
        spool.ack(batch.last().unwrap().0).unwrap();
        spool.sync().unwrap();
        assert_eq!(
            spool.stats().fsyncs,
            after_ack + 2,
            "segment data and cursor"
        );
        let batch = spool.read_batch(10, 1 << 20);
        assert!(batch.unwrap().is_empty());
        drop(spool);
        std::fs::remove_dir_all(&dir).ok();
    }
}
