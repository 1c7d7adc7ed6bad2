//! The acknowledgement cursor: where delivery has got to, persisted in a small checksummed file.
//!
//! File `cursor` (24 bytes): magic `CLC1`, segment number (u64 LE), offset (u64 LE), CRC32C of
//! the first 20 bytes (u32 LE). It is overwritten in place ([`CursorFile`]): no temporary file,
//! no rename, so making it durable is one `fdatasync` of a file whose size and blocks do not
//! change (no directory fsync once it exists). The 24 bytes lie in the file's first sector,
//! which disks write whole; a write torn anyway fails the CRC and means a replay from the
//! oldest segment (duplicates with their ids, never loss).

use std::fs;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

use crc32c::crc32c;

/// A place in the spool: a segment number and a byte offset in that segment.
///
/// Positions handed out by [`Spool::read_batch`](super::Spool::read_batch) point just past their
/// record, so acknowledging one acknowledges that record and every earlier one. They order
/// first by segment, then by offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The segment number (the file `{segment:012}.seg`).
    pub segment: u64,
    /// A byte offset inside that segment.
    pub offset: u64,
}

impl Position {
    /// A position from its parts.
    pub const fn new(segment: u64, offset: u64) -> Self {
        Self { segment, offset }
    }
}

pub(crate) const CURSOR_FILE: &str = "cursor";
/// Left by versions that replaced the cursor by renaming a temporary file over it: removed at
/// open and on adoption.
pub(crate) const CURSOR_TMP: &str = "cursor.tmp";
const MAGIC: [u8; 4] = *b"CLC1";
const LEN: usize = 24;

/// What the cursor file held when the spool was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorStatus {
    /// No cursor file: nothing was ever acknowledged here; replay starts at the oldest segment.
    Absent,
    /// A valid cursor; replay starts there.
    Restored(Position),
    /// The cursor file was damaged; replay starts at the oldest segment (at-least-once: items
    /// delivered before may be sent again, with their ids).
    Corrupt,
}

pub(crate) fn encode(p: Position) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    out[..4].copy_from_slice(&MAGIC);
    out[4..12].copy_from_slice(&p.segment.to_le_bytes());
    out[12..20].copy_from_slice(&p.offset.to_le_bytes());
    let crc = crc32c(&out[..20]);
    out[20..].copy_from_slice(&crc.to_le_bytes());
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Option<Position> {
    if bytes.len() != LEN || bytes[..4] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[20..24].try_into().ok()?);
    if crc != crc32c(&bytes[..20]) {
        return None;
    }
    Some(Position {
        segment: u64::from_le_bytes(bytes[4..12].try_into().ok()?),
        offset: u64::from_le_bytes(bytes[12..20].try_into().ok()?),
    })
}

/// Reads the cursor file in `dir`. An unreadable file counts as corrupt, not as an error: the
/// spool then replays from the start, which is always safe.
pub(crate) fn read(dir: &Path) -> CursorStatus {
    match fs::read(dir.join(CURSOR_FILE)) {
        Ok(bytes) => decode(&bytes).map_or(CursorStatus::Corrupt, CursorStatus::Restored),
        Err(e) if e.kind() == io::ErrorKind::NotFound => CursorStatus::Absent,
        Err(_) => CursorStatus::Corrupt,
    }
}

/// The cursor step of [`Spool::open`](super::Spool::open), under the directory's lock: removes
/// a `cursor.tmp` left by a crash, reads the cursor, and returns it with the replay start (the
/// oldest segment unless the cursor was restored). A damaged cursor is logged.
pub(crate) fn restore(dir: &Path) -> (CursorStatus, Position) {
    let _ = fs::remove_file(dir.join(CURSOR_TMP));
    let status = read(dir);
    let start = match status {
        CursorStatus::Restored(p) => p,
        CursorStatus::Absent => Position::default(),
        CursorStatus::Corrupt => {
            tracing::warn!(
                dir = %dir.display(),
                "spool cursor file is damaged; replaying from the oldest segment (items may be sent twice)"
            );
            Position::default()
        }
    };
    (status, start)
}

/// The cursor file of an open spool, kept open and overwritten in place.
#[derive(Debug, Default)]
pub(crate) struct CursorFile {
    file: Option<fs::File>,
}

impl CursorFile {
    /// Overwrites the cursor file in `dir` with `p` (page cache; [`CursorFile::sync`] makes it
    /// durable). Returns whether the file had to be created (its directory entry then needs a
    /// directory fsync). On an error the file is reopened by the next write.
    pub(crate) fn write(&mut self, dir: &Path, p: Position) -> io::Result<bool> {
        let mut created = false;
        if self.file.is_none() {
            let path = dir.join(CURSOR_FILE);
            let file = match crate::private_fs::file_options()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => {
                    created = true;
                    f
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let f = fs::OpenOptions::new().write(true).open(&path)?;
                    // A damaged file of another length would stay damaged after an overwrite.
                    if f.metadata()?.len() != LEN as u64 {
                        f.set_len(LEN as u64)?;
                    }
                    f
                }
                Err(e) => return Err(e),
            };
            self.file = Some(file);
        }
        let result = match self.file.as_mut() {
            Some(f) => f
                .seek(SeekFrom::Start(0))
                .and_then(|_| f.write_all(&encode(p))),
            None => Ok(()),
        };
        if result.is_err() {
            self.file = None;
        }
        result.map(|()| created)
    }

    /// Makes the last write durable (`fdatasync`).
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        match self.file.as_ref() {
            Some(f) => f.sync_data(),
            None => Err(io::Error::other("the cursor file is not open")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = Position::new(42, 1 << 40);
        assert_eq!(decode(&encode(p)), Some(p));
    }

    #[test]
    fn any_flipped_bit_is_rejected() {
        let good = encode(Position::new(3, 77));
        for byte in 0..LEN {
            for bit in 0..8 {
                let mut bad = good;
                bad[byte] ^= 1 << bit;
                assert_eq!(decode(&bad), None, "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        let good = encode(Position::new(1, 2));
        assert_eq!(decode(&good[..23]), None);
        assert_eq!(decode(&[good.as_slice(), &[0]].concat()), None);
        assert_eq!(decode(&[]), None);
    }

    #[test]
    fn the_cursor_is_overwritten_in_place_and_a_file_of_another_length_is_mended() {
        let dir = std::env::temp_dir().join(format!("cl-cursor-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        let mut file = CursorFile::default();
        assert!(file.write(&dir, Position::new(1, 2)).unwrap(), "created");
        file.sync().unwrap();
        assert_eq!(read(&dir), CursorStatus::Restored(Position::new(1, 2)));
        assert!(!file.write(&dir, Position::new(3, 4)).unwrap());
        assert_eq!(read(&dir), CursorStatus::Restored(Position::new(3, 4)));
        drop(file);

        fs::write(dir.join(CURSOR_FILE), [7u8; 40]).unwrap();
        assert_eq!(read(&dir), CursorStatus::Corrupt);
        let mut file = CursorFile::default();
        assert!(!file.write(&dir, Position::new(5, 6)).unwrap());
        assert_eq!(read(&dir), CursorStatus::Restored(Position::new(5, 6)));
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn positions_order_by_segment_then_offset() {
        assert!(Position::new(1, 900) < Position::new(2, 0));
        assert!(Position::new(2, 5) < Position::new(2, 6));
    }
}
