//! Relay checks (see the [module docs](super)).

use serde_json::Value;

use super::schemas::{check, Definition};
use super::{bad, Accepted, Rejection};

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

/// Validates a relay body: a JSON array of `desktop.telemetry` messages, each valid against the
/// published `relay-message.v1.json` (see the module docs).
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
    check(Definition::RelayMessage, m)?;
    // The schema's pattern checks the timestamp's shape; the calendar (month 13, 25:00) is
    // beyond a regular expression.
    let timestamp = m["trace"]["timestamp"].as_str().unwrap_or_default();
    if !is_iso8601(timestamp) {
        return Err(format!(
            "/trace/timestamp: {timestamp:?} is not a date and time"
        ));
    }
    let text = |key: &str| m[key].as_str().unwrap_or_default().to_string();
    Ok(Accepted {
        name: text("event"),
        id: Some(text("id")),
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
