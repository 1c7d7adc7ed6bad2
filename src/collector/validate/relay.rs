//! Relay checks (see the [module docs](super)).

use serde_json::Value;

use super::{bad, is_uuid, non_empty_str, Accepted, Rejection};

/// Checks the relay's bearer token: with `expected` set, `authorization` must be exactly
/// `Bearer <expected>` (401 otherwise); without it, anything passes.
pub fn relay_auth(expected: Option<&str>, authorization: Option<&str>) -> Result<(), Rejection> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let given = authorization.and_then(|h| h.strip_prefix("Bearer "));
    if given == Some(expected) {
        Ok(())
    } else if authorization.is_none() {
        Err(Rejection::new(401, "missing Authorization: Bearer token"))
    } else {
        Err(Rejection::new(401, "invalid bearer token"))
    }
}

/// Validates a relay body: a JSON array of `desktop.telemetry` messages (see the module docs).
pub fn relay_batch(body: &Value) -> Result<Vec<Accepted>, Rejection> {
    let Some(messages) = body.as_array() else {
        return Err(bad("body must be a JSON array of messages"));
    };
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| relay_message(m).map_err(|why| bad(format!("message {i}: {why}"))))
        .collect()
}

fn relay_message(m: &Value) -> Result<Accepted, String> {
    let obj = m.as_object().ok_or("not an object")?;
    if obj.get("type").and_then(Value::as_str) != Some("desktop.telemetry") {
        return Err(r#"`type` must be "desktop.telemetry""#.into());
    }
    let event = non_empty_str(obj.get("event")).ok_or("`event` must be a non-empty string")?;
    let trace = obj
        .get("trace")
        .and_then(Value::as_object)
        .ok_or("`trace` must be an object")?;
    match trace.get("schemaVersion") {
        Some(Value::String(v)) if v == "1" => {}
        other => {
            return Err(format!(
                r#"`trace.schemaVersion` must be "1", got {other:?}"#
            ))
        }
    }
    match trace.get("timestamp").and_then(Value::as_str) {
        Some(ts) if is_iso8601(ts) => {}
        other => return Err(format!("`trace.timestamp` must be ISO-8601, got {other:?}")),
    }
    non_empty_str(trace.get("computeTargetId"))
        .ok_or("`trace.computeTargetId` must be a non-empty string")?;
    if obj.get("diagnostics").is_some_and(|d| !d.is_object()) {
        return Err("`diagnostics` must be an object".into());
    }
    let id = match obj.get("id").and_then(Value::as_str) {
        Some(id) if is_uuid(id) => id,
        other => return Err(format!("`id` must be a UUID, got {other:?}")),
    };
    Ok(Accepted {
        name: event.to_string(),
        id: Some(id.to_string()),
        body: m.clone(),
    })
}

/// Whether `s` is an ISO-8601 / RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.fraction]` followed by
/// `Z` or an offset, on a real calendar date.
pub fn is_iso8601(s: &str) -> bool {
    // jiff also reads a space between date and time (RFC 3339 allows it); ISO 8601 does not.
    s.as_bytes()
        .get(10)
        .is_some_and(|b| b.eq_ignore_ascii_case(&b'T'))
        && s.parse::<jiff::Timestamp>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UUID: &str = "0190e1a2-3b4c-7d5e-8f60-718293a4b5c6";

    fn relay_msg() -> Value {
        json!({"type": "desktop.telemetry", "event": "connection.established",
               "trace": {"schemaVersion": "1", "timestamp": "2026-11-25T09:14:03.120Z",
                         "computeTargetId": "ct"}, "id": UUID})
    }

    #[test]
    fn relay_rules() {
        assert_eq!(
            relay_batch(&json!([relay_msg()])).unwrap()[0].name,
            "connection.established"
        );
        assert!(relay_batch(&relay_msg()).is_err());
        let breakers: [(&str, Value); 7] = [
            ("/type", json!("other")),
            ("/event", json!("")),
            ("/trace/schemaVersion", json!(1)),
            ("/trace/timestamp", json!("yesterday")),
            ("/trace/computeTargetId", json!("")),
            ("/diagnostics", json!("x")),
            ("/id", json!("nope")),
        ];
        for (ptr, value) in breakers {
            let mut m = relay_msg();
            match m.pointer_mut(ptr) {
                Some(slot) => *slot = value,
                None => m["diagnostics"] = value,
            }
            assert_eq!(relay_batch(&json!([m])).unwrap_err().status, 400, "{ptr}");
        }
        assert!(relay_auth(None, None).is_ok());
        assert!(relay_auth(Some("t"), Some("Bearer t")).is_ok());
        assert_eq!(relay_auth(Some("t"), None).unwrap_err().status, 401);
        assert_eq!(
            relay_auth(Some("t"), Some("Bearer u")).unwrap_err().status,
            401
        );
    }

    #[test]
    fn iso8601() {
        for ok in [
            "2026-11-25T09:14:03.120Z",
            "2026-11-25T09:14:03Z",
            "2026-11-25T09:14:03.123456+02:00",
        ] {
            assert!(is_iso8601(ok), "{ok}");
        }
        for bad in [
            "",
            "2026-11-25",
            "2026-13-25T09:14:03Z",
            "2026-11-25T09:14:03",
            "2026-11-25T09:14:03.Z",
            "2026-11-25 09:14:03Z",
            "2026-11-25T09:14:03Zjunk",
            "2026-02-30T09:14:03Z",
        ] {
            assert!(!is_iso8601(bad), "{bad}");
        }
    }
}
