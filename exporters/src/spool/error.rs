//! The spool's error type.

use std::io;
use std::path::PathBuf;

/// Why a spool operation failed. Opening errors tell the caller to fall back (see
/// [`Spool::open_or_fallback`](super::Spool::open_or_fallback)); later errors are for the engine
/// to count, never to surface in the app.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// Another process (or another open `Spool` in this one) holds the directory's lock.
    #[error("spool directory {} is locked by another process{}", .dir.display(), .holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it into the lock file, if readable.
        holder: Option<u32>,
    },
    /// The directory cannot be created, listed or locked (unwritable, a path through a file, …).
    #[error("spool directory {} is unusable: {source}", .dir.display())]
    Unusable {
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The directory is not private to this user (Unix: owned by another user, or writable by
    /// group or others), so it is not used: the stream keeps its items in memory.
    #[error("spool directory {} refused: {reason}", .dir.display())]
    Refused {
        /// The directory.
        dir: PathBuf,
        /// Why it is not private.
        reason: String,
    },
    /// Reading or writing spool files failed (disk full, I/O error).
    #[error("spool I/O error: {0}")]
    Io(#[from] io::Error),
    /// The item cannot be stored: its record is larger than the per-record limit or the cap.
    #[error("item of {size} bytes does not fit in the spool (limit {limit} bytes)")]
    ItemTooLarge {
        /// The record's size on disk.
        size: usize,
        /// The largest record this spool accepts.
        limit: usize,
    },
    /// The options are inconsistent (a zero size, a segment larger than the cap).
    #[error("invalid spool options: {0}")]
    InvalidOptions(&'static str),
}
