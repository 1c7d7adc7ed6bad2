//! The reader: the read position, the items handed out and not yet acknowledged, the bytes of
//! the segment being read, and the cap's losses among what it handed out.
//!
//! Everything "how many are still to read" needs is here, so it is counted once: an item is
//! pending in the [ledger](super::ledger) until acknowledged, and unread until the reader
//! hands it out. The read position says when everything written has been read, and an item
//! handed out is known by its position and its id until it is acknowledged or the cap deletes
//! its segment.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use uuid::Uuid;

use super::cursor::Position;
use super::error::SpoolError;
use super::ledger::{segment_path, Ledger};
use super::segment::{Scanned, SegmentScanner, SpoolItem};

/// The bytes of one segment, loaded for reading.
#[derive(Debug, Default)]
struct ReadBuf {
    segment: u64,
    base: u64,
    data: Vec<u8>,
}

/// Items the cap deleted, since the last [`Spool::take_cap_losses`](super::Spool::take_cap_losses).
#[derive(Debug, Default)]
pub(crate) struct CapLosses {
    /// Items deleted before they were acknowledged (read or not).
    pub(crate) items: u64,
    /// Those of them that had been handed out by `read_batch`: their positions and ids.
    pub(crate) handed_out: Vec<(Position, Uuid)>,
}

/// The read side of a spool. See the [module docs](self).
#[derive(Debug)]
pub(super) struct Reader {
    /// Where the next `read_batch` starts.
    read: Position,
    /// Items handed out and not acknowledged, by position, with their ids.
    outstanding: BTreeMap<Position, Uuid>,
    /// The same items by id, for acknowledging by id: the earliest outstanding one of each id.
    by_id: HashMap<Uuid, Position>,
    /// Ids handed out more than once while outstanding (records adopted twice, after a crash
    /// during adoption): acknowledging one copy moves `by_id` on to the next.
    repeated: HashSet<Uuid>,
    /// Handed-out items acknowledged while an earlier one is still outstanding.
    acked_ahead: BTreeSet<Position>,
    buf: ReadBuf,
    /// Damage before this position has been counted already.
    damage_counted_until: Position,
    /// The last read failed: nothing counts as unread until the writer appends again (a
    /// failing disk is not read in a loop).
    read_failed: bool,
    cap_losses: CapLosses,
}

impl Reader {
    /// A reader that starts at the acknowledgement cursor `start` (that is the replay).
    pub(super) fn new(start: Position) -> Self {
        Reader {
            read: start,
            outstanding: BTreeMap::new(),
            by_id: HashMap::new(),
            repeated: HashSet::new(),
            acked_ahead: BTreeSet::new(),
            buf: ReadBuf::default(),
            damage_counted_until: start,
            read_failed: false,
            cap_losses: CapLosses::default(),
        }
    }

    /// Where the next read starts.
    pub(super) fn position(&self) -> Position {
        self.read
    }

    /// The writer appended: there may be something to read again.
    pub(super) fn appended(&mut self) {
        self.read_failed = false;
    }

    /// Items pending in the ledger that this reader has not handed out. Zero once the read
    /// position is at the end of what is written (whatever the count says: records damaged
    /// after they were counted are not readable), and after a failed read until the next
    /// append.
    pub(super) fn unread(&self, ledger: &Ledger) -> u64 {
        if self.read_failed || self.at_end(ledger) {
            return 0;
        }
        let outstanding = self.outstanding.len() as u64;
        ledger.stats.pending_items.saturating_sub(outstanding)
    }

    /// Whether no segment holds bytes at or after the read position.
    fn at_end(&self, ledger: &Ledger) -> bool {
        let read = self.read;
        ledger
            .segments
            .range(read.segment..)
            .all(|(&n, meta)| meta.bytes <= if n == read.segment { read.offset } else { 0 })
    }

    /// The last position handed out, acknowledged or not.
    fn last_handed_out(&self) -> Option<Position> {
        let unacked = self.outstanding.keys().next_back().copied();
        unacked.max(self.acked_ahead.last().copied())
    }

    /// Reads up to `max_items` items forward from the read position, stopping early once their
    /// bytes reach `max_bytes`. `active` is the segment being appended to (its end is the end
    /// of what is written). See [`Spool::read_batch`](super::Spool::read_batch).
    pub(super) fn read_batch(
        &mut self,
        ledger: &mut Ledger,
        active: Option<u64>,
        max_items: usize,
        max_bytes: usize,
    ) -> Result<Vec<(Position, SpoolItem)>, SpoolError> {
        let result = self.read_into(ledger, active, max_items, max_bytes);
        self.read_failed = result.is_err();
        result
    }

    fn read_into(
        &mut self,
        ledger: &mut Ledger,
        active: Option<u64>,
        max_items: usize,
        max_bytes: usize,
    ) -> Result<Vec<(Position, SpoolItem)>, SpoolError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while out.len() < max_items && (out.is_empty() || bytes < max_bytes) {
            // Move to the first existing segment at or after the read position.
            let Some((&segment, &meta)) = ledger.segments.range(self.read.segment..).next() else {
                break;
            };
            if segment != self.read.segment {
                self.read = Position::new(segment, 0);
            }
            if self.read.offset >= meta.bytes {
                if active == Some(segment) {
                    break;
                }
                self.read = Position::new(segment + 1, 0);
                continue;
            }
            self.load(ledger, segment, meta.bytes)?;
            let rel = (self.read.offset - self.buf.base) as usize;
            let step = SegmentScanner::starting_at(&self.buf.data, rel).next();
            let base = self.buf.base;
            match step {
                Some(Scanned::Record { end, item, .. }) => {
                    let pos = Position::new(segment, base + end as u64);
                    if self.last_handed_out().is_none_or(|last| pos > last) {
                        self.outstanding.insert(pos, item.id);
                        match self.by_id.entry(item.id) {
                            Entry::Occupied(_) => {
                                self.repeated.insert(item.id);
                            }
                            Entry::Vacant(slot) => {
                                slot.insert(pos);
                            }
                        }
                    }
                    self.read = pos;
                    bytes += item.bytes.len();
                    out.push((pos, item));
                }
                Some(Scanned::Damaged { start, end }) => {
                    let from = Position::new(segment, base + start as u64);
                    let to = Position::new(segment, base + end as u64);
                    if from >= self.damage_counted_until {
                        ledger.count_damage(to.offset - from.offset);
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
    fn load(&mut self, ledger: &mut Ledger, segment: u64, limit: u64) -> Result<(), SpoolError> {
        let rb = &self.buf;
        let end = rb.base + rb.data.len() as u64;
        if rb.segment == segment && rb.base <= self.read.offset && end >= limit {
            return Ok(());
        }
        let from = self.read.offset;
        let mut data = Vec::with_capacity((limit - from) as usize);
        let result = File::open(segment_path(ledger.dir(), segment)).and_then(|mut f| {
            f.seek(SeekFrom::Start(from))?;
            f.take(limit - from).read_to_end(&mut data)
        });
        if let Err(e) = result {
            ledger.count_io_error("read a segment");
            return Err(e.into());
        }
        self.buf = ReadBuf {
            segment,
            base: from,
            data,
        };
        Ok(())
    }

    /// Moves the read position back to the ack cursor.
    pub(super) fn rewind(&mut self, cursor: Position) {
        self.read = cursor;
    }

    /// Forgets the outstanding item at `p` (acknowledged, or deleted by the cap).
    fn forget(&mut self, p: Position) -> Option<Uuid> {
        let id = self.outstanding.remove(&p)?;
        if self.by_id.get(&id) == Some(&p) {
            self.by_id.remove(&id);
            if self.repeated.contains(&id) {
                // Rare (see `repeated`): a scan of what is outstanding finds the next copy.
                match self.outstanding.iter().find(|(_, other)| **other == id) {
                    Some((&next, _)) => {
                        self.by_id.insert(id, next);
                    }
                    None => {
                        self.repeated.remove(&id);
                    }
                }
            }
        }
        Some(id)
    }

    /// Acknowledges every handed-out item at or before `up_to`; see
    /// [`Spool::ack`](super::Spool::ack). `active` is the segment being appended to (never
    /// deleted).
    pub(super) fn ack(
        &mut self,
        ledger: &mut Ledger,
        active: Option<u64>,
        up_to: Position,
    ) -> Result<(), SpoolError> {
        let newly: Vec<Position> = self.outstanding.range(..=up_to).map(|(&p, _)| p).collect();
        for &p in &newly {
            self.forget(p);
            ledger.count_acked(p);
        }
        let ahead = self.acked_ahead.range(..=up_to).next_back().copied();
        self.acked_ahead = self.acked_ahead.split_off(&up_to);
        self.acked_ahead.remove(&up_to);
        let Some(target) = newly.last().copied().max(ahead) else {
            return Ok(());
        };
        self.read = self.read.max(target);
        ledger.advance_cursor(target, active)
    }

    /// Acknowledges exactly the handed-out items at `positions`; see
    /// [`Spool::ack_items`](super::Spool::ack_items).
    pub(super) fn ack_items(
        &mut self,
        ledger: &mut Ledger,
        active: Option<u64>,
        positions: impl IntoIterator<Item = Position>,
    ) -> Result<(), SpoolError> {
        for p in positions {
            self.acknowledge_one(ledger, p);
        }
        self.cover_acked_ahead(ledger, active)
    }

    /// Acknowledges exactly the handed-out items with these ids (unknown ones are ignored),
    /// like [`Reader::ack_items`]; returns how many it acknowledged.
    pub(super) fn ack_ids(
        &mut self,
        ledger: &mut Ledger,
        active: Option<u64>,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> Result<usize, SpoolError> {
        let mut acked = 0;
        for id in ids {
            // One at a time: a repeated id resolves to its next copy once one is acknowledged.
            if let Some(&p) = self.by_id.get(&id) {
                self.acknowledge_one(ledger, p);
                acked += 1;
            }
        }
        self.cover_acked_ahead(ledger, active)?;
        Ok(acked)
    }

    /// Acknowledges the outstanding item at `p`, if any, ahead of the cursor.
    fn acknowledge_one(&mut self, ledger: &mut Ledger, p: Position) {
        if self.forget(p).is_some() {
            self.acked_ahead.insert(p);
            ledger.count_acked(p);
        }
    }

    /// Moves the cursor over the acknowledged items that no outstanding one precedes.
    fn cover_acked_ahead(
        &mut self,
        ledger: &mut Ledger,
        active: Option<u64>,
    ) -> Result<(), SpoolError> {
        let first_outstanding = self.outstanding.keys().next().copied();
        let up_to = match first_outstanding {
            Some(first) => self.acked_ahead.range(..first).next_back().copied(),
            None => self.acked_ahead.last().copied(),
        };
        match up_to {
            Some(p) => self.ack(ledger, active, p),
            None => Ok(()),
        }
    }

    /// Acknowledges everything handed out so far.
    pub(super) fn ack_all(
        &mut self,
        ledger: &mut Ledger,
        active: Option<u64>,
    ) -> Result<(), SpoolError> {
        match self.last_handed_out() {
            Some(last) => self.ack(ledger, active, last),
            None => Ok(()),
        }
    }

    /// The cap deleted segment `n`, losing `lost` unacknowledged items: forgets what was handed
    /// out of it (remembered in the cap losses) and moves the read position past it.
    pub(super) fn segment_dropped(&mut self, n: u64, lost: u64) {
        self.cap_losses.items += lost;
        let next = Position::new(n + 1, 0);
        let gone: Vec<Position> = self
            .outstanding
            .range(Position::new(n, 0)..next)
            .map(|(&p, _)| p)
            .collect();
        for p in gone {
            if let Some(id) = self.forget(p) {
                self.cap_losses.handed_out.push((p, id));
            }
        }
        self.acked_ahead.retain(|p| p.segment != n);
        self.read = self.read.max(next);
        self.damage_counted_until = self.damage_counted_until.max(next);
        if self.buf.segment == n {
            self.buf.data = Vec::new();
        }
    }

    /// The cap's losses since the last call.
    pub(super) fn take_cap_losses(&mut self) -> CapLosses {
        std::mem::take(&mut self.cap_losses)
    }
}
