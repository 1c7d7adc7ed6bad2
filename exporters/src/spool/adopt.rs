//! Adopting `pid-<pid>` spools left behind by earlier processes.
//!
//! A process that could not lock the shared directory spools in `dir/pid-<pid>`
//! ([`Spool::open_or_fallback`]). Whatever it had not delivered when it exited would wait there
//! forever, so the next process that holds the shared directory adopts it: it opens the
//! subdirectory as a spool (which takes its lock, so a live process's directory fails to open
//! and is left alone), appends every unacknowledged valid record to its own spool with the same
//! id, creation time and bytes, fsyncs, acknowledges them in the orphan, and only then removes
//! the subdirectory. A crash in between re-adopts the same records next time: duplicates (the
//! ids let the receiver drop them), never loss.
//!
//! Removal works where an open file cannot be deleted (Windows): the segments and the cursor
//! go first, under the orphan's lock; the lock file goes last. On Unix it is unlinked while
//! still held, so no process can take the directory in between; on Windows it is released and
//! closed first (an open file's name stays until it is closed, so the directory could not be
//! removed). A file that cannot be removed now (another program has it open) leaves the
//! directory in place, fully acknowledged: the next adoption pass removes it, re-sending nothing.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::cursor::{Position, CURSOR_FILE, CURSOR_TMP};
use super::error::SpoolError;
use super::ledger::segment_number;
use super::lock::LOCK_FILE;
use super::spool::Spool;
use super::stats::AdoptionCounts;

/// Items read from an orphan per batch (bounded memory while adopting).
const BATCH_ITEMS: usize = 256;
/// Bytes read from an orphan per batch.
const BATCH_BYTES: usize = 1024 * 1024;

/// What one adoption pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Adopted {
    /// Orphan directories whose records were moved here and that were then removed.
    pub(super) dirs: u64,
    /// Records moved here.
    pub(super) items: u64,
    /// `pid-*` directories left in place: held by a live process, unreadable, or not removable.
    pub(super) left: u64,
}

/// Whether `name` is a per-process subdirectory name: `pid-` and decimal digits, or a
/// detached spool's (`pid-<pid>-<n>`, see `detached.rs`).
fn is_pid_dir_name(name: &std::ffi::OsStr) -> bool {
    let number = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    name.to_str()
        .and_then(|n| n.strip_prefix("pid-"))
        .is_some_and(|rest| match rest.split_once('-') {
            Some((pid, n)) => number(pid) && number(n),
            None => number(rest),
        })
}

/// The `pid-*` subdirectories of `dir`, sorted by name. Symlinks are not followed.
fn pid_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| is_pid_dir_name(&e.file_name()))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Removes an adopted spool's segments and cursor files, while its lock is still held. Segments
/// first, so a crash part-way leaves at worst records to adopt again.
fn remove_spool_files(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if segment_number(&entry.file_name()).is_some() {
            remove_if_present(&entry.path())?;
        }
    }
    for name in [CURSOR_FILE, CURSOR_TMP] {
        remove_if_present(&dir.join(name))?;
    }
    Ok(())
}

/// Removes an adopted orphan's directory: its files under its lock, then the lock file (see the
/// [module docs](self) for the order), then the directory, which must then be empty.
fn remove_orphan(dir: &Path, orphan: Spool) -> io::Result<()> {
    remove_spool_files(dir)?;
    let lock = dir.join(LOCK_FILE);
    if cfg!(unix) {
        remove_if_present(&lock)?;
        drop(orphan);
    } else {
        // Releases the lock and closes the lock file, which can then be deleted.
        drop(orphan);
        remove_if_present(&lock)?;
    }
    fs::remove_dir(dir)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Adopts every `pid-*` subdirectory of `spool`'s directory that no live process holds (see
/// the [module docs](self)). Counts into [`SpoolStats`](super::SpoolStats) (`adopted_items`,
/// `adopted_dirs`, damage and cap losses as usual) and into
/// [`Recovery::items_to_replay`](super::stats::Recovery::items_to_replay); logs one line when anything
/// was adopted. Never fails: a directory that cannot be adopted stays for later.
pub(super) fn adopt_orphans(spool: &mut Spool) -> Adopted {
    let found = pid_dirs(spool.dir());
    adopt_listed(spool, &found)
}

/// Adopts the given `pid-*` directories (see [`adopt_orphans`]).
pub(super) fn adopt_listed(spool: &mut Spool, orphans: &[PathBuf]) -> Adopted {
    let mut done = Adopted::default();
    let mut counts = AdoptionCounts::default();
    for orphan in orphans {
        match adopt_one(spool, orphan, &mut counts) {
            Ok(removed) => match removed {
                Ok(()) => done.dirs += 1,
                Err(e) => {
                    done.left += 1;
                    tracing::warn!(
                        dir = %orphan.display(),
                        error = %e,
                        "spool: adopted a per-process directory but could not remove it yet; a later start removes it"
                    );
                }
            },
            // A live process's own spool: not ours to take.
            Err(SpoolError::Locked { .. }) => done.left += 1,
            Err(e) => {
                done.left += 1;
                tracing::warn!(
                    dir = %orphan.display(),
                    error = %e,
                    "spool: could not adopt a per-process directory; leaving it for a later start"
                );
            }
        }
    }
    done.items = counts.items;
    counts.dirs = done.dirs;
    spool.count_adoption(counts);
    if done.dirs > 0 {
        tracing::info!(
            dir = %spool.dir().display(),
            dirs = done.dirs,
            items = done.items,
            left = done.left,
            "spool: adopted per-process directories left by earlier processes"
        );
    }
    done
}

/// Moves one orphan's unacknowledged records into `spool`, syncs, acknowledges them in the
/// orphan, then removes the orphan (see the [module docs](self)). Counts what it skipped into
/// `counts`, and what it moved once that is durable; returns whether the orphan could be
/// removed.
fn adopt_one(
    spool: &mut Spool,
    orphan_dir: &Path,
    counts: &mut AdoptionCounts,
) -> Result<io::Result<()>, SpoolError> {
    let mut orphan = Spool::open(orphan_dir, spool.options().clone())?;
    let mut moved = 0;
    let result = move_records(spool, &mut orphan, &mut moved, &mut counts.too_large);
    let damage = orphan.stats();
    counts.damaged_regions += damage.corrupt_regions_skipped;
    counts.damaged_bytes += damage.corrupt_bytes_skipped;
    let last = result?;
    if moved > 0 {
        spool.sync()?;
    }
    if let Some(last) = last {
        // Moved and durable here: should a file below resist removal, the orphan left behind
        // holds nothing to send again.
        orphan.ack(last)?;
        orphan.sync()?;
    }
    counts.items += moved;
    Ok(remove_orphan(orphan_dir, orphan))
}

/// Appends the orphan's unacknowledged records to `spool`; returns the position just past the
/// last one read, if any.
fn move_records(
    spool: &mut Spool,
    orphan: &mut Spool,
    moved: &mut u64,
    too_large: &mut u64,
) -> Result<Option<Position>, SpoolError> {
    let mut last = None;
    loop {
        let batch = orphan.read_batch(BATCH_ITEMS, BATCH_BYTES)?;
        if batch.is_empty() {
            return Ok(last);
        }
        last = batch.last().map(|(p, _)| *p);
        for (_, item) in batch {
            match spool.append_parts(item.id, item.created_ms, &item.bytes) {
                Ok(()) => *moved += 1,
                // Larger than this spool's cap: lost to the cap, like any other append.
                Err(SpoolError::ItemTooLarge { .. }) => *too_large += 1,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{SpoolItem, SpoolOptions};
    use std::ffi::OsStr;

    struct Tmp(PathBuf);

    impl Tmp {
        fn new() -> Self {
            let p = std::env::temp_dir().join(format!("cl-adopt-{}", uuid::Uuid::new_v4()));
            fs::create_dir_all(&p).unwrap();
            Tmp(p)
        }
    }

    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn opts() -> SpoolOptions {
        SpoolOptions::default()
            .with_segment_bytes(512)
            .with_max_bytes(64 * 1024)
    }

    fn item(i: u8, len: usize) -> SpoolItem {
        SpoolItem::new(
            uuid::Uuid::from_bytes([i; 16]),
            u64::from(i),
            vec![b'a' + i % 26; len],
        )
    }

    fn drain(spool: &mut Spool) -> Vec<SpoolItem> {
        let mut all = Vec::new();
        loop {
            let batch = spool.read_batch(5, usize::MAX).unwrap();
            if batch.is_empty() {
                return all;
            }
            all.extend(batch.into_iter().map(|(_, it)| it));
        }
    }

    /// Writes `items` into `dir/<name>` as a spool, acknowledging the first `acked`.
    fn orphan(dir: &Path, name: &str, items: &[SpoolItem], acked: usize) {
        let mut s = Spool::open(dir.join(name), opts()).unwrap();
        for it in items {
            s.append(it).unwrap();
        }
        if acked > 0 {
            let batch = s.read_batch(acked, usize::MAX).unwrap();
            s.ack(batch.last().unwrap().0).unwrap();
        }
        s.sync().unwrap();
    }

    #[test]
    fn pid_dir_names() {
        assert!(is_pid_dir_name(OsStr::new("pid-1")));
        assert!(is_pid_dir_name(OsStr::new("pid-123456")));
        assert!(is_pid_dir_name(OsStr::new("pid-12-3")));
        for bad in [
            "pid-",
            "pid-12a",
            "pid--1",
            "pid-1-",
            "pid-1-2-3",
            ".pending-1-2",
            "xpid-1",
            "pid-1.seg",
            "000000000001.seg",
        ] {
            assert!(!is_pid_dir_name(OsStr::new(bad)), "{bad}");
        }
    }

    #[test]
    fn unacked_records_are_moved_and_the_orphan_removed() {
        let tmp = Tmp::new();
        let items: Vec<_> = (0..20).map(|i| item(i, 40)).collect();
        orphan(&tmp.0, "pid-7", &items, 5);
        let mut primary = Spool::open(&tmp.0, opts()).unwrap();
        primary.append(&item(100, 10)).unwrap();
        let done = adopt_orphans(&mut primary);
        assert_eq!(
            done,
            Adopted {
                dirs: 1,
                items: 15,
                left: 0
            }
        );
        assert!(!tmp.0.join("pid-7").exists());
        let stats = primary.stats();
        assert_eq!((stats.adopted_dirs, stats.adopted_items), (1, 15));
        assert_eq!(primary.recovery().items_to_replay, 16);
        let mut expected = vec![item(100, 10)];
        expected.extend_from_slice(&items[5..]);
        assert_eq!(drain(&mut primary), expected, "same ids, times and bytes");
    }

    #[test]
    fn a_locked_orphan_is_left_alone_and_other_entries_are_ignored() {
        let tmp = Tmp::new();
        orphan(&tmp.0, "pid-1", &[item(1, 10)], 0);
        let live = Spool::open(tmp.0.join("pid-1"), opts()).unwrap();
        orphan(&tmp.0, "not-a-pid", &[item(2, 10)], 0);
        fs::write(tmp.0.join("pid-3"), b"a file").unwrap();
        let mut primary = Spool::open(&tmp.0, opts()).unwrap();
        let done = adopt_orphans(&mut primary);
        assert_eq!((done.dirs, done.items, done.left), (0, 0, 1));
        assert!(drain(&mut primary).is_empty());
        assert!(tmp.0.join("pid-1").join(LOCK_FILE).exists());
        assert!(tmp.0.join("not-a-pid").is_dir());
        drop(live);
        assert_eq!(adopt_orphans(&mut primary).items, 1, "adopted once free");
    }

    #[test]
    fn empty_and_fully_acked_orphans_are_just_removed() {
        let tmp = Tmp::new();
        orphan(&tmp.0, "pid-1", &[], 0);
        orphan(&tmp.0, "pid-2", &[item(1, 10), item(2, 10)], 2);
        let mut primary = Spool::open(&tmp.0, opts()).unwrap();
        let done = adopt_orphans(&mut primary);
        assert_eq!((done.dirs, done.items), (2, 0));
        assert!(!tmp.0.join("pid-1").exists() && !tmp.0.join("pid-2").exists());
    }

    #[test]
    fn damaged_records_are_skipped_and_counted() {
        let tmp = Tmp::new();
        orphan(&tmp.0, "pid-9", &[item(1, 30), item(2, 30), item(3, 30)], 0);
        let seg = fs::read_dir(tmp.0.join("pid-9"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "seg"))
            .unwrap();
        let mut bytes = fs::read(&seg).unwrap();
        let second = item(1, 30).encoded_len() + 20;
        bytes[second] ^= 0xFF;
        fs::write(&seg, bytes).unwrap();
        let mut primary = Spool::open(&tmp.0, opts()).unwrap();
        assert_eq!(adopt_orphans(&mut primary).items, 2);
        assert_eq!(primary.stats().corrupt_regions_skipped, 1);
        assert_eq!(drain(&mut primary), vec![item(1, 30), item(3, 30)]);
    }

    #[test]
    fn adoption_past_the_cap_drops_the_oldest_and_counts_them() {
        let tmp = Tmp::new();
        let small = SpoolOptions::default()
            .with_segment_bytes(512)
            .with_max_bytes(2048);
        let items: Vec<_> = (0..40).map(|i| item(i, 60)).collect();
        {
            let mut s = Spool::open(tmp.0.join("pid-4"), opts()).unwrap();
            items.iter().for_each(|it| s.append(it).unwrap());
        }
        let mut primary = Spool::open(&tmp.0, small).unwrap();
        let done = adopt_orphans(&mut primary);
        let stats = primary.stats();
        assert_eq!(done.items, 40);
        assert!(stats.dropped_by_cap > 0);
        assert!(stats.bytes_on_disk <= 2048);
        let got = drain(&mut primary);
        assert_eq!(got.len() as u64 + stats.dropped_by_cap, 40);
        assert_eq!(got.last(), items.last(), "the newest are kept");
        assert_eq!(primary.recovery().items_to_replay, got.len() as u64);
    }
}
