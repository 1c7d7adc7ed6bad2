//! One item written beside a running spool, by a thread that does not own it: the panic hook
//! (and the start that reports an abnormal exit), which must make an event durable at once
//! without waiting for the pipeline's background.
//!
//! The item goes into a spool of its own, `dir/pid-<pid>-<n>`, which is exactly what
//! [adoption](super::adopt) takes in: the background of this process adopts it when told to (the
//! process survived), else the next process to open `dir` does (the process died). It is
//! written under a name adoption ignores (`dir/.pending-<pid>-<n>`), fsynced, closed, and only
//! then renamed into place (and the directory synced), so an adopter never sees it half written.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

use super::error::SpoolError;
use super::options::SpoolOptions;
use super::spool::Spool;

/// Numbers this process's detached spools.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Writes one item into a new detached spool under `dir` (created if needed, private to this
/// user) and makes it durable: one segment write, its fsync and the directory's. Returns the
/// detached spool's directory, for [`Spool::adopt_dir`]. `opts` gives the sizes (the item must
/// fit its cap); its purge flag is ignored. Blocks only on that I/O, never on a lock another
/// thread holds.
pub(crate) fn write_detached(
    dir: &Path,
    opts: &SpoolOptions,
    id: Uuid,
    created_ms: u64,
    bytes: &[u8],
) -> Result<PathBuf, SpoolError> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let pending = dir.join(format!(".pending-{pid}-{n}"));
    let done = dir.join(format!("pid-{pid}-{n}"));
    let opts = opts.clone().with_purge_on_open(false);
    let written = (|| {
        let mut spool = Spool::open(&pending, opts)?;
        spool.append_parts(id, created_ms, bytes)?;
        spool.sync()?;
        drop(spool);
        fs::rename(&pending, &done)?;
        // The rename itself must survive a power loss (a no-op where a directory cannot be
        // synced).
        let _ = crate::private_fs::sync_dir(dir);
        Ok(done)
    })();
    if written.is_err() {
        let _ = fs::remove_dir_all(&pending);
    }
    written
}

impl Spool {
    /// Adopts the detached spool `orphan` (a `pid-*` directory, see [`write_detached`]) into
    /// this spool now, as [`Spool::open_or_fallback`] adopts at start: its records are appended
    /// with their ids, times and bytes, this spool is fsynced, then `orphan` is removed.
    /// Returns how many records were adopted (0 when `orphan` is gone already or another
    /// process holds it).
    pub(crate) fn adopt_dir(&mut self, orphan: &Path) -> u64 {
        if !orphan.is_dir() {
            return 0;
        }
        super::adopt::adopt_listed(self, &[orphan.to_path_buf()]).items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detached_item_is_adopted_once() {
        let dir = std::env::temp_dir().join(format!("cl-detached-{}", Uuid::new_v4()));
        let opts = SpoolOptions::default();
        let id = Uuid::now_v7();
        let written = write_detached(&dir, &opts, id, 7, b"{\"x\":1}").unwrap();
        assert!(written.is_dir());
        assert!(!fs::read_dir(&dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')));
        let mut spool = Spool::open(&dir, opts.clone()).unwrap();
        assert_eq!(spool.adopt_dir(&written), 1);
        assert_eq!(spool.adopt_dir(&written), 0, "adopted once");
        assert!(!written.exists());
        let batch = spool.read_batch(10, usize::MAX).unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].1.id, id);
        assert_eq!(batch[0].1.bytes, b"{\"x\":1}");
        drop(spool);
        // Not adopted by this process: the next open of the directory adopts it.
        let again = write_detached(&dir, &opts, Uuid::now_v7(), 8, b"{}").unwrap();
        let handle = Spool::open_or_fallback(&dir, opts);
        assert!(!again.exists());
        assert_eq!(handle.into_spool().unwrap().stats().adopted_items, 1);
        fs::remove_dir_all(&dir).ok();
    }
}
