//! The activity log (`docs/ARCHITECTURE.md`, "The activity log"): ring, truncation, subscriptions,
//! concurrency, and the proof that nothing in it reaches the exporters.

use std::time::Duration;

use closedloop_telemetry_exporters::__private::decode::{decode, DecodeError, DecodeOptions};
use closedloop_telemetry_layers::__private::{BODY_MAX_BYTES, DEFAULT_CAPACITY};
use closedloop_telemetry_layers::TelemetryLayer;
use closedloop_telemetry_layers::{
    ActivityEntry, ActivityKind, ActivityLayer, ActivityLogStore, ActivityUpdate,
};
use opentelemetry::logs::LoggerProvider;
use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider};
use tracing_subscriber::prelude::*;

fn summaries(entries: &[ActivityEntry]) -> Vec<String> {
    entries.iter().map(|e| e.summary.clone()).collect()
}

#[test]
fn ring_keeps_the_last_200_newest_last() {
    let store = ActivityLogStore::new();
    assert_eq!(store.capacity(), DEFAULT_CAPACITY);
    for i in 0..250 {
        store.record(ActivityKind::Request, format!("r{i}"), "");
    }
    let snap = store.snapshot();
    assert_eq!(snap.len(), 200);
    assert_eq!(store.len(), 200);
    assert_eq!(snap[0].summary, "r50");
    assert_eq!(snap[199].summary, "r249");
    assert!(snap.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert_eq!(store.total_recorded(), 250);
}

#[test]
fn custom_capacity_wraps_too() {
    let store = ActivityLogStore::with_capacity(3);
    for i in 0..5 {
        store.record(ActivityKind::Security, format!("s{i}"), "");
    }
    assert_eq!(summaries(&store.snapshot()), ["s2", "s3", "s4"]);
}

#[test]
fn bodies_over_8_kib_are_cut_utf8_safe_and_marked() {
    let store = ActivityLogStore::new();
    // 8191 ASCII bytes then a 3-byte character straddling the 8192-byte bound.
    let body = format!("{}€tail", "a".repeat(BODY_MAX_BYTES - 1));
    store.record(ActivityKind::Request, "straddle", &body);
    // 4-byte characters: 8192 is a multiple of 4, so exactly 2048 of them fit.
    let emoji = "🦀".repeat(3000);
    store.record(ActivityKind::Request, "emoji", &emoji);
    // Exactly at the bound: not truncated.
    store.record(ActivityKind::Request, "exact", "b".repeat(BODY_MAX_BYTES));

    let snap = store.snapshot();
    assert!(snap[0].truncated);
    assert_eq!(snap[0].body.len(), BODY_MAX_BYTES - 1);
    assert!(snap[0].body.bytes().all(|b| b == b'a'));
    assert!(snap[1].truncated);
    assert_eq!(snap[1].body, "🦀".repeat(2048));
    assert!(!snap[2].truncated);
    assert_eq!(snap[2].body.len(), BODY_MAX_BYTES);
}

#[test]
fn clear_empties_the_log() {
    let store = ActivityLogStore::with_capacity(10);
    store.record(ActivityKind::Request, "a", "");
    store.record(ActivityKind::Security, "b", "");
    store.clear();
    assert!(store.is_empty());
    assert!(store.snapshot().is_empty());
    store.record(ActivityKind::Request, "c", "");
    assert_eq!(summaries(&store.snapshot()), ["c"]);
}

#[test]
fn a_subscriber_that_never_reads_does_not_block_and_sees_the_exact_lag() {
    let store = ActivityLogStore::new();
    let mut idle = store.subscribe();
    for i in 0..10_000 {
        store.record(ActivityKind::Request, format!("r{i}"), "body");
    }
    assert_eq!(idle.try_recv(), Some(ActivityUpdate::Lagged(9_800)));
    let rest = idle.drain();
    assert_eq!(rest.len(), 200);
    match (&rest[0], &rest[199]) {
        (ActivityUpdate::Entry(first), ActivityUpdate::Entry(last)) => {
            assert_eq!((first.seq, first.summary.as_str()), (9_800, "r9800"));
            assert_eq!((last.seq, last.summary.as_str()), (9_999, "r9999"));
        }
        other => panic!("expected entries, got {other:?}"),
    }
    assert_eq!(idle.try_recv(), None);
}

#[test]
fn a_live_subscriber_receives_in_order() {
    let store = ActivityLogStore::with_capacity(1_000);
    let mut sub = store.subscribe();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..500 {
                store.record(ActivityKind::Security, format!("e{i}"), "");
            }
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 500 {
        match sub.recv_timeout(Duration::from_secs(5)) {
            Some(ActivityUpdate::Entry(e)) => seen.push(e.seq),
            other => panic!("unexpected {other:?} after {} entries", seen.len()),
        }
    }
    writer.join().unwrap();
    assert_eq!(seen, (0..500).collect::<Vec<u64>>());
    assert_eq!(sub.recv_timeout(Duration::from_millis(10)), None);
}

#[test]
fn concurrent_writers_from_8_threads() {
    let store = ActivityLogStore::with_capacity(8_000);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..1_000 {
                    store.record(ActivityKind::Request, format!("t{t}-{i}"), "x");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let snap = store.snapshot();
    assert_eq!(snap.len(), 8_000);
    assert!(snap.iter().enumerate().all(|(i, e)| e.seq == i as u64));
    for t in 0..8 {
        // Each writer's own entries stay in its order.
        let mine: Vec<usize> = snap
            .iter()
            .filter_map(|e| e.summary.strip_prefix(&format!("t{t}-")))
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(mine, (0..1_000).collect::<Vec<_>>());
    }
}

#[test]
fn the_layer_records_request_and_security_events_and_ignores_other_kinds() {
    let store = ActivityLogStore::new();
    let layer = ActivityLayer::new(store.clone());
    let counter = layer.clone();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(
            activity = "request",
            body = "GET /v1/jobs 200",
            "listed jobs"
        );
        tracing::warn!(activity = "SECURITY", summary = "blocked write", body = ?vec![1, 2]);
        tracing::info!(activity = "audit", "not an activity kind");
        tracing::info!(unrelated = 1, "no activity field");
        let huge = "z".repeat(100_000);
        tracing::info!(activity = "Request", body = %huge, "huge body");
    });
    let snap = store.snapshot();
    assert_eq!(snap.len(), 3);
    assert_eq!(
        (
            snap[0].kind,
            snap[0].summary.as_str(),
            snap[0].body.as_str()
        ),
        (ActivityKind::Request, "listed jobs", "GET /v1/jobs 200")
    );
    assert_eq!(
        (
            snap[1].kind,
            snap[1].summary.as_str(),
            snap[1].body.as_str()
        ),
        (ActivityKind::Security, "blocked write", "[1, 2]")
    );
    assert!(snap[2].truncated);
    assert_eq!(snap[2].body.len(), BODY_MAX_BYTES);
    assert_eq!(counter.ignored(), 1);
}

/// Emits REQUEST and SECURITY activity events, some of which also carry a catalogue `event`.
fn emit_activity() {
    tracing::info!(
        activity = "request",
        body = "POST /v1/commands",
        "sent a command"
    );
    tracing::warn!(
        activity = "security",
        summary = "sandbox denied",
        body = "/etc/shadow"
    );
    tracing::info!(
        activity = "request",
        event = "command.completed",
        exit_code = 0,
        "command finished"
    );
    tracing::warn!(
        activity = "Security",
        event = "sandbox.blocked_operation",
        body = "write /etc/hosts"
    );
}

#[test]
fn nothing_in_the_activity_log_reaches_the_exporters() {
    let exporter = InMemoryLogExporter::default();
    let provider = SdkLoggerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let telemetry = TelemetryLayer::builder(provider.logger("app"))
        .compute_target_id("ct-activity")
        .build();
    let store = ActivityLogStore::new();
    let subscriber = tracing_subscriber::registry()
        .with(telemetry)
        .with(ActivityLayer::new(store.clone()));
    tracing::subscriber::with_default(subscriber, || {
        emit_activity();
        // A control event: the pipeline itself works.
        tracing::info!(event = "job.completed", exit_code = 0);
    });
    provider.force_flush().unwrap();

    let snap = store.snapshot();
    assert_eq!(snap.len(), 4);
    assert_eq!(
        snap.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [
            ActivityKind::Request,
            ActivityKind::Security,
            ActivityKind::Request,
            ActivityKind::Security
        ]
    );
    let logs = exporter.get_emitted_logs().unwrap();
    let names: Vec<_> = logs.iter().map(|l| l.record.event_name()).collect();
    assert_eq!(
        names,
        [Some("job.completed")],
        "only the control event is exported"
    );
}

#[test]
fn even_a_generic_bridge_cannot_smuggle_activity_entries_past_the_decoder() {
    // `opentelemetry-appender-tracing` forwards every event, activity ones included; the
    // exporters' decoder (their only reader of records) refuses each of them.
    let exporter = InMemoryLogExporter::default();
    let provider = SdkLoggerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let bridge = opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&provider);
    let store = ActivityLogStore::new();
    let subscriber = tracing_subscriber::registry()
        .with(bridge)
        .with(ActivityLayer::new(store.clone()));
    tracing::subscriber::with_default(subscriber, emit_activity);
    provider.force_flush().unwrap();

    assert_eq!(store.len(), 4);
    let logs = exporter.get_emitted_logs().unwrap();
    assert_eq!(logs.len(), 4, "the bridge forwarded them");
    let opts = DecodeOptions {
        compute_target_id: Some("ct-activity".into()),
        ..Default::default()
    };
    for log in &logs {
        assert_eq!(
            decode(&log.record, &opts),
            Err(DecodeError::ActivityEntry),
            "{:?}",
            log.record
        );
    }
}
