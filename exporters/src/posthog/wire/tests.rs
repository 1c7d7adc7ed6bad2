use super::*;
use closedloop_telemetry_layers::__private::catalogue::lookup;
use closedloop_telemetry_layers::__private::envelope::{Diagnostics, TraceEnvelope};
use serde_json::json;
use std::time::{Duration, UNIX_EPOCH};

fn event(name: &str) -> Event {
    let mut trace = TraceEnvelope::new("2026-11-25T09:14:03.120Z".into(), "ct-1".into());
    trace.command_id = Some("cmd-1".into());
    trace.job_id = Some("job-7".into());
    Event {
        name: name.into(),
        entry: lookup(name),
        time: UNIX_EPOCH + Duration::from_millis(1_795_598_043_120),
        severity: None,
        trace,
        diagnostics: Diagnostics::default(),
        release_version: Some("1.2.3".into()),
        sample_rate: None,
    }
}

fn json_of(e: &Event, id: Uuid) -> serde_json::Value {
    serde_json::from_slice(&encode_event(e, id).unwrap()).unwrap()
}

#[test]
fn maps_the_envelope_and_properties() {
    let id = Uuid::now_v7();
    let mut e = event("command.completed");
    e.diagnostics.exit_code = Some(0);
    e.diagnostics.elapsed_ms = Some(1532);
    e.diagnostics.log_tail = Some("secret output".into());
    e.diagnostics.stderr_tail = Some("more".into());
    e.diagnostics.extra.insert("model".into(), json!("gpt"));
    assert_eq!(
        json_of(&e, id),
        json!({
            "event": "command_completed",
            "distinct_id": "ct-1",
            "timestamp": "2026-11-25T09:14:03.120Z",
            "uuid": id.to_string(),
            "properties": {
                "distinct_id": "ct-1",
                "release_version": "1.2.3",
                "$lib": "closedloop-telemetry",
                "$lib_version": LIB_VERSION,
                "command_id": "cmd-1",
                "job_id": "job-7",
                "exit_code": 0,
                "elapsed_ms": 1532,
                "model": "gpt",
            }
        })
    );
}

#[test]
fn free_text_properties_are_redacted() {
    let mut e = event("command.timeout");
    e.diagnostics.error_stack = Some("token=visible-in-stack".into());
    e.diagnostics.abort_reason = Some("password=hunter2".into());
    e.diagnostics.exit_signal = Some("SIGTERM".into());
    e.diagnostics.spawn_meta = json!({"env": {"DB_PASSWORD": "pw-1"}}).as_object().cloned();
    e.diagnostics.token_usage =
        json!({"input": 3, "note": "ghp_0123456789abcdefghijABCDEFGHIJ012345"})
            .as_object()
            .cloned();
    e.diagnostics.extra.insert("api_key".into(), json!("k-1"));
    e.diagnostics
        .extra
        .insert("note".into(), json!("Bearer abc123def456"));
    let p = &json_of(&e, Uuid::now_v7())["properties"];
    assert_eq!(p["error_stack"], "token=[REDACTED:secret]");
    assert_eq!(p["abort_reason"], "password=[REDACTED:secret]");
    assert_eq!(p["exit_signal"], "SIGTERM");
    assert_eq!(p["spawn_meta"]["env"]["DB_PASSWORD"], "[REDACTED:secret]");
    assert_eq!(
        p["token_usage"],
        json!({"input": 3, "note": "[REDACTED:github-token]"})
    );
    assert_eq!(p["api_key"], "[REDACTED:secret]");
    assert_eq!(p["note"], "Bearer [REDACTED:bearer]");
}

#[test]
fn folded_failures_carry_a_reason() {
    for (name, reason) in [
        ("command.timeout", "timeout"),
        ("command.cancelled", "cancelled"),
        ("command.gateway_error", "gateway_error"),
    ] {
        let v = json_of(&event(name), Uuid::now_v7());
        assert_eq!(v["event"], "command_failed");
        assert_eq!(v["properties"]["reason"], reason);
    }
    let plain = json_of(&event("command.failed"), Uuid::now_v7());
    assert!(plain["properties"].get("reason").is_none());
    let hc = json_of(&event("healthcheck.recovered"), Uuid::now_v7());
    assert_eq!(hc["event"], "healthcheck.recovered");
}

#[test]
fn extra_fields_cannot_shadow_reserved_properties_or_smuggle_tails() {
    let mut e = event("approval.requested");
    for key in ["distinct_id", "$lib", "log_tail", "stderrTail"] {
        e.diagnostics.extra.insert(key.into(), json!("spoofed"));
    }
    e.diagnostics.extra.insert("nothing".into(), json!(null));
    let text = String::from_utf8(encode_event(&e, Uuid::now_v7()).unwrap()).unwrap();
    assert!(!text.contains("spoofed"), "{text}");
    assert!(!text.contains("nothing"), "{text}");
}

#[test]
fn invalid_events_are_refused() {
    let mut no_id = event("command.started");
    no_id.trace.compute_target_id = "  ".into();
    assert!(encode_event(&no_id, Uuid::now_v7()).is_err());
    // Diagnostics-only rows have no PostHog name.
    assert!(encode_event(&event("job.completed"), Uuid::now_v7()).is_err());
    let custom = Event {
        entry: None,
        ..event("my.custom")
    };
    assert!(encode_event(&custom, Uuid::now_v7()).is_err());
}

#[test]
fn absent_values_are_omitted() {
    let mut e = event("command.initiated");
    e.release_version = None;
    e.trace.command_id = None;
    e.trace.job_id = None;
    let v = json_of(&e, Uuid::now_v7());
    let props = v["properties"].as_object().unwrap();
    assert_eq!(
        props.keys().collect::<Vec<_>>(),
        vec!["$lib", "$lib_version", "distinct_id"] // (serde_json sorts keys)
    );
}

#[test]
fn frames_a_batch_with_the_key_and_sent_at() {
    let framer = Framer::new("phc_\"quoted\"");
    let mut out = Vec::new();
    framer.frame(
        &[br#"{"a":1}"#, br#"{"b":2}"#],
        "2026-11-25T09:14:04.000Z",
        &mut out,
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v,
        json!({"api_key": "phc_\"quoted\"", "batch": [{"a": 1}, {"b": 2}], "sent_at": "2026-11-25T09:14:04.000Z"})
    );
    assert!(!format!("{framer:?}").contains("phc_"));
}
