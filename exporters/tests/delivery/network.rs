//! Network behaviour through the public builders with the default retry policy (clocks
//! shortened only by the test-only `DeliveryOptions::with_test_clock_divisor`): redirects are never followed, a
//! destination that never accepts is an outage, a slow uplink gets time in proportion to the
//! body, response bodies are read to 64 KiB at most, and the relay channel can reject and never
//! hands a stalled task stale batches, and an exporter dropped while the app keeps its relay
//! connection still stops and frees its spool.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use crate::support::accounting::assert_accounting;
use crate::support::logs::captured_logs;
use crate::support::process::TempDir;
use crate::support::server::{Reply, SilentListener, TestServer};
use closedloop_telemetry_exporters::__private::decode::Event;
use closedloop_telemetry_exporters::__private::spool::Spool;
use closedloop_telemetry_exporters::__private::StreamExporterExt;
use closedloop_telemetry_exporters::DatadogExporterBuilder;
use closedloop_telemetry_exporters::SpoolOptions;
use closedloop_telemetry_exporters::StreamExporter;
use closedloop_telemetry_exporters::{DeliveryOptions, DeliveryStatsSnapshot};
use closedloop_telemetry_exporters::{RelayConnection, RelayExporterBuilder};
use closedloop_telemetry_layers::__private::catalogue::lookup;
use closedloop_telemetry_layers::__private::envelope::{
    format_timestamp, Diagnostics, TraceEnvelope,
};

const WAIT: Duration = Duration::from_secs(20);
/// Every engine clock (backoffs, timeouts, batch delay) runs 100 times faster; the retry
/// rules are the defaults.
const FAST: u32 = 100;
const API_KEY: &str = "dd-network-test-key";

/// The default delivery options with the test clock divisor.
fn fast_clocks(divisor: u32) -> DeliveryOptions {
    DeliveryOptions::builder()
        .with_test_clock_divisor(divisor)
        .build()
}

fn datadog(base: &str, divisor: u32) -> StreamExporter {
    DatadogExporterBuilder::default()
        .api_key(API_KEY)
        .logs_url(format!("{base}/api/v2/logs"))
        .hostname("test-host")
        .delivery(fast_clocks(divisor))
        .build()
        .unwrap()
}

fn event(n: usize) -> Event {
    let now = SystemTime::now();
    let diagnostics = Diagnostics {
        exit_code: Some(n as i64),
        ..Diagnostics::default()
    };
    Event {
        name: "job.failed".into(),
        entry: lookup("job.failed"),
        time: now,
        severity: None,
        trace: TraceEnvelope::new(format_timestamp(now), "ct-network".into()),
        diagnostics,
        release_version: Some("5.0.0".into()),
        sample_rate: None,
    }
}

fn events(n: usize) -> Vec<Event> {
    (0..n).map(event).collect()
}

/// Polls `stats` until `done` holds or `WAIT` passes; returns the last snapshot.
fn wait_stats(
    stats: impl Fn() -> DeliveryStatsSnapshot,
    done: impl Fn(&DeliveryStatsSnapshot) -> bool,
) -> DeliveryStatsSnapshot {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = stats();
        if done(&s) || Instant::now() >= deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn redirects_are_never_followed_rejected_and_logged_once_with_a_redacted_location() {
    let logs = captured_logs();
    for status in [301, 302, 307, 308] {
        // Where the redirect points: it must never see a request (no body, no DD-API-KEY).
        let target = TestServer::always(200);
        let location = format!(
            "http://user:hunter2@{}/elsewhere?dd-api-key=LOCATIONSECRET",
            target.addr()
        );
        let loc = location.clone();
        let server = TestServer::start(move |_, _| Reply::status(status).header("location", &loc));
        let dd = datadog(&server.base(), FAST);
        dd.delivery().submit(events(3)).unwrap();
        assert!(dd.flush(WAIT).is_complete(), "{status}");
        let s = dd.stats();
        assert_eq!((s.sent, s.dropped.rejected), (0, 3), "{status}: {s:?}");
        assert_eq!(s.dropped.total(), 3, "{status}: {s:?}");
        assert_accounting(&s);
        // The outcome is counted only after the exchange ended, so a followed redirect would
        // already be on record at the target.
        assert!(target.requests().is_empty(), "{status}: redirect followed");
        assert_eq!(server.requests().len(), 1, "{status}: a 3xx is not retried");
        let err = s.last_error.unwrap_or_default();
        assert!(err.contains(&status.to_string()), "{err}");
        assert!(err.contains("/elsewhere"), "{err}");
        for secret in ["hunter2", "LOCATIONSECRET", API_KEY] {
            assert!(!err.contains(secret), "{err}");
        }
        drop(dd);
        let port = target.addr().port().to_string();
        let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
        let mine: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("WARN") && l.contains(&port) && l.contains("/elsewhere"))
            .collect();
        assert_eq!(mine.len(), 1, "{status}: logged once: {mine:?}");
        assert!(mine[0].contains(&status.to_string()), "{}", mine[0]);
        for secret in ["hunter2", "LOCATIONSECRET", API_KEY] {
            assert!(!mine[0].contains(secret), "{}", mine[0]);
        }
    }
}

#[test]
fn a_destination_that_never_accepts_is_an_outage_retried_past_the_attempt_limit() {
    let Some(silent) = SilentListener::start() else {
        eprintln!("skipped: could not fill a loopback accept queue here");
        return;
    };
    // By name, as real destinations are: the lookup happens before the connect timeout starts.
    let dd = datadog(&silent.base().replace("127.0.0.1", "localhost"), FAST);
    dd.delivery().submit(events(5)).unwrap();
    // The default policy gives a failing batch 10 attempts; a silent network is an outage.
    let s = wait_stats(|| dd.stats(), |s| s.retried >= 30 || s.dropped.total() > 0);
    assert_eq!(s.dropped.total(), 0, "{s:?}");
    assert!(s.retried >= 30, "{s:?}");
    let err = s.last_error.unwrap_or_default();
    assert!(!err.contains("request timed out"), "{err}");
    // Nothing was lost: shutdown leaves the 5 queued (counted as `shutdown`, no spool).
    let report = dd.delivery().shutdown(Duration::from_millis(100)).unwrap();
    assert_eq!(report.stats.dropped.retries_exhausted, 0, "{report:?}");
}

#[test]
fn a_large_batch_on_a_100_kb_s_uplink_is_delivered_not_timed_out() {
    // 100 KB/s, as a slow uplink would read the body. Clocks 10 times faster: a 1 s base
    // timeout, so the ~400 KB batch (4 s on this link) needs the size-scaled budget.
    let server = TestServer::throttled(100_000, |_, _| Reply::status(202));
    let dd = datadog(&server.base(), 10);
    let batch: Vec<Event> = (0..800)
        .map(|n| {
            let mut e = event(n);
            e.diagnostics.error_stack = Some(format!("{n}:{}", "frame ".repeat(80)));
            e
        })
        .collect();
    dd.delivery().submit(batch).unwrap();
    let s = wait_stats(|| dd.stats(), |s| s.sent == 800 || s.dropped.total() > 0);
    assert_eq!((s.sent, s.dropped.total()), (800, 0), "{s:?}");
    let reqs = server.requests();
    let bytes: usize = reqs.iter().map(|r| r.body.len()).sum();
    assert!(bytes > 300_000, "the batch was only {bytes} bytes");
    assert_eq!(s.retried, 0, "timed out and resent: {s:?}");
    assert!(dd.flush(WAIT).is_complete());
    assert_accounting(dd.stats());
}

#[test]
fn an_endless_response_body_is_cut_and_the_connection_dropped() {
    let server = TestServer::start(|n, _| {
        if n == 0 {
            Reply::endless(400)
        } else {
            Reply::endless(202)
        }
    });
    // The default clocks: a body read whole would hold the request for its whole 10 s timeout.
    let dd = datadog(&server.base(), 1);
    dd.delivery().submit(events(2)).unwrap();
    assert!(dd.flush(WAIT).is_complete());
    dd.delivery().submit(events(3)).unwrap();
    assert!(dd.flush(WAIT).is_complete());
    let s = dd.stats();
    assert_eq!((s.dropped.rejected, s.sent), (2, 3), "{s:?}");
    assert_eq!(s.retried, 0, "{s:?}");
    let err = s.last_error.unwrap_or_default();
    assert!(err.contains("400") && err.len() <= 512, "{err}");
    assert_eq!(
        server.wait_endless_closed(2, WAIT),
        2,
        "connections dropped"
    );
    assert_accounting(dd.stats());
}

/// The message ids of a relay batch.
fn ids_of(body: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_channel_batch_the_app_rejects_is_counted_and_never_retried() {
    let conn = RelayConnection::new(4);
    let relay = RelayExporterBuilder::default()
        .channel(conn.clone())
        .delivery(fast_clocks(FAST))
        .build()
        .unwrap();
    relay.delivery().submit(events(2)).unwrap();
    let first = conn.recv_timeout(WAIT).expect("a batch");
    let rejected = ids_of(first.body());
    assert_eq!(rejected.len(), 2);
    first.reject("the relay refuses this schema");
    let s = wait_stats(|| relay.stats(), |s| s.dropped.total() > 0);
    assert_eq!((s.dropped.rejected, s.sent, s.retried), (2, 0, 0), "{s:?}");
    assert!(
        s.last_error.as_deref().unwrap_or("").contains("schema"),
        "{s:?}"
    );
    // The stream moves on: the next batch carries the next event, not the rejected ones.
    relay.delivery().submit(events(1)).unwrap();
    let next = conn.recv_timeout(WAIT).expect("the next batch");
    let ids = ids_of(next.body());
    assert_eq!(ids.len(), 1);
    assert!(!rejected.contains(&ids[0]));
    next.ack();
    let s = wait_stats(|| relay.stats(), |s| s.sent == 1);
    assert_eq!((s.sent, s.dropped.total()), (1, 2), "{s:?}");
    assert!(relay.flush(WAIT).is_complete());
    assert_accounting(relay.stats());
}

#[test]
fn a_stalled_connection_task_resumes_without_stale_duplicates() {
    let conn = RelayConnection::new(4);
    let relay = RelayExporterBuilder::default()
        .channel(conn.clone())
        .delivery(fast_clocks(FAST))
        .build()
        .unwrap();
    relay.delivery().submit(events(3)).unwrap();
    // The app's task is stuck: it takes nothing for longer than the attempt limit.
    let s = wait_stats(
        || relay.stats(),
        |s| s.retried >= 12 || s.dropped.total() > 0,
    );
    assert!(s.retried >= 12, "{s:?}");
    assert_eq!(s.dropped.total(), 0, "a stalled task is an outage: {s:?}");
    // It resumes: every message arrives once, with no stale copy left in the channel.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + WAIT;
    while relay.stats().sent < 3 && Instant::now() < deadline {
        if let Some(batch) = conn.recv_timeout(Duration::from_millis(20)) {
            for id in ids_of(batch.body()) {
                *seen.entry(id).or_default() += 1;
            }
            batch.ack();
        }
    }
    assert_eq!(relay.stats().sent, 3);
    // Everything is delivered, so nothing new is offered: whatever the channel still holds
    // now would be a stale duplicate (taken without waiting).
    while let Some(batch) = conn.recv_timeout(Duration::ZERO) {
        for id in ids_of(batch.body()) {
            *seen.entry(id).or_default() += 1;
        }
        batch.ack();
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "duplicates: {seen:?}");
    assert!(relay.flush(WAIT).is_complete());
    assert_accounting(relay.stats());
}

#[test]
fn a_channel_exporter_dropped_without_shutdown_stops_and_releases_its_spool() {
    let tmp = TempDir::new("channel-drop");
    let conn = RelayConnection::new(4);
    let relay = RelayExporterBuilder::default()
        .channel(conn.clone())
        .delivery(
            DeliveryOptions::builder()
                .with_spool_dir(tmp.path())
                .with_shutdown_timeout(Duration::from_millis(200))
                .build(),
        )
        .build()
        .unwrap();
    relay.delivery().submit(events(2)).unwrap();
    let stats = relay.delivery().stats_handle();
    // The batch is offered to the app (so the spool is open and holds it).
    wait_stats(|| relay.stats(), |s| s.requests > 0 && s.spool.is_some());
    // The app keeps its connection but never takes a batch, and drops the exporter without a
    // shutdown. The connection must not keep the engine alive: within its shutdown deadline
    // the background spools what is left and stops, and the spool's lock is free again.
    drop(relay);
    let deadline = Instant::now() + WAIT;
    let spool = loop {
        match Spool::open(tmp.path().join("relay"), SpoolOptions::default()) {
            Ok(spool) => break spool,
            Err(e) => {
                assert!(Instant::now() < deadline, "the spool stayed locked: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    assert_eq!(
        spool.recovery().items_to_replay,
        2,
        "spooled for the next start: {:?}",
        stats.snapshot()
    );
    drop(spool);
    // The connection outlives the exporter; reporting it back wakes nothing that is gone.
    conn.set_connected(false);
    conn.set_connected(true);
}
