//! The published schemas (`docs/schema/*.v1.json`) against the real encoders: every catalogue
//! row, full diagnostics and trace context, validated with a JSON Schema 2020-12 validator;
//! negative cases must fail; shared definitions are checked against the Rust types.

use std::collections::BTreeSet;
use std::time::SystemTime;

use boon::{Compiler, SchemaIndex, Schemas};
use closedloop_telemetry_collector::schema;
use closedloop_telemetry_exporters::__private::datadog::wire::datadog_item;
use closedloop_telemetry_exporters::__private::decode::Event;
use closedloop_telemetry_exporters::__private::posthog::wire::{encode_event, Framer};
use closedloop_telemetry_exporters::__private::relay::wire::relay_item;
use closedloop_telemetry_layers::__private::catalogue::{CatalogueEntry, CATALOGUE};
use closedloop_telemetry_layers::__private::envelope::{
    format_timestamp, Diagnostics, TraceEnvelope,
};
use serde_json::{json, Value};

struct Validator {
    schemas: Schemas,
    relay: SchemaIndex,
    datadog: SchemaIndex,
    posthog: SchemaIndex,
}

impl Validator {
    fn new() -> Self {
        let mut schemas = Schemas::new();
        let mut compiler = Compiler::new();
        let mut idx = Vec::new();
        for (_, file, text) in schema::ALL {
            let url = format!("file:///schema/{file}");
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                value["$schema"],
                "https://json-schema.org/draft/2020-12/schema"
            );
            compiler.add_resource(&url, value).unwrap();
            idx.push(compiler.compile(&url, &mut schemas).unwrap());
        }
        Validator {
            schemas,
            relay: idx[0],
            datadog: idx[1],
            posthog: idx[2],
        }
    }

    fn check(&self, which: SchemaIndex, v: &Value) -> Result<(), String> {
        self.schemas.validate(v, which).map_err(|e| format!("{e}"))
    }

    fn assert_valid(&self, which: SchemaIndex, v: &Value) {
        if let Err(e) = self.check(which, v) {
            panic!("{e}\n{}", serde_json::to_string_pretty(v).unwrap());
        }
    }

    fn assert_invalid(&self, which: SchemaIndex, v: &Value, what: &str) {
        assert!(self.check(which, v).is_err(), "{what} must fail: {v}");
    }
}

const TAIL: &str = "npm ERR! token ghp_4f9ZkqLr8TnW2xYc7VbM1sPdQ0aHjE3uKoIy\nok\n";

fn full_event(entry: &'static CatalogueEntry) -> Event {
    let time = SystemTime::now();
    let mut trace = TraceEnvelope::new(format_timestamp(time), "ct-schema".into());
    trace.gateway_session_id = Some("gw-1".into());
    trace.command_id = Some("cmd-1".into());
    trace.operation_id = Some("op-1".into());
    trace.loop_id = Some("loop-1".into());
    trace.job_id = Some("job-1".into());
    trace.loop_session_id = Some("ls-1".into());
    trace.otel_trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    trace.otel_span_id = Some("00f067aa0ba902b7".into());
    let obj = |v: Value| v.as_object().unwrap().clone();
    let diagnostics = Diagnostics {
        exit_code: Some(-2),
        log_tail: Some(TAIL.into()),
        stderr_tail: Some("password=hunter2\n".into()),
        exit_signal: Some("SIGTERM".into()),
        elapsed_ms: Some(1234),
        stdout_bytes: Some(99),
        abort_reason: Some("user cancelled".into()),
        spawn_meta: Some(obj(json!({"pid": 4, "argv0": "node"}))),
        token_usage: Some(obj(json!({"input": 1, "output": 2}))),
        error_stack: Some("Error: x\n    at y".into()),
        extra: obj(json!({"tool": "shell", "depth": 3, "ok": true})),
    };
    Event {
        name: entry.name.into(),
        entry: Some(entry),
        time,
        severity: None,
        trace,
        diagnostics,
        release_version: Some("3.1.4".into()),
        sample_rate: None,
    }
}

fn minimal_event(entry: &'static CatalogueEntry) -> Event {
    let time = SystemTime::now();
    Event {
        name: entry.name.into(),
        entry: Some(entry),
        time,
        severity: None,
        trace: TraceEnvelope::new(format_timestamp(time), "ct".into()),
        diagnostics: Diagnostics::default(),
        release_version: None,
        sample_rate: None,
    }
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn relay_json(e: &Event) -> Value {
    json_of(&relay_item(e, uuid::Uuid::now_v7()))
}

fn datadog_json(e: &Event) -> Value {
    json_of(&datadog_item(e, uuid::Uuid::now_v7(), "host-1").bytes)
}

fn posthog_batch(events: &[Event]) -> Value {
    let items: Vec<Vec<u8>> = events
        .iter()
        .map(|e| encode_event(e, uuid::Uuid::now_v7()).unwrap())
        .collect();
    let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    let mut out = Vec::new();
    Framer::new("phc_test").frame(&refs, &format_timestamp(SystemTime::now()), &mut out);
    json_of(&out)
}

#[test]
fn every_catalogue_row_validates_on_every_stream_it_routes_to() {
    let v = Validator::new();
    let (mut relay, mut posthog) = (0, 0);
    let mut ph_events = Vec::new();
    for entry in CATALOGUE {
        for e in [full_event(entry), minimal_event(entry)] {
            if entry.relay.is_some() {
                v.assert_valid(v.relay, &relay_json(&e));
                v.assert_valid(v.datadog, &datadog_json(&e));
                relay += 1;
            }
            if entry.posthog.is_some() {
                v.assert_valid(v.posthog, &posthog_batch(std::slice::from_ref(&e)));
                ph_events.push(e);
                posthog += 1;
            }
        }
    }
    // One batch with every PostHog row together.
    v.assert_valid(v.posthog, &posthog_batch(&ph_events));
    let rows = |f: fn(&CatalogueEntry) -> bool| CATALOGUE.iter().filter(|e| f(e)).count() * 2;
    assert_eq!(relay, rows(|e| e.relay.is_some()));
    assert_eq!(posthog, rows(|e| e.posthog.is_some()));
}

#[test]
fn redacted_tails_still_validate_and_carry_markers() {
    let v = Validator::new();
    let entry = CATALOGUE.iter().find(|e| e.name == "job.failed").unwrap();
    let item = relay_json(&full_event(entry));
    v.assert_valid(v.relay, &item);
    let tail = item["diagnostics"]["logTail"].as_str().unwrap();
    assert!(tail.contains("[REDACTED:"), "{tail}");
    assert!(!tail.contains("ghp_4f9Z"), "{tail}");
}

fn edit(mut v: Value, f: impl FnOnce(&mut Value)) -> Value {
    f(&mut v);
    v
}

#[test]
fn negative_cases_fail_validation() {
    let v = Validator::new();
    let entry = CATALOGUE.iter().find(|e| e.name == "job.failed").unwrap();
    let relay = relay_json(&full_event(entry));
    let cases: Vec<(&str, Value)> = vec![
        (
            "missing schemaVersion",
            edit(relay.clone(), |r| {
                r["trace"].as_object_mut().unwrap().remove("schemaVersion");
            }),
        ),
        (
            "schemaVersion 2",
            edit(relay.clone(), |r| r["trace"]["schemaVersion"] = json!("2")),
        ),
        (
            "null instead of absent",
            edit(relay.clone(), |r| r["trace"]["jobId"] = Value::Null),
        ),
        (
            "null diagnostic",
            edit(relay.clone(), |r| {
                r["diagnostics"]["exitCode"] = Value::Null
            }),
        ),
        (
            "wrong type",
            edit(relay.clone(), |r| r["diagnostics"]["exitCode"] = json!("1")),
        ),
        (
            "unknown trace key",
            edit(relay.clone(), |r| r["trace"]["userName"] = json!("bob")),
        ),
        (
            "unknown top-level key",
            edit(relay.clone(), |r| r["message"] = json!("hello")),
        ),
        (
            "wrong type tag",
            edit(relay.clone(), |r| r["type"] = json!("desktop.other")),
        ),
        (
            "empty diagnostics",
            edit(relay.clone(), |r| r["diagnostics"] = json!({})),
        ),
        (
            "bad timestamp",
            edit(relay.clone(), |r| {
                r["trace"]["timestamp"] = json!("2026-11-25 09:14:03")
            }),
        ),
    ];
    for (what, case) in &cases {
        v.assert_invalid(v.relay, case, what);
    }

    let dd = datadog_json(&full_event(entry));
    v.assert_invalid(
        v.datadog,
        &edit(dd.clone(), |d| d["status"] = json!("debug")),
        "status",
    );
    v.assert_invalid(
        v.datadog,
        &edit(dd.clone(), |d| d["hostname"] = Value::Null),
        "null hostname",
    );
    v.assert_invalid(
        v.datadog,
        &edit(dd, |d| {
            d["trace"].as_object_mut().unwrap().remove("schemaVersion");
        }),
        "datadog missing schemaVersion",
    );

    let started = CATALOGUE
        .iter()
        .find(|e| e.name == "command.started")
        .unwrap();
    let ph = posthog_batch(&[full_event(started)]);
    let cases: Vec<(&str, Value)> = vec![
        (
            "a log tail in PostHog",
            edit(ph.clone(), |b| {
                b["batch"][0]["properties"]["log_tail"] = json!("x")
            }),
        ),
        (
            "null property",
            edit(ph.clone(), |b| {
                b["batch"][0]["properties"]["tool"] = Value::Null
            }),
        ),
        ("empty batch", edit(ph.clone(), |b| b["batch"] = json!([]))),
        (
            "unknown event name",
            edit(ph.clone(), |b| b["batch"][0]["event"] = json!("page_view")),
        ),
        (
            "missing distinct_id",
            edit(ph.clone(), |b| {
                b["batch"][0].as_object_mut().unwrap().remove("distinct_id");
            }),
        ),
        (
            "wrong exit_code type",
            edit(ph, |b| {
                b["batch"][0]["properties"]["exit_code"] = json!(1.5)
            }),
        ),
    ];
    for (what, case) in &cases {
        v.assert_invalid(v.posthog, case, what);
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn schemas_match_the_rust_types_and_each_other() {
    let relay: Value = serde_json::from_str(schema::RELAY_MESSAGE_V1).unwrap();
    let dd: Value = serde_json::from_str(schema::DATADOG_ITEM_V1).unwrap();
    let ph: Value = serde_json::from_str(schema::POSTHOG_BATCH_V1).unwrap();

    // The shared definitions are the same in both diagnostics schemas.
    for def in [
        "trace",
        "diagnostics",
        "timestamp",
        "uuid",
        "nonEmptyString",
    ] {
        assert_eq!(relay["$defs"][def], dd["$defs"][def], "$defs/{def} differs");
    }
    // Every field of the Rust envelope and diagnostics types is described, and nothing more.
    let entry = CATALOGUE.iter().find(|e| e.name == "job.failed").unwrap();
    let e = full_event(entry);
    let trace = serde_json::to_value(&e.trace).unwrap();
    assert_eq!(keys(&relay["$defs"]["trace"]["properties"]), keys(&trace));
    let diag = serde_json::to_value(&e.diagnostics).unwrap();
    assert_eq!(
        keys(&relay["$defs"]["diagnostics"]["properties"]),
        keys(&diag)
    );
    // The PostHog event names are exactly the catalogue's.
    let names: BTreeSet<String> = ph["$defs"]["event"]["properties"]["event"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    let catalogue: BTreeSet<String> = CATALOGUE
        .iter()
        .filter_map(|e| e.posthog)
        .map(String::from)
        .collect();
    assert_eq!(names, catalogue);
    // The schema subcommand's table names the files under docs/schema.
    for (name, file, text) in schema::ALL {
        assert_eq!(schema::get(name), Some(text));
        let v: Value = serde_json::from_str(text).unwrap();
        assert!(v["$id"].as_str().unwrap().ends_with(file));
    }
}

#[test]
fn the_real_pipeline_output_for_the_demo_session_validates() {
    use closedloop_telemetry::Destination;
    use closedloop_telemetry_cli::audit;
    let v = Validator::new();
    let dir = std::env::temp_dir().join(format!("cl-schema-{}", uuid::Uuid::new_v4()));
    for verbose in [true, false] {
        let relay = closedloop_telemetry::builder("1.2.3")
            .posthog("phc_x", "http://127.0.0.1:9")
            .relay("http://127.0.0.1:9/relay", None)
            .data_dir(&dir)
            .verbose(verbose);
        let dd = closedloop_telemetry::builder("1.2.3")
            .datadog("k", "http://127.0.0.1:9/api/v2/logs")
            .data_dir(&dir)
            .verbose(verbose);
        for b in [relay, dd] {
            let report = audit::run_demo(&b);
            assert!(!report.streams.is_empty());
            for s in &report.streams {
                assert!(!s.items.is_empty());
                match s.kind {
                    Destination::PostHog => {
                        v.assert_valid(v.posthog, &serde_json::from_str(&s.body).unwrap())
                    }
                    kind => {
                        let which = if kind == Destination::Relay {
                            v.relay
                        } else {
                            v.datadog
                        };
                        for item in &s.items {
                            v.assert_valid(which, &serde_json::from_str(item).unwrap());
                        }
                    }
                }
            }
        }
    }
}

/// `sampleRate` (relay, Datadog) and `sample_rate` (PostHog) are optional fields of the v1
/// schemas (issue 22): a sampled event validates, a message without the field still does, and
/// a rate outside (0, 1] does not.
#[test]
fn a_sampled_event_carries_its_rate_and_validates() {
    let v = Validator::new();
    let entry = CATALOGUE
        .iter()
        .find(|e| e.name == "connection.degraded")
        .unwrap();
    let mut e = full_event(entry);
    e.sample_rate = Some(0.25);
    let relay = relay_json(&e);
    assert_eq!(relay["sampleRate"], 0.25);
    v.assert_valid(v.relay, &relay);
    let dd = datadog_json(&e);
    assert_eq!(dd["sampleRate"], 0.25);
    v.assert_valid(v.datadog, &dd);
    let ph = posthog_batch(std::slice::from_ref(&e));
    assert_eq!(ph["batch"][0]["properties"]["sample_rate"], 0.25);
    v.assert_valid(v.posthog, &ph);
    // Backward compatible: without sampling the field is absent, and that validates.
    let plain = relay_json(&full_event(entry));
    assert!(plain.get("sampleRate").is_none());
    v.assert_valid(v.relay, &plain);
    for bad in [json!(0), json!(1.5), json!("0.5")] {
        v.assert_invalid(
            v.relay,
            &edit(relay.clone(), |r| r["sampleRate"] = bad.clone()),
            "sampleRate out of range",
        );
        v.assert_invalid(
            v.posthog,
            &edit(ph.clone(), |p| {
                p["batch"][0]["properties"]["sample_rate"] = bad.clone()
            }),
            "sample_rate out of range",
        );
    }
}

/// The pipeline's own report, as it is sent, validates on the diagnostics schemas.
#[test]
fn the_rate_limit_report_validates() {
    let v = Validator::new();
    let entry = CATALOGUE
        .iter()
        .find(|e| e.name == "telemetry.rate_limited")
        .expect("in the catalogue");
    assert!(entry.relay.is_some() && entry.posthog.is_none());
    let mut e = minimal_event(entry);
    e.diagnostics.extra = json!({"window_s": 60, "dropped": {"connection.degraded": 9890}})
        .as_object()
        .unwrap()
        .clone();
    let relay = relay_json(&e);
    assert_eq!(
        relay["diagnostics"]["extra"]["dropped"]["connection.degraded"],
        9890
    );
    v.assert_valid(v.relay, &relay);
    v.assert_valid(v.datadog, &datadog_json(&e));
}
