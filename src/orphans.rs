//! Spool directories that no configured stream uses any more ("orphans"), e.g. after the
//! relay URL or the PostHog project changed: reported in
//! [`TelemetryStats::orphan_spools`](crate::TelemetryStats::orphan_spools) with their bytes,
//! and deleted at start once everything in them has passed its expiry.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use closedloop_telemetry_exporters::spool::{dir_usage, remove_if_unlocked};

/// Datadog refuses logs older than 18 h: an orphan holding relay or Datadog events is deleted
/// this long after its newest write (the diagnostics streams' expiry age,
/// [`MAX_AGE`](closedloop_telemetry_exporters::diagnostics::MAX_AGE)).
pub const ORPHAN_DIAGNOSTICS_MAX_AGE: Duration =
    closedloop_telemetry_exporters::diagnostics::MAX_AGE;
/// An orphan holding PostHog events (or anything else) is deleted this long (7 days) after its
/// newest write.
pub const ORPHAN_POSTHOG_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// A spool directory that no configured stream uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanSpool {
    /// The directory: `<spool dir>/<destination fingerprint>`.
    pub dir: PathBuf,
    /// Bytes its files hold.
    pub bytes: u64,
    /// When everything in it has passed its expiry; the first start after that deletes it.
    pub expires: SystemTime,
}

/// Whether `name` is a destination fingerprint (8 lowercase hex digits).
pub(crate) fn is_fingerprint(name: &str) -> bool {
    name.len() == 8 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Looks at every destination directory in `base` other than `active`: deletes those whose
/// contents have all expired by `now` (unless another process holds one of their spools) and
/// returns the others. Errors only leave a directory in place; they are never fatal.
pub(crate) fn sweep(base: &Path, active: &[String], now: SystemTime) -> Vec<OrphanSpool> {
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let mut orphans = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir || !is_fingerprint(name) || active.iter().any(|a| a == name) {
            continue;
        }
        let dir = entry.path();
        let Ok(usage) = dir_usage(&dir) else { continue };
        let expires = usage
            .newest_write
            .and_then(|t| t.checked_add(max_age(&dir)))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if expires <= now && remove_if_unlocked(&dir).unwrap_or(false) {
            tracing::debug!(
                target: "closedloop_telemetry::internal",
                dir = %dir.display(),
                bytes = usage.bytes,
                "deleted an expired spool directory no configured stream uses"
            );
            continue;
        }
        orphans.push(OrphanSpool {
            dir,
            bytes: usage.bytes,
            expires,
        });
    }
    if !orphans.is_empty() {
        tracing::info!(
            target: "closedloop_telemetry::internal",
            directories = orphans.len(),
            bytes = orphans.iter().map(|o| o.bytes).sum::<u64>(),
            "spooled events for destinations no longer configured are kept until they expire"
        );
    }
    orphans
}

/// The expiry of what `dir` holds: 18 h when it only holds relay or Datadog spools, else 7 days.
fn max_age(dir: &Path) -> Duration {
    let only_diagnostics = std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .all(|e| matches!(e.file_name().to_str(), Some("relay" | "datadog")))
    });
    if only_diagnostics {
        ORPHAN_DIAGNOSTICS_MAX_AGE
    } else {
        ORPHAN_POSTHOG_MAX_AGE
    }
}
