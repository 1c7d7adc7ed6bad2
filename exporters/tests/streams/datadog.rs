//! Direct Datadog intake end to end against a loopback server: item shape, status table,
//! splitting at 1000 items and 5 MB, 18 h expiry.

use std::time::{Duration, SystemTime};

use crate::support::server::{Reply, TestServer};
use closedloop_telemetry_exporters::__private::decode::Event;
use closedloop_telemetry_exporters::__private::StreamExporterExt;
use closedloop_telemetry_exporters::DatadogExporterBuilder;
use closedloop_telemetry_exporters::StreamExporter;
use closedloop_telemetry_exporters::{DeliveryOptions, RetryPolicy};
use closedloop_telemetry_layers::__private::catalogue::lookup;
use closedloop_telemetry_layers::__private::envelope::{
    format_timestamp, Diagnostics, TraceEnvelope,
};

const WAIT: Duration = Duration::from_secs(8);

fn exporter(server: &TestServer) -> StreamExporter {
    DatadogExporterBuilder::default()
        .api_key("dd-test-key")
        .logs_url(server.url("/api/v2/logs"))
        .hostname("test-host")
        .release_version("5.0.0")
        .max_delay(Duration::from_secs(30))
        .delivery(
            DeliveryOptions::builder()
                .with_queue_capacity(10_000)
                .with_retry_policy(RetryPolicy {
                    base: Duration::from_millis(20),
                    max_backoff: Duration::from_millis(200),
                    max_retry_after: Duration::from_secs(60),
                    max_attempts: 10,
                })
                .build(),
        )
        .build()
        .unwrap()
}

fn event(name: &str, time: SystemTime) -> Event {
    Event {
        name: name.into(),
        entry: lookup(name),
        time,
        severity: None,
        trace: TraceEnvelope::new(format_timestamp(time), "ct-dd".into()),
        diagnostics: Diagnostics::default(),
        release_version: Some("5.0.0".into()),
        sample_rate: None,
    }
}

fn items(req: &crate::support::server::Request) -> Vec<serde_json::Value> {
    req.json().as_array().unwrap().clone()
}

#[test]
fn items_follow_the_intake_contract() {
    let server = TestServer::always(202);
    let dd = exporter(&server);
    let mut ev = event("job.failed", SystemTime::now());
    ev.diagnostics.exit_code = Some(1);
    ev.trace.otel_trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    ev.trace.otel_span_id = Some("00f067aa0ba902b7".into());
    dd.delivery()
        .submit(vec![ev, event("approval.requested", SystemTime::now())])
        .unwrap();
    let report = dd.flush(WAIT);
    assert!(report.is_complete());
    let reqs = server.wait_for(1, WAIT);
    assert_eq!(reqs[0].header("dd-api-key"), Some("dd-test-key"));
    let it = items(&reqs[0]);
    assert_eq!(it.len(), 1, "PostHog-only events never go to Datadog");
    let item = &it[0];
    assert_eq!(item["message"], "job.failed");
    assert_eq!(item["status"], "error");
    assert_eq!(item["ddsource"], "closedloop-desktop");
    assert_eq!(item["service"], "closedloop-desktop");
    assert_eq!(item["hostname"], "test-host");
    assert_eq!(item["ddtags"], "release_version:5.0.0,event:job.failed");
    assert_eq!(item["trace"]["schemaVersion"], "1");
    assert_eq!(item["diagnostics"]["exitCode"], 1);
    assert!(item["timestamp"].is_u64());
    // Lower 64 bits of the trace id, in decimal.
    assert_eq!(
        item["dd.trace_id"],
        u64::from_str_radix("a3ce929d0e0e4736", 16)
            .unwrap()
            .to_string()
    );
    assert_eq!(
        item["dd.span_id"],
        u64::from_str_radix("00f067aa0ba902b7", 16)
            .unwrap()
            .to_string()
    );
}

#[test]
fn status_table() {
    // (status, sent?, retried?, dropped as rejected?)
    for (status, delivered, rejected) in [
        (202, true, false),
        (400, false, true),
        (401, false, true),
        (403, false, true),
    ] {
        let server = TestServer::always(status);
        let dd = exporter(&server);
        dd.delivery()
            .submit(vec![event("job.started", SystemTime::now())])
            .unwrap();
        let report = dd.flush(WAIT);
        assert_eq!(report.stats.sent == 1, delivered, "{status}");
        assert_eq!(report.stats.dropped.rejected == 1, rejected, "{status}");
        assert_eq!(server.requests().len(), 1, "{status} is never retried");
    }
    for status in [408, 429, 500, 503] {
        let server = TestServer::sequence(vec![Reply::status(status), Reply::status(202)]);
        let dd = exporter(&server);
        dd.delivery()
            .submit(vec![event("job.started", SystemTime::now())])
            .unwrap();
        let report = dd.flush(WAIT);
        assert_eq!(report.stats.sent, 1, "{status} is retried");
        assert_eq!(report.stats.retried, 1, "{status}");
    }
    let server = TestServer::sequence(vec![Reply::status(413), Reply::status(202)]);
    let dd = exporter(&server);
    dd.delivery()
        .submit(
            (0..4)
                .map(|_| event("job.started", SystemTime::now()))
                .collect(),
        )
        .unwrap();
    let report = dd.flush(WAIT);
    assert_eq!(report.stats.sent, 4);
    let sizes: Vec<_> = server.requests().iter().map(|r| items(r).len()).collect();
    assert_eq!(sizes, [4, 2, 2], "413 splits the batch");
}

/// A 429 with Datadog's `X-RateLimit-Reset` (seconds until its rate-limit period resets) and no
/// `Retry-After` waits at least that long before the retry; the event stays queued meanwhile
/// and is delivered once, with the same id.
#[test]
fn a_429_waits_for_x_ratelimit_reset() {
    let server = TestServer::sequence(vec![
        Reply::status(429).header("x-ratelimit-reset", "1"),
        Reply::status(202),
    ]);
    let dd = exporter(&server);
    dd.delivery()
        .submit(vec![event("job.started", SystemTime::now())])
        .unwrap();
    let report = dd.flush(WAIT);
    assert_eq!(report.stats.sent, 1, "{report:?}");
    assert_eq!(report.stats.dropped.total(), 0);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at.duration_since(reqs[0].at);
    // The policy's own backoff here is at most 200 ms: only the header makes it wait 1 s.
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert_eq!(items(&reqs[0])[0]["id"], items(&reqs[1])[0]["id"]);
}

#[test]
fn batches_split_at_1000_items() {
    let server = TestServer::always(202);
    let dd = exporter(&server);
    dd.delivery()
        .submit(
            (0..2500)
                .map(|_| event("queue.stats_changed", SystemTime::now()))
                .collect(),
        )
        .unwrap();
    assert!(dd.flush(WAIT).is_complete());
    let sizes: Vec<_> = server
        .wait_for(3, WAIT)
        .iter()
        .map(|r| items(r).len())
        .collect();
    assert_eq!(sizes, [1000, 1000, 500]);
}

#[test]
fn batches_split_at_5_mb() {
    let server = TestServer::always(202);
    let dd = exporter(&server);
    let big = "x".repeat(4000);
    let events: Vec<_> = (0..25)
        .map(|_| {
            let mut e = event("job.completed", SystemTime::now());
            for k in 0..60 {
                e.diagnostics
                    .extra
                    .insert(format!("field_{k}"), big.clone().into());
            }
            e
        })
        .collect();
    dd.delivery().submit(events).unwrap();
    assert!(dd.flush(WAIT).is_complete());
    let reqs = server.requests();
    assert!(reqs.len() >= 2, "6 MB of items need at least two requests");
    assert_eq!(reqs.iter().map(|r| items(r).len()).sum::<usize>(), 25);
    for r in &reqs {
        assert!(r.body.len() <= 5_000_000, "{}", r.body.len());
    }
}

#[test]
fn items_older_than_18_hours_expire_and_are_counted() {
    let server = TestServer::always(202);
    let dd = exporter(&server);
    let now = SystemTime::now();
    dd.delivery()
        .submit(vec![
            event("job.started", now - Duration::from_secs(19 * 3600)),
            event("job.started", now - Duration::from_secs(17 * 3600)),
        ])
        .unwrap();
    let report = dd.flush(WAIT);
    assert_eq!(report.stats.dropped.expired, 1);
    assert_eq!(report.stats.sent, 1);
    let reqs = server.wait_for(1, WAIT);
    assert_eq!(items(&reqs[0]).len(), 1);
}

#[test]
fn the_key_is_required_and_never_shown() {
    assert!(DatadogExporterBuilder::default().build().is_err());
    let b = DatadogExporterBuilder::default().api_key("dd-secret");
    assert!(!format!("{b:?}").contains("dd-secret"));
}
