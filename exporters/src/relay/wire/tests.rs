//! Exact shapes of relay messages, framing and request grouping.

use std::time::{Duration, UNIX_EPOCH};

use closedloop_telemetry_layers::__private::catalogue::lookup;
use closedloop_telemetry_layers::__private::envelope::{
    format_timestamp, Diagnostics, TraceEnvelope,
};
use serde_json::{json, Value};

use super::*;

/// An event as `decode` would produce it (`2026-11-25T09:14:03.120Z`, target `ct-1`).
pub(crate) fn event(name: &str) -> Event {
    let time = UNIX_EPOCH + Duration::from_millis(1_795_598_043_120);
    Event {
        name: name.to_string(),
        entry: lookup(name),
        time,
        severity: None,
        trace: TraceEnvelope::new(format_timestamp(time), "ct-1".into()),
        diagnostics: Diagnostics::default(),
        release_version: Some("1.4.2".into()),
        sample_rate: None,
    }
}

pub(crate) const ID: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);

fn message(event: &Event) -> Value {
    serde_json::from_slice(&relay_item(event, ID)).unwrap()
}

#[test]
fn minimal_message_omits_diagnostics_and_absent_keys() {
    assert_eq!(
        message(&event("connection.established")),
        json!({
            "type": "desktop.telemetry",
            "event": "connection.established",
            "trace": {"schemaVersion": "1", "timestamp": "2026-11-25T09:14:03.120Z",
                      "computeTargetId": "ct-1"},
            "id": "01900000-0000-7000-8000-000000000001"
        })
    );
}

#[test]
fn full_message_carries_envelope_trace_context_and_diagnostics() {
    let mut e = event("job.failed");
    e.trace.gateway_session_id = Some("gs-1".into());
    e.trace.command_id = Some("cmd-1".into());
    e.trace.operation_id = Some("op-1".into());
    e.trace.loop_id = Some("loop-1".into());
    e.trace.job_id = Some("job-1".into());
    e.trace.loop_session_id = Some("ls-1".into());
    e.trace.otel_trace_id = Some("0af7651916cd43dd8448eb211c80319c".into());
    e.trace.otel_span_id = Some("b7ad6b7169203331".into());
    e.diagnostics.exit_code = Some(1);
    e.diagnostics.elapsed_ms = Some(1532);
    e.diagnostics.stderr_tail =
        Some("fatal: token=ghp_0123456789abcdefghijABCDEFGHIJ012345".into());
    e.diagnostics.extra.insert("attempt".into(), json!(2));
    assert_eq!(
        message(&e),
        json!({
            "type": "desktop.telemetry",
            "event": "job.failed",
            "trace": {"schemaVersion": "1", "timestamp": "2026-11-25T09:14:03.120Z",
                      "computeTargetId": "ct-1", "gatewaySessionId": "gs-1",
                      "commandId": "cmd-1", "operationId": "op-1", "loopId": "loop-1",
                      "jobId": "job-1", "loopSessionId": "ls-1",
                      "otelTraceId": "0af7651916cd43dd8448eb211c80319c",
                      "otelSpanId": "b7ad6b7169203331"},
            "diagnostics": {"exitCode": 1, "elapsedMs": 1532,
                            "stderrTail": "fatal: token=[REDACTED:github-token]",
                            "extra": {"attempt": 2}},
            "id": "01900000-0000-7000-8000-000000000001"
        })
    );
}

#[test]
fn free_text_is_redacted_without_verbose() {
    let mut e = event("job.failed");
    e.diagnostics.error_stack = Some("token=visible-in-stack".into());
    e.diagnostics.abort_reason = Some("password=hunter2".into());
    e.diagnostics.spawn_meta = json!({"env": {"DB_PASSWORD": "pw-1"}}).as_object().cloned();
    e.diagnostics.token_usage = json!({"note": "key sk-proj-0123456789abcdefghijKLMN"})
        .as_object()
        .cloned();
    e.diagnostics.extra.insert("api_key".into(), json!("k-1"));
    let d = &message(&e)["diagnostics"];
    assert_eq!(d["errorStack"], "token=[REDACTED:secret]");
    assert_eq!(d["abortReason"], "password=[REDACTED:secret]");
    assert_eq!(d["spawnMeta"]["env"]["DB_PASSWORD"], "[REDACTED:secret]");
    assert_eq!(d["tokenUsage"]["note"], "key [REDACTED:openai-key]");
    assert_eq!(d["extra"]["api_key"], "[REDACTED:secret]");
}

#[test]
fn no_value_is_ever_null() {
    let mut e = event("command.completed");
    e.diagnostics.exit_code = Some(0);
    let text = String::from_utf8(relay_item(&e, ID)).unwrap();
    assert!(!text.contains("null"), "{text}");
}

#[test]
fn custom_events_keep_their_name_and_route_only_when_allowed() {
    let custom = event("my.custom_thing");
    assert!(custom.entry.is_none());
    assert!(!routes_to_relay(custom.entry, false));
    assert!(routes_to_relay(custom.entry, true));
    assert_eq!(message(&custom)["event"], "my.custom_thing");
    // Catalogue rows route by their relay column, whatever allow_custom says.
    assert!(routes_to_relay(event("job.completed").entry, false));
    assert!(!routes_to_relay(event("approval.requested").entry, true));
    assert!(!routes_to_relay(event("command.failed").entry, true));
}

#[test]
fn oversize_message_is_shrunk_not_dropped() {
    let mut e = event("job.failed");
    e.diagnostics.exit_code = Some(1);
    e.diagnostics.log_tail = Some("x".repeat(4096));
    e.diagnostics
        .extra
        .insert("big".into(), json!("b".repeat(MAX_ITEM_BYTES + 10)));
    let bytes = relay_item(&e, ID);
    assert!(bytes.len() <= MAX_ITEM_BYTES);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["id"], "01900000-0000-7000-8000-000000000001");
    assert_eq!(v["diagnostics"], json!({"exitCode": 1}));
}

#[test]
fn frame_makes_a_json_array() {
    assert_eq!(frame(&[]), b"[]");
    let a = relay_item(&event("job.started"), ID);
    let b = relay_item(&event("job.completed"), ID);
    let body = frame(&[&a, &b]);
    assert_eq!(body.len(), framed_len(&[a.len(), b.len()]));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[1]["event"], "job.completed");
}

#[test]
fn groups_split_at_100_items() {
    let sizes = vec![300; 250];
    let groups = request_groups(&sizes);
    assert_eq!(groups, vec![0..100, 100..200, 200..250]);
    assert!(request_groups(&[]).is_empty());
    assert_eq!(request_groups(&[5]), vec![0..1]);
}

#[test]
fn groups_split_at_5_mb_of_framed_body() {
    // 4 items of 1.2 MB fit (4.8 MB + brackets + commas); the fifth does not.
    let sizes = vec![1_200_000; 9];
    let groups = request_groups(&sizes);
    assert_eq!(groups, vec![0..4, 4..8, 8..9]);
    for g in &groups {
        assert!(framed_len(&sizes[g.clone()]) <= MAX_BODY_BYTES);
    }
    // Exactly at the bound: 2 + 4_999_998 = 5_000_000 fits; one byte more does not.
    assert_eq!(split_groups(&[4_999_998], 10, MAX_BODY_BYTES), vec![0..1]);
    assert_eq!(
        split_groups(&[2_499_998, 1], 10, 2_500_000),
        vec![0..1, 1..2]
    );
    assert_eq!(split_groups(&[2_499_997, 1], 10, 2_500_001), vec![0..2]);
    // An oversize item stands alone; nothing is lost.
    assert_eq!(
        request_groups(&[10, MAX_BODY_BYTES + 1, 10]),
        vec![0..1, 1..2, 2..3]
    );
}
