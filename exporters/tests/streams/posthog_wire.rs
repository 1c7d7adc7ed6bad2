//! PostHog wire rules end to end: body shape, gzip, routing, validation, batching and timer.

use std::time::{Duration, Instant};

use crate::posthog_common::*;
use crate::support::server::TestServer;

#[test]
fn body_has_the_exact_posthog_shape() {
    let server = server_ok();
    // Verbose on: tails reach the record, and must still never reach PostHog.
    let h = Harness::with(builder(&server.base()), Processor::Simple, true);
    h.emit(|| {
        let span = tracing::info_span!("job", job_id = "job-7", loop_id = "loop-1");
        let _g = span.enter();
        tracing::error!(
            event = "command.timeout",
            command_id = "cmd-42",
            operation_id = "op-9",
            elapsed_ms = 1532,
            exit_code = 124,
            log_tail = "secret subprocess output",
            model = "gpt-x",
        );
        // Diagnostics-only: never sent to PostHog.
        tracing::info!(event = "job.completed", exit_code = 0);
    });
    assert!(h.flush(WAIT).is_complete());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/batch/")
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("content-encoding"), None);

    let body = req.json();
    let top: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(top, vec!["api_key", "batch", "sent_at"]);
    assert_eq!(body["api_key"], KEY);
    let events = batch(req);
    assert_eq!(events.len(), 1);
    let e = &events[0];
    let uuid = uuid::Uuid::parse_str(e["uuid"].as_str().unwrap()).unwrap();
    assert_eq!(uuid.get_version_num(), 7);
    let ts = e["timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{ts}"
    );
    let sent_at = body["sent_at"].as_str().unwrap();
    assert!(sent_at.len() == 24 && sent_at >= ts, "{sent_at} < {ts}");
    assert_eq!(
        *e,
        serde_json::json!({
            "event": "command_failed",
            "distinct_id": "ct-test",
            "timestamp": ts,
            "uuid": uuid.to_string(),
            "properties": {
                "distinct_id": "ct-test",
                "release_version": "9.9.9",
                "$lib": "closedloop-telemetry",
                "$lib_version": env!("CARGO_PKG_VERSION"),
                "reason": "timeout",
                "command_id": "cmd-42",
                "operation_id": "op-9",
                "job_id": "job-7",
                "loop_id": "loop-1",
                "elapsed_ms": 1532,
                "exit_code": 124,
                "model": "gpt-x",
            }
        })
    );
    assert!(!String::from_utf8_lossy(&req.body).contains("secret subprocess output"));
    let stats = h.exporter.stats();
    assert_eq!((stats.sent, stats.requests, stats.queued), (1, 1, 0));
    assert!(stats.ignored >= 1, "{stats:?}");
}

#[test]
fn gzip_bodies_are_marked_and_carry_the_same_json() {
    let server = server_ok();
    let h = Harness::new(builder(&server.base()).delivery(fast_delivery().with_gzip(true).build()));
    h.emit_n(3);
    assert!(h.flush(WAIT).is_complete());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].header("content-encoding"), Some("gzip"));
    assert_eq!(batch(&reqs[0]).len(), 3);
    assert_eq!(reqs[0].json()["api_key"], KEY);
}

#[test]
fn an_invalid_event_is_dropped_and_the_rest_go() {
    let server = server_ok();
    let h = Harness::new(builder(&server.base()));
    h.emit(|| {
        tracing::info!(event = "command.started", command_id = "a");
        tracing::info!(
            event = "command.started",
            compute_target_id = "",
            command_id = "bad"
        );
        tracing::info!(event = "command.started", command_id = "b");
    });
    assert!(h.flush(WAIT).is_complete());
    let ids: Vec<_> = server
        .requests()
        .iter()
        .flat_map(batch)
        .map(|e| e["properties"]["command_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["a", "b"]);
    assert_eq!(h.exporter.stats().dropped.invalid, 1);
}

#[test]
fn forty_five_events_go_as_20_20_5() {
    let server = server_ok();
    let h = Harness::new(builder(&server.base()));
    h.emit_n(45);
    // Two full batches go without any flush.
    let full = server.wait_for(2, WAIT);
    assert_eq!(sizes(&full[..2]), vec![20, 20]);
    assert!(h.flush(WAIT).is_complete());
    let reqs = server.requests();
    assert_eq!(sizes(&reqs), vec![20, 20, 5]);
    let all: Vec<String> = reqs.iter().flat_map(uuids).collect();
    assert_eq!(unique(all).len(), 45);
    assert_eq!(h.exporter.stats().sent, 45);
}

#[test]
fn a_partial_batch_goes_after_the_flush_interval() {
    let server = server_ok();
    let interval = Duration::from_millis(150);
    let h = Harness::new(builder(&server.base()).flush_interval(interval));
    let start = Instant::now();
    h.emit_n(3);
    // No flush: only the timer can send it.
    let reqs = server.wait_for(1, WAIT);
    assert_eq!(reqs.len(), 1, "the timer never fired");
    assert!(reqs[0].at.duration_since(start) >= interval);
    assert_eq!(batch(&reqs[0]).len(), 3);
}

#[test]
fn exporter_debug_and_errors_never_show_the_key() {
    let server = TestServer::always(200);
    let h = Harness::new(builder(&server.base()));
    let shown = format!("{:?}", h.exporter);
    assert!(!shown.contains(KEY), "{shown}");
    assert!(shown.contains("[redacted]"));
}
