//! The user's telemetry consent, persisted next to the computeTargetId.
//!
//! The choice lives in the file [`CONSENT_FILE`] of the app's data directory (the same
//! directory as [`identity::ID_FILE`](crate::identity::ID_FILE); by default the app's own
//! namespace, so one app's choice is not another's: see
//! [`TelemetryBuilder::app_name`](crate::TelemetryBuilder::app_name)) as the word `granted` or
//! `denied`, written to a temporary name, fsynced, renamed into place, and the directory synced
//! so the rename survives a power loss (on Unix; see
//! [`private_fs::sync_dir`](closedloop_telemetry_exporters::__private::private_fs::sync_dir) for
//! Windows, where it cannot be synced). With no choice there, a denial stored by a version
//! without namespaces (in the shared `closedloop-telemetry/consent`) still holds. Change it at
//! runtime with
//! [`TelemetryHandle::set_consent`](crate::TelemetryHandle::set_consent); the builder reads it
//! at start, and with no file uses [`TelemetryBuilder::default_consent`]
//! (`Granted` unless set).
//!
//! `DO_NOT_TRACK=1` and `CL_TELEMETRY_DISABLED=1` always win over a stored grant: then no
//! upstream stream is started at all.
//!
//! [`TelemetryBuilder::default_consent`]: crate::TelemetryBuilder::default_consent

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::app_dirs::DataDirs;

/// The file, in the data directory, holding the stored choice.
pub const CONSENT_FILE: &str = "consent";

/// Whether the user lets events leave the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Consent {
    /// Events go to the configured upstream streams.
    Granted,
    /// Nothing leaves the machine; the local activity log keeps working.
    Denied,
}

impl Consent {
    /// `"granted"` or `"denied"` (the file's content).
    pub const fn as_str(self) -> &'static str {
        match self {
            Consent::Granted => "granted",
            Consent::Denied => "denied",
        }
    }

    /// Parses the file's content (surrounding whitespace ignored).
    pub fn parse(s: &str) -> Option<Consent> {
        match s.trim() {
            "granted" => Some(Consent::Granted),
            "denied" => Some(Consent::Denied),
            _ => None,
        }
    }
}

/// Why the consent choice could not be persisted. The choice still took effect for this run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsentError {
    /// There is no OS data directory and none was configured.
    #[error("no data directory to store the consent choice in")]
    NoDataDir,
    /// Writing the file failed.
    #[error("cannot store the consent choice in {dir}: {source}")]
    Io {
        /// The data directory.
        dir: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// The stored choice in `dir`, if there is a readable, well-formed one.
///
/// ```
/// use closedloop_telemetry::Consent;
/// use closedloop_telemetry::__private::consent::{load, store};
/// let dir = std::env::temp_dir().join(format!("cl-consent-doc-{}", std::process::id()));
/// assert_eq!(load(&dir), None);
/// store(&dir, Consent::Denied).unwrap();
/// assert_eq!(load(&dir), Some(Consent::Denied));
/// # std::fs::remove_dir_all(&dir).ok();
/// ```
pub fn load(dir: &Path) -> Option<Consent> {
    fs::read_to_string(dir.join(CONSENT_FILE))
        .ok()
        .and_then(|s| Consent::parse(&s))
}

/// Stores `consent` in `dir` atomically and durably: temporary file, fsync, rename, then an fsync
/// of `dir`, without which a power loss could undo the rename and bring back the previous
/// choice (a denial reverted to a grant). On Windows the directory cannot be synced with the
/// standard library: NTFS journals the rename and commits it on its own schedule, so a power
/// loss soon after `store` returns may still bring back the previous choice.
pub fn store(dir: &Path, consent: Consent) -> io::Result<()> {
    use closedloop_telemetry_exporters::__private::private_fs;
    private_fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        "{CONSENT_FILE}.{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let written = (|| {
        let mut f = private_fs::create_file(&tmp)?;
        f.write_all(consent.as_str().as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(CONSENT_FILE))?;
        // The new name is durable only once the directory is.
        private_fs::sync_dir(dir)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// The choice in force at start, if the user made one: the one stored in the app's data
/// directory; with none there, a denial a version without namespaces stored in the shared
/// directory (its grant may have been given to another app, its denial is kept).
pub(crate) fn stored(dirs: &DataDirs) -> Option<Consent> {
    dirs.dir.as_deref().and_then(load).or_else(|| {
        dirs.legacy
            .as_deref()
            .and_then(load)
            .filter(|c| *c == Consent::Denied)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_garbage() {
        let dir = std::env::temp_dir().join(format!("cl-consent-{}", uuid::Uuid::new_v4()));
        assert_eq!(load(&dir), None);
        store(&dir, Consent::Granted).unwrap();
        assert_eq!(load(&dir), Some(Consent::Granted));
        store(&dir, Consent::Denied).unwrap();
        assert_eq!(load(&dir), Some(Consent::Denied));
        fs::write(dir.join(CONSENT_FILE), "maybe").unwrap();
        assert_eq!(load(&dir), None);
        let leftovers = fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files are left behind");
        fs::remove_dir_all(&dir).unwrap();
    }
}
