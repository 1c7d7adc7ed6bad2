//! Session markers (issue 23): how a start learns that the previous run ended abnormally
//! (SIGKILL, an OOM kill, a power loss, "end task"), which no code of that run could report.
//!
//! Each run with telemetry on and consent granted keeps a marker in the app's data directory,
//! `sessions/<pid>-<start ms>-<n>/`: a `LOCK` file on which the run holds an exclusive lock
//! for its whole life (the spool's lock, `flock` on Unix: the kernel releases it however the
//! process ends), taken first, and then `session.json` (pid, start time, release, gateway
//! session, last sign of life). A clean shutdown (the guard's drop, `shutdown()`) removes the
//! marker; so does a consent denial.
//!
//! At start, a marker whose lock can be taken belongs to a run that is gone without shutting
//! down. The starter that takes it claims it by renaming its `session.json` to
//! `claimed-<pid>.json` (one rename succeeds, however many processes start at once; a loser
//! finds it gone), reads it, reports it (`app.crashed`, written durably like `app.panicked`)
//! and deletes the marker: exactly once per dead run. Only a closed file is renamed, never a
//! directory holding an open one, which Windows refuses. A marker without `session.json` is
//! one being created right now (its lock may not be taken yet) or a leftover of a process that
//! died half-way: it is deleted only once it is a minute old. Liveness is the lock, not the
//! pid: a pid reused by another program does not keep a dead run's marker alive.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use closedloop_telemetry_exporters::__private::private_fs;
use closedloop_telemetry_exporters::__private::spool::{lock_dir, DirLock};
use serde::{Deserialize, Serialize};

/// The directory of the markers, in the app's data directory.
pub(crate) const SESSIONS_DIR: &str = "sessions";
/// A marker's content.
const MARKER_FILE: &str = "session.json";
/// How many times a new marker's lock is tried (a starter may hold it for a moment).
const LOCK_TRIES: usize = 50;
/// Numbers this process's markers (several telemetry instances may run in one process).
static NEXT: AtomicU64 = AtomicU64::new(1);

/// What a marker says about its run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunInfo {
    /// The run's process id.
    pub(crate) pid: u32,
    /// When it started, in ms since the Unix epoch.
    pub(crate) started_at_ms: u64,
    /// Its `release_version`.
    pub(crate) release: String,
    /// Its gateway session, when one was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gateway_session_id: Option<String>,
    /// Its last sign of life (the last time the marker was rewritten), in ms since the Unix
    /// epoch, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_seen_ms: Option<u64>,
}

impl RunInfo {
    /// When the run started.
    pub(crate) fn started_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.started_at_ms)
    }

    /// How long the run lived up to its last known sign of life.
    pub(crate) fn elapsed_ms(&self) -> Option<i64> {
        let last = self.last_seen_ms?;
        i64::try_from(last.checked_sub(self.started_at_ms)?).ok()
    }
}

/// This run's marker: removed by [`Marker::remove`] (a clean shutdown); left behind, locked
/// by nobody, when the process dies.
#[derive(Debug)]
pub(crate) struct Marker {
    dir: PathBuf,
    info: RunInfo,
    lock: Option<DirLock>,
}

/// This run's marker, if it has one, and whether the run has ended (no marker is made then).
#[derive(Debug, Default)]
pub(crate) struct Session {
    marker: Option<Marker>,
    ended: bool,
}

impl Session {
    /// Creates the marker under `data_dir` unless there is one or the run has ended.
    pub(crate) fn begin(&mut self, data_dir: &Path, release: &str, gateway: Option<&str>) {
        if self.marker.is_none() && !self.ended {
            self.marker = Marker::create(data_dir, release, gateway);
        }
    }

    /// Removes the marker; `last`: the run ends (a clean shutdown), none is made again.
    pub(crate) fn end(&mut self, last: bool) {
        self.ended |= last;
        if let Some(marker) = self.marker.take() {
            marker.remove();
        }
    }

    /// Records a new gateway session in the marker.
    pub(crate) fn set_gateway(&mut self, gateway: Option<&str>) {
        if let Some(marker) = &mut self.marker {
            marker.set_gateway(gateway);
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes `info` as `dir`'s marker file (private to this user; not fsynced: a power loss that
/// loses it loses one `app.crashed`).
fn write_info(dir: &Path, info: &RunInfo) -> std::io::Result<()> {
    let tmp = dir.join(format!("{MARKER_FILE}.tmp"));
    let mut f = private_fs::create_file(&tmp)?;
    f.write_all(&serde_json::to_vec(info).map_err(std::io::Error::other)?)?;
    drop(f);
    fs::rename(&tmp, dir.join(MARKER_FILE))
}

/// Removes a marker directory's files and then the directory. On Unix the lock file goes while
/// the lock is still held; elsewhere the lock is released first (an open file cannot be
/// deleted there).
fn remove_marker(dir: &Path, lock: Option<DirLock>) {
    let entries: Vec<PathBuf> = fs::read_dir(dir)
        .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    let (locks, others): (Vec<_>, Vec<_>) = entries
        .into_iter()
        .partition(|p| p.file_name().is_some_and(|n| n == "LOCK"));
    for p in others {
        let _ = fs::remove_file(p);
    }
    if !cfg!(unix) {
        drop(lock);
        for p in locks {
            let _ = fs::remove_file(p);
        }
        let _ = fs::remove_dir(dir);
    } else {
        for p in locks {
            let _ = fs::remove_file(p);
        }
        let _ = fs::remove_dir(dir);
        drop(lock);
    }
}

/// Claims every marker under `data_dir` left by a run that is gone (its lock is free) and
/// returns what each said, deleting them: each dead run is returned by exactly one caller,
/// whatever the number of processes starting at once. Leftovers of claims or of markers that
/// never got their file (a process died in between) are deleted once stale. Never fails: what
/// cannot be read is skipped.
pub(crate) fn claim_dead(data_dir: &Path) -> Vec<RunInfo> {
    let sessions = data_dir.join(SESSIONS_DIR);
    let Ok(entries) = fs::read_dir(&sessions) else {
        return Vec::new();
    };
    let claim = format!("claimed-{}.json", std::process::id());
    let mut dead = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        // Held: a live run's, or one being claimed right now.
        let Ok(lock) = lock_dir(&path) else { continue };
        let claimed = path.join(&claim);
        if fs::rename(path.join(MARKER_FILE), &claimed).is_err() {
            // Claimed by another starter, not written yet, or a leftover.
            if is_stale(&path) {
                remove_marker(&path, Some(lock));
            }
            continue;
        }
        let info = fs::read(&claimed)
            .ok()
            .and_then(|b| serde_json::from_slice::<RunInfo>(&b).ok());
        remove_marker(&path, Some(lock));
        dead.extend(info);
    }
    dead
}

/// Whether a marker without `session.json` is old enough to be a leftover (its process died
/// between creating it and writing the file, or while claiming it), rather than one being made
/// right now.
fn is_stale(dir: &Path) -> bool {
    fs::metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > LEFTOVER_AGE)
}

/// The age past which a marker without its file is a leftover.
const LEFTOVER_AGE: Duration = Duration::from_secs(60);

/// Deletes the markers of dead runs without reporting them (consent denied: nothing about
/// them may be sent).
pub(crate) fn forget_dead(data_dir: &Path) {
    let _ = claim_dead(data_dir);
}

impl Marker {
    /// Creates this run's marker under `data_dir` and locks it. `None` when the directory is
    /// unusable (then an abnormal end of this run goes unreported).
    pub(crate) fn create(data_dir: &Path, release: &str, gateway: Option<&str>) -> Option<Marker> {
        let sessions = data_dir.join(SESSIONS_DIR);
        let pid = std::process::id();
        let started_at_ms = now_ms();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = sessions.join(format!("{pid}-{started_at_ms}-{n}"));
        private_fs::create_dir_all(&dir).ok()?;
        let info = RunInfo {
            pid,
            started_at_ms,
            release: release.to_string(),
            gateway_session_id: gateway.map(str::to_string),
            last_seen_ms: None,
        };
        // A starter looking at the new directory holds its lock for a moment only.
        let lock = (0..LOCK_TRIES).find_map(|_| {
            lock_dir(&dir)
                .inspect_err(|_| std::thread::sleep(Duration::from_millis(1)))
                .ok()
        });
        let placed = lock.and_then(|lock| {
            write_info(&dir, &info).ok()?;
            let _ = private_fs::sync_dir(&dir);
            let _ = private_fs::sync_dir(&sessions);
            Some(Marker {
                dir: dir.clone(),
                info,
                lock: Some(lock),
            })
        });
        if placed.is_none() {
            let _ = fs::remove_dir_all(&dir);
        }
        placed
    }

    /// Records a new gateway session (and so a sign of life) in the marker.
    pub(crate) fn set_gateway(&mut self, gateway: Option<&str>) {
        self.info.gateway_session_id = gateway.map(str::to_string);
        self.info.last_seen_ms = Some(now_ms());
        let _ = write_info(&self.dir, &self.info);
    }

    /// Removes the marker (a clean shutdown).
    pub(crate) fn remove(mut self) {
        remove_marker(&self.dir, self.lock.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        std::env::temp_dir().join(format!("cl-session-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn a_live_marker_is_not_claimed_and_a_dead_one_once() {
        let dir = tmp();
        let live = Marker::create(&dir, "1.0.0", Some("gw-1")).unwrap();
        assert!(claim_dead(&dir).is_empty(), "held by a live run");
        // A run that died: its lock is released, its marker stays.
        let mut dead = Marker::create(&dir, "0.9.0", None).unwrap();
        dead.set_gateway(Some("gw-0"));
        drop(dead.lock.take());
        let claimed = claim_dead(&dir);
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].release, "0.9.0");
        assert_eq!(claimed[0].gateway_session_id.as_deref(), Some("gw-0"));
        assert!(claimed[0].elapsed_ms().is_some());
        assert!(claim_dead(&dir).is_empty(), "exactly once");
        // A marker being created (no file yet, not locked yet) is left alone.
        let young = dir.join(SESSIONS_DIR).join("1-2-3");
        private_fs::create_dir_all(&young).unwrap();
        assert!(claim_dead(&dir).is_empty());
        assert!(young.is_dir());
        fs::remove_dir_all(&young).unwrap();
        live.remove();
        assert_eq!(fs::read_dir(dir.join(SESSIONS_DIR)).unwrap().count(), 0);
        fs::remove_dir_all(&dir).ok();
    }
}
