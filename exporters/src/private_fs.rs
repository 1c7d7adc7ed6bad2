//! Files and directories private to the current user: on Unix, directories are created `0700`
//! and files `0600`, and a state directory that another user owns, or that group or others
//! may write, is refused. On other platforms the OS defaults apply and nothing is refused.
//!
//! Used for the spool, the computeTargetId file and the consent file (see `docs/PRIVACY.md`).
//! [`sync_dir`] makes a file created, renamed or deleted in a directory durable (the spool and
//! the consent file use it).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;

/// Creates `dir` and any missing parents; each directory this call creates is `0700` (Unix).
/// Existing directories are left as they are.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir)
    }
}

/// `OpenOptions` whose newly created files are `0600` (Unix); set the access flags as usual.
pub(crate) fn file_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Creates (or truncates) `path` for writing, `0600` when it is new (Unix).
pub fn create_file(path: &Path) -> io::Result<fs::File> {
    file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// Fsyncs a directory so that file creations, renames and deletions in it are durable: after a
/// rename into place, the new name survives a power loss only once its directory is synced.
///
/// On Unix this opens `dir` and calls `fsync` on it. On Windows it does nothing: the standard
/// library cannot open a directory for syncing. NTFS records the rename in its metadata journal,
/// which it commits on its own schedule, so a power loss soon after a rename may still bring the
/// previous file back.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    #[cfg(any(test, feature = "testing"))]
    DIR_SYNCS.with(|n| n.set(n.get() + 1));
    Ok(())
}

#[cfg(any(test, feature = "testing"))]
thread_local! {
    static DIR_SYNCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many times [`sync_dir`] completed on the calling thread (feature `testing`): a test
/// checks with it that a write path syncs its directory, unaffected by other threads.
#[cfg(any(test, feature = "testing"))]
pub fn dir_syncs_on_this_thread() -> u64 {
    DIR_SYNCS.with(std::cell::Cell::get)
}

/// `Err(reason)` when `dir` is not private to this user: on Unix, when another user owns it or
/// group or others may write to it. `Ok` on other platforms and when `dir` cannot be read
/// (opening it reports that).
pub(crate) fn check_private_dir(dir: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = fs::metadata(dir) else {
            return Ok(());
        };
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(format!(
                "owned by uid {}, not by this user (uid {me})",
                meta.uid()
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "writable by group or others (mode {:o})",
                meta.mode() & 0o7777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_private_dirs_and_files_and_refuses_shared_dirs() {
        let base = std::env::temp_dir().join(format!("cl-private-{}", uuid::Uuid::new_v4()));
        let dir = base.join("a").join("b");
        create_dir_all(&dir).unwrap();
        assert_eq!(mode(&base), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("f");
        create_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(check_private_dir(&dir), Ok(()));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o770)).unwrap();
        let why = check_private_dir(&dir).unwrap_err();
        assert!(why.contains("writable by group or others"), "{why}");
        fs::remove_dir_all(&base).unwrap();
    }
}
