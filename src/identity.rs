//! The default computeTargetId: created once per machine and app in the app's data directory
//! and reused.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::app_dirs::DataDirs;

/// The file holding the id.
pub const ID_FILE: &str = "compute-target-id";

/// Reads the id stored in `dir`, or creates, stores and returns a new one (a UUIDv4).
///
/// The file is written to a temporary name and renamed into place, so a crash never leaves a
/// half-written id. An unreadable or malformed file is replaced.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("cl-id-doc-{}", std::process::id()));
/// let a = closedloop_telemetry::__private::identity::load_or_create(&dir).unwrap();
/// let b = closedloop_telemetry::__private::identity::load_or_create(&dir).unwrap();
/// assert_eq!(a, b);
/// # std::fs::remove_dir_all(&dir).ok();
/// ```
pub fn load_or_create(dir: &Path) -> io::Result<String> {
    match load(dir) {
        Some(id) => Ok(id),
        None => store(dir, uuid::Uuid::new_v4().to_string()),
    }
}

/// The valid id stored in `dir`, if any.
fn load(dir: &Path) -> Option<String> {
    let s = fs::read_to_string(dir.join(ID_FILE)).ok()?;
    let s = s.trim();
    is_valid(s).then(|| s.to_string())
}

/// Stores `id` in `dir` and returns it.
fn store(dir: &Path, id: String) -> io::Result<String> {
    let path = dir.join(ID_FILE);
    closedloop_telemetry_exporters::__private::private_fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{ID_FILE}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = closedloop_telemetry_exporters::__private::private_fs::create_file(&tmp)?;
        f.write_all(id.as_bytes())?;
        f.sync_all()?;
        drop(f);
        // Fails on Windows while another program holds the old file open: nothing is stranded.
        fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map(|()| id)
}

/// The id stored earlier, read without creating one: the app's, else the one in the shared
/// directory of a version without namespaces.
pub(crate) fn stored(dirs: &DataDirs) -> Option<String> {
    dirs.dir
        .as_deref()
        .and_then(load)
        .or_else(|| dirs.legacy.as_deref().and_then(load))
}

fn is_valid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_graphic())
}

/// The id to use when none is configured: the one persisted in the app's data directory; else
/// the one a version without namespaces stored in the shared directory, taken over (stored in
/// the app's directory); else a new one. When the data directory is unusable, an id for this
/// run, with a warning. Never fails.
pub(crate) fn resolve(dirs: &DataDirs) -> String {
    let Some(dir) = dirs.dir.clone() else {
        tracing::warn!(
            target: "closedloop_telemetry::internal",
            "no OS data directory; using a computeTargetId for this run only"
        );
        return uuid::Uuid::new_v4().to_string();
    };
    let stored = match load(&dir) {
        Some(id) => Ok(id),
        None => {
            let legacy = dirs.legacy.as_deref().and_then(load);
            store(
                &dir,
                legacy.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            )
        }
    };
    match stored {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(
                target: "closedloop_telemetry::internal",
                error = %e,
                dir = %dir.display(),
                "cannot persist the computeTargetId; using one for this run only"
            );
            uuid::Uuid::new_v4().to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_file_is_replaced() {
        let dir = std::env::temp_dir().join(format!("cl-id-test-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(ID_FILE), "  \n").unwrap();
        let id = load_or_create(&dir).unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(fs::read_to_string(dir.join(ID_FILE)).unwrap(), id);
        fs::remove_dir_all(&dir).unwrap();
    }
}
