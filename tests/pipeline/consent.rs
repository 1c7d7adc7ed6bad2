//! Runtime consent against a loopback server: Denied purges and stops all traffic (and purges
//! the spools of destinations this run does not configure), Granted resumes, the choice
//! survives a restart, DO_NOT_TRACK wins over a stored grant; the run's session marker follows
//! the choice.

use closedloop_telemetry_test_support as support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use closedloop_telemetry::__private::consent;
use closedloop_telemetry::Consent;
use closedloop_telemetry::EnvOptions;
use closedloop_telemetry::{Destination, TelemetryBuilder};
use support::accounting::assert_accounting;
use support::server::{Reply, TestServer};
use tracing::info;
use tracing_subscriber::prelude::*;

/// Longer than any test waits (and the longest PostHog flush interval allowed).
const LONG: Duration = Duration::from_secs(30);

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cl-consent-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// PostHog and the relay on `server`, batches that wait a minute (so events sit queued).
fn builder(server: &TestServer, dir: &Path) -> TelemetryBuilder {
    closedloop_telemetry::builder("1.0.0")
        .posthog("phc_test", server.base())
        .relay(server.url("/relay"), None)
        .compute_target_id("ct-consent")
        .data_dir(dir)
        // Never the machine's default spool: a leftover there would be replayed here.
        .spool_dir(dir.join("spool"))
        .posthog_flush_interval(LONG)
        .relay_max_delay(LONG)
}

/// Emits `command.started` (both streams), `job.completed` (relay) and an activity entry.
fn emit_events() {
    info!(event = "command.started");
    info!(event = "job.completed", exit_code = 0);
    info!(activity = "request", summary = "POST /x", body = "{}");
}

fn purged(handle: &closedloop_telemetry::TelemetryHandle) -> u64 {
    handle
        .stats()
        .streams
        .iter()
        .map(|s| s.delivery.dropped.purged)
        .sum()
}

#[test]
fn deny_purges_queued_events_and_no_request_arrives() {
    let server = TestServer::start(|_, _| Reply::ok());
    let dir = temp_dir("deny");
    let telemetry = builder(&server, &dir).build().unwrap();
    let handle = telemetry.handle();
    assert_eq!(handle.consent(), Consent::Granted);
    let (layer, guard) = telemetry.split();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        emit_events(); // queued: the batch timers are a minute away
        let n = handle.set_consent(Consent::Denied).unwrap();
        let routed: u64 = handle.stats().streams.iter().map(|s| s.routed).sum();
        assert!(n >= 2, "both streams had events queued");
        assert_eq!(purged(&handle), n);
        assert_eq!(
            n, routed,
            "every routed event was still queued and is purged"
        );
        assert!(!handle.is_upstream_enabled());
        emit_events(); // after Denied: never becomes a record
    });
    let report = handle.flush(Duration::from_secs(5));
    assert!(report.is_complete(), "{report}");
    let stats = handle.stats();
    for s in &stats.streams {
        assert_eq!(s.delivery.queued, 0);
        assert_eq!(s.delivery.requests, 0, "{:?}", s.kind);
    }
    assert_eq!(
        handle.activity().snapshot().len(),
        2,
        "the activity log keeps working"
    );
    let report = guard.shutdown();
    assert_eq!(report.remaining(), 0);
    // The workers have stopped: nothing can be sent any more.
    assert!(server.requests().is_empty(), "no request after Denied");
    assert_eq!(consent::load(&dir), Some(Consent::Denied));
    assert_accounting(handle.stats());
}

#[test]
fn deny_after_delivery_stops_traffic_and_grant_resumes_it() {
    let server = TestServer::start(|_, _| Reply::ok());
    let dir = temp_dir("resume");
    let telemetry = builder(&server, &dir).build().unwrap();
    let handle = telemetry.handle();
    let (layer, guard) = telemetry.split();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        emit_events();
        assert!(handle.flush(Duration::from_secs(5)).is_complete());
        assert_eq!(server.wait_for(2, Duration::from_secs(5)).len(), 2);

        assert_eq!(handle.set_consent(Consent::Denied).unwrap(), 0);
        emit_events();
        assert!(handle.flush(Duration::from_secs(5)).is_complete());
        assert_eq!(server.requests().len(), 2, "nothing new while denied");

        assert_eq!(handle.set_consent(Consent::Granted).unwrap(), 0);
        assert!(handle.is_upstream_enabled());
        emit_events();
        assert!(handle.flush(Duration::from_secs(5)).is_complete());
    });
    let reqs = server.wait_for(4, Duration::from_secs(5));
    assert_eq!(reqs.len(), 4, "Granted resumes both streams");
    let sent: u64 = handle.stats().streams.iter().map(|s| s.delivery.sent).sum();
    assert_eq!(sent, 6);
    drop(guard);
    assert_eq!(consent::load(&dir), Some(Consent::Granted));
    assert_accounting(handle.stats());
}

#[test]
fn the_stored_choice_survives_a_restart() {
    let server = TestServer::start(|_, _| Reply::ok());
    let dir = temp_dir("restart");
    {
        let t = builder(&server, &dir).build().unwrap();
        t.handle().set_consent(Consent::Denied).unwrap();
    }
    let telemetry = builder(&server, &dir).build().unwrap();
    let handle = telemetry.handle();
    assert_eq!(handle.consent(), Consent::Denied);
    assert!(!handle.is_upstream_enabled());
    let (layer, guard) = telemetry.split();
    emit_handle_less(layer);
    assert!(guard.shutdown().is_complete());
    assert!(server.requests().is_empty(), "denied before the restart");

    // A stored grant beats a builder default of Denied.
    consent::store(&dir, Consent::Granted).unwrap();
    let telemetry = builder(&server, &dir)
        .default_consent(Consent::Denied)
        .build()
        .unwrap();
    assert_eq!(telemetry.handle().consent(), Consent::Granted);
    let (layer, guard) = telemetry.split();
    emit_handle_less(layer);
    drop(guard);
    assert_eq!(server.wait_for(2, Duration::from_secs(5)).len(), 2);

    // With no stored choice the builder's default applies.
    let fresh = temp_dir("fresh");
    let t = builder(&server, &fresh)
        .default_consent(Consent::Denied)
        .build()
        .unwrap();
    assert_eq!(t.handle().consent(), Consent::Denied);
    assert!(!t.handle().is_upstream_enabled());
    assert_accounting(handle.stats());
    assert_accounting(t.handle().stats());
}

fn emit_handle_less(layer: closedloop_telemetry::ClosedLoopLayer) {
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit_events);
}

#[test]
fn do_not_track_wins_over_a_stored_grant() {
    let server = TestServer::start(|_, _| Reply::ok());
    let dir = temp_dir("dnt");
    consent::store(&dir, Consent::Granted).unwrap();
    let env = EnvOptions::from_lookup(|k| (k == "DO_NOT_TRACK").then(|| "1".into())).unwrap();
    let telemetry = builder(&server, &dir).merge_env(env).build().unwrap();
    let handle = telemetry.handle();
    assert_eq!(handle.streams(), Vec::<Destination>::new());
    assert!(!handle.is_upstream_enabled());
    let (layer, guard) = telemetry.split();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        emit_events();
        // The choice is still stored, but changes nothing under DO_NOT_TRACK.
        handle.set_consent(Consent::Granted).unwrap();
        assert!(!handle.is_upstream_enabled());
        emit_events();
    });
    assert_eq!(handle.activity().snapshot().len(), 2);
    // No stream ran at all, so nothing can arrive later.
    drop(guard);
    assert!(server.requests().is_empty());
    assert_eq!(consent::load(&dir), Some(Consent::Granted));
    assert_accounting(handle.stats());
}

#[test]
fn deny_abandons_a_retry_backoff() {
    let server = TestServer::always(503);
    let dir = temp_dir("backoff");
    let telemetry = builder(&server, &dir)
        .shutdown_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let handle = telemetry.handle();
    let (layer, guard) = telemetry.split();
    emit_handle_less(layer);
    // One attempt per stream fails; both batches now wait for a retry.
    let report = handle.flush(Duration::from_millis(500));
    assert!(!report.is_complete());
    assert!(server.wait_for(2, Duration::from_secs(5)).len() >= 2);
    let n = handle.set_consent(Consent::Denied).unwrap();
    // A retry on the wire during the call is waited for: count only from its return.
    let before = server.requests().len();
    assert_eq!(n, 3, "the batches waiting for a retry are purged");
    let report = guard.shutdown();
    assert!(report.is_complete(), "{report}");
    for (_, r) in &report.streams {
        assert_eq!(r.stats.dropped.shutdown, 0);
        assert_eq!(r.stats.queued, 0);
    }
    assert_eq!(purged(&handle), 3);
    assert_eq!(server.requests().len(), before, "no retry after Denied");
    assert_accounting(handle.stats());
}

#[test]
fn deny_empties_the_on_disk_spool() {
    // The destination refuses everything retryably, so events wait in the spool.
    let server = TestServer::always(503);
    let dir = temp_dir("spool-data");
    let spool = temp_dir("spool");
    let telemetry = builder(&server, &dir).spool_dir(&spool).build().unwrap();
    let handle = telemetry.handle();
    let (layer, guard) = telemetry.split();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for _ in 0..5 {
            emit_events();
        }
    });
    let _ = handle.flush(Duration::from_millis(300));
    let purged_now = handle.set_consent(Consent::Denied).unwrap();
    assert!(
        purged_now >= 10,
        "the queued events are purged: {purged_now}"
    );
    drop(guard);
    // Every stream's spool (`<spool>/<destination>/<stream>`), reopened: nothing to replay.
    let mut streams = 0;
    let stream_dirs = std::fs::read_dir(&spool)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path());
    for path in stream_dirs {
        if !path.is_dir() {
            continue;
        }
        streams += 1;
        let mut s = closedloop_telemetry_exporters::__private::spool::Spool::open(
            &path,
            closedloop_telemetry_exporters::SpoolOptions::default(),
        )
        .unwrap();
        let left = s.read_batch(10_000, 64 << 20).unwrap();
        assert!(
            left.is_empty(),
            "{}: {} items still spooled",
            path.display(),
            left.len()
        );
    }
    assert_eq!(streams, 2, "posthog and relay each had a spool");
    assert_accounting(handle.stats());
}

#[test]
fn a_stored_denial_purges_what_an_earlier_run_spooled_before_any_connection() {
    let dir = temp_dir("denied-spool");
    // One destination (the spool is per destination): down during run 1, up during run 2.
    let up = Arc::new(AtomicBool::new(false));
    let server = {
        let up = up.clone();
        TestServer::start(move |_, _| {
            if up.load(Ordering::SeqCst) {
                Reply::ok()
            } else {
                Reply::status(503)
            }
        })
    };
    {
        let telemetry = builder(&server, &dir)
            .shutdown_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let (layer, guard) = telemetry.split();
        emit_handle_less(layer);
        let report = guard.shutdown();
        let spooled: u64 = report.streams.iter().map(|(_, r)| r.stats.spooled).sum();
        assert_eq!(spooled, 3, "{report}");
    }
    // Meanwhile a denial was stored, with no run to purge anything (written to the file).
    consent::store(&dir, Consent::Denied).unwrap();
    up.store(true, Ordering::SeqCst);
    let before = server.requests().len();
    let telemetry = builder(&server, &dir).build().unwrap();
    let handle = telemetry.handle();
    let (layer, guard) = telemetry.split();
    emit_handle_less(layer);
    let _ = handle.flush(Duration::from_millis(500));
    assert_eq!(purged(&handle), 3, "{:?}", handle.stats());
    assert!(guard.shutdown().is_complete());
    assert_eq!(
        server.requests().len(),
        before,
        "not one request after a stored denial"
    );
    assert_accounting(handle.stats());
}

/// The stored choice is made durable: after the rename into place the data directory is synced
/// (on Unix an fsync; on Windows `sync_dir` can do nothing, see its docs), so a power loss
/// cannot bring back the previous choice. Counted on this thread only, so other tests' spools
/// do not count.
#[cfg(feature = "testing")]
#[test]
fn storing_a_choice_syncs_its_directory() {
    use closedloop_telemetry_exporters::__private::private_fs::dir_syncs_on_this_thread;
    let dir = temp_dir("dir-sync");
    for choice in [Consent::Granted, Consent::Denied] {
        let before = dir_syncs_on_this_thread();
        consent::store(&dir, choice).unwrap();
        assert_eq!(dir_syncs_on_this_thread() - before, 1, "{choice:?}");
        assert_eq!(consent::load(&dir), Some(choice));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A destination down (503) until `up` is set, then accepting everything.
fn switchable() -> (TestServer, Arc<AtomicBool>) {
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    let server = TestServer::start(move |_, _| {
        if flag.load(Ordering::SeqCst) {
            Reply::ok()
        } else {
            Reply::status(503)
        }
    });
    (server, up)
}

/// Requests whose body carries an event of an earlier run (`command.started`,
/// `command_started`, `job.completed`).
fn carrying_events(server: &TestServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| {
            let body = String::from_utf8_lossy(&r.body);
            body.contains("command") || body.contains("job.completed")
        })
        .count()
}

/// Runs `builder` with the destinations up and consent granted, lets whatever is spooled go
/// out (a complete flush, then shutdown), and returns the number of requests that carried an
/// event: the replay the denial should have made impossible.
fn replayed_after_a_grant(builder: TelemetryBuilder, server: &TestServer) -> usize {
    let telemetry = builder.build().unwrap();
    let handle = telemetry.handle();
    assert_eq!(handle.consent(), Consent::Granted);
    let report = handle.flush(Duration::from_secs(10));
    assert!(report.is_complete(), "{report}");
    assert!(telemetry.split().1.shutdown().is_complete());
    assert_accounting(handle.stats());
    carrying_events(server)
}

#[test]
fn a_runtime_denial_purges_the_spools_of_destinations_not_configured_in_this_run() {
    let dir = temp_dir("deny-unconfigured");
    let (old, old_up) = switchable();
    // Run 1: PostHog and the relay at `old`, down: three events stay in their spools.
    {
        let telemetry = builder(&old, &dir)
            .shutdown_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let (layer, guard) = telemetry.split();
        emit_handle_less(layer);
        let report = guard.shutdown();
        assert_eq!(report.remaining(), 3, "{report}");
    }
    // Run 2: the app now sends to another destination, and the user denies.
    let (new, _) = switchable();
    {
        let telemetry = builder(&new, &dir).build().unwrap();
        let handle = telemetry.handle();
        handle.set_consent(Consent::Denied).unwrap();
        assert!(telemetry.split().1.shutdown().is_complete());
        assert_accounting(handle.stats());
    }
    // Run 3: the user grants again and the old destination is back: nothing from before the
    // denial may reach it.
    consent::store(&dir, Consent::Granted).unwrap();
    old_up.store(true, Ordering::SeqCst);
    let before = carrying_events(&old);
    assert_eq!(
        replayed_after_a_grant(builder(&old, &dir), &old),
        before,
        "events spooled before the denial were replayed after a grant"
    );
    assert!(new.requests().is_empty());
}

#[test]
fn a_stored_denial_purges_the_spools_of_streams_off_in_this_run() {
    let dir = temp_dir("denied-stream-off");
    let (server, up) = switchable();
    // Run 1: PostHog and the relay, down: three events stay in their spools.
    {
        let telemetry = builder(&server, &dir)
            .shutdown_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let (layer, guard) = telemetry.split();
        emit_handle_less(layer);
        assert_eq!(guard.shutdown().remaining(), 3);
    }
    consent::store(&dir, Consent::Denied).unwrap();
    // Run 2 starts with the stored denial and only the relay configured (PostHog is off).
    {
        let telemetry = closedloop_telemetry::builder("1.0.0")
            .relay(server.url("/relay"), None)
            .compute_target_id("ct-consent")
            .data_dir(&dir)
            .spool_dir(dir.join("spool"))
            .build()
            .unwrap();
        let handle = telemetry.handle();
        assert_eq!(handle.consent(), Consent::Denied);
        assert!(telemetry.split().1.shutdown().is_complete());
        assert_eq!(
            purged(&handle),
            2,
            "the relay's spool is purged as it opens"
        );
    }
    // Run 3: granted, both streams, the destination up: nothing from before the denial.
    consent::store(&dir, Consent::Granted).unwrap();
    up.store(true, Ordering::SeqCst);
    let before = carrying_events(&server);
    assert_eq!(
        replayed_after_a_grant(builder(&server, &dir), &server),
        before,
        "PostHog events spooled before the denial were replayed after a grant"
    );
}

/// The stream directories (`<spool>/<destination>/<stream>`) named `stream`.
fn stream_dirs(spool: &Path, stream: &str) -> Vec<PathBuf> {
    std::fs::read_dir(spool)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n == stream))
        .collect()
}

#[test]
fn a_denial_leaves_a_spool_another_process_holds_to_it() {
    use closedloop_telemetry_exporters::__private::spool::Spool;
    use closedloop_telemetry_exporters::SpoolOptions;
    let dir = temp_dir("deny-held");
    let (old, _) = switchable();
    {
        let telemetry = builder(&old, &dir)
            .shutdown_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let (layer, guard) = telemetry.split();
        emit_handle_less(layer);
        assert_eq!(guard.shutdown().remaining(), 3);
    }
    let spool = dir.join("spool");
    let [relay] = stream_dirs(&spool, "relay").try_into().unwrap();
    let [posthog] = stream_dirs(&spool, "posthog").try_into().unwrap();
    // Held as a second running instance of the app would hold it.
    let mut held = Spool::open(&relay, SpoolOptions::default()).unwrap();

    let (new, _) = switchable();
    let telemetry = builder(&new, &dir).build().unwrap();
    let handle = telemetry.handle();
    handle.set_consent(Consent::Denied).unwrap();
    assert!(telemetry.split().1.shutdown().is_complete());
    assert!(!posthog.exists(), "a free spool is purged");
    let left = held.read_batch(100, 1 << 20).unwrap();
    assert_eq!(left.len(), 2, "the held spool is left to its holder");
    assert_accounting(handle.stats());
}

/// The run's session markers (`sessions/*/session.json`) under `dir`.
fn session_markers(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("sessions"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().join("session.json").is_file())
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_denial_removes_the_session_marker_and_a_grant_makes_a_new_one() {
    let server = TestServer::always(200);
    let dir = temp_dir("marker");
    let telemetry = builder(&server, &dir).build().unwrap();
    let handle = telemetry.handle();
    assert_eq!(session_markers(&dir), 1, "a running session keeps a marker");
    handle.set_consent(Consent::Denied).unwrap();
    assert_eq!(session_markers(&dir), 0, "no marker while denied");
    handle.set_consent(Consent::Granted).unwrap();
    assert_eq!(session_markers(&dir), 1);
    drop(telemetry);
    assert_eq!(session_markers(&dir), 0, "a clean shutdown removes it");
    // Off: no marker at all.
    let off = builder(&server, &dir)
        .capture_panics(false)
        .build()
        .unwrap();
    off.handle().set_consent(Consent::Granted).unwrap();
    assert_eq!(session_markers(&dir), 0);
    drop(off);
    std::fs::remove_dir_all(&dir).ok();
}
