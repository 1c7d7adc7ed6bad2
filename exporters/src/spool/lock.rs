//! One process per spool directory: an exclusive advisory lock on `dir/LOCK` (via `fs4`).
//!
//! On Unix `fs4` uses `flock(2)`, which locks an open file description: a second `open` of the
//! same file, even in the same process, does not get the lock. The kernel releases it when the
//! holder exits, however it exits (SIGKILL included), so a stale lock file never blocks a restart.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use fs4::fs_std::FileExt;

use super::error::SpoolError;

pub(crate) const LOCK_FILE: &str = "LOCK";

/// Holds the directory lock until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// The lock step of [`Spool::open`](super::Spool::open): creates `dir` (private to this user),
/// refuses it when it is not private, and takes its lock without blocking.
pub(crate) fn claim_dir(dir: &Path) -> Result<DirLock, SpoolError> {
    crate::private_fs::create_dir_all(dir).map_err(|source| SpoolError::Unusable {
        dir: dir.to_path_buf(),
        source,
    })?;
    crate::private_fs::check_private_dir(dir).map_err(|reason| SpoolError::Refused {
        dir: dir.to_path_buf(),
        reason,
    })?;
    lock_dir(dir)
}

/// Takes the lock on `dir` without blocking. The holder's pid is written into the lock file,
/// for diagnostics only (the lock itself is the kernel's).
pub fn lock_dir(dir: &Path) -> Result<DirLock, SpoolError> {
    let unusable = |source| SpoolError::Unusable {
        dir: dir.to_path_buf(),
        source,
    };
    let mut file = crate::private_fs::file_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE))
        .map_err(unusable)?;
    // Fully qualified: std's `File` has inherent lock methods of its own on newer toolchains.
    if !FileExt::try_lock_exclusive(&file).map_err(unusable)? {
        let mut text = String::new();
        let holder = file
            .read_to_string(&mut text)
            .ok()
            .and_then(|_| text.trim().parse().ok());
        return Err(SpoolError::Locked {
            dir: dir.to_path_buf(),
            holder,
        });
    }
    // Best effort: a failure here does not weaken the lock.
    let _ = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()));
    Ok(DirLock { _file: file })
}
