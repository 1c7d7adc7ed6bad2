//! Record encoding and the segment scanner.
//!
//! A segment is a plain concatenation of records. Every function here is pure (bytes in, bytes
//! out), so the scanner can be fuzzed and property-tested without touching a file system.

use crc32c::{crc32c, crc32c_append};
use uuid::Uuid;

/// The four bytes every record starts with (`CLR1`: closedloop record, format 1).
pub(crate) const RECORD_MAGIC: [u8; 4] = *b"CLR1";
/// Bytes in a record header: magic, payload length, payload CRC32C, header CRC32C.
pub(crate) const HEADER_LEN: usize = 16;
/// Bytes in the fixed part of a payload: the 16-byte id and the 8-byte creation time.
pub(crate) const ITEM_PREFIX_LEN: usize = 24;
/// The largest payload a record may declare; a header claiming more is treated as damage.
pub(crate) const MAX_PAYLOAD_LEN: usize = 16 * 1024 * 1024;

/// One spooled item: an event id, its creation time and its pre-encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolItem {
    /// The event id; a replay carries the same id so the receiver can de-duplicate.
    pub id: Uuid,
    /// When the event was created, in milliseconds since the Unix epoch (used for expiry).
    pub created_ms: u64,
    /// The pre-encoded wire bytes of one event (opaque to the spool).
    pub bytes: Vec<u8>,
}

impl SpoolItem {
    /// An item from its parts.
    pub fn new(id: Uuid, created_ms: u64, bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            id,
            created_ms,
            bytes: bytes.into(),
        }
    }

    /// How many bytes this item takes on disk, header included.
    pub fn encoded_len(&self) -> usize {
        record_len(self.bytes.len())
    }

    /// Appends this item's on-disk record to `out` (the format in the [module docs](super)).
    ///
    /// # Panics
    /// If the payload is longer than 16 MiB; [`Spool::append`](super::Spool::append)
    /// refuses such items with an error instead.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        assert!(
            ITEM_PREFIX_LEN + self.bytes.len() <= MAX_PAYLOAD_LEN,
            "spool item too large to encode"
        );
        encode_record(&self.id, self.created_ms, &self.bytes, out);
    }
}

/// On-disk size of a record whose item bytes are `item_bytes` long.
pub(crate) fn record_len(item_bytes: usize) -> usize {
    HEADER_LEN + ITEM_PREFIX_LEN + item_bytes
}

/// Appends the record for one item to `out`. The caller has checked the size limit.
pub(crate) fn encode_record(id: &Uuid, created_ms: u64, bytes: &[u8], out: &mut Vec<u8>) {
    debug_assert!(ITEM_PREFIX_LEN + bytes.len() <= MAX_PAYLOAD_LEN);
    let payload_len = (ITEM_PREFIX_LEN + bytes.len()) as u32;
    let created = created_ms.to_le_bytes();
    let payload_crc = crc32c_append(crc32c_append(crc32c(id.as_bytes()), &created), bytes);
    let start = out.len();
    out.reserve(record_len(bytes.len()));
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32c(&out[start..start + 12]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&created);
    out.extend_from_slice(bytes);
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Validates the record starting at `buf[0]`; returns its total length when it is whole and its
/// header and payload checksums match, `None` otherwise (damaged, foreign or cut short).
pub(crate) fn valid_record_len(buf: &[u8]) -> Option<usize> {
    let header = buf.get(..HEADER_LEN)?;
    if header[..4] != RECORD_MAGIC || le_u32(&header[12..16]) != crc32c(&header[..12]) {
        return None;
    }
    let payload_len = le_u32(&header[4..8]) as usize;
    if !(ITEM_PREFIX_LEN..=MAX_PAYLOAD_LEN).contains(&payload_len) {
        return None;
    }
    let payload = buf.get(HEADER_LEN..HEADER_LEN + payload_len)?;
    (crc32c(payload) == le_u32(&header[8..12])).then_some(HEADER_LEN + payload_len)
}

/// Decodes the payload of a record already validated by [`valid_record_len`].
fn item_of(record: &[u8]) -> SpoolItem {
    let payload = &record[HEADER_LEN..];
    let mut id = [0u8; 16];
    id.copy_from_slice(&payload[..16]);
    let mut created = [0u8; 8];
    created.copy_from_slice(&payload[16..24]);
    SpoolItem {
        id: Uuid::from_bytes(id),
        created_ms: u64::from_le_bytes(created),
        bytes: payload[ITEM_PREFIX_LEN..].to_vec(),
    }
}

/// The offset of the first valid record at or after `from`, if any.
///
/// Candidates are found by their magic bytes, then must pass both checksums, so a resync lands
/// on a damaged stretch's inner bytes only if they happen to hold a whole, checksummed record.
fn resync(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + HEADER_LEN <= buf.len() {
        let hit = buf[at..].windows(4).position(|w| w == RECORD_MAGIC)?;
        at += hit;
        if valid_record_len(&buf[at..]).is_some() {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// One step of a segment scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned {
    /// A whole record with matching checksums, at `buf[start..end]`.
    Record {
        /// Offset of the record's first byte.
        start: usize,
        /// Offset just past the record.
        end: usize,
        /// The decoded item.
        item: SpoolItem,
    },
    /// A damaged stretch `buf[start..end]`: torn, corrupt or foreign bytes, skipped.
    Damaged {
        /// Offset of the first damaged byte.
        start: usize,
        /// Offset of the next valid record, or the end of the buffer.
        end: usize,
    },
}

/// Scans the bytes of a segment record by record; damage is reported and skipped, never fatal.
///
/// After a damaged record the scanner moves forward one byte at a time to the next offset that
/// holds a whole record with a valid header and payload checksum. So every record whose own
/// bytes are intact is still found, wherever the damage around it is.
#[derive(Debug, Clone)]
pub struct SegmentScanner<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Scans `buf` from its first byte. See `SegmentScanner`.
pub fn scan_segment(buf: &[u8]) -> SegmentScanner<'_> {
    SegmentScanner { buf, pos: 0 }
}

impl<'a> SegmentScanner<'a> {
    /// Scans `buf` starting at `pos` (clamped to its length).
    pub fn starting_at(buf: &'a [u8], pos: usize) -> Self {
        Self {
            buf,
            pos: pos.min(buf.len()),
        }
    }

    /// The offset the next step starts from.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for SegmentScanner<'_> {
    type Item = Scanned;

    fn next(&mut self) -> Option<Scanned> {
        let start = self.pos;
        if start >= self.buf.len() {
            return None;
        }
        if let Some(len) = valid_record_len(&self.buf[start..]) {
            self.pos = start + len;
            return Some(Scanned::Record {
                start,
                end: self.pos,
                item: item_of(&self.buf[start..self.pos]),
            });
        }
        self.pos = resync(self.buf, start + 1).unwrap_or(self.buf.len());
        Some(Scanned::Damaged {
            start,
            end: self.pos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8, len: usize) -> (SpoolItem, Vec<u8>) {
        let item = SpoolItem::new(Uuid::from_bytes([n; 16]), u64::from(n) * 1000, vec![n; len]);
        let mut out = Vec::new();
        encode_record(&item.id, item.created_ms, &item.bytes, &mut out);
        (item, out)
    }

    fn items(buf: &[u8]) -> Vec<SpoolItem> {
        scan_segment(buf)
            .filter_map(|s| match s {
                Scanned::Record { item, .. } => Some(item),
                Scanned::Damaged { .. } => None,
            })
            .collect()
    }

    #[test]
    fn round_trip_and_layout() {
        let (item, bytes) = record(7, 5);
        assert_eq!(bytes.len(), item.encoded_len());
        assert_eq!(&bytes[..4], b"CLR1");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 29);
        assert_eq!(&bytes[16..32], &[7u8; 16]);
        assert_eq!(items(&bytes), vec![item]);
    }

    #[test]
    fn empty_item_bytes_are_allowed() {
        let (item, bytes) = record(1, 0);
        assert_eq!(items(&bytes), vec![item]);
    }

    #[test]
    fn flipped_payload_byte_skips_only_that_record() {
        let (a, ra) = record(1, 10);
        let (_, rb) = record(2, 10);
        let (c, rc) = record(3, 10);
        let mut buf = [ra.clone(), rb.clone(), rc].concat();
        buf[ra.len() + HEADER_LEN + 3] ^= 0x40;
        let steps: Vec<_> = scan_segment(&buf).collect();
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[1],
            Scanned::Damaged {
                start: ra.len(),
                end: ra.len() + rb.len()
            }
        );
        assert_eq!(items(&buf), vec![a, c]);
    }

    #[test]
    fn bad_length_is_damage_not_a_huge_read() {
        let (_, mut ra) = record(1, 10);
        ra[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(valid_record_len(&ra), None);
        let (b, rb) = record(2, 3);
        assert_eq!(items(&[ra, rb].concat()), vec![b]);
    }

    #[test]
    fn truncated_tail_is_one_damaged_stretch() {
        let (a, ra) = record(1, 10);
        let (_, rb) = record(2, 10);
        let buf = [ra.clone(), rb[..rb.len() - 1].to_vec()].concat();
        let steps: Vec<_> = scan_segment(&buf).collect();
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[1],
            Scanned::Damaged {
                start: ra.len(),
                end: buf.len()
            }
        );
        assert_eq!(items(&buf), vec![a]);
    }

    #[test]
    fn leading_garbage_then_records() {
        let (a, ra) = record(1, 4);
        let buf = [b"CLR1garbageCLR1".to_vec(), ra].concat();
        assert_eq!(items(&buf), vec![a]);
    }

    #[test]
    fn starting_at_clamps() {
        let (_, ra) = record(1, 4);
        assert_eq!(SegmentScanner::starting_at(&ra, 1000).next(), None);
    }
}
