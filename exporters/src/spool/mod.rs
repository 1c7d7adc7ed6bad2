//! A durable, size-capped, on-disk spool for one delivery stream.
//!
//! The delivery engine appends every item it queues, reads batches to send, and acknowledges
//! them after a 2xx (or after counting them as dropped). Whatever is not acknowledged when the
//! process ends is read again on the next [`Spool::open`]: delivery is at-least-once, and every
//! item keeps its id so the receiver can de-duplicate.
//!
//! ```
//! # use closedloop_telemetry_exporters::__private::spool::{Spool, SpoolItem};
//! # use closedloop_telemetry_exporters::SpoolOptions;
//! # let dir = std::env::temp_dir().join(format!("spool-doc-{}", std::process::id()));
//! let mut spool = Spool::open(&dir, SpoolOptions::default())?;
//! spool.append(&SpoolItem::new(uuid::Uuid::nil(), 1_700_000_000_000, b"{}".to_vec()))?;
//! let batch = spool.read_batch(100, 512 * 1024)?;
//! // ... send the batch; on a 2xx:
//! if let Some((last, _)) = batch.last() {
//!     spool.ack(*last)?;
//! }
//! // ... on a failed send instead: spool.rewind();
//! spool.sync()?; // on flush / shutdown
//! # drop(spool);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), closedloop_telemetry_exporters::__private::spool::SpoolError>(())
//! ```
//!
//! # Shape
//!
//! A writer (`writer.rs`), a reader (`reader.rs`) and the ledger they share (`ledger.rs`: the
//! segment table, the acknowledgement cursor, the counters), each owning its own state;
//! `spool.rs` opens them and passes each call on. See `docs/RELIABILITY.md`, "The spool".
//!
//! # Directory
//!
//! One directory per stream, owned by one process at a time:
//!
//! | file | content |
//! |---|---|
//! | `LOCK` | exclusive `flock` (via `fs4`) held while open; holds the owner's pid as text |
//! | `000000000001.seg`, … | append-only segments, numbered upwards, never reused |
//! | `cursor` | the acknowledgement cursor (24 bytes) |
//! | `cursor.tmp` | left by earlier versions (which renamed it over `cursor`); removed at open |
//! | `pid-<pid>/` | a whole spool of its own, used by a second process ([`Spool::open_or_fallback`]); the next process to open `dir` itself adopts it once no live process holds it |
//! | `pid-<pid>-<n>/` | a detached spool of one item (an `app.panicked` or `app.crashed` event, `write_detached`): adopted by this process's background when told, else like `pid-<pid>/` |
//! | `.pending-<pid>-<n>/` | a detached spool being written; renamed to `pid-<pid>-<n>` once fsynced |
//!
//! # Record format (all integers little-endian)
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `CLR1` |
//! | 4..8 | payload length `N` (u32), 24 ≤ `N` ≤ 16 MiB |
//! | 8..12 | CRC32C (Castagnoli) of the payload |
//! | 12..16 | CRC32C of bytes 0..12 (the header) |
//! | 16..32 | payload: item id (16 bytes, UUID) |
//! | 32..40 | payload: created time, ms since the Unix epoch (u64) |
//! | 40..16+`N` | payload: the item's bytes (one pre-encoded event) |
//!
//! A segment is records back to back. A new segment starts when the next record would take
//! the current one past `segment_bytes`, and on every [`Spool::open`] (so nothing is ever
//! appended after a torn tail). A record never spans two segments.
//!
//! The cursor file is magic `CLC1`, segment (u64), offset (u64), CRC32C of those 20 bytes. It
//! is overwritten in place (one sector; fsynced with `fdatasync`, no rename and no directory
//! fsync once it exists); a write torn by power loss fails the CRC. A missing cursor means
//! nothing was acknowledged; a damaged one is reported ([`CursorStatus::Corrupt`]) and replay
//! starts at the oldest segment (duplicates, never loss).
//!
//! # Damage
//!
//! A record is valid when its magic and both checksums match and it is whole. At an invalid
//! one the reader scans forward byte by byte to the next offset holding a valid record and
//! carries on there; a damaged stretch at the end of a segment is skipped to the next segment.
//! So every record whose own bytes are intact is still delivered. Each stretch is counted once
//! in [`SpoolStats::corrupt_regions_skipped`] (and its bytes in `corrupt_bytes_skipped`).
//!
//! # Sync policy
//!
//! - [`Spool::append`] copies the record into a 64 KiB buffer: no syscall, no fsync.
//! - The buffer is written to the file (page cache, no fsync) when it fills and on every
//!   [`Spool::maybe_sync`], [`Spool::sync`], [`Spool::read_batch`] and drop.
//! - [`Spool::maybe_sync`] also fsyncs the data, the directory and the cursor when
//!   `sync_interval` (default 3 s) has passed since the last fsync and anything changed.
//! - [`Spool::sync`] does all of it now: call it on flush and shutdown.
//! - [`Spool::ack`] (and [`Spool::ack_items`], which acknowledges exactly the items given and
//!   never moves the cursor past an unacknowledged one) replaces the cursor file at once (page
//!   cache) and deletes fully acknowledged segments; the cursor is fsynced at the next sync.
//!
//! What can be lost:
//! - **Process killed (SIGKILL, crash, panic=abort):** only appends still in the in-memory
//!   buffer, i.e. those since the last `maybe_sync`/`sync`/`read_batch`. Written data is in the
//!   kernel's page cache and survives the process. An engine calling `maybe_sync` after each
//!   batch of appends loses at most that batch; one calling it at least every `sync_interval`
//!   loses at most one interval. A kill never rolls the cursor back further than the last ack.
//! - **Power loss or OS crash:** whatever was not fsynced: at most the appends of the last
//!   `sync_interval` (plus the in-memory buffer), provided `maybe_sync` is called at least that
//!   often. Acks not yet fsynced may be lost too, which means re-delivery (duplicates), not
//!   loss. A damaged tail or cursor is skipped or reset as described above.
//!
//! # Size cap
//!
//! When an append would take the segment files past `max_bytes` (default 64 MiB), the oldest
//! segments are deleted first and their unacknowledged items counted in
//! [`SpoolStats::dropped_by_cap`]. The new item is always stored; an item larger than the cap
//! (or than 16 MiB) is refused with [`SpoolError::ItemTooLarge`]. The spool never blocks.

mod adopt;
mod cursor;
mod detached;
mod error;
mod fallback;
mod inspect;
mod ledger;
mod lock;
mod options;
mod purge;
mod reader;
mod segment;
#[allow(clippy::module_inception)]
mod spool;
mod stats;
mod writer;

pub use cursor::{CursorStatus, Position};
pub(crate) use detached::write_detached;
pub use error::SpoolError;
pub use fallback::SpoolHandle;
pub use inspect::{dir_usage, remove_if_unlocked};
pub use lock::{lock_dir, DirLock};
pub use options::SpoolOptions;
pub use purge::purge_unlocked;
pub use segment::SpoolItem;
pub use spool::Spool;
pub use stats::SpoolStats;

/// Not part of the API: the segment reader, for the spool's fuzz target and its record-level
/// tests. The on-disk format (the module docs above) is an implementation detail and may
/// change in any release.
#[doc(hidden)]
pub(crate) mod test_support {
    pub use super::segment::{scan_segment, Scanned};
}
