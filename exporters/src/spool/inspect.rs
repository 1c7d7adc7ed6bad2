//! Looking at a spool directory from outside, without opening it: for the clean-up of spools
//! that no configured stream uses any more (see `docs/RELIABILITY.md`, "Orphaned spools").

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::error::SpoolError;
use super::lock::{lock_dir, DirLock, LOCK_FILE};

/// How deep [`dir_usage`] and [`remove_if_unlocked`] look (`<destination>/<stream>/pid-<pid>/`).
const MAX_DEPTH: usize = 4;

/// What a directory tree of spools holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirUsage {
    /// Bytes in all its files.
    pub bytes: u64,
    /// The newest modification time among its files: no record in it is newer, since a
    /// record is written after it is created. `None` when it holds no file.
    pub newest_write: Option<SystemTime>,
}

/// Sums the files under `dir` (symbolic links are not followed) and finds the newest write.
pub fn dir_usage(dir: &Path) -> io::Result<DirUsage> {
    let mut usage = DirUsage::default();
    walk(dir, 0, &mut |_, meta| {
        if meta.is_file() {
            usage.bytes += meta.len();
            let modified = meta.modified()?;
            usage.newest_write = usage.newest_write.max(Some(modified));
        }
        Ok(())
    })?;
    Ok(usage)
}

/// Deletes `dir` and everything under it, unless a process holds the lock of a spool in it
/// (then nothing is deleted and the answer is `Ok(false)`). The locks are held while deleting.
///
/// On Unix the lock files are unlinked while still held. Where an open file cannot be deleted
/// (Windows), everything but the lock files goes while they are held; then the locks are
/// released and closed, and the lock files and directories go.
pub fn remove_if_unlocked(dir: &Path) -> Result<bool, SpoolError> {
    let mut spools: Vec<PathBuf> = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    walk(dir, 0, &mut |path, meta| {
        if meta.is_dir() && path.join(LOCK_FILE).is_file() {
            spools.push(path.to_path_buf());
        } else if !meta.is_dir() && path.file_name() != Some(LOCK_FILE.as_ref()) {
            files.push(path.to_path_buf());
        }
        Ok(())
    })?;
    let mut held: Vec<DirLock> = Vec::new();
    for spool in &spools {
        match lock_dir(spool) {
            Ok(lock) => held.push(lock),
            Err(SpoolError::Locked { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    if cfg!(unix) {
        fs::remove_dir_all(dir)?;
        drop(held);
    } else {
        for file in &files {
            match fs::remove_file(file) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        drop(held);
        fs::remove_dir_all(dir)?;
    }
    Ok(true)
}

/// Calls `visit` for `dir` and every entry below it, down to [`MAX_DEPTH`] levels.
fn walk(
    dir: &Path,
    depth: usize,
    visit: &mut dyn FnMut(&Path, &fs::Metadata) -> io::Result<()>,
) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    visit(dir, &meta)?;
    if !meta.is_dir() || depth >= MAX_DEPTH {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        walk(&path, depth + 1, visit)?;
    }
    Ok(())
}
