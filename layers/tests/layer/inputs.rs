//! The documented outcome for every kind of awkward input, and no panic on any of it.

use std::collections::HashMap;
use std::sync::Arc;

use closedloop_telemetry_layers::__private::MAX_WARNED_NAMES;
use closedloop_telemetry_layers::{LayerStats, TelemetryLayer};
use opentelemetry::logs::{AnyValue, LoggerProvider};
use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLogRecord, SdkLoggerProvider};
use tracing::info;
use tracing_subscriber::prelude::*;

fn capture(allow_custom: bool, f: impl FnOnce()) -> (Vec<SdkLogRecord>, Arc<LayerStats>) {
    let exporter = InMemoryLogExporter::default();
    let provider = SdkLoggerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = TelemetryLayer::builder(provider.logger("test"))
        .compute_target_id("ct")
        .allow_custom_events(allow_custom)
        .build();
    let stats = layer.stats();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    let recs = exporter
        .get_emitted_logs()
        .unwrap()
        .into_iter()
        .map(|l| l.record)
        .collect();
    (recs, stats)
}

fn attrs(r: &SdkLogRecord) -> HashMap<String, AnyValue> {
    r.attributes_iter()
        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
        .collect()
}

fn string(v: &AnyValue) -> &str {
    match v {
        AnyValue::String(s) => s.as_str(),
        other => panic!("expected a string, got {other:?}"),
    }
}

#[test]
fn exit_code_that_is_not_an_integer_keeps_its_own_name_in_extra() {
    let (recs, stats) = capture(false, || {
        info!(event = "job.failed", exit_code = "abc");
        info!(event = "job.failed", exit_code = "7");
        info!(event = "job.failed", exit_code = 1.5);
        info!(event = "job.failed", exit_code = true);
    });
    let a: Vec<_> = recs.iter().map(attrs).collect();
    assert_eq!(a[0]["exit_code"], AnyValue::from("abc".to_string()));
    assert!(!a[0].contains_key("exitCode"));
    assert_eq!(
        a[1]["exitCode"],
        AnyValue::Int(7),
        "numeric strings are parsed"
    );
    assert_eq!(a[2]["exit_code"], AnyValue::Double(1.5));
    assert_eq!(a[3]["exit_code"], AnyValue::Boolean(true));
    assert_eq!(stats.snapshot().retyped_fields, 3);
}

#[test]
fn negative_counts_go_to_extra_but_negative_exit_codes_are_valid() {
    let (recs, _) = capture(false, || {
        info!(
            event = "job.completed",
            elapsed_ms = -5,
            stdout_bytes = -1,
            exit_code = -9
        );
    });
    let a = attrs(&recs[0]);
    assert_eq!(a["elapsed_ms"], AnyValue::Int(-5));
    assert_eq!(a["stdout_bytes"], AnyValue::Int(-1));
    assert_eq!(a["exitCode"], AnyValue::Int(-9));
    assert!(!a.contains_key("elapsedMs"));
}

#[test]
fn huge_integers_do_not_wrap() {
    let (recs, _) = capture(false, || {
        info!(
            event = "job.completed",
            stdout_bytes = u64::MAX,
            counter = u64::MAX
        );
    });
    let a = attrs(&recs[0]);
    assert_eq!(string(&a["stdout_bytes"]), u64::MAX.to_string());
    assert_eq!(string(&a["counter"]), u64::MAX.to_string());
}

#[test]
fn a_one_mebibyte_string_is_cut_to_4096_bytes_on_a_char_boundary() {
    let big = "ü".repeat(512 * 1024); // 1 MiB of two-byte characters
    let (recs, stats) = capture(false, || {
        info!(event = "job.failed", error_stack = big.as_str(), note = big.as_str(), job_id = %big);
    });
    let a = attrs(&recs[0]);
    for key in ["errorStack", "note", "jobId"] {
        let v = string(&a[key]);
        assert!(v.len() <= 4096 && v.len() >= 4094, "{key}: {}", v.len());
        assert!(v.chars().all(|c| c == 'ü'));
    }
    assert_eq!(stats.snapshot().truncated_fields, 3);
}

#[test]
fn control_characters_are_kept_verbatim() {
    let nasty = "a\u{0}b\u{1b}[31mc\r\n\t\u{7f}";
    let (recs, _) = capture(false, || info!(event = "job.failed", abort_reason = nasty));
    assert_eq!(string(&attrs(&recs[0])["abortReason"]), nasty);
}

#[derive(Debug)]
#[allow(dead_code)]
struct OnlyDebug {
    pid: u32,
    args: Vec<&'static str>,
}

#[test]
fn debug_only_values_are_formatted() {
    let v = OnlyDebug {
        pid: 7,
        args: vec!["-v"],
    };
    let err = std::io::Error::other("disk full");
    let (recs, _) = capture(false, || {
        info!(event = "preflight.spawn_failed", meta = ?v, error_stack = %err);
    });
    let a = attrs(&recs[0]);
    assert_eq!(string(&a["meta"]), r#"OnlyDebug { pid: 7, args: ["-v"] }"#);
    assert_eq!(string(&a["errorStack"]), "disk full");
}

#[test]
fn empty_whitespace_and_non_string_event_names_are_dropped_and_counted() {
    let (recs, stats) = capture(true, || {
        info!(event = "");
        info!(event = "   ");
        info!(event = 5);
        info!(event = true);
    });
    assert!(recs.is_empty());
    let s = stats.snapshot();
    assert_eq!((s.invalid_name, s.emitted, s.unknown_name), (4, 0, 0));
}

#[test]
fn names_are_trimmed_before_lookup() {
    let (recs, _) = capture(false, || info!(event = " job.completed "));
    assert_eq!(recs[0].event_name(), Some("job.completed"));
}

#[test]
fn unknown_names_are_not_forwarded_by_default() {
    let (recs, stats) = capture(false, || {
        info!(event = "made.up");
        info!(event = "made.up");
        info!(event = "other.thing");
    });
    assert!(recs.is_empty());
    assert_eq!(stats.snapshot().unknown_name, 3);
}

#[test]
fn custom_names_are_forwarded_when_allowed() {
    let (recs, _) = capture(true, || info!(event = "plugin.loaded", plugin = "x"));
    assert_eq!(recs[0].event_name(), Some("closedloop.custom"));
    let a = attrs(&recs[0]);
    assert_eq!(string(&a["event"]), "plugin.loaded");
    assert_eq!(string(&a["plugin"]), "x");
}

#[test]
fn a_flood_of_distinct_unknown_names_stays_bounded_and_counted() {
    let (recs, stats) = capture(false, || {
        for i in 0..100_000 {
            info!(event = %format!("invented.name.{i}"));
        }
    });
    assert!(recs.is_empty());
    assert_eq!(stats.snapshot().unknown_name, 100_000);
    // The warned-name memory is capped at MAX_WARNED_NAMES (the set's own unit test checks the
    // exact bound); here the layer survived 100k distinct names and counted every one.
    let _ = MAX_WARNED_NAMES;
}

#[test]
fn suppressed_context_and_http_stack_targets_are_ignored() {
    let (recs, stats) = capture(false, || {
        let _guard = opentelemetry::Context::enter_telemetry_suppressed_scope();
        info!(event = "job.completed");
    });
    assert!(recs.is_empty());
    assert_eq!(stats.snapshot().suppressed, 1);
    let (recs, stats) = capture(false, || {
        info!(target: "hyper::proto", event = "job.completed");
        info!(target: "reqwest::connect", event = "job.completed");
        info!(target: "h2", event = "job.completed");
        info!(target: "rustls::client", event = "job.completed");
        info!(target: "closedloop_telemetry_exporters::delivery", event = "job.completed");
        info!(target: "my_app", event = "job.completed");
    });
    assert_eq!(recs.len(), 1);
    assert_eq!(stats.snapshot().suppressed, 5);
}

#[test]
fn activity_events_never_become_telemetry_records() {
    let (recs, _) = capture(true, || {
        info!(
            activity = "request",
            event = "command.completed",
            body = "GET /x"
        );
    });
    assert!(recs.is_empty());
}

#[test]
fn many_threads_emit_at_once_without_loss() {
    let (recs, stats) = capture(false, || {
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        std::thread::scope(|s| {
            for t in 0..16 {
                let d = dispatch.clone();
                s.spawn(move || {
                    tracing::dispatcher::with_default(&d, || {
                        let _g = tracing::info_span!("job", job_id = t).entered();
                        for i in 0..200 {
                            info!(event = "job.completed", i);
                        }
                    })
                });
            }
        });
    });
    assert_eq!(recs.len(), 16 * 200);
    assert_eq!(stats.snapshot().emitted, 3200);
}
