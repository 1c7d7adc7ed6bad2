//! OTLP/HTTP logs checks (`POST /v1/logs`; see the [module docs](super)), with the
//! OpenTelemetry project's generated types: the body must decode as an
//! `ExportLogsServiceRequest` in the content type it declares (protobuf, or OTLP/JSON).

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use serde_json::Value;

use super::{bad, is_uuid, Accepted, Rejection};

/// How an OTLP request body is encoded, from its `content-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpEncoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json` (OTLP/JSON).
    Json,
}

impl OtlpEncoding {
    /// The encoding a `content-type` names; anything else is a 415, as the OTLP/HTTP spec says.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self, Rejection> {
        let essence = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some("application/x-protobuf") => Ok(OtlpEncoding::Protobuf),
            Some("application/json") => Ok(OtlpEncoding::Json),
            other => Err(Rejection::new(
                415,
                format!(
                    "unsupported content-type {}: use application/x-protobuf or application/json",
                    other.unwrap_or("(none)")
                ),
            )),
        }
    }

    /// The content type of the answer (the request's).
    pub fn content_type(self) -> &'static str {
        match self {
            OtlpEncoding::Protobuf => "application/x-protobuf",
            OtlpEncoding::Json => "application/json",
        }
    }

    /// The body of a full success: an empty `ExportLogsServiceResponse`.
    pub fn success_body(self) -> Vec<u8> {
        match self {
            OtlpEncoding::Protobuf => ExportLogsServiceResponse::default().encode_to_vec(),
            OtlpEncoding::Json => b"{}".to_vec(),
        }
    }
}

/// Validates an OTLP logs request: it decodes with the generated types, holds at least one
/// record, and every record has an `event_name`, a `time_unix_nano` and an `event.id`
/// attribute that is a UUID (our mapping's rules, `docs/schema/otlp-logs.v1.md`). Each record
/// is kept as its OTLP/JSON.
pub fn otlp_logs(body: &[u8], encoding: OtlpEncoding) -> Result<Vec<Accepted>, Rejection> {
    let request = match encoding {
        OtlpEncoding::Protobuf => ExportLogsServiceRequest::decode(body).map_err(|e| {
            bad(format!(
                "failed to decode protobuf ExportLogsServiceRequest: {e}"
            ))
        })?,
        OtlpEncoding::Json => serde_json::from_slice(body).map_err(|e| {
            bad(format!(
                "failed to parse OTLP/JSON ExportLogsServiceRequest: {e}"
            ))
        })?,
    };
    let mut accepted = Vec::new();
    for (r, resource_logs) in request.resource_logs.iter().enumerate() {
        for scope_logs in &resource_logs.scope_logs {
            for (i, record) in scope_logs.log_records.iter().enumerate() {
                let at = format!("resourceLogs[{r}] record {i}");
                if record.event_name.trim().is_empty() {
                    return Err(bad(format!("{at}: empty eventName")));
                }
                if record.time_unix_nano == 0 {
                    return Err(bad(format!("{at}: no timeUnixNano")));
                }
                let id = record
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "event.id")
                    .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                        any_value::Value::StringValue(s) => Some(s.clone()),
                        _ => None,
                    })
                    .filter(|id| is_uuid(id))
                    .ok_or_else(|| bad(format!("{at}: no event.id attribute holding a UUID")))?;
                let body: Value = serde_json::to_value(record)
                    .map_err(|e| bad(format!("{at}: cannot be shown as OTLP/JSON: {e}")))?;
                accepted.push(Accepted {
                    name: record.event_name.clone(),
                    id: Some(id),
                    body,
                });
            }
        }
    }
    if accepted.is_empty() {
        return Err(bad("the request holds no log record"));
    }
    Ok(accepted)
}
