//! One line per arrival: a human-readable summary or NDJSON.
//!
//! Human lines look like
//! `posthog  command_completed  distinct_id=ct-1 uuid=0190e1a2-…`,
//! `relay    connection.established  id=0190e1a2-… computeTargetId=ct-1`,
//! `datadog  job.failed  status=error id=0190e1a2-…`; a rejected request prints
//! `posthog  REJECTED 400  <reason>`. NDJSON lines are one JSON object each:
//! `{"stream","name","id","body","at"}` for events and
//! `{"stream","rejected":true,"status","reason","at"}` for rejections.

use std::fmt::Write;

use closedloop_telemetry_layers::__private::envelope::format_timestamp;
use serde_json::{json, Value};

use super::received::{Arrival, Destination, Received, Rejected};

/// How arrivals are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PrintFormat {
    /// One short human-readable line.
    #[default]
    Human,
    /// One JSON object per line.
    Ndjson,
}

/// Formats one arrival as a single line (no trailing newline).
pub fn format_arrival(arrival: &Arrival, format: PrintFormat) -> String {
    match arrival {
        Arrival::Received(r) => format_received(r, format),
        Arrival::Rejected(r) => format_rejected(r, format),
    }
}

/// Formats one accepted event as a single line (no trailing newline).
///
/// ```
/// use closedloop_telemetry_collector::{format_received, PrintFormat, Received, Destination};
/// let r = Received {
///     stream: Destination::PostHog,
///     name: "command_completed".into(),
///     id: Some("0190e1a2-3b4c-7d5e-8f60-718293a4b5c6".into()),
///     body: serde_json::json!({"event": "command_completed", "distinct_id": "ct-1"}),
///     at: std::time::UNIX_EPOCH,
/// };
/// assert_eq!(
///     format_received(&r, PrintFormat::Human),
///     "posthog  command_completed  distinct_id=ct-1 uuid=0190e1a2-3b4c-7d5e-8f60-718293a4b5c6"
/// );
/// ```
pub fn format_received(r: &Received, format: PrintFormat) -> String {
    if format == PrintFormat::Ndjson {
        return json!({
            "stream": r.stream,
            "name": r.name,
            "id": r.id,
            "body": r.body,
            "at": format_timestamp(r.at),
        })
        .to_string();
    }
    let mut line = format!("{:<8} {}  ", r.stream.as_str(), one_line(&r.name));
    let id = r.id.as_deref().unwrap_or("-");
    let _ = match r.stream {
        Destination::PostHog => {
            let distinct = r
                .body
                .get("distinct_id")
                .or_else(|| r.body.pointer("/properties/distinct_id"));
            write!(line, "distinct_id={} uuid={id}", text(distinct))
        }
        Destination::Relay => write!(
            line,
            "id={id} computeTargetId={}",
            text(r.body.pointer("/trace/computeTargetId"))
        ),
        Destination::Datadog => write!(line, "status={} id={id}", text(r.body.get("status"))),
        Destination::Otlp => write!(
            line,
            "severity={} id={id}",
            text(r.body.get("severityText"))
        ),
    };
    line
}

/// Formats one rejected request as a single line (no trailing newline).
pub fn format_rejected(r: &Rejected, format: PrintFormat) -> String {
    let stream = r.stream.map_or("unknown", Destination::as_str);
    match format {
        PrintFormat::Ndjson => json!({
            "stream": stream,
            "rejected": true,
            "status": r.status,
            "reason": r.reason,
            "at": format_timestamp(r.at),
        })
        .to_string(),
        PrintFormat::Human => format!("{stream:<8} REJECTED {}  {}", r.status, one_line(&r.reason)),
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => one_line(s),
        Some(other) => other.to_string(),
    }
}

/// Keeps a value on one line: control characters (newlines included) become spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn relay_datadog_and_rejections() {
        let relay = Received {
            stream: Destination::Relay,
            name: "job.failed".into(),
            id: Some("u1".into()),
            body: json!({"trace": {"computeTargetId": "ct\n1"}}),
            at: UNIX_EPOCH,
        };
        assert_eq!(
            format_received(&relay, PrintFormat::Human),
            "relay    job.failed  id=u1 computeTargetId=ct 1"
        );
        let dd = Received {
            stream: Destination::Datadog,
            id: None,
            body: json!({"status": "error"}),
            ..relay
        };
        assert_eq!(
            format_received(&dd, PrintFormat::Human),
            "datadog  job.failed  status=error id=-"
        );
        let rej = Rejected {
            stream: None,
            status: 404,
            reason: "no endpoint at /x".into(),
            at: UNIX_EPOCH,
        };
        assert_eq!(
            format_rejected(&rej, PrintFormat::Human),
            "unknown  REJECTED 404  no endpoint at /x"
        );
        let v: Value = serde_json::from_str(&format_rejected(&rej, PrintFormat::Ndjson)).unwrap();
        assert_eq!(v["status"], 404);
    }
}
