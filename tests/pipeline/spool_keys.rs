//! Spools are keyed by destination (URL, and the project key for PostHog), not by credentials
//! that rotate; spool directories no configured stream uses are reported with their bytes and
//! deleted once everything in them has expired (see docs/RELIABILITY.md, "Orphaned spools").
//! Everything goes through the facade's public builder with its default retry policy.

use closedloop_telemetry_test_support as support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use closedloop_telemetry::{DrainReport, TelemetryBuilder, TelemetryStats};
use support::server::{Reply, Request, TestServer};
use tracing_subscriber::prelude::*;

const WAIT: Duration = Duration::from_secs(20);

/// A unique scratch directory (spool and data dir), removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        Scratch(std::env::temp_dir().join(format!("cl-spool-keys-{}", uuid::Uuid::new_v4())))
    }

    fn spool(&self) -> PathBuf {
        self.0.join("spool")
    }

    /// The destination directories in the spool base.
    fn destinations(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.spool())
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        dirs.sort();
        dirs
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback destination that answers 503 (an outage) until `up` is set, then 202.
fn destination() -> (TestServer, Arc<AtomicBool>) {
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    let server = TestServer::start(move |_, _| {
        if flag.load(Ordering::SeqCst) {
            Reply::status(202)
        } else {
            Reply::status(503)
        }
    });
    (server, up)
}

fn facade(dir: &Scratch) -> TelemetryBuilder {
    closedloop_telemetry::builder("1.0.0")
        .compute_target_id("ct-spool-keys")
        .data_dir(dir.0.join("data"))
        .spool_dir(dir.spool())
        // Generous: in an outage shutdown waits this long, and everything must reach the spool.
        .shutdown_timeout(Duration::from_secs(2))
}

/// One run: builds, emits `events` probes, and shuts down. Returns the stats seen right after
/// the start (before any event) and the shutdown report.
fn run(builder: TelemetryBuilder, events: usize) -> (TelemetryStats, DrainReport) {
    let telemetry = builder.build().unwrap();
    let stats = telemetry.handle().stats();
    let (layer, guard) = telemetry.split();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for _ in 0..events {
            tracing::info!(event = "connection.established");
        }
    });
    (stats, guard.shutdown())
}

/// Spools one event for `builder`'s destination while it is down.
fn spool_one(builder: TelemetryBuilder) {
    let (_, report) = run(builder, 1);
    assert_eq!(report.remaining(), 1, "{report}");
}

/// Runs `builder` with the destination up until the spooled event arrived; returns the request.
fn deliver_spooled(builder: TelemetryBuilder, server: &TestServer, up: &AtomicBool) -> Request {
    up.store(true, Ordering::SeqCst);
    let before = server.requests().len();
    let telemetry = builder.build().unwrap();
    let delivered = server
        .wait_for(before + 1, WAIT)
        .into_iter()
        .skip(before)
        .find(|r| String::from_utf8_lossy(&r.body).contains("connection.established"))
        .expect("the event spooled under the old credential is delivered");
    let stats = telemetry.handle().stats();
    assert!(stats.orphan_spools.is_empty(), "{:?}", stats.orphan_spools);
    drop(telemetry);
    delivered
}

#[test]
fn rotating_the_datadog_key_keeps_the_spool_and_delivers_its_events() {
    let dir = Scratch::new();
    let (server, up) = destination();
    let logs_url = server.url("/api/v2/logs");
    spool_one(facade(&dir).datadog("dd-key-old", &logs_url));
    let spooled = dir.destinations();
    assert_eq!(spooled.len(), 1, "{spooled:?}");

    let got = deliver_spooled(facade(&dir).datadog("dd-key-new", &logs_url), &server, &up);
    assert_eq!(got.header("dd-api-key"), Some("dd-key-new"));
    assert_eq!(dir.destinations(), spooled, "the same spool directory");
}

#[test]
fn rotating_the_relay_token_keeps_the_spool_and_delivers_its_events() {
    let dir = Scratch::new();
    let (server, up) = destination();
    let url = server.url("/relay");
    spool_one(facade(&dir).relay(&url, Some("token-old".into())));
    let spooled = dir.destinations();
    assert_eq!(spooled.len(), 1, "{spooled:?}");

    let got = deliver_spooled(
        facade(&dir).relay(&url, Some("token-new".into())),
        &server,
        &up,
    );
    assert_eq!(got.header("authorization"), Some("Bearer token-new"));
    assert_eq!(dir.destinations(), spooled, "the same spool directory");
}

/// Bytes of every file under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            bytes_under(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// Sets the modification time of every file under `dir` to `age` ago (the spool's records
/// are never newer than their file's last write).
fn age_files(dir: &Path, age: Duration) {
    let when = SystemTime::now() - age;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.metadata().unwrap().is_dir() {
            age_files(&path, age);
        } else {
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(when).unwrap();
        }
    }
}

#[test]
fn a_spool_no_stream_uses_is_reported_with_its_bytes() {
    let dir = Scratch::new();
    let (old, _) = destination();
    spool_one(facade(&dir).relay(old.url("/relay"), None));
    let orphan = dir.destinations().remove(0);
    let bytes = bytes_under(&orphan);

    // The app now sends to another relay: the old directory has no matching stream.
    let (new, _) = destination();
    let (stats, _) = run(facade(&dir).relay(new.url("/relay"), None), 0);
    assert_eq!(stats.orphan_spools.len(), 1, "{:?}", stats.orphan_spools);
    let found = &stats.orphan_spools[0];
    assert_eq!(found.dir, orphan);
    assert!(bytes > 0);
    assert_eq!(found.bytes, bytes);
    // Not expired yet (18 h after its newest write): kept.
    assert!(found.expires > SystemTime::now());
    assert!(orphan.exists());
}

#[test]
fn an_orphan_past_its_expiry_is_deleted() {
    let dir = Scratch::new();
    let (old, _) = destination();
    spool_one(facade(&dir).relay(old.url("/relay"), None));
    spool_one(facade(&dir).posthog("phc_old", old.base()));
    let destinations = dir.destinations();
    assert_eq!(destinations.len(), 2, "{destinations:?}");
    // 19 h old: past the diagnostics expiry (18 h), within PostHog's (7 days).
    for d in &destinations {
        age_files(d, Duration::from_secs(19 * 3600));
    }

    let (new, _) = destination();
    let (stats, _) = run(facade(&dir).relay(new.url("/relay"), None), 0);
    let kept: Vec<&Path> = stats
        .orphan_spools
        .iter()
        .map(|o| o.dir.as_path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        kept[0].join("posthog").exists(),
        "the PostHog orphan is kept"
    );
    let gone: Vec<_> = destinations.iter().filter(|d| !d.exists()).collect();
    assert_eq!(gone.len(), 1, "the relay orphan is deleted: {gone:?}");
    assert!(gone[0].as_path() != kept[0]);

    // Eight days old: the PostHog orphan goes too.
    age_files(kept[0], Duration::from_secs(8 * 24 * 3600));
    let (stats, _) = run(facade(&dir).relay(new.url("/relay"), None), 0);
    assert!(stats.orphan_spools.is_empty(), "{:?}", stats.orphan_spools);
    assert_eq!(
        dir.destinations().len(),
        1,
        "only the configured relay's spool remains"
    );
}

#[test]
fn deleting_an_expired_orphan_is_logged_at_info_with_its_path_and_reason() {
    let logs = support::logs::logs();
    let dir = Scratch::new();
    let (old, _) = destination();
    spool_one(facade(&dir).relay(old.url("/relay"), None));
    let orphan = dir.destinations().remove(0);
    age_files(&orphan, Duration::from_secs(19 * 3600));

    let (new, _) = destination();
    let _ = run(facade(&dir).relay(new.url("/relay"), None), 0);
    assert!(!orphan.exists(), "the expired orphan is deleted");
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains(&orphan.display().to_string()))
        .unwrap_or_else(|| panic!("no log line names {}:\n{text}", orphan.display()));
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("expired"), "why: {line}");
    assert!(line.contains("18 h"), "which rule: {line}");
}
