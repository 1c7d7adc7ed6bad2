//! No feedback loop: the app's global subscriber captures everything at TRACE (hyper, reqwest,
//! h2, rustls and our own exporter logs) while the PostHog exporter delivers, retries and gets
//! rejected. The server must receive exactly the app's events, and the counts must stay fixed.
//! (Alone in its file: it installs a global subscriber.)

#[path = "streams/posthog_common.rs"]
mod posthog_common;
use closedloop_telemetry_test_support as support;

use closedloop_telemetry_layers::TelemetryLayer;
use opentelemetry::logs::LoggerProvider;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use posthog_common::*;
use support::logs::Captured;
use support::server::{Reply, TestServer};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

#[test]
fn http_stack_traced_at_trace_never_feeds_back() {
    // 503 (retry), 200, 400 (rejected, logged), then 200 for everything else.
    let server = TestServer::start(|n, _| match n {
        0 => Reply::status(503).body("busy"),
        2 => Reply::status(400).body("bad batch"),
        _ => Reply::ok(),
    });
    let exporter = builder(&server.base()).build().unwrap();
    let provider = SdkLoggerProvider::builder()
        .with_batch_exporter(exporter.clone())
        .build();
    let layer = TelemetryLayer::builder(provider.logger("app"))
        .compute_target_id("ct-loop")
        .build();
    let layer_stats = layer.stats();
    let captured = Captured::default();
    let writer = captured.clone();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(move || writer.clone())
        .with_filter(LevelFilter::TRACE);
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer).with(fmt))
        .expect("first global subscriber in this test binary");

    let flush = || {
        provider.force_flush().unwrap();
        exporter.flush(WAIT)
    };
    let emit = |n: usize, round: &str| {
        for _ in 0..n {
            tracing::info!(event = "command.started", command_id = round);
        }
    };
    emit(3, "r1"); // 503 then 200
    assert!(flush().is_complete());
    emit(2, "r2"); // 400: dropped, logged by the exporter at WARN
    assert!(flush().is_complete());
    emit(1, "r3"); // 200
    assert!(flush().is_complete());
    // Quiet now: more flushes must not produce more traffic.
    for _ in 0..3 {
        assert!(flush().is_complete());
    }

    let reqs = server.requests();
    assert_eq!(sizes(&reqs), vec![3, 3, 2, 1]);
    for e in reqs.iter().flat_map(batch) {
        assert_eq!(e["event"], "command_started");
        assert!(["r1", "r2", "r3"].contains(&e["properties"]["command_id"].as_str().unwrap()));
    }
    let s = exporter.stats();
    assert_eq!((s.sent, s.dropped.rejected, s.queued), (4, 2, 0));
    assert_eq!(layer_stats.snapshot().emitted, 6);

    // The app's subscriber really saw our exporter's own logs (so capture was live), and they
    // never carried the key.
    let text = captured.text();
    assert!(text.contains("hyper_util"), "{text}");
    assert!(text.contains("closedloop_telemetry_exporters"), "{text}");
    assert!(text.contains("400"), "{text}");
    assert!(!text.contains(KEY));
    provider.shutdown().unwrap();
    assert_eq!(server.requests().len(), 4);
}
