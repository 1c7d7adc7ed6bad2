//! The attribute-to-envelope decoder reads what the layer writes, and records from the stock
//! `opentelemetry-appender-tracing` bridge too.

use closedloop_telemetry_exporters::__private::decode::{decode, DecodeError, DecodeOptions};
use closedloop_telemetry_layers::TelemetryLayer;
use opentelemetry::logs::LoggerProvider;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLogRecord, SdkLoggerProvider};
use serde_json::json;
use tracing::info;
use tracing_subscriber::prelude::*;

fn provider() -> (InMemoryLogExporter, SdkLoggerProvider) {
    let exporter = InMemoryLogExporter::default();
    let provider = SdkLoggerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    (exporter, provider)
}

fn records(exporter: &InMemoryLogExporter) -> Vec<SdkLogRecord> {
    exporter
        .get_emitted_logs()
        .unwrap()
        .into_iter()
        .map(|l| l.record)
        .collect()
}

fn layer_records(verbose: bool, f: impl FnOnce()) -> Vec<SdkLogRecord> {
    let (exporter, provider) = provider();
    let layer = TelemetryLayer::builder(provider.logger("t"))
        .compute_target_id("ct-1")
        .release_version("2.0.0")
        .verbose(verbose)
        .build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    records(&exporter)
}

#[test]
fn layer_records_decode_to_the_envelope() {
    let recs = layer_records(true, || {
        let _l = tracing::info_span!("loop", loop_id = "L", loop_session_id = "LS").entered();
        let _j = tracing::info_span!("job", job_id = "J").entered();
        info!(
            event = "job.failed",
            exit_code = 3,
            exit_signal = "SIGTERM",
            elapsed_ms = 1532_u64,
            stdout_bytes = 10_u64,
            log_tail = "last lines",
            spawn_meta = r#"{"pid": 42, "argv0": "node"}"#,
            token_usage = "not json",
            attempt = 2,
        );
    });
    let ev = decode(
        &recs[0],
        &DecodeOptions {
            keep_tails: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(ev.name, "job.failed");
    assert_eq!(ev.entry.unwrap().name, "job.failed");
    assert_eq!(ev.release_version.as_deref(), Some("2.0.0"));
    let trace = serde_json::to_value(&ev.trace).unwrap();
    assert_eq!(trace["schemaVersion"], "1");
    assert_eq!(trace["computeTargetId"], "ct-1");
    assert_eq!(trace["loopId"], "L");
    assert_eq!(trace["jobId"], "J");
    assert_eq!(trace["loopSessionId"], "LS");
    assert!(trace.get("gatewaySessionId").is_none(), "absent, not null");
    let ts = trace["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), 24, "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.');
    let diag = serde_json::to_value(&ev.diagnostics).unwrap();
    assert_eq!(
        diag,
        json!({
            "exitCode": 3, "exitSignal": "SIGTERM", "elapsedMs": 1532, "stdoutBytes": 10,
            "logTail": "last lines", "spawnMeta": {"pid": 42, "argv0": "node"},
            "extra": {"token_usage": "not json", "attempt": 2}
        })
    );
}

#[test]
fn tails_are_dropped_by_the_decoder_unless_asked_for() {
    let recs = layer_records(true, || {
        info!(event = "job.failed", log_tail = "secret output")
    });
    let ev = decode(&recs[0], &DecodeOptions::default()).unwrap();
    assert_eq!(ev.diagnostics.log_tail, None);
}

#[test]
fn bridge_records_with_snake_case_fields_decode_too() {
    let (exporter, provider) = provider();
    let bridge = OpenTelemetryTracingBridge::new(&provider);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(bridge), || {
        info!(
            event = "command.completed",
            command_id = "C1",
            exit_code = 0,
            elapsed_ms = 5_u64
        );
    });
    let recs = records(&exporter);
    let opts = DecodeOptions {
        compute_target_id: Some("fallback-ct".into()),
        ..Default::default()
    };
    let ev = decode(&recs[0], &opts).unwrap();
    assert_eq!(ev.name, "command.completed");
    assert_eq!(ev.trace.command_id.as_deref(), Some("C1"));
    assert_eq!(ev.trace.compute_target_id, "fallback-ct");
    assert_eq!(ev.diagnostics.exit_code, Some(0));
    assert_eq!(ev.diagnostics.elapsed_ms, Some(5));
}

#[test]
fn records_without_name_or_target_id_are_rejected_with_a_reason() {
    let (exporter, provider) = provider();
    let bridge = OpenTelemetryTracingBridge::new(&provider);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(bridge), || {
        info!(exit_code = 0, "no event field");
        info!(event = "  ");
        info!(event = "job.completed");
        info!(activity = "request", event = "job.completed");
    });
    let recs = records(&exporter);
    let opts = DecodeOptions::default();
    assert_eq!(decode(&recs[0], &opts), Err(DecodeError::NoEventName));
    assert_eq!(decode(&recs[1], &opts), Err(DecodeError::EmptyEventName));
    assert_eq!(decode(&recs[2], &opts), Err(DecodeError::NoComputeTargetId));
    assert_eq!(decode(&recs[3], &opts), Err(DecodeError::ActivityEntry));
}

#[test]
fn custom_events_keep_their_name() {
    let (exporter, provider) = provider();
    let layer = TelemetryLayer::builder(provider.logger("t"))
        .compute_target_id("ct")
        .allow_custom_events(true)
        .build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info!(event = "plugin.loaded");
    });
    let ev = decode(&records(&exporter)[0], &DecodeOptions::default()).unwrap();
    assert_eq!(ev.name, "plugin.loaded");
    assert!(ev.entry.is_none());
}
