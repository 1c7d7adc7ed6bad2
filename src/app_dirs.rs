//! Each app's own directories. The OS data and cache directories are shared by every app that
//! uses this library, so each keeps its state in a namespace of its own:
//! `<OS dir>/closedloop-telemetry/apps/<app name>/`. The app name is the one given to
//! [`TelemetryBuilder::app_name`](crate::TelemetryBuilder::app_name), by default the file name
//! of the running executable (without `.exe`), made a safe directory name ([`sanitize`]). So
//! one app's start never deletes another app's spool, and one app's consent choice is not
//! another's. A directory given explicitly (`data_dir`, `spool_dir`,
//! `CL_TELEMETRY_SPOOL_DIR`) is used as it is: it belongs to the app that gives it.
//!
//! Versions without namespaces kept everything in `<OS dir>/closedloop-telemetry/` itself,
//! shared. What they left there is read, never written or deleted: a denial stored there still
//! holds for an app with no choice of its own, a computeTargetId stored there is taken over
//! (so an upgraded app keeps its id), and spools there are left alone (never sent, never
//! swept).

use std::path::{Path, PathBuf};

/// The library's directory under the OS data and cache directories.
pub(crate) const LIBRARY_DIR: &str = "closedloop-telemetry";
/// The directory, under [`LIBRARY_DIR`], that holds one namespace per app. Not a destination
/// fingerprint (8 hex digits), so a version without namespaces never sweeps it.
const APPS_DIR: &str = "apps";
/// The longest app name, in bytes; longer names are cut.
const MAX_NAME_BYTES: usize = 64;
/// The app name when the executable's cannot be found.
const FALLBACK_NAME: &str = "app";

/// `name` as a directory name: lowercased (so names differing in case only do not meet on a
/// file system that ignores case), every character other than ASCII letters, digits, `-`, `_`
/// and `.` replaced by `_`, leading and trailing dots dropped, at most 64 bytes, and a name
/// Windows reserves for a device (`con`, `nul`, `com1`, …) prefixed with `_`. Empty when
/// nothing is left.
pub(crate) fn sanitize(name: &str) -> String {
    let mut out: String = name
        .trim_matches('.')
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect();
    let stem = out.split('.').next().unwrap_or_default();
    let device = matches!(stem, "con" | "prn" | "aux" | "nul")
        || (stem.len() == 4
            && (stem.starts_with("com") || stem.starts_with("lpt"))
            && stem.as_bytes()[3].is_ascii_digit());
    if device {
        out.insert(0, '_');
    }
    out.truncate(MAX_NAME_BYTES);
    out.trim_end_matches('.').to_string()
}

/// The default app name: the running executable's file name without its extension,
/// sanitized; `app` when it cannot be found.
pub(crate) fn default_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| sanitize(&s.to_string_lossy())))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| FALLBACK_NAME.to_string())
}

/// The app name to use: `given` sanitized, else [`default_name`]. `None` when `given`
/// sanitizes to nothing.
pub(crate) fn name(given: Option<&str>) -> Option<String> {
    match given {
        Some(given) => Some(sanitize(given)).filter(|n| !n.is_empty()),
        None => Some(default_name()),
    }
}

/// The app's namespace under the OS directory `os_dir`.
fn namespace(os_dir: PathBuf, app: &str) -> PathBuf {
    os_dir.join(LIBRARY_DIR).join(APPS_DIR).join(app)
}

/// Where one app keeps its computeTargetId and consent choice.
#[derive(Debug, Clone, Default)]
pub(crate) struct DataDirs {
    /// The app's data directory: the configured one, else its namespace in the OS data dir.
    pub(crate) dir: Option<PathBuf>,
    /// The shared directory of versions without namespaces, read only; `None` when the data
    /// directory was configured.
    pub(crate) legacy: Option<PathBuf>,
}

/// The data directories of `app`: `configured`, else the app's namespace in the OS data dir
/// (and then the shared one of earlier versions too).
pub(crate) fn data_dirs(configured: Option<&Path>, app: &str) -> DataDirs {
    match configured {
        Some(dir) => DataDirs {
            dir: Some(dir.to_path_buf()),
            legacy: None,
        },
        None => DataDirs {
            dir: default_data_dir(app),
            legacy: dirs::data_dir().map(|d| d.join(LIBRARY_DIR)),
        },
    }
}

/// The app's default data directory: its namespace in the OS data dir.
pub(crate) fn default_data_dir(app: &str) -> Option<PathBuf> {
    dirs::data_dir().map(|d| namespace(d, app))
}

/// The app's default spool base: its namespace in the OS cache dir.
pub(crate) fn default_spool_base(app: &str) -> Option<PathBuf> {
    dirs::cache_dir().map(|d| namespace(d, app))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_safe_directory_names() {
        assert_eq!(sanitize("MyApp"), "myapp");
        assert_eq!(sanitize("my app/../x"), "my_app_.._x");
        assert_eq!(sanitize("..hidden."), "hidden");
        assert_eq!(sanitize("NUL"), "_nul");
        assert_eq!(sanitize("com1.x"), "_com1.x");
        assert_eq!(sanitize("console"), "console");
        assert_eq!(sanitize("Café"), "caf_");
        assert_eq!(sanitize(""), "");
        assert_eq!(sanitize("..."), "");
        assert_eq!(sanitize(&"a".repeat(100)).len(), MAX_NAME_BYTES);
        assert_eq!(name(Some(".")), None);
        assert_eq!(name(Some("Desk Top")).as_deref(), Some("desk_top"));
        let default = name(None).unwrap();
        assert!(!default.is_empty());
        assert_eq!(sanitize(&default), default);
    }
}
