//! The default computeTargetId: created once per machine in the OS data directory and reused.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The directory, under the OS data dir, where the library keeps its state.
pub const APP_DIR: &str = "closedloop-telemetry";
/// The file holding the id.
pub const ID_FILE: &str = "compute-target-id";

/// The OS data directory for this library (`$XDG_DATA_HOME/closedloop-telemetry` on Linux).
pub fn default_data_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join(APP_DIR))
}

/// Reads the id stored in `dir`, or creates, stores and returns a new one (a UUIDv4).
///
/// The file is written to a temporary name and renamed into place, so a crash never leaves a
/// half-written id. An unreadable or malformed file is replaced.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("cl-id-doc-{}", std::process::id()));
/// let a = closedloop_telemetry::identity::load_or_create(&dir).unwrap();
/// let b = closedloop_telemetry::identity::load_or_create(&dir).unwrap();
/// assert_eq!(a, b);
/// # std::fs::remove_dir_all(&dir).ok();
/// ```
pub fn load_or_create(dir: &Path) -> io::Result<String> {
    let path = dir.join(ID_FILE);
    if let Ok(s) = fs::read_to_string(&path) {
        let s = s.trim();
        if is_valid(s) {
            return Ok(s.to_string());
        }
    }
    closedloop_telemetry_exporters::private_fs::create_dir_all(dir)?;
    let id = uuid::Uuid::new_v4().to_string();
    let tmp = dir.join(format!("{ID_FILE}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = closedloop_telemetry_exporters::private_fs::create_file(&tmp)?;
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

fn is_valid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_graphic())
}

/// The id to use when none is configured: the persisted one, or (when the data directory is
/// unusable) a fresh id for this run, with a warning. Never fails.
pub(crate) fn resolve(dir: Option<&Path>) -> String {
    let dir = dir.map(Path::to_path_buf).or_else(default_data_dir);
    let Some(dir) = dir else {
        tracing::warn!(
            target: "closedloop_telemetry::internal",
            "no OS data directory; using a computeTargetId for this run only"
        );
        return uuid::Uuid::new_v4().to_string();
    };
    match load_or_create(&dir) {
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
