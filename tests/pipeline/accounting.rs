//! The accounting invariant through the facade: `routed + replayed = sent + dropped.total() +
//! queued` for every stream (docs/RELIABILITY.md, "Accounting"), also when shutdown misses its
//! deadline while the pipeline's queue still holds records.

use closedloop_telemetry_test_support as support;

use std::time::{Duration, Instant};

use closedloop_telemetry::{Destination, TelemetryStats};
use support::accounting::assert_accounting;
use support::process::TempDir;
use support::server::{Reply, TestServer};
use tracing::{info, Dispatch};
use tracing_subscriber::prelude::*;

const WAIT: Duration = Duration::from_secs(8);

/// Whether every event the layer emitted has reached the PostHog stream's counters.
fn all_routed(stats: &TelemetryStats) -> bool {
    stats
        .stream(Destination::PostHog)
        .is_some_and(|s| s.routed == stats.layer.emitted)
}

/// One run: a burst of 4,000 events, then a shutdown with a 1 ms deadline. Asserts the
/// invariant and returns how many records the missed deadline left (spooled or dropped).
fn burst_then_missed_deadline(round: u32) -> u64 {
    let server = TestServer::start(|_, _| Reply::ok());
    let dir = TempDir::new("accounting-deadline");
    // Default policy; only the shutdown clock is shortened, so the deadline passes while the
    // pipeline's queue still holds a burst.
    let telemetry = closedloop_telemetry::builder("1.0.0")
        .posthog("phc_test", server.base())
        .relay(server.url("/relay"), None)
        .compute_target_id("ct-accounting")
        .spool_dir(dir.path().join("spool"))
        .data_dir(dir.path().join("data"))
        .shutdown_timeout(Duration::from_millis(1))
        // The burst must reach the queue (4,000 of one name): accounting is tested here, not
        // volume control.
        .rate_limit(None)
        .build()
        .unwrap();
    let handle = telemetry.handle().clone();
    let (layer, guard) = telemetry.split();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        for n in 0..4000u32 {
            info!(event = "approval.requested", n);
        }
    });
    let report = guard.shutdown();
    // The report itself counts every record: nothing is still on its way to the counters.
    let (_, at_report) = report
        .streams
        .iter()
        .find(|(d, _)| *d == Destination::PostHog)
        .expect("the PostHog report");
    let s = &at_report.stats;
    assert_eq!(s.routed, 4000, "round {round}: {s:?}");
    assert_eq!(
        s.routed + s.replayed,
        s.sent + s.dropped.total() + s.queued,
        "round {round}: delivered, still queued (spooled) or dropped, never nothing: {s:?}"
    );
    assert!(
        at_report.remaining <= s.queued + s.dropped.shutdown,
        "round {round}: {s:?}"
    );
    let deadline = Instant::now() + WAIT;
    while !all_routed(&handle.stats()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = handle.stats();
    let posthog = stats.stream(Destination::PostHog).unwrap();
    assert_eq!(
        posthog.routed, stats.layer.emitted,
        "round {round}: {posthog:?}"
    );
    assert_accounting(&stats);
    // Left at the missed deadline: spooled for the next start (or dropped as `shutdown`).
    at_report.remaining
}

#[test]
fn records_still_queued_at_a_missed_shutdown_deadline_are_counted_in_the_report() {
    // Whether a 1 ms deadline is missed depends on how fast this machine drains the burst:
    // every round must keep the invariant, and at least one of a few must miss the deadline
    // (the case this test is about).
    let missed = (0..5).find(|&round| burst_then_missed_deadline(round) > 0);
    assert!(missed.is_some(), "no round missed the shutdown deadline");
}

/// One background thread serves every destination: a PostHog whose every answer takes 20 s
/// must not hold the relay's batches, which go out and are acknowledged meanwhile.
#[test]
fn a_hanging_destination_does_not_delay_another_on_the_one_background() {
    let hang = Duration::from_secs(20);
    let server = TestServer::start(move |_, req| {
        if req.path.contains("/batch") {
            Reply::ok().delay(hang)
        } else {
            Reply::ok()
        }
    });
    let dir = TempDir::new("accounting-hang");
    let telemetry = closedloop_telemetry::builder("1.0.0")
        .posthog("phc_test", server.base())
        .relay(server.url("/relay"), None)
        .compute_target_id("ct-hang")
        .spool_dir(dir.path().join("spool"))
        .data_dir(dir.path().join("data"))
        .posthog_flush_interval(Duration::ZERO)
        .relay_max_delay(Duration::from_millis(50))
        .shutdown_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let handle = telemetry.handle().clone();
    let (layer, _guard) = telemetry.split();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        // PostHog's request goes first and hangs.
        info!(event = "approval.requested");
    });
    let started = Instant::now();
    while server.requests().iter().all(|r| !r.path.contains("/batch")) {
        assert!(started.elapsed() < WAIT, "PostHog's request never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..5 {
            info!(event = "job.completed", exit_code = 0);
        }
    });
    let relay = handle.flush(Duration::from_secs(5));
    let (_, r) = relay
        .streams
        .iter()
        .find(|(d, _)| *d == Destination::Relay)
        .expect("the relay's report");
    assert!(r.is_complete(), "the relay waited for PostHog: {r:?}");
    assert_eq!(r.stats.sent, 5);
    assert!(
        started.elapsed() < hang,
        "the relay's events went out only after PostHog's answer"
    );
    let posthog = handle.stats();
    let p = posthog.stream(Destination::PostHog).unwrap();
    assert_eq!((p.delivery.sent, p.delivery.queued), (0, 1), "{p:?}");
}
