//! PostHog status handling end to end: retries, Retry-After, rejects, 413 splits, dead and slow
//! servers, and bounded shutdown.

use std::time::{Duration, Instant};

use crate::posthog_common::*;
use crate::support::server::{Reply, TestServer};
use closedloop_telemetry_exporters::__private::StreamExporterExt;
use opentelemetry::logs::{LogRecord, Logger, LoggerProvider};
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};

#[test]
fn a_503_is_retried_with_the_same_uuids() {
    let server = TestServer::sequence(vec![Reply::status(503), Reply::ok()]);
    let h = Harness::new(builder(&server.base()));
    h.emit_n(3);
    assert!(h.flush(WAIT).is_complete());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(uuids(&reqs[0]), uuids(&reqs[1]));
    assert_eq!(unique(uuids(&reqs[1])).len(), 3);
    let s = h.exporter.stats();
    assert_eq!((s.sent, s.retried, s.requests), (3, 1, 2));
    assert_eq!(s.last_error.as_deref(), Some("HTTP 503"));
}

#[test]
fn retry_after_is_a_minimum_wait() {
    let server = TestServer::sequence(vec![
        Reply::status(429).header("retry-after", "1"),
        Reply::ok(),
    ]);
    let h = Harness::new(builder(&server.base()));
    h.emit_n(1);
    assert!(h.flush(WAIT).is_complete());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at.duration_since(reqs[0].at);
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert_eq!(uuids(&reqs[0]), uuids(&reqs[1]));
}

#[test]
fn wake_cuts_a_long_backoff_short() {
    let server = TestServer::sequence(vec![
        Reply::status(503).header("retry-after", "30"),
        Reply::ok(),
    ]);
    let h = Harness::new(builder(&server.base()));
    h.emit_n(1);
    assert_eq!(h.flush(Duration::from_millis(300)).remaining, 1);
    // E.g. the relay connection came back: retry now instead of in 30 s.
    h.exporter.delivery().wake();
    assert!(h.flush(WAIT).is_complete());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].at.duration_since(reqs[0].at) < Duration::from_secs(30));
}

#[test]
fn a_429_storm_delivers_everything_exactly_once() {
    const STORM: usize = 8;
    let server = TestServer::start(|n, _| {
        if n < STORM {
            Reply::status(429).header("retry-after", "0")
        } else {
            Reply::ok()
        }
    });
    let h = Harness::new(builder(&server.base()));
    h.emit_n(45);
    assert!(h.flush(WAIT).is_complete());
    let reqs = server.requests();
    let delivered: Vec<String> = reqs[STORM..].iter().flat_map(uuids).collect();
    assert_eq!(
        delivered.len(),
        45,
        "duplicates or losses: {:?}",
        sizes(&reqs)
    );
    assert_eq!(unique(delivered).len(), 45);
    let s = h.exporter.stats();
    assert_eq!(
        (s.sent, s.retried, s.dropped.total()),
        (45, STORM as u64, 0)
    );
}

#[test]
fn a_400_is_dropped_counted_and_not_retried() {
    let server = TestServer::start(|_, _| {
        Reply::status(400).body(&format!(r#"{{"detail":"Invalid API key {KEY}"}}"#))
    });
    let h = Harness::new(builder(&server.base()));
    h.emit_n(3);
    let report = h.flush(WAIT);
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.stats.dropped.rejected, 3);
    assert_eq!(report.stats.retried, 0);
    let error = report.stats.last_error.unwrap();
    assert!(
        error.starts_with("HTTP 400") && error.contains("Invalid API key"),
        "{error}"
    );
    assert!(
        !error.contains(KEY) && error.contains("[redacted]"),
        "{error}"
    );
    // Nothing is left to retry: more flushes send nothing.
    assert!(h.flush(WAIT).is_complete());
    assert_eq!(server.requests().len(), 1);
    // Later events still go (the next batch is judged on its own).
    h.emit_n(1);
    h.flush(WAIT);
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn a_413_splits_the_batch_until_it_fits() {
    let server = TestServer::start(|_, req| {
        let n = req.json()["batch"].as_array().map_or(0, Vec::len);
        Reply::status(if n > 5 { 413 } else { 200 })
    });
    let h = Harness::new(builder(&server.base()));
    h.emit_n(20);
    assert!(h.flush(WAIT).is_complete());
    let reqs = server.requests();
    assert_eq!(sizes(&reqs), vec![20, 10, 5, 5, 10, 5, 5]);
    let delivered: Vec<String> = reqs
        .iter()
        .filter(|r| batch(r).len() <= 5)
        .flat_map(uuids)
        .collect();
    assert_eq!(unique(delivered).len(), 20);
    let s = h.exporter.stats();
    assert_eq!((s.sent, s.dropped.too_large), (20, 0));
}

#[test]
fn a_single_event_still_too_large_is_dropped() {
    let server = TestServer::always(413);
    let h = Harness::new(builder(&server.base()));
    h.emit_n(2);
    assert!(h.flush(WAIT).is_complete());
    assert_eq!(sizes(&server.requests()), vec![2, 1, 1]);
    assert_eq!(h.exporter.stats().dropped.too_large, 2);
}

#[test]
fn connection_refused_keeps_events_queued_until_shutdown() {
    let h = Harness::new(builder(&dead_address()));
    h.emit_n(2);
    let report = h.flush(Duration::from_millis(300));
    assert_eq!(report.remaining, 2, "{report:?}");
    let s = &report.stats;
    assert!(s.retried >= 1 && s.requests >= 1, "{s:?}");
    assert_eq!(s.dropped.total(), 0);
    let error = s.last_error.clone().unwrap();
    assert!(error.starts_with("connection"), "{error}");

    let start = Instant::now();
    let report = h
        .exporter
        .shutdown_with_report(Duration::from_millis(300))
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(report.remaining, 2);
    assert_eq!(report.stats.dropped.shutdown, 2);
}

#[test]
fn a_server_slower_than_the_timeout_is_retried() {
    let server = TestServer::start(|n, _| {
        let reply = Reply::ok();
        if n == 0 {
            reply.delay(Duration::from_millis(1500))
        } else {
            reply
        }
    });
    let h = Harness::new(
        builder(&server.base()).delivery(
            fast_delivery()
                .with_timeout(Duration::from_millis(200))
                .build(),
        ),
    );
    h.emit_n(2);
    assert!(h.flush(WAIT).is_complete());
    let reqs = server.wait_for(2, WAIT);
    assert_eq!(uuids(&reqs[0]), uuids(&reqs[1]));
    let s = h.exporter.stats();
    assert_eq!(s.sent, 2);
    assert!(s.retried >= 1);
    assert_eq!(s.last_error.as_deref(), Some("request timed out"));
}

#[test]
fn shutdown_against_a_hanging_server_ends_within_its_deadline() {
    let server = TestServer::start(|_, _| Reply::ok().delay(Duration::from_secs(20)));
    let h = Harness::new(builder(&server.base()));
    h.emit_n(3);
    // The request is in flight and will hang for 20 s (the request timeout is 10 s).
    h.exporter.flush(Duration::from_millis(100));
    server.wait_for(1, WAIT);
    let start = Instant::now();
    let report = h
        .exporter
        .shutdown_with_report(Duration::from_millis(500))
        .unwrap();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(450), "{took:?}");
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    assert_eq!(report.remaining, 3);
    assert_eq!(report.stats.dropped.shutdown, 3);

    // After shutdown: export is refused, and so is a second shutdown.
    assert!(matches!(
        h.exporter.shutdown_with_report(Duration::from_millis(10)),
        Err(OTelSdkError::AlreadyShutdown)
    ));
    let logger = h.provider.logger("late");
    let mut record = logger.create_log_record();
    record.set_event_name("command.started");
    let scope = InstrumentationScope::builder("late").build();
    let rows = [(&record, &scope)];
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let result = rt.block_on(h.exporter.export(LogBatch::new(&rows)));
    assert!(
        matches!(result, Err(OTelSdkError::AlreadyShutdown)),
        "{result:?}"
    );
}

#[test]
fn a_full_backlog_evicts_the_oldest_and_counts_them() {
    let server = TestServer::start(|_, _| Reply::ok().delay(Duration::from_secs(20)));
    let h = Harness::new(
        builder(&server.base())
            .batch_size(1)
            .delivery(fast_delivery().with_queue_capacity(3).build()),
    );
    h.emit_n(11);
    let report = h
        .exporter
        .shutdown_with_report(Duration::from_millis(300))
        .unwrap();
    let d = report.stats.dropped;
    assert_eq!(report.stats.sent, 0);
    assert_eq!(d.evicted + d.shutdown + d.queue_full, 11, "{d:?}");
    assert!(d.evicted + d.queue_full >= 7, "{d:?}");
}
