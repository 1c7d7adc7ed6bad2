//! Purging spools from outside, without opening them: for a withdrawn consent, which must empty
//! every spool an app has, not only those of the destinations it runs now.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::SpoolError;
use super::lock::{lock_dir, LOCK_FILE};

/// How deep [`purge_unlocked`] looks (`<destination>/<stream>/pid-<pid>/`, and one more).
const MAX_DEPTH: usize = 4;

/// What [`purge_unlocked`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct PurgeOutcome {
    /// Spool directories whose records were deleted, with the bytes their files held.
    pub purged: Vec<(PathBuf, u64)>,
    /// Spool directories left as they were because their lock is held (by another process, or
    /// by a spool this process has open), with the holder's pid when its lock file names one.
    pub locked: Vec<(PathBuf, Option<u32>)>,
    /// What could not be read or deleted (left in place), with the error.
    pub failed: Vec<(PathBuf, io::Error)>,
}

/// Deletes the records of every spool under `dir` (`dir` included, down to 4 levels) whose
/// lock is free, then removes each directory left empty (`dir` too).
///
/// Each spool's files are deleted while its lock is held, so no process reads them meanwhile.
/// A spool whose lock is held is left as it is (the spools below it are still purged); so is
/// a file that belongs to no spool. Symbolic links are not followed. Never fails as a whole:
/// what could not be done is listed in the outcome.
pub fn purge_unlocked(dir: &Path) -> PurgeOutcome {
    let mut outcome = PurgeOutcome::default();
    purge_at(dir, 0, &mut outcome);
    outcome
}

/// Purges `dir` and what is below it; whether `dir` is gone.
fn purge_at(dir: &Path, depth: usize, out: &mut PurgeOutcome) -> bool {
    let is_spool = dir.join(LOCK_FILE).is_file();
    let lock = if is_spool {
        match lock_dir(dir) {
            Ok(lock) => Some(lock),
            Err(SpoolError::Locked { holder, .. }) => {
                out.locked.push((dir.to_path_buf(), holder));
                None
            }
            Err(e) => {
                out.failed
                    .push((dir.to_path_buf(), io::Error::other(e.to_string())));
                None
            }
        }
    } else {
        None
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            out.failed.push((dir.to_path_buf(), e));
            return false;
        }
    };
    let mut empty = true;
    let mut bytes = 0;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                out.failed.push((dir.to_path_buf(), e));
                empty = false;
                continue;
            }
        };
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            empty &= depth < MAX_DEPTH && purge_at(&path, depth + 1, out);
        } else if is_spool && entry.file_name() == LOCK_FILE {
            // Goes with the directory, last.
        } else if lock.is_some() {
            let len = entry.metadata().map_or(0, |m| m.len());
            match fs::remove_file(&path) {
                Ok(()) => bytes += len,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    out.failed.push((path, e));
                    empty = false;
                }
            }
        } else {
            // A held spool's file, or one that belongs to no spool: not ours to delete.
            empty = false;
        }
    }
    if lock.is_some() {
        out.purged.push((dir.to_path_buf(), bytes));
    }
    if !empty || (is_spool && lock.is_none()) {
        return false;
    }
    if is_spool {
        // On Unix the lock file is unlinked while held; where an open file cannot be deleted
        // (Windows) the lock is released first.
        if cfg!(unix) {
            let _ = fs::remove_file(dir.join(LOCK_FILE));
        } else {
            drop(lock);
            let _ = fs::remove_file(dir.join(LOCK_FILE));
            return fs::remove_dir(dir).is_ok();
        }
    }
    let removed = fs::remove_dir(dir).is_ok();
    drop(lock);
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{Spool, SpoolItem, SpoolOptions};

    fn spool_with_items(dir: &Path, n: u32) -> Spool {
        let mut spool = Spool::open(dir, SpoolOptions::default()).unwrap();
        for i in 0..n {
            let item = SpoolItem::new(
                uuid::Uuid::now_v7(),
                1_700_000_000_000,
                vec![b'x'; 10 + i as usize],
            );
            spool.append(&item).unwrap();
        }
        spool.sync().unwrap();
        spool
    }

    fn unread(dir: &Path) -> usize {
        let mut spool = Spool::open(dir, SpoolOptions::default()).unwrap();
        spool.read_batch(10_000, 64 << 20).unwrap().len()
    }

    #[test]
    fn free_spools_are_emptied_and_removed_held_ones_left_alone() {
        let root = std::env::temp_dir().join(format!("cl-purge-{}", uuid::Uuid::new_v4()));
        let free = root.join("0000000a").join("posthog");
        let held = root.join("0000000b").join("relay");
        let free_child = held.join("pid-4242");
        drop(spool_with_items(&free, 3));
        drop(spool_with_items(&free_child, 2));
        let holder = spool_with_items(&held, 4);
        std::fs::write(root.join("0000000b").join("stray"), b"not a spool's").unwrap();

        let outcome = purge_unlocked(&root);

        assert!(!root.join("0000000a").exists(), "{outcome:?}");
        assert!(
            !free_child.exists(),
            "a free spool below a held one: {outcome:?}"
        );
        let purged: Vec<&Path> = outcome.purged.iter().map(|(p, _)| p.as_path()).collect();
        assert!(purged.contains(&free.as_path()) && purged.contains(&free_child.as_path()));
        assert!(outcome.purged.iter().all(|(_, bytes)| *bytes > 0));
        assert_eq!(outcome.locked.len(), 1, "{outcome:?}");
        assert_eq!(outcome.locked[0].0, held);
        if cfg!(unix) {
            // Where a held lock file cannot be read (Windows) the holder is unknown.
            assert_eq!(outcome.locked[0].1, Some(std::process::id()));
        }
        assert!(outcome.failed.is_empty(), "{outcome:?}");
        assert!(root.join("0000000b").join("stray").exists());
        drop(holder);
        assert_eq!(unread(&held), 4, "the held spool was not touched");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
