//! Spool directories that no configured stream uses any more ("orphans"), e.g. after the
//! relay URL or the PostHog project changed: reported in
//! [`TelemetryStats::orphan_spools`](crate::TelemetryStats::orphan_spools) with their bytes,
//! and deleted at start once everything in them has passed its expiry; and the purge of every
//! destination directory when consent is denied.
//!
//! Both look only at the destination directories (8 hex digits) of this app's spool base: by
//! default the app's own namespace in the OS cache dir, so another app's spools are never
//! looked at. Each deletion is logged at `info` with its directory and why.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use closedloop_telemetry_exporters::__private::spool::{
    dir_usage, purge_unlocked, remove_if_unlocked,
};

/// Datadog refuses logs older than 18 h: an orphan holding relay or Datadog events is deleted
/// this long after its newest write (the diagnostics streams' expiry age,
/// [`MAX_AGE`](closedloop_telemetry_exporters::__private::diagnostics::MAX_AGE)).
pub(crate) const ORPHAN_DIAGNOSTICS_MAX_AGE: Duration =
    closedloop_telemetry_exporters::__private::diagnostics::MAX_AGE;
/// An orphan holding PostHog events (or anything else) is deleted this long (7 days) after its
/// newest write.
pub(crate) const ORPHAN_POSTHOG_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

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

/// The destination directories (named by a fingerprint) in `base` other than `skip`.
fn destination_dirs<'a>(base: &Path, skip: &'a [String]) -> impl Iterator<Item = PathBuf> + 'a {
    std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .filter(move |entry| {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return false;
            };
            entry.file_type().is_ok_and(|t| t.is_dir())
                && is_fingerprint(name)
                && !skip.iter().any(|s| s == name)
        })
        .map(|entry| entry.path())
}

/// Looks at every destination directory in `base` other than `active`: deletes those whose
/// contents have all expired by `now` (unless another process holds one of their spools) and
/// returns the others. Errors only leave a directory in place; they are never fatal.
pub(crate) fn sweep(base: &Path, active: &[String], now: SystemTime) -> Vec<OrphanSpool> {
    let mut orphans = Vec::new();
    for dir in destination_dirs(base, active) {
        let Ok(usage) = dir_usage(&dir) else { continue };
        let (max_age, rule) = max_age(&dir);
        let expires = usage
            .newest_write
            .and_then(|t| t.checked_add(max_age))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if expires <= now && remove_if_unlocked(&dir).unwrap_or(false) {
            let age_h = usage
                .newest_write
                .and_then(|t| now.duration_since(t).ok())
                .map_or(0, |d| d.as_secs() / 3600);
            tracing::info!(
                target: "closedloop_telemetry::internal",
                dir = %dir.display(),
                bytes = usage.bytes,
                newest_write_hours_ago = age_h,
                rule,
                "deleted a spool directory no configured stream uses: everything in it expired"
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

/// Consent denied: deletes the spooled events in every destination directory of `base` other
/// than `skip` (whose spools are purged as this run opens them), whether a stream of this run
/// uses it or not, and each directory left empty. A held spool is left as it is: in `own` (the
/// destination directories this run's streams use) it is this run's, which the pipeline
/// purges, or another instance's of the same destination; elsewhere it is another process's
/// (a second instance of the app), left to it with a warning: it purges it itself when it
/// next starts with the denial stored. Errors only leave files in place (with a warning);
/// they are never fatal.
pub(crate) fn purge_denied(base: &Path, skip: &[String], own: &[String]) {
    for dir in destination_dirs(base, skip) {
        let outcome = purge_unlocked(&dir);
        let ours = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| own.iter().any(|o| o == n));
        for (spool, bytes) in outcome.purged.iter().filter(|(_, bytes)| *bytes > 0) {
            tracing::info!(
                target: "closedloop_telemetry::internal",
                dir = %spool.display(),
                bytes,
                "consent denied: deleted the events spooled there"
            );
        }
        // This run's own spools are held by its engines (the lock file names no holder where
        // a held file cannot be read, as on Windows).
        let others = outcome
            .locked
            .iter()
            .filter(|(_, holder)| !ours && *holder != Some(std::process::id()));
        for (spool, holder) in others {
            tracing::warn!(
                target: "closedloop_telemetry::internal",
                dir = %spool.display(),
                holder = ?holder,
                "consent denied: a spool another running process holds was left to it; it \
                 purges it when it next starts with the denial stored"
            );
        }
        for (path, error) in &outcome.failed {
            tracing::warn!(
                target: "closedloop_telemetry::internal",
                path = %path.display(),
                error = %error,
                "consent denied: could not delete spooled events"
            );
        }
    }
}

/// The expiry of what `dir` holds, and the rule it follows: 18 h when it only holds relay or
/// Datadog spools, else 7 days.
fn max_age(dir: &Path) -> (Duration, &'static str) {
    let only_diagnostics = std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .all(|e| matches!(e.file_name().to_str(), Some("relay" | "datadog")))
    });
    if only_diagnostics {
        (
            ORPHAN_DIAGNOSTICS_MAX_AGE,
            "relay/Datadog only: deleted 18 h after its newest write (Datadog refuses older logs)",
        )
    } else {
        (
            ORPHAN_POSTHOG_MAX_AGE,
            "PostHog or other: deleted 7 days after its newest write",
        )
    }
}
