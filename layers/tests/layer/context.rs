//! Span context merged per span at creation (the fast path) stays exactly as visible as a walk
//! of the scope would make it: late records on ancestors, deep nesting, spans without context
//! fields, explicit parents, and events on other threads.

use std::collections::HashMap;

use closedloop_telemetry_layers::TelemetryLayer;
use opentelemetry::logs::{AnyValue, LoggerProvider};
use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLogRecord, SdkLoggerProvider};
use tracing::field::Empty;
use tracing::{info, info_span};
use tracing_subscriber::prelude::*;

fn capture(f: impl FnOnce()) -> Vec<HashMap<String, AnyValue>> {
    let exporter = InMemoryLogExporter::default();
    let provider = SdkLoggerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = TelemetryLayer::builder(provider.logger("test"))
        .compute_target_id("ct-context")
        .build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    exporter
        .get_emitted_logs()
        .unwrap()
        .into_iter()
        .map(|l| attrs(&l.record))
        .collect()
}

fn attrs(r: &SdkLogRecord) -> HashMap<String, AnyValue> {
    r.attributes_iter()
        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
        .collect()
}

fn s(v: &str) -> AnyValue {
    AnyValue::String(v.to_string().into())
}

#[test]
fn a_field_recorded_on_an_ancestor_after_the_child_was_created_is_seen() {
    let recs = capture(|| {
        let outer = info_span!("loop", loop_id = Empty, job_id = "J1");
        let _o = outer.enter();
        let inner = info_span!("command", command_id = "C1");
        let _i = inner.enter();
        info!(event = "command.started");
        outer.record("loop_id", "L-late");
        info!(event = "command.completed");
        outer.record("job_id", "J2");
        info!(event = "command.completed");
    });
    assert!(!recs[0].contains_key("loopId"));
    assert_eq!(recs[1]["loopId"], s("L-late"));
    assert_eq!(recs[1]["commandId"], s("C1"));
    assert_eq!(recs[1]["jobId"], s("J1"));
    assert_eq!(recs[2]["jobId"], s("J2"));
}

#[test]
fn plain_spans_between_context_spans_are_transparent() {
    let recs = capture(|| {
        let _a = info_span!("a", loop_id = "L").entered();
        let _b = info_span!("plain-1").entered();
        let _c = info_span!("c", command_id = "C").entered();
        let _d = info_span!("plain-2").entered();
        info!(event = "command.started");
    });
    assert_eq!(recs[0]["loopId"], s("L"));
    assert_eq!(recs[0]["commandId"], s("C"));
}

#[test]
fn inner_values_win_and_siblings_stay_apart_at_depth() {
    let recs = capture(|| {
        let _a = info_span!("a", loop_id = "L1", job_id = "J-outer").entered();
        let _b = info_span!("b", job_id = "J-mid").entered();
        info_span!("c", command_id = "C1").in_scope(|| info!(event = "command.started"));
        info_span!("c", command_id = "C2").in_scope(|| info!(event = "command.started"));
    });
    assert_eq!(recs[0]["jobId"], s("J-mid"));
    assert_eq!(recs[0]["commandId"], s("C1"));
    assert_eq!(recs[1]["commandId"], s("C2"));
    assert_eq!(recs[1]["loopId"], s("L1"));
}

#[test]
fn explicit_parents_and_other_threads_see_the_parent_context() {
    let recs = capture(|| {
        let parent = info_span!("loop", loop_id = "L-x", loop_session_id = Empty);
        info!(parent: &parent, event = "command.started");
        parent.record("loop_session_id", "LS-late");
        let child = info_span!(parent: &parent, "job", job_id = "J");
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        std::thread::scope(|t| {
            t.spawn(|| {
                tracing::dispatcher::with_default(&dispatch, || {
                    child.in_scope(|| info!(event = "job.started"))
                })
            });
        });
    });
    assert_eq!(recs[0]["loopId"], s("L-x"));
    assert!(!recs[0].contains_key("loopSessionId"));
    assert_eq!(recs[1]["loopId"], s("L-x"));
    assert_eq!(recs[1]["loopSessionId"], s("LS-late"));
    assert_eq!(recs[1]["jobId"], s("J"));
}
