//! The library's state on disk is private to the user (Unix): directories `0700`, files
//! `0600` (spool, computeTargetId, consent). A spool directory that another user owns, or
//! that group or others may write, is refused with one warning and the stream runs in memory.
#![cfg(unix)]

use closedloop_telemetry_test_support as support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use closedloop_telemetry::Consent;
use closedloop_telemetry::{Telemetry, TelemetryBuilder};
use support::logs::logs;
use support::server::{Reply, TestServer};
use tracing_subscriber::prelude::*;

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cl-perm-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every directory and file under `root` (itself included), with its mode bits.
fn walk(root: &Path, out: &mut Vec<(PathBuf, bool, u32)>) {
    let meta = std::fs::metadata(root).unwrap();
    out.push((root.to_path_buf(), meta.is_dir(), meta.mode() & 0o777));
    if meta.is_dir() {
        for entry in std::fs::read_dir(root).unwrap() {
            walk(&entry.unwrap().path(), out);
        }
    }
}

fn builder(server: &TestServer, base: &Path) -> TelemetryBuilder {
    closedloop_telemetry::builder("1.0.0")
        .posthog("phc_test", server.base())
        .relay(server.url("/relay"), None)
        .data_dir(base.join("data"))
        .spool_dir(base.join("spool"))
}

/// Emits one event of each stream through the layer.
fn emit(telemetry: Telemetry) -> closedloop_telemetry::TelemetryGuard {
    let (layer, guard) = telemetry.split();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!(event = "command.started");
        tracing::info!(event = "job.completed", exit_code = 0);
    });
    guard
}

#[test]
fn spool_identity_and_consent_are_private_to_the_user() {
    // Nothing is accepted, so the events stay in the spool at shutdown.
    let server = TestServer::always(503);
    let base = temp_dir("modes");
    let telemetry = builder(&server, &base)
        .shutdown_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let handle = telemetry.handle();
    handle.set_consent(Consent::Granted).unwrap();
    let guard = emit(telemetry);
    // The run's session marker (removed by the shutdown below) is private too.
    let mut running = Vec::new();
    walk(&base.join("data"), &mut running);
    assert!(
        running.iter().any(|(p, _, _)| p.ends_with("session.json")),
        "{running:?}"
    );
    for (path, dir, mode) in &running {
        let want = if *dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} has mode {mode:o}", path.display());
    }
    let report = guard.shutdown();
    assert!(
        report.streams.iter().all(|(_, r)| r.stats.spooled > 0),
        "{report}"
    );

    let mut entries = Vec::new();
    walk(&base.join("data"), &mut entries);
    walk(&base.join("spool"), &mut entries);
    let files: Vec<_> = entries.iter().filter(|(_, dir, _)| !dir).collect();
    for name in [
        closedloop_telemetry::__private::identity::ID_FILE,
        closedloop_telemetry::__private::consent::CONSENT_FILE,
    ] {
        assert!(files.iter().any(|(p, _, _)| p.ends_with(name)), "{name}");
    }
    assert!(
        files
            .iter()
            .any(|(p, _, _)| p.extension().is_some_and(|e| e == "seg")),
        "a spool segment was written: {entries:?}"
    );
    for (path, dir, mode) in &entries {
        let want = if *dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} has mode {mode:o}", path.display());
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// The stream's spool directory: the one named after the stream, wherever the facade keys it.
fn stream_dir(spool: &Path, stream: &str) -> PathBuf {
    let mut entries = Vec::new();
    walk(spool, &mut entries);
    entries
        .into_iter()
        .find(|(p, dir, _)| *dir && p.file_name().is_some_and(|n| n == stream))
        .map(|(p, _, _)| p)
        .unwrap_or_else(|| panic!("no {stream} spool under {}", spool.display()))
}

fn listing(dir: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut entries = Vec::new();
    walk(dir, &mut entries);
    entries
}

#[test]
fn a_foreign_or_shared_spool_directory_is_refused_and_the_stream_runs_in_memory() {
    let logs = logs();
    let server = TestServer::start(|_, _| Reply::ok());
    let base = temp_dir("refuse");

    // A first run creates each stream's spool directory.
    let first = builder(&server, &base).build().unwrap();
    let _ = emit(first).shutdown();
    let relay_dir = stream_dir(&base.join("spool"), "relay");
    let posthog_dir = stream_dir(&base.join("spool"), "posthog");
    // Group- and world-writable; owned by another user (we run as root in CI).
    std::fs::set_permissions(
        &relay_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    if let Err(e) = std::os::unix::fs::chown(&posthog_dir, Some(65534), Some(65534)) {
        eprintln!("skipping the foreign-owner case: cannot chown ({e}); not running as root?");
    }
    let foreign = std::fs::metadata(&posthog_dir).unwrap().uid() == 65534;
    let before_relay = listing(&relay_dir);
    let before_posthog = listing(&posthog_dir);

    let telemetry = builder(&server, &base).build().unwrap();
    let handle = telemetry.handle();
    let guard = emit(telemetry);
    // The flush returns once the engines opened their spools and delivered from memory.
    assert!(handle.flush(Duration::from_secs(10)).is_complete());
    for s in handle.stats().streams {
        let refused = s.kind.as_str() == "relay" || foreign;
        assert_eq!(
            s.delivery.spool.is_none(),
            refused,
            "{:?} runs in memory exactly when its directory is refused",
            s.kind
        );
        assert_eq!(s.delivery.sent, 2 - u64::from(s.kind.as_str() == "posthog"));
    }
    let _ = guard.shutdown();
    assert_eq!(listing(&relay_dir), before_relay, "nothing written there");
    if foreign {
        assert_eq!(
            listing(&posthog_dir),
            before_posthog,
            "nothing written there"
        );
    }

    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    let warnings = |dir: &Path| {
        text.lines()
            .filter(|l| l.contains("not private to this user"))
            .filter(|l| l.contains(&*dir.to_string_lossy()))
            .count()
    };
    assert_eq!(warnings(&relay_dir), 1, "{text}");
    if foreign {
        assert_eq!(warnings(&posthog_dir), 1, "{text}");
    }
    let _ = std::fs::remove_dir_all(&base);
}
