//! TelemetryLayer: every catalogue row, context propagation, and the outcome for bad input.

use std::collections::HashMap;
use std::sync::Arc;

use closedloop_telemetry_layers::__private::catalogue::CATALOGUE;
use closedloop_telemetry_layers::{GatewaySession, LayerStats, TelemetryLayer};
use opentelemetry::logs::{AnyValue, LoggerProvider, Severity};
use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLogRecord, SdkLoggerProvider};
use tracing::{info, info_span, Instrument};
use tracing_subscriber::prelude::*;

struct Harness {
    exporter: InMemoryLogExporter,
    provider: SdkLoggerProvider,
    stats: Arc<LayerStats>,
    gateway: GatewaySession,
}

fn harness() -> (Harness, TelemetryLayer<opentelemetry_sdk::logs::SdkLogger>) {
    harness_with(|b| b)
}

fn harness_with(
    f: impl FnOnce(
        closedloop_telemetry_layers::TelemetryLayerBuilder<opentelemetry_sdk::logs::SdkLogger>,
    ) -> closedloop_telemetry_layers::TelemetryLayerBuilder<
        opentelemetry_sdk::logs::SdkLogger,
    >,
) -> (Harness, TelemetryLayer<opentelemetry_sdk::logs::SdkLogger>) {
    let exporter = InMemoryLogExporter::default();
    let provider = SdkLoggerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = f(TelemetryLayer::builder(provider.logger("test"))
        .compute_target_id("ct-test")
        .release_version("1.2.3"))
    .build();
    let h = Harness {
        exporter,
        provider,
        stats: layer.stats(),
        gateway: layer.gateway_session(),
    };
    (h, layer)
}

impl Harness {
    fn records(&self) -> Vec<SdkLogRecord> {
        let _ = &self.provider;
        self.exporter
            .get_emitted_logs()
            .unwrap()
            .into_iter()
            .map(|l| l.record)
            .collect()
    }
}

fn attrs(r: &SdkLogRecord) -> HashMap<String, AnyValue> {
    r.attributes_iter()
        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
        .collect()
}

fn s(v: &str) -> AnyValue {
    AnyValue::from(v.to_string())
}

fn run(layer: TelemetryLayer<opentelemetry_sdk::logs::SdkLogger>, f: impl FnOnce()) {
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
}

#[test]
fn every_catalogue_row_gives_a_record_with_its_name() {
    let (h, layer) = harness();
    run(layer, || {
        for row in CATALOGUE {
            info!(event = row.name, exit_code = 0);
        }
    });
    let recs = h.records();
    assert_eq!(recs.len(), CATALOGUE.len());
    for (rec, row) in recs.iter().zip(CATALOGUE) {
        assert_eq!(rec.event_name(), Some(row.name));
        let a = attrs(rec);
        assert_eq!(a["computeTargetId"], s("ct-test"));
        assert_eq!(a["releaseVersion"], s("1.2.3"));
        assert_eq!(a["exitCode"], AnyValue::Int(0));
        assert!(rec.timestamp().is_some());
        assert_eq!(rec.severity_number(), Some(Severity::Info));
    }
    assert_eq!(h.stats.snapshot().emitted, CATALOGUE.len() as u64);
}

#[test]
fn nested_spans_innermost_value_wins_and_all_levels_contribute() {
    let (h, layer) = harness();
    run(layer, || {
        let outer = info_span!(
            "loop",
            loop_id = "L1",
            job_id = "J-outer",
            loop_session_id = "LS1"
        );
        let _o = outer.enter();
        let inner = info_span!("job", job_id = "J-inner", command_id = %"C1");
        let _i = inner.enter();
        info!(event = "job.completed", operation_id = "OP1");
    });
    let a = attrs(&h.records()[0]);
    assert_eq!(a["loopId"], s("L1"));
    assert_eq!(a["jobId"], s("J-inner"));
    assert_eq!(a["loopSessionId"], s("LS1"));
    assert_eq!(a["commandId"], s("C1"));
    assert_eq!(a["operationId"], s("OP1"));
}

#[test]
fn event_fields_override_span_context() {
    let (h, layer) = harness();
    run(layer, || {
        let _g = info_span!("job", job_id = "span-job").entered();
        info!(event = "job.started", job_id = "event-job");
    });
    let recs = h.records();
    let job_ids: Vec<_> = recs[0]
        .attributes_iter()
        .filter(|(k, _)| k.as_str() == "jobId")
        .collect();
    assert_eq!(job_ids.len(), 1, "one jobId attribute, not two");
    assert_eq!(job_ids[0].1, s("event-job"));
}

#[test]
fn sibling_spans_do_not_leak_into_each_other() {
    let (h, layer) = harness();
    run(layer, || {
        let parent = info_span!("loop", loop_id = "L");
        let _p = parent.enter();
        info_span!("job", job_id = "A").in_scope(|| info!(event = "job.started"));
        info_span!("job", command_id = "B").in_scope(|| info!(event = "command.started"));
    });
    let recs = h.records();
    let (a, b) = (attrs(&recs[0]), attrs(&recs[1]));
    assert_eq!(a["jobId"], s("A"));
    assert!(!a.contains_key("commandId"));
    assert_eq!(b["commandId"], s("B"));
    assert!(!b.contains_key("jobId"));
    assert_eq!(a["loopId"], s("L"));
    assert_eq!(b["loopId"], s("L"));
}

#[test]
fn late_recorded_span_fields_are_seen() {
    let (h, layer) = harness();
    run(layer, || {
        let span = info_span!("job", job_id = tracing::field::Empty, loop_id = "L");
        let _g = span.enter();
        info!(event = "job.started");
        span.record("job_id", "late-job");
        info!(event = "job.completed");
        span.record("loop_id", "L2");
        info!(event = "job.completed");
    });
    let recs = h.records();
    assert!(!attrs(&recs[0]).contains_key("jobId"));
    assert_eq!(attrs(&recs[1])["jobId"], s("late-job"));
    assert_eq!(attrs(&recs[1])["loopId"], s("L"));
    assert_eq!(attrs(&recs[2])["loopId"], s("L2"));
    assert_eq!(
        attrs(&recs[2])["jobId"],
        s("late-job"),
        "earlier fields survive a record"
    );
}

#[test]
fn late_record_on_a_span_without_context_fields() {
    let (h, layer) = harness();
    run(layer, || {
        let span = info_span!("plain", job_id = tracing::field::Empty);
        let _g = span.enter();
        span.record("job_id", 42_u64);
        info!(event = "job.started");
    });
    assert_eq!(attrs(&h.records()[0])["jobId"], s("42"));
}

#[test]
fn events_outside_any_span_carry_only_the_envelope() {
    let (h, layer) = harness();
    run(layer, || {
        info!(event = "queue.stats_changed", depth = 3_u64)
    });
    let a = attrs(&h.records()[0]);
    let mut keys: Vec<_> = a.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["computeTargetId", "depth", "releaseVersion"]);
    assert_eq!(a["depth"], AnyValue::Int(3));
}

#[test]
fn gateway_session_is_set_at_runtime_and_spans_override_it() {
    let (h, layer) = harness();
    let gw = h.gateway.clone();
    run(layer, || {
        info!(event = "connection.lost");
        gw.set("gw-1");
        info!(event = "connection.established");
        gw.set("gw-2");
        info!(event = "connection.reconnection_resumed");
        info_span!("s", gateway_session_id = "gw-span")
            .in_scope(|| info!(event = "command.started"));
    });
    let recs = h.records();
    assert!(!attrs(&recs[0]).contains_key("gatewaySessionId"));
    assert_eq!(attrs(&recs[1])["gatewaySessionId"], s("gw-1"));
    assert_eq!(attrs(&recs[2])["gatewaySessionId"], s("gw-2"));
    assert_eq!(attrs(&recs[3])["gatewaySessionId"], s("gw-span"));
}

#[test]
fn camel_case_field_names_are_accepted() {
    let (h, layer) = harness();
    run(layer, || {
        info!(
            event = "job.failed",
            exitCode = 2,
            elapsedMs = 10_u64,
            jobId = "J"
        );
    });
    let a = attrs(&h.records()[0]);
    assert_eq!(a["exitCode"], AnyValue::Int(2));
    assert_eq!(a["elapsedMs"], AnyValue::Int(10));
    assert_eq!(a["jobId"], s("J"));
}

#[test]
fn tails_are_not_copied_unless_verbose() {
    let (h, layer) = harness();
    let tail = "x".repeat(5000);
    run(layer, || {
        info!(event = "job.failed", log_tail = tail.as_str(), stderr_tail = %"boom");
    });
    let a = attrs(&h.records()[0]);
    assert!(!a.contains_key("logTail") && !a.contains_key("stderrTail"));
    assert!(!a.contains_key("log_tail") && !a.contains_key("stderr_tail"));
}

#[test]
fn verbose_tails_keep_the_end_within_4096_bytes_on_a_char_boundary() {
    let (h, layer) = harness_with(|b| b.verbose(true));
    let tail = format!("{}{}END", "start ", "é".repeat(3000));
    run(layer, || {
        info!(event = "job.failed", log_tail = tail.as_str(), stderr_tail = %tail);
    });
    let a = attrs(&h.records()[0]);
    for key in ["logTail", "stderrTail"] {
        let AnyValue::String(v) = &a[key] else {
            panic!("{key} is a string")
        };
        let v = v.as_str();
        assert!(v.len() <= 4096, "{key} is {} bytes", v.len());
        assert!(v.ends_with("éEND"));
        assert!(v.len() >= 4094);
    }
}

#[test]
fn severity_follows_the_level() {
    let (h, layer) = harness();
    run(layer, || {
        tracing::error!(event = "job.failed");
        tracing::warn!(event = "connection.degraded");
        tracing::debug!(event = "job.started");
        tracing::trace!(event = "job.started");
    });
    let sev: Vec<_> = h.records().iter().map(|r| r.severity_number()).collect();
    assert_eq!(
        sev,
        [
            Some(Severity::Error),
            Some(Severity::Warn),
            Some(Severity::Debug),
            Some(Severity::Trace)
        ]
    );
}

#[test]
fn events_without_an_event_field_are_ignored() {
    let (h, layer) = harness();
    run(layer, || {
        info!(exit_code = 1, "just a log line");
        info!(name = "job.completed");
    });
    assert!(h.records().is_empty());
    assert_eq!(h.stats.snapshot(), Default::default());
}

#[test]
fn message_is_never_forwarded() {
    let (h, layer) = harness();
    run(layer, || {
        info!(event = "job.completed", "user typed: secret stuff")
    });
    let r = &h.records()[0];
    assert!(r.body().is_none());
    assert!(!attrs(r).contains_key("message"));
}

#[test]
fn async_tasks_keep_their_context_across_awaits_and_threads() {
    let (h, layer) = harness();
    let subscriber = tracing_subscriber::registry().with(layer);
    let _default = tracing::subscriber::set_default(subscriber);
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let span = info_span!("job", loop_id = %format!("L{i}"), job_id = %format!("J{i}"));
            let fut = async move {
                info!(event = "job.started", n = i);
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                info!(event = "job.completed", n = i);
            }
            .instrument(span);
            tasks.push(tokio::spawn(
                tracing::instrument::WithSubscriber::with_subscriber(fut, dispatch.clone()),
            ));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let recs = h.records();
    assert_eq!(recs.len(), 16);
    for r in &recs {
        let a = attrs(r);
        let AnyValue::Int(n) = a["n"] else {
            panic!("n is an int")
        };
        assert_eq!(a["loopId"], s(&format!("L{n}")));
        assert_eq!(a["jobId"], s(&format!("J{n}")));
    }
}
