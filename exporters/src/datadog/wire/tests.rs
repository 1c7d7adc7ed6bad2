//! Exact shapes of Datadog items, id conversion, shrinking, expiry and grouping.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::relay::wire::tests::event;

/// The id every test item carries.
const ID: uuid::Uuid = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);

fn item(event: &Event) -> Value {
    serde_json::from_slice(&datadog_item(event, ID, "host-1").bytes).unwrap()
}

#[test]
fn minimal_item_has_every_required_key_and_no_diagnostics() {
    assert_eq!(
        item(&event("connection.established")),
        json!({
            "ddsource": "closedloop-desktop",
            "service": "closedloop-desktop",
            "hostname": "host-1",
            "ddtags": "release_version:1.4.2,event:connection.established",
            "message": "connection.established",
            "status": "info",
            "timestamp": 1_795_598_043_120u64,
            "event": "connection.established",
            "trace": {"schemaVersion": "1", "timestamp": "2026-11-25T09:14:03.120Z",
                      "computeTargetId": "ct-1"},
            "id": "01900000-0000-7000-8000-000000000001"
        })
    );
}

#[test]
fn full_item_has_status_diagnostics_and_dd_ids() {
    let mut e = event("job.failed");
    e.trace.job_id = Some("job-1".into());
    e.trace.otel_trace_id = Some("0af7651916cd43dd8448eb211c80319c".into());
    e.trace.otel_span_id = Some("b7ad6b7169203331".into());
    e.diagnostics.exit_code = Some(2);
    e.diagnostics.log_tail = Some("login as bob@example.com".into());
    assert_eq!(
        item(&e),
        json!({
            "ddsource": "closedloop-desktop",
            "service": "closedloop-desktop",
            "hostname": "host-1",
            "ddtags": "release_version:1.4.2,event:job.failed",
            "message": "job.failed",
            "status": "error",
            "timestamp": 1_795_598_043_120u64,
            "event": "job.failed",
            "trace": {"schemaVersion": "1", "timestamp": "2026-11-25T09:14:03.120Z",
                      "computeTargetId": "ct-1", "jobId": "job-1",
                      "otelTraceId": "0af7651916cd43dd8448eb211c80319c",
                      "otelSpanId": "b7ad6b7169203331"},
            "diagnostics": {"exitCode": 2, "logTail": "login as [REDACTED:email]"},
            "id": "01900000-0000-7000-8000-000000000001",
            "dd.trace_id": "9532127138774266268",
            "dd.span_id": "13235353014750950193"
        })
    );
}

#[test]
fn status_follows_the_catalogue_and_custom_events_are_info() {
    assert_eq!(item(&event("connection.degraded"))["status"], "warn");
    assert_eq!(
        item(&event("healthcheck.failure_persistent"))["status"],
        "error"
    );
    assert_eq!(item(&event("queue.stats_changed"))["status"], "info");
    let custom = item(&event("my custom,event"));
    assert_eq!(custom["status"], "info");
    assert_eq!(custom["message"], "my custom,event");
    assert_eq!(
        custom["ddtags"],
        "release_version:1.4.2,event:my_custom_event"
    );
}

#[test]
fn absent_values_are_omitted_never_null() {
    let mut e = event("job.started");
    e.release_version = None;
    let bytes = datadog_item(&e, ID, "").bytes;
    let text = String::from_utf8(bytes).unwrap();
    assert!(!text.contains("null"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v.get("hostname").is_none());
    assert!(v.get("diagnostics").is_none());
    assert!(v.get("dd.trace_id").is_none() && v.get("dd.span_id").is_none());
    assert_eq!(v["ddtags"], "event:job.started");
}

#[test]
fn dd_ids_are_the_decimal_lower_64_bits() {
    // Lower half 8448eb211c80319c = 9532127138774266268.
    assert_eq!(
        dd_trace_id("0af7651916cd43dd8448eb211c80319c"),
        Some(0x8448_eb21_1c80_319c)
    );
    assert_eq!(dd_trace_id("ffffffffffffffff0000000000000001"), Some(1));
    assert_eq!(
        dd_trace_id("0000000000000000ffffffffffffffff"),
        Some(u64::MAX)
    );
    assert_eq!(
        dd_span_id("b7ad6b7169203331"),
        Some(13_235_353_014_750_950_193)
    );
    // Malformed or zero: omitted.
    assert_eq!(dd_trace_id("ffffffffffffffff0000000000000000"), None);
    assert_eq!(dd_trace_id("abc"), None);
    assert_eq!(dd_trace_id("0af7651916cd43dd8448eb211c80319g"), None);
    assert_eq!(dd_span_id("+7ad6b7169203331"), None);
    assert_eq!(dd_span_id("0000000000000000"), None);
    assert_eq!(
        serde_json::to_string(&DecimalId(u64::MAX)).unwrap(),
        "\"18446744073709551615\""
    );
}

#[test]
fn item_over_1_mb_is_shrunk_tails_first() {
    // Tails are redacted to their last 4096 bytes, so a big `extra` pushes the item over.
    let mut e = event("job.failed");
    e.diagnostics.exit_code = Some(1);
    e.diagnostics.log_tail = Some(format!("{}THE END", "log line\n".repeat(444)));
    e.diagnostics.stderr_tail = Some("err line\n".repeat(444));
    e.diagnostics.error_stack = Some("at main".into());
    let base = datadog_item(&e, ID, "h").bytes.len();
    let big = "b".repeat(MAX_ITEM_BYTES - base + 1000);
    e.diagnostics.extra.insert("big".into(), json!(big));
    let out = datadog_item(&e, ID, "h");
    assert!(out.shrunk);
    assert!(out.bytes.len() <= MAX_ITEM_BYTES, "{}", out.bytes.len());
    let v: Value = serde_json::from_slice(&out.bytes).unwrap();
    let d = &v["diagnostics"];
    assert_eq!(d["exitCode"], 1);
    assert_eq!(
        d["errorStack"], "at main",
        "the stack is only cut after the tails"
    );
    let log = d["logTail"].as_str().unwrap();
    assert!(
        log.ends_with("THE END") && log.len() < 4000,
        "tails keep their end"
    );
    assert_eq!(d["stderrTail"].as_str().unwrap().len(), 9 * 444);
    assert_eq!(d["extra"]["big"].as_str().unwrap().len(), big.len());
}

#[test]
fn item_over_1_mb_without_tails_cuts_stack_then_extra() {
    let mut e = event("job.failed");
    e.diagnostics.error_stack = Some(format!("TOP{}", "s".repeat(600_000)));
    e.diagnostics
        .extra
        .insert("big".into(), json!("b".repeat(600_000)));
    e.diagnostics.extra.insert("small".into(), json!(1));
    let out = datadog_item(&e, ID, "h");
    assert!(out.shrunk && out.bytes.len() <= MAX_ITEM_BYTES);
    let v: Value = serde_json::from_slice(&out.bytes).unwrap();
    assert!(v["diagnostics"]["errorStack"]
        .as_str()
        .unwrap()
        .starts_with("TOP"));

    let mut e = event("job.failed");
    e.diagnostics
        .extra
        .insert("big".into(), json!("b".repeat(1_200_000)));
    e.diagnostics.extra.insert("small".into(), json!(1));
    let out = datadog_item(&e, ID, "h");
    assert!(out.shrunk && out.bytes.len() <= MAX_ITEM_BYTES);
    let v: Value = serde_json::from_slice(&out.bytes).unwrap();
    assert_eq!(
        v["diagnostics"]["extra"],
        json!({"small": 1}),
        "largest entry first"
    );
}

#[test]
fn item_under_1_mb_is_untouched() {
    let mut e = event("job.failed");
    e.diagnostics.log_tail = Some("x".repeat(4096));
    let out = datadog_item(&e, ID, "h");
    assert!(!out.shrunk);
    let v: Value = serde_json::from_slice(&out.bytes).unwrap();
    assert_eq!(v["diagnostics"]["logTail"].as_str().unwrap().len(), 4096);
}

#[test]
fn expiry_boundary_is_18_hours() {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert!(!is_expired(now - MAX_AGE, now), "exactly 18 h old is sent");
    assert!(is_expired(now - MAX_AGE - Duration::from_millis(1), now));
    assert!(!is_expired(now - MAX_AGE + Duration::from_millis(1), now));
    assert!(!is_expired(now, now));
    assert!(
        !is_expired(now + Duration::from_secs(60), now),
        "future is not expired"
    );
    assert_eq!(MAX_AGE, Duration::from_secs(64_800));
}

#[test]
fn groups_split_at_1000_items_and_5_mb() {
    let groups = request_groups(&vec![100; 2500]);
    assert_eq!(groups, vec![0..1000, 1000..2000, 2000..2500]);
    // 1000 items of 6 KB are 6 MB: the body bound splits first.
    let sizes = vec![6_000; 1000];
    let groups = request_groups(&sizes);
    assert_eq!(groups[0], 0..833);
    for g in &groups {
        assert!(crate::relay::wire::framed_len(&sizes[g.clone()]) <= MAX_BODY_BYTES);
        assert!(g.len() <= MAX_ITEMS);
    }
    assert_eq!(groups.iter().map(|g| g.len()).sum::<usize>(), 1000);
}

#[test]
fn intake_url_per_site() {
    assert_eq!(
        intake_url(DEFAULT_SITE),
        "https://http-intake.logs.datadoghq.com/api/v2/logs"
    );
    assert_eq!(
        intake_url("us5.datadoghq.com"),
        "https://http-intake.logs.us5.datadoghq.com/api/v2/logs"
    );
    assert_eq!(
        intake_url(" "),
        "https://http-intake.logs.datadoghq.com/api/v2/logs"
    );
    assert_eq!(API_KEY_HEADER, "DD-API-KEY");
}
