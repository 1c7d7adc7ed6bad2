//! The 18 h expiry on the Datadog-bound streams, with a spool: dropping an expired item never
//! acknowledges a fresher one still in flight, and the relay stream expires like Datadog.

use std::time::{Duration, Instant, SystemTime};

use crate::support::accounting::assert_accounting;
use crate::support::process::TempDir;
use crate::support::server::{Request, TestServer};
use closedloop_telemetry_exporters::__private::decode::Event;
use closedloop_telemetry_exporters::__private::delivery::Delivery;
use closedloop_telemetry_exporters::__private::StreamExporterExt;
use closedloop_telemetry_exporters::DatadogExporterBuilder;
use closedloop_telemetry_exporters::RelayExporterBuilder;
use closedloop_telemetry_exporters::{DeliveryOptions, DeliveryStatsSnapshot};
use closedloop_telemetry_layers::__private::catalogue::lookup;
use closedloop_telemetry_layers::__private::envelope::{
    format_timestamp, Diagnostics, TraceEnvelope,
};

const WAIT: Duration = Duration::from_secs(8);
const HOUR: Duration = Duration::from_secs(3600);

fn event(job: &str, time: SystemTime) -> Event {
    let mut trace = TraceEnvelope::new(format_timestamp(time), "ct-expiry".into());
    trace.job_id = Some(job.into());
    Event {
        name: "job.started".into(),
        entry: lookup("job.started"),
        time,
        severity: None,
        trace,
        diagnostics: Diagnostics::default(),
        release_version: Some("5.0.0".into()),
        sample_rate: None,
    }
}

/// Waits (with a deadline) until `done` holds for the engine's counters.
fn wait_for(d: &Delivery, done: impl Fn(&DeliveryStatsSnapshot) -> bool) -> DeliveryStatsSnapshot {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = d.stats();
        if done(&s) || Instant::now() >= deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every item of every request, as JSON.
fn items(reqs: &[Request]) -> Vec<serde_json::Value> {
    reqs.iter()
        .flat_map(|r| r.json().as_array().cloned().unwrap_or_default())
        .collect()
}

fn mentions(item: &serde_json::Value, job: &str) -> bool {
    item.to_string().contains(job)
}

#[test]
fn an_expired_item_never_acknowledges_a_fresh_one_still_in_flight() {
    let tmp = TempDir::new("expiry-ack");
    let outage = TestServer::always(503);
    let now = SystemTime::now();
    {
        // Default policy; the spool under a temporary directory.
        let dd = DatadogExporterBuilder::default()
            .api_key("dd-test-key")
            .logs_url(outage.url("/api/v2/logs"))
            .delivery(
                DeliveryOptions::builder()
                    .with_spool_dir(tmp.path())
                    .build(),
            )
            .build()
            .unwrap();
        // One batch of [fresh, expired], in that order, during a 503 outage.
        dd.delivery()
            .submit(vec![
                event("job-fresh", now),
                event("job-expired", now - 19 * HOUR),
            ])
            .unwrap();
        let _ = dd.flush(Duration::from_millis(200));
        let s = wait_for(dd.delivery(), |s| s.dropped.expired == 1 && s.retried >= 1);
        assert_eq!((s.dropped.expired, s.sent), (1, 0), "{s:?}");
        assert!(
            s.retried >= 1,
            "the fresh item got a 503 and waits for a retry: {s:?}"
        );
        let report = dd.shutdown_with_report(Duration::from_millis(200)).unwrap();
        assert_eq!(
            report.stats.spooled, 1,
            "the fresh item stays spooled: {report:?}"
        );
        assert_accounting(&report.stats);
    }
    assert!(items(&outage.requests())
        .iter()
        .all(|i| !mentions(i, "job-expired")));

    // Restart: the fresh event is still in the spool and is delivered.
    let server = TestServer::always(202);
    let dd = DatadogExporterBuilder::default()
        .api_key("dd-test-key")
        .logs_url(server.url("/api/v2/logs"))
        .delivery(
            DeliveryOptions::builder()
                .with_spool_dir(tmp.path())
                .build(),
        )
        .build()
        .unwrap();
    assert!(dd.flush(WAIT).is_complete());
    let got = items(&server.requests());
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(mentions(&got[0], "job-fresh"), "{}", got[0]);
    // The expired item was acknowledged only in memory (the cursor may not pass the fresh one),
    // so it is replayed too, and expires again: never sent.
    let s = dd.delivery().stats();
    assert_eq!((s.replayed, s.sent, s.dropped.expired), (2, 1, 1), "{s:?}");
    assert_accounting(&s);
}

#[test]
fn the_relay_stream_expires_items_after_18_hours_like_datadog() {
    let server = TestServer::always(200);
    let relay = RelayExporterBuilder::default()
        .url(server.url("/relay"))
        .build()
        .unwrap();
    let now = SystemTime::now();
    relay
        .delivery()
        .submit(vec![
            event("job-old", now - 19 * HOUR),
            event("job-recent", now - 17 * HOUR),
        ])
        .unwrap();
    let report = relay.flush(WAIT);
    assert!(report.is_complete(), "{report:?}");
    assert_eq!((report.stats.dropped.expired, report.stats.sent), (1, 1));
    let got = items(&server.requests());
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(mentions(&got[0], "job-recent"), "{}", got[0]);
    assert_accounting(&report.stats);
}
