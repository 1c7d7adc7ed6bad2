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
/// `Z` or `±HH:MM`.
pub fn is_iso8601(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let part = b.get(from..from + len)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let (Some(_), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = (
        num(0, 4),
        num(5, 2),
        num(8, 2),
        num(11, 2),
        num(14, 2),
        num(17, 2),
    ) else {
        return false;
    };
    if !(at(4, b'-')
        && at(7, b'-')
        && (at(10, b'T') || at(10, b't'))
        && at(13, b':')
        && at(16, b':'))
    {
        return false;
    }
    if !((1..=12).contains(&mo) && (1..=31).contains(&d) && h < 24 && mi < 60 && sec <= 60) {
        return false;
    }
    let mut i = 19;
    if at(i, b'.') {
        i += 1;
        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        i += digits;
    }
    match b.get(i) {
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            i + 6 == b.len()
                && at(i + 3, b':')
                && num(i + 1, 2).is_some_and(|h| h < 24)
                && num(i + 4, 2).is_some_and(|m| m < 60)
        }
        _ => false,
    }
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
        ] {
            assert!(!is_iso8601(bad), "{bad}");
        }
    }
}
