//! OTLP/HTTP logs end to end against a loopback server through the public builder: the whole
//! mapping for every catalogue event, decoded with the generated types; the delivery rules of
//! the OTLP/HTTP spec (a 503 storm, 429 with `Retry-After`, a 400 with its `Status` message, a
//! partial success), each counted, with the accounting holding.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::accounting::assert_accounting;
use crate::support::server::{Reply, TestServer};
use closedloop_telemetry_exporters::__private::decode::Event;
use closedloop_telemetry_exporters::__private::relay::wire::relay_item;
use closedloop_telemetry_exporters::__private::StreamExporterExt;
use closedloop_telemetry_exporters::StreamExporter;
use closedloop_telemetry_exporters::{DeliveryOptions, RetryPolicy};
use closedloop_telemetry_exporters::{OtlpExporterBuilder, Protocol};
use closedloop_telemetry_layers::__private::catalogue::{lookup, DatadogStatus, CATALOGUE};
use closedloop_telemetry_layers::__private::envelope::{
    format_timestamp, Diagnostics, TraceEnvelope,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "ghp_4f9ZkqLr8TnW2xYc7VbM1sPdQ0aHjE3uKoIy";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

fn builder(server: &TestServer) -> OtlpExporterBuilder {
    OtlpExporterBuilder::default()
        .endpoint(server.base())
        .release_version("5.0.0")
        .max_delay(Duration::from_millis(50))
        .delivery(
            DeliveryOptions::builder()
                .with_queue_capacity(10_000)
                .with_retry_policy(RetryPolicy {
                    base: Duration::from_millis(20),
                    max_backoff: Duration::from_millis(200),
                    max_retry_after: Duration::from_secs(60),
                    max_attempts: 10,
                })
                .build(),
        )
}

fn event(name: &str) -> Event {
    let time = SystemTime::now();
    Event {
        name: name.into(),
        entry: lookup(name),
        time,
        severity: None,
        trace: TraceEnvelope::new(format_timestamp(time), "ct-otlp".into()),
        diagnostics: Diagnostics::default(),
        release_version: Some("5.0.0".into()),
        sample_rate: None,
    }
}

/// Every record of every request, decoded with the generated types.
fn records(server: &TestServer) -> Vec<(ExportLogsServiceRequest, LogRecord)> {
    let mut out = Vec::new();
    for req in server.requests() {
        assert_eq!(req.path, "/v1/logs");
        assert_eq!(req.header("content-type"), Some("application/x-protobuf"));
        assert_eq!(req.header("content-encoding"), Some("gzip"));
        let request = ExportLogsServiceRequest::decode(&req.body[..]).expect("a protobuf request");
        for rl in &request.resource_logs {
            for sl in &rl.scope_logs {
                for r in &sl.log_records {
                    out.push((request.clone(), r.clone()));
                }
            }
        }
    }
    out
}

/// An `AnyValue` as the JSON it was mapped from.
fn to_json(value: &AnyValue) -> Value {
    match value.value.as_ref().expect("a value") {
        any_value::Value::StringValue(s) => json!(s),
        any_value::Value::BoolValue(b) => json!(b),
        any_value::Value::IntValue(i) => json!(i),
        any_value::Value::DoubleValue(d) => json!(d),
        any_value::Value::ArrayValue(a) => Value::Array(a.values.iter().map(to_json).collect()),
        any_value::Value::KvlistValue(kv) => Value::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), to_json(kv.value.as_ref().unwrap())))
                .collect(),
        ),
        other => panic!("unexpected value {other:?}"),
    }
}

fn attrs(kvs: &[KeyValue]) -> BTreeMap<String, &AnyValue> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), kv.value.as_ref().expect("a value")))
        .collect()
}

#[test]
fn every_catalogue_event_maps_to_one_log_record_as_documented() {
    let server = TestServer::always(200);
    let otlp = builder(&server).service_name("desk-test").build().unwrap();
    let mut sent = BTreeMap::new();
    for entry in CATALOGUE {
        let mut ev = event(entry.name);
        ev.trace.otel_trace_id = Some(TRACE_ID.into());
        ev.trace.otel_span_id = Some(SPAN_ID.into());
        ev.trace.job_id = Some("job-7".into());
        ev.diagnostics.exit_code = Some(3);
        ev.diagnostics.abort_reason = Some(format!("token {SECRET} was refused"));
        ev.diagnostics.token_usage = Some(
            json!({"input": 120, "output": 40})
                .as_object()
                .unwrap()
                .clone(),
        );
        ev.diagnostics.extra.insert("tool".into(), json!("npm"));
        sent.insert(entry.name, ev.clone());
        otlp.delivery().submit(vec![ev]).unwrap();
    }
    assert!(otlp.flush(WAIT).is_complete());
    let got = records(&server);
    let diagnostics: Vec<_> = CATALOGUE.iter().filter(|e| e.relay.is_some()).collect();
    assert_eq!(
        got.len(),
        diagnostics.len(),
        "one record per diagnostics event, PostHog-only ones never"
    );
    for (request, record) in &got {
        // Resource and scope.
        let rl = &request.resource_logs[0];
        let resource = attrs(&rl.resource.as_ref().unwrap().attributes);
        assert_eq!(to_json(resource["service.name"]), "desk-test");
        assert_eq!(to_json(resource["service.version"]), "5.0.0");
        assert_eq!(
            to_json(resource["telemetry.sdk.name"]),
            "closedloop-telemetry"
        );
        assert_eq!(to_json(resource["telemetry.sdk.language"]), "rust");
        assert!(resource.contains_key("telemetry.sdk.version"));
        assert_eq!(
            rl.scope_logs[0].scope.as_ref().unwrap().name,
            "closedloop-telemetry"
        );

        let ev = &sent[record.event_name.as_str()];
        let entry = ev.entry.unwrap();
        assert_eq!(record.event_name, entry.name);
        let (number, text) = match entry.status {
            DatadogStatus::Info => (9, "INFO"),
            DatadogStatus::Warn => (13, "WARN"),
            DatadogStatus::Error => (17, "ERROR"),
        };
        assert_eq!(
            (record.severity_number, record.severity_text.as_str()),
            (number, text)
        );
        let nanos = ev.time.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        assert_eq!(record.time_unix_nano, nanos);
        assert_eq!(record.observed_time_unix_nano, nanos);
        assert_eq!(hex::encode(&record.trace_id), TRACE_ID);
        assert_eq!(hex::encode(&record.span_id), SPAN_ID);

        // The attributes are exactly the relay message's keys, flattened with dots.
        let a = attrs(&record.attributes);
        let id = to_json(a["event.id"]).as_str().unwrap().parse().unwrap();
        let message: Value = serde_json::from_slice(&relay_item(ev, id)).unwrap();
        let mut expected = BTreeMap::new();
        for part in ["trace", "diagnostics"] {
            for (k, v) in message[part].as_object().unwrap() {
                expected.insert(format!("{part}.{k}"), v.clone());
            }
        }
        expected.insert("event.id".into(), json!(id.to_string()));
        let actual: BTreeMap<String, Value> =
            a.iter().map(|(k, v)| (k.clone(), to_json(v))).collect();
        assert_eq!(actual, expected, "{}", entry.name);
        assert_eq!(actual["trace.schemaVersion"], "1");
        assert_eq!(actual["trace.computeTargetId"], "ct-otlp");
        assert_eq!(actual["trace.otelTraceId"], TRACE_ID);
        // Integers stay integers; objects are kvlists.
        assert!(matches!(
            a["diagnostics.exitCode"].value,
            Some(any_value::Value::IntValue(3))
        ));
        assert!(matches!(
            a["diagnostics.tokenUsage"].value,
            Some(any_value::Value::KvlistValue(_))
        ));
        assert!(matches!(
            a["diagnostics.extra"].value,
            Some(any_value::Value::KvlistValue(_))
        ));
        // Free text is redacted as on the relay.
        let reason = actual["diagnostics.abortReason"].as_str().unwrap();
        assert!(
            !reason.contains(SECRET) && reason.contains("[REDACTED:github-token]"),
            "{reason}"
        );
    }
    assert_accounting(otlp.delivery().stats());
}

#[test]
fn json_protocol_sends_otlp_json_with_hex_ids_and_integer_enums() {
    let server = TestServer::always(200);
    let otlp = builder(&server)
        .protocol(Protocol::HttpJson)
        .build()
        .unwrap();
    let mut ev = event("job.failed");
    ev.trace.otel_trace_id = Some(TRACE_ID.into());
    ev.trace.otel_span_id = Some(SPAN_ID.into());
    ev.diagnostics.exit_code = Some(1);
    otlp.delivery().submit(vec![ev]).unwrap();
    assert!(otlp.flush(WAIT).is_complete());
    let reqs = server.requests();
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    let body = reqs[0].json();
    let record = &body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    assert_eq!(record["traceId"], TRACE_ID);
    assert_eq!(record["spanId"], SPAN_ID);
    assert_eq!(record["severityNumber"], 17);
    assert_eq!(record["eventName"], "job.failed");
    // The generated types read it back.
    let _: ExportLogsServiceRequest = serde_json::from_value(body).expect("OTLP/JSON");
}

fn stats_after(otlp: &StreamExporter) -> closedloop_telemetry_exporters::DeliveryStatsSnapshot {
    otlp.delivery().stats()
}

#[test]
fn a_503_storm_is_retried_until_it_passes_and_loses_nothing() {
    let server = TestServer::start(|n, _| {
        if n < 6 {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    });
    let otlp = builder(&server).build().unwrap();
    let events: Vec<_> = (0..20).map(|_| event("connection.degraded")).collect();
    otlp.delivery().submit(events).unwrap();
    assert!(otlp.flush(WAIT).is_complete());
    let stats = stats_after(&otlp);
    assert_eq!(stats.sent, 20);
    assert_eq!(stats.dropped.total(), 0);
    assert!(stats.retried >= 6, "{stats:?}");
    assert_accounting(stats);
}

#[test]
fn a_429_waits_for_its_retry_after() {
    let server = TestServer::start(|n, _| {
        if n == 0 {
            Reply::status(429).header("retry-after", "1")
        } else {
            Reply::ok()
        }
    });
    let otlp = builder(&server).build().unwrap();
    otlp.delivery()
        .submit(vec![event("connection.lost")])
        .unwrap();
    assert!(otlp.flush(WAIT).is_complete());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs[1].at.duration_since(reqs[0].at) >= Duration::from_millis(950),
        "Retry-After honoured"
    );
    let stats = stats_after(&otlp);
    assert_eq!(
        (stats.sent, stats.retried, stats.dropped.total()),
        (1, 1, 0)
    );
    assert_accounting(stats);
}

#[test]
fn a_400_is_rejected_counted_and_explained_with_the_status_message() {
    let server = TestServer::start(|_, _| {
        Reply::status(400).body(r#"{"code":3,"message":"log record has no timestamp"}"#)
    });
    let otlp = builder(&server)
        .protocol(Protocol::HttpJson)
        .build()
        .unwrap();
    otlp.delivery()
        .submit(vec![event("job.failed"), event("job.completed")])
        .unwrap();
    let _ = otlp.flush(WAIT);
    let stats = stats_after(&otlp);
    assert_eq!(server.requests().len(), 1, "a 400 is never retried");
    assert_eq!((stats.sent, stats.dropped.rejected), (0, 2));
    let error = stats.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("HTTP 400") && error.contains("log record has no timestamp"),
        "{error}"
    );
    assert_accounting(stats);
}

#[test]
fn errors_the_spec_does_not_call_retryable_are_rejected_at_once() {
    for status in [408, 500, 501] {
        let server = TestServer::always(status);
        let otlp = builder(&server).build().unwrap();
        otlp.delivery().submit(vec![event("job.failed")]).unwrap();
        let _ = otlp.flush(WAIT);
        let stats = stats_after(&otlp);
        assert_eq!(server.requests().len(), 1, "{status}: never retried");
        assert_eq!((stats.retried, stats.dropped.rejected), (0, 1), "{status}");
        assert_accounting(stats);
    }
}

#[test]
fn a_partial_success_counts_exactly_its_rejected_records() {
    let server = TestServer::start(|_, _| {
        Reply::ok().body(
            r#"{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"2 records too old"}}"#,
        )
    });
    let otlp = builder(&server)
        .protocol(Protocol::HttpJson)
        .build()
        .unwrap();
    let events: Vec<_> = (0..5).map(|_| event("connection.degraded")).collect();
    otlp.delivery().submit(events).unwrap();
    let deadline = Instant::now() + WAIT;
    while stats_after(&otlp).queued > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = stats_after(&otlp);
    assert_eq!(server.requests().len(), 1, "one batch of five");
    assert_eq!((stats.sent, stats.dropped.rejected), (3, 2), "{stats:?}");
    let error = stats.last_error.clone().unwrap_or_default();
    assert!(error.contains("2 records too old"), "{error}");
    assert_accounting(stats);
}
