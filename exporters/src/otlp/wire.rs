//! The OTLP/HTTP logs wire format (`docs/schema/otlp-logs.v1.md`), used for the diagnostics stream when
//! `CL_OTLP_ENDPOINT` is set.
//!
//! `POST {endpoint}/v1/logs` ([`logs_url`]) with an `ExportLogsServiceRequest`: protobuf
//! (`application/x-protobuf`, the default) or OTLP/JSON (`application/json`), gzip-compressed
//! by default. Every type is the OpenTelemetry project's generated one (`opentelemetry-proto`,
//! prost); OTLP/JSON is its serde mapping (hex trace and span ids, enum values as integers,
//! 64-bit integers as decimal strings).
//!
//! One `LogRecord` per diagnostics event ([`log_record`]):
//!
//! | field | value |
//! |---|---|
//! | `event_name` | the catalogue's dot name (`job.failed`) |
//! | `time_unix_nano`, `observed_time_unix_nano` | the event time (the layer stamps both with one clock read) |
//! | `severity_number` / `severity_text` | from the catalogue's Datadog status: info → 9 `INFO`, warn → 13 `WARN`, error → 17 `ERROR` |
//! | `attributes` | the relay message's `trace` and `diagnostics` keys flattened with dots (`trace.computeTargetId`, `diagnostics.exitCode`); objects (`spawnMeta`, `tokenUsage`, `extra`) as kvlist values, integers as integers; `event.id` = the event's id |
//! | `trace_id`, `span_id` | from the OpenTelemetry context, when there is one |
//!
//! The resource carries `service.name` (default [`DEFAULT_SERVICE_NAME`]), `service.version`
//! (the release version) and `telemetry.sdk.name` / `.language` / `.version`; the scope is
//! [`SCOPE_NAME`]. The attributes are those of the relay message, so redaction and the verbose
//! rule for tails are the relay's.
//!
//! An item in the queue and the spool is the event's relay message with its time and severity
//! ([`encode_item`]: JSON, readable in the view, as compact as the relay's); [`frame`] maps
//! each to its `LogRecord` and builds the request in the configured protocol.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::Value;
use uuid::Uuid;

use closedloop_telemetry_layers::__private::catalogue::DatadogStatus;
use opentelemetry::logs::Severity;

use crate::decode::Event;
use crate::relay::wire::relay_item;

/// The path requests go to, under the configured endpoint.
pub const LOGS_PATH: &str = "/v1/logs";
/// The instrumentation scope of every record.
pub const SCOPE_NAME: &str = "closedloop-telemetry";
/// `service.name` unless the builder sets another.
pub const DEFAULT_SERVICE_NAME: &str = "closedloop-desktop";
/// At most this many records per request.
pub const MAX_ITEMS: usize = 512;
/// At most this many body bytes per request, measured on the items (see [`encode_item`]).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A partial batch goes at most this long after its first record was queued.
pub const MAX_DELAY: Duration = Duration::from_secs(2);

/// How a request body is encoded (`CL_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// `http/protobuf` (the default): `application/x-protobuf`.
    #[default]
    HttpProtobuf,
    /// `http/json`: OTLP/JSON, `application/json`.
    HttpJson,
}

impl Protocol {
    /// Parses `http/protobuf` or `http/json` (the values of `OTEL_EXPORTER_OTLP_PROTOCOL`).
    ///
    /// ```
    /// use closedloop_telemetry_exporters::Protocol;
    /// assert_eq!(Protocol::parse("http/json"), Some(Protocol::HttpJson));
    /// assert_eq!(Protocol::parse("grpc"), None);
    /// ```
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "http/protobuf" => Some(Protocol::HttpProtobuf),
            "http/json" => Some(Protocol::HttpJson),
            _ => None,
        }
    }

    /// The request's (and the answer's) `content-type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "application/x-protobuf",
            Protocol::HttpJson => "application/json",
        }
    }
}

/// Whether request bodies are compressed (`CL_OTLP_COMPRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// `gzip` (the default).
    #[default]
    Gzip,
    /// `none`.
    None,
}

impl Compression {
    /// Parses `gzip` or `none`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "gzip" => Some(Compression::Gzip),
            "none" => Some(Compression::None),
            _ => None,
        }
    }
}

/// `{endpoint}/v1/logs`: the endpoint is a base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` is.
///
/// ```
/// use closedloop_telemetry_exporters::__private::otlp::wire::logs_url;
/// assert_eq!(logs_url("http://collector:4318/"), "http://collector:4318/v1/logs");
/// ```
pub fn logs_url(endpoint: &str) -> String {
    format!("{}{LOGS_PATH}", endpoint.trim().trim_end_matches('/'))
}

/// Parses `k=v,k2=v2` (the format of `OTEL_EXPORTER_OTLP_HEADERS`): pairs separated by commas,
/// keys and values trimmed, values percent-decoded. An empty string is no header.
///
/// ```
/// use closedloop_telemetry_exporters::__private::otlp::wire::parse_headers;
/// let h = parse_headers("api-key=a%20b, x-tenant = acme").unwrap();
/// assert_eq!(h, [("api-key".to_string(), "a b".to_string()), ("x-tenant".into(), "acme".into())]);
/// assert!(parse_headers("no-equals-sign").is_err());
/// ```
pub fn parse_headers(spec: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    // Values are credentials: errors name a header by its position or key, never its value.
    for (n, pair) in spec.split(',').filter(|p| !p.trim().is_empty()).enumerate() {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("header {} is not key=value", n + 1));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err("a header has an empty name".into());
        }
        let value = percent_decode(value.trim())
            .ok_or_else(|| format!("the value of `{key}` is not valid percent-encoded UTF-8"))?;
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The resource of every request: `service.name`, `service.version` (when known) and the
/// `telemetry.sdk.*` attributes.
pub fn resource(service_name: &str, release_version: Option<&str>) -> Resource {
    let mut attributes = vec![kv("service.name", string(service_name))];
    if let Some(version) = release_version.filter(|v| !v.is_empty()) {
        attributes.push(kv("service.version", string(version)));
    }
    attributes.push(kv("telemetry.sdk.name", string("closedloop-telemetry")));
    attributes.push(kv("telemetry.sdk.language", string("rust")));
    attributes.push(kv(
        "telemetry.sdk.version",
        string(env!("CARGO_PKG_VERSION")),
    ));
    Resource {
        attributes,
        ..Default::default()
    }
}

/// The instrumentation scope of every record.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..Default::default()
    }
}

/// The severity of an event: its catalogue row's Datadog status; a custom event's own level.
pub fn severity(event: &Event) -> (SeverityNumber, &'static str) {
    let status = match event.entry {
        Some(entry) => entry.status,
        None => match event.severity {
            Some(s) if s >= Severity::Error => DatadogStatus::Error,
            Some(s) if s >= Severity::Warn => DatadogStatus::Warn,
            _ => DatadogStatus::Info,
        },
    };
    match status {
        DatadogStatus::Error => (SeverityNumber::Error, "ERROR"),
        DatadogStatus::Warn => (SeverityNumber::Warn, "WARN"),
        DatadogStatus::Info => (SeverityNumber::Info, "INFO"),
    }
}

/// One event as a `LogRecord` (see the module docs for the mapping). The attributes are read
/// from the event's relay message, so redaction, the verbose rule for tails and the size
/// bound are the relay's.
pub fn log_record(event: &Event, id: Uuid) -> LogRecord {
    let item = encode_item(event, id);
    record_of_item(&item).expect("an item just encoded parses")
}

/// One event's queue item: `{"t":<time, ns>,"s":<severity number>,"m":<relay message>}`.
///
/// The relay message (already redacted and bounded) is the compact form of everything the
/// record carries, so an item costs the queue and the spool what a relay message costs (an
/// OTLP/JSON record is about twice as large); [`frame`] maps it to its `LogRecord`.
pub fn encode_item(event: &Event, id: Uuid) -> Vec<u8> {
    let message = relay_item(event, id);
    let (number, _) = severity(event);
    let head = format!(
        r#"{{"t":{},"s":{},"m":"#,
        unix_nanos(event.time),
        number as i32
    );
    let mut out = Vec::with_capacity(head.len() + message.len() + 1);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&message);
    out.push(b'}');
    out
}

/// The `LogRecord` of one queue item ([`encode_item`]'s output); `None` for bytes that are not
/// one (a damaged spool record).
pub fn record_of_item(item: &[u8]) -> Option<LogRecord> {
    #[derive(serde::Deserialize)]
    struct Item {
        t: u64,
        s: i32,
        m: Value,
    }
    let Item { t, s, m } = serde_json::from_slice(item).ok()?;
    let mut attributes = Vec::new();
    for part in ["trace", "diagnostics"] {
        if let Some(Value::Object(fields)) = m.get(part) {
            for (key, value) in fields {
                if let Some(value) = any_value(value) {
                    attributes.push(kv(&format!("{part}.{key}"), value));
                }
            }
        }
    }
    let id = m.get("id").and_then(Value::as_str).unwrap_or_default();
    attributes.push(kv("event.id", string(id)));
    if let Some(rate) = m.get("sampleRate").and_then(any_value) {
        attributes.push(kv("sampleRate", rate));
    }
    let number = SeverityNumber::try_from(s).unwrap_or(SeverityNumber::Info);
    let text = match number {
        SeverityNumber::Error => "ERROR",
        SeverityNumber::Warn => "WARN",
        _ => "INFO",
    };
    let trace_text = |key: &str| m.pointer(&format!("/trace/{key}")).and_then(Value::as_str);
    Some(LogRecord {
        time_unix_nano: t,
        observed_time_unix_nano: t,
        severity_number: number as i32,
        severity_text: text.to_string(),
        attributes,
        trace_id: hex_id(trace_text("otelTraceId"), 16),
        span_id: hex_id(trace_text("otelSpanId"), 8),
        flags: 0,
        event_name: m
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        ..Default::default()
    })
}

/// Writes the request body around `items` (each [`encode_item`]'s output) in `protocol`.
/// An item that does not parse back (a damaged spool record) is left out.
pub fn frame(items: &[&[u8]], resource: &Resource, protocol: Protocol, out: &mut Vec<u8>) {
    let records: Vec<LogRecord> = items.iter().filter_map(|i| record_of_item(i)).collect();
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource.clone()),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    match protocol {
        Protocol::HttpProtobuf => request.encode(out).expect("a Vec grows as needed"),
        Protocol::HttpJson => serde_json::to_writer(out, &request).expect("the request serializes"),
    }
}

/// The partial success of an accepted request: how many records the server rejected and its
/// message, when it says it rejected some (`None`: everything was accepted, or the answer has
/// no readable body).
pub fn partial_success(body: &[u8], protocol: Protocol) -> Option<(u64, String)> {
    if body.is_empty() {
        return None;
    }
    let (rejected, message) = match protocol {
        Protocol::HttpProtobuf => {
            let partial = ExportLogsServiceResponse::decode(body)
                .ok()?
                .partial_success?;
            (partial.rejected_log_records, partial.error_message)
        }
        // By hand, not through the generated type's serde: OTLP/JSON encodes this int64 as a
        // string (`"2"`) and some servers as a number, and both must be read.
        Protocol::HttpJson => {
            let response: Value = serde_json::from_slice(body).ok()?;
            let partial = response.get("partialSuccess")?;
            let rejected = match partial.get("rejectedLogRecords") {
                Some(Value::String(s)) => s.trim().parse().ok()?,
                Some(v) => v.as_i64()?,
                None => 0,
            };
            let message = partial
                .get("errorMessage")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            (rejected, message)
        }
    };
    let rejected = u64::try_from(rejected).unwrap_or(0);
    (rejected > 0 || !message.is_empty()).then_some((rejected, message))
}

/// `google.rpc.Status`, the body of an OTLP error answer: only the fields read here.
#[derive(Clone, PartialEq, Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The message of an error answer's `google.rpc.Status` body (protobuf or JSON), if it has one.
pub fn status_message(body: &[u8], protocol: Protocol) -> Option<String> {
    let message = match protocol {
        Protocol::HttpProtobuf => Status::decode(body).ok().map(|s| s.message),
        Protocol::HttpJson => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_string)),
    };
    message.filter(|m| !m.trim().is_empty())
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(value),
        ..Default::default()
    }
}

fn string(value: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(value.to_string())),
    }
}

/// A JSON value as an `AnyValue`: integers stay integers, objects become kvlists; `null` is
/// left out.
fn any_value(value: &Value) -> Option<AnyValue> {
    let value = match value {
        Value::Null => return None,
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        Value::Array(items) => any_value::Value::ArrayValue(ArrayValue {
            values: items.iter().filter_map(any_value).collect(),
        }),
        Value::Object(fields) => any_value::Value::KvlistValue(KeyValueList {
            values: fields
                .iter()
                .filter_map(|(k, v)| Some(kv(k, any_value(v)?)))
                .collect(),
        }),
    };
    Some(AnyValue { value: Some(value) })
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A hex id of `len` bytes (`trace.otelTraceId` / `otelSpanId`), or empty when absent or not
/// that long.
fn hex_id(hex_text: Option<&str>, len: usize) -> Vec<u8> {
    hex_text
        .and_then(|h| hex::decode(h).ok())
        .filter(|b| b.len() == len && b.iter().any(|x| *x != 0))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;

    #[test]
    fn partial_success_is_read_in_both_protocols() {
        let proto = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 3,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        let got = partial_success(&proto, Protocol::HttpProtobuf);
        assert_eq!(got, Some((3, "too old".to_string())));
        for json in [
            r#"{"partialSuccess":{"rejectedLogRecords":"3","errorMessage":"too old"}}"#,
            r#"{"partialSuccess":{"rejectedLogRecords":3,"errorMessage":"too old"}}"#,
        ] {
            let got = partial_success(json.as_bytes(), Protocol::HttpJson);
            assert_eq!(got, Some((3, "too old".to_string())), "{json}");
        }
        assert_eq!(partial_success(b"{}", Protocol::HttpJson), None);
        assert_eq!(partial_success(b"", Protocol::HttpProtobuf), None);
        let empty = ExportLogsServiceResponse::default().encode_to_vec();
        assert_eq!(partial_success(&empty, Protocol::HttpProtobuf), None);
    }

    #[test]
    fn an_error_status_message_is_read_in_both_protocols() {
        let proto = Status {
            code: 3,
            message: "bad timestamp".into(),
        }
        .encode_to_vec();
        assert_eq!(
            status_message(&proto, Protocol::HttpProtobuf).as_deref(),
            Some("bad timestamp")
        );
        let json = br#"{"code":3,"message":"bad timestamp"}"#;
        assert_eq!(
            status_message(json, Protocol::HttpJson).as_deref(),
            Some("bad timestamp")
        );
        assert_eq!(status_message(b"not json", Protocol::HttpJson), None);
    }

    #[test]
    fn headers_parse_like_otel_exporter_otlp_headers() {
        assert_eq!(parse_headers("").unwrap(), []);
        assert_eq!(
            parse_headers("a=1,b=x%3Dy").unwrap(),
            [
                ("a".to_string(), "1".to_string()),
                ("b".into(), "x=y".into())
            ]
        );
        assert!(parse_headers("=v").is_err());
        assert!(parse_headers("k=%zz").is_err());
    }
}
