//! Reading, rewinding and acknowledging, and the segment deletions they cause.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use super::cursor::{self, Position};
use super::error::SpoolError;
use super::segment::{Scanned, SegmentScanner, SpoolItem};
use super::spool::{segment_path, Spool};

impl Spool {
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
        let _ = self.flush_writes();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while out.len() < max_items && (out.is_empty() || bytes < max_bytes) {
            // Move to the first existing segment at or after the read position.
            let Some((&segment, &meta)) = self.segments.range(self.read.segment..).next() else {
                break;
            };
            if segment != self.read.segment {
                self.read = Position::new(segment, 0);
            }
            if self.read.offset >= meta.bytes {
                let active = self.active.as_ref().is_some_and(|a| a.number == segment);
                if active {
                    break;
                }
                self.read = Position::new(segment + 1, 0);
                continue;
            }
            self.load(segment, meta.bytes)?;
            let rel = (self.read.offset - self.read_buf.base) as usize;
            let step = SegmentScanner::starting_at(&self.read_buf.data, rel).next();
            let base = self.read_buf.base;
            match step {
                Some(Scanned::Record { end, item, .. }) => {
                    let pos = Position::new(segment, base + end as u64);
                    if self.handed_out.back().is_none_or(|&last| pos > last) {
                        self.handed_out.push_back(pos);
                    }
                    self.read = pos;
                    bytes += item.bytes.len();
                    out.push((pos, item));
                }
                Some(Scanned::Damaged { start, end }) => {
                    let from = Position::new(segment, base + start as u64);
                    let to = Position::new(segment, base + end as u64);
                    if from >= self.damage_counted_until {
                        self.count_damage(to.offset - from.offset);
                        self.damage_counted_until = to;
                    }
                    self.read = to;
                }
                // The buffer ended before `meta.bytes`: the file is shorter than recorded.
                None => self.read = Position::new(segment, meta.bytes),
            }
        }
        Ok(out)
    }

    /// Ensures the read buffer holds `segment` from the read offset up to `limit`.
    fn load(&mut self, segment: u64, limit: u64) -> Result<(), SpoolError> {
        let rb = &self.read_buf;
        let end = rb.base + rb.data.len() as u64;
        if rb.segment == segment && rb.base <= self.read.offset && end >= limit {
            return Ok(());
        }
        let from = self.read.offset;
        let mut data = Vec::with_capacity((limit - from) as usize);
        let result = File::open(segment_path(&self.dir, segment)).and_then(|mut f| {
            f.seek(SeekFrom::Start(from))?;
            f.take(limit - from).read_to_end(&mut data)
        });
        if let Err(e) = result {
            self.count_io_error("read a segment");
            return Err(e.into());
        }
        self.read_buf.segment = segment;
        self.read_buf.base = from;
        self.read_buf.data = data;
        Ok(())
    }

    fn count_damage(&mut self, bytes: u64) {
        self.stats.corrupt_regions_skipped += 1;
        self.stats.corrupt_bytes_skipped += bytes;
        if !self.warned.damage {
            self.warned.damage = true;
            tracing::warn!(dir = %self.dir.display(), bytes, "spool: skipped damaged records");
        }
    }

    /// Moves the read position back to the ack cursor, so the next
    /// [`read_batch`](Self::read_batch) re-reads everything not yet acknowledged (e.g. after a
    /// failed send).
    pub fn rewind(&mut self) {
        self.read = self.cursor;
    }

    /// Acknowledges every handed-out item whose position is at most `up_to` (pass the position
    /// of the last item of a delivered batch): the cursor moves just past the last of them
    /// (never backwards, never past what `read_batch` handed out, always onto a record
    /// boundary), the cursor file is replaced atomically (fsynced at the next sync), and fully
    /// acknowledged segments are deleted. Ack after a 2xx, or after the engine dropped and
    /// counted the items. Nothing to acknowledge is a no-op.
    pub fn ack(&mut self, up_to: Position) -> Result<(), SpoolError> {
        let mut target = None;
        while let Some(&front) = self.handed_out.front() {
            if front > up_to {
                break;
            }
            self.handed_out.pop_front();
            target = Some(front);
            if !self.acked_ahead.remove(&front) {
                self.count_acked(front);
            }
        }
        let Some(target) = target else {
            return Ok(());
        };
        self.cursor = target;
        if self.read < target {
            self.read = target;
        }
        self.delete_acked_segments();
        self.cursor_unsynced = true;
        cursor::write(&self.dir, self.cursor, false).inspect_err(|_| {
            self.count_io_error("write the cursor");
        })?;
        Ok(())
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
        for p in positions {
            if self.handed_out.binary_search(&p).is_ok() && self.acked_ahead.insert(p) {
                self.count_acked(p);
            }
        }
        let mut up_to = None;
        for p in &self.handed_out {
            if !self.acked_ahead.contains(p) {
                break;
            }
            up_to = Some(*p);
        }
        match up_to {
            Some(p) => self.ack(p),
            None => Ok(()),
        }
    }

    /// Counts one handed-out item as acknowledged (no longer pending).
    fn count_acked(&mut self, p: Position) {
        if let Some(meta) = self.segments.get_mut(&p.segment) {
            meta.acked += 1;
            self.stats.pending_items = self.stats.pending_items.saturating_sub(1);
        }
    }

    /// Deletes sealed segments that lie wholly before the cursor.
    fn delete_acked_segments(&mut self) {
        let active = self.active.as_ref().map(|a| a.number);
        let done: Vec<u64> = self
            .segments
            .iter()
            .take_while(|(&n, meta)| {
                n < self.cursor.segment
                    || (n == self.cursor.segment
                        && self.cursor.offset >= meta.bytes
                        && Some(n) != active)
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

    /// Deletes the oldest segment to make room, counting its unacknowledged items as dropped.
    /// Items of it already handed out may still be delivered by the engine; they are counted
    /// as dropped all the same, and acks for them are ignored.
    pub(super) fn drop_segment_by_cap(&mut self, n: u64) {
        let Some(meta) = self.segments.remove(&n) else {
            return;
        };
        let lost = meta.items.saturating_sub(meta.acked);
        self.stats.dropped_by_cap += lost;
        self.stats.pending_items = self.stats.pending_items.saturating_sub(lost);
        if lost > 0 && !self.warned.cap {
            self.warned.cap = true;
            tracing::warn!(
                dir = %self.dir.display(),
                lost,
                max_bytes = self.opts.max_bytes,
                "spool: cap reached, oldest segment deleted"
            );
        }
        self.handed_out.retain(|p| p.segment != n);
        self.acked_ahead.retain(|p| p.segment != n);
        let next = Position::new(n + 1, 0);
        if self.cursor < next {
            self.cursor = next;
        }
        if self.read < next {
            self.read = next;
        }
        if self.damage_counted_until < next {
            self.damage_counted_until = next;
        }
        if self.read_buf.segment == n {
            self.read_buf.data = Vec::new();
        }
        // Left in place when it cannot be deleted now: it is before the cursor, so the next
        // open deletes it.
        self.remove_file(n);
    }

    /// Deletes segment `n`; false when it is still there (an I/O error, counted).
    fn remove_file(&mut self, n: u64) -> bool {
        match std::fs::remove_file(segment_path(&self.dir, n)) {
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
