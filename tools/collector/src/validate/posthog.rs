//! PostHog `/batch/` checks (see the [module docs](super)).

use serde_json::{Map, Value};

use super::{bad, is_uuid, non_empty_str, Accepted, Rejection};

/// Validates a PostHog `/batch/` body: `{"api_key", "batch": [...]}`, a bare array of events or
/// one event. See the module docs for the rules.
pub fn posthog_batch(body: &Value) -> Result<Vec<Accepted>, Rejection> {
    let empty = Map::new();
    let (top, events): (&Map<String, Value>, Vec<&Value>) = match body {
        Value::Object(obj) => match obj.get("batch") {
            Some(Value::Array(batch)) => (obj, batch.iter().collect()),
            Some(_) => return Err(bad("failed to parse request: `batch` is not an array")),
            None => (&empty, vec![body]),
        },
        Value::Array(events) => (&empty, events.iter().collect()),
        _ => return Err(bad("failed to parse request: body is not a JSON object")),
    };
    let top_token = non_empty_str(top.get("api_key")).or(non_empty_str(top.get("token")));
    let mut event_token: Option<&str> = None;
    let mut accepted = Vec::with_capacity(events.len());
    for (i, event) in events.into_iter().enumerate() {
        let Some(obj) = event.as_object() else {
            return Err(bad(format!(
                "failed to parse request: event {i} is not an object"
            )));
        };
        let props = obj.get("properties").and_then(Value::as_object);
        if top_token.is_none() {
            let token = non_empty_str(obj.get("api_key"))
                .or(non_empty_str(obj.get("token")))
                .or(props.and_then(|p| non_empty_str(p.get("token"))));
            match (event_token, token) {
                (_, None) => return Err(Rejection::new(401, "event submitted without an api_key")),
                (Some(seen), Some(t)) if seen != t => {
                    return Err(Rejection::new(
                        401,
                        "batch submitted with inconsistent api_key values",
                    ))
                }
                _ => event_token = token,
            }
        }
        let name = match obj.get("event") {
            Some(Value::String(name)) if !name.is_empty() => name,
            Some(Value::String(_)) => {
                return Err(bad(format!(
                    "event {i}: submitted with an empty event name"
                )))
            }
            _ => {
                return Err(bad(format!(
                    "failed to parse request: event {i} has no string `event`"
                )))
            }
        };
        let distinct_id = match obj.get("distinct_id") {
            None | Some(Value::Null) => props.and_then(|p| p.get("distinct_id")),
            some => some,
        };
        match distinct_id {
            None | Some(Value::Null) => {
                return Err(bad(format!("event {i}: submitted without a distinct_id")))
            }
            Some(Value::String(s)) if s.is_empty() => {
                return Err(bad(format!(
                    "event {i}: submitted with an empty distinct_id"
                )))
            }
            Some(_) => {}
        }
        let id = match obj.get("uuid") {
            None | Some(Value::Null) => None,
            Some(Value::String(u)) if is_uuid(u) => Some(u.clone()),
            Some(other) => {
                return Err(bad(format!(
                    "failed to parse request: event {i} has a malformed uuid {other}"
                )))
            }
        };
        accepted.push(Accepted {
            name: name.clone(),
            id,
            body: event.clone(),
        });
    }
    if accepted.is_empty() {
        return Err(bad("request holds no event"));
    }
    if top_token.is_none() && event_token.is_none() {
        return Err(Rejection::new(401, "event submitted without an api_key"));
    }
    Ok(accepted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UUID: &str = "0190e1a2-3b4c-7d5e-8f60-718293a4b5c6";

    fn ph(event: Value) -> Result<Vec<Accepted>, Rejection> {
        posthog_batch(&json!({ "api_key": "phc_x", "batch": [event] }))
    }

    #[test]
    fn posthog_rules() {
        let ok = json!({"event": "e", "distinct_id": "d", "uuid": UUID});
        assert_eq!(ph(ok).unwrap()[0].id.as_deref(), Some(UUID));
        let in_props = json!({"event": "e", "properties": {"distinct_id": "d"}});
        assert!(ph(in_props).is_ok());
        assert!(ph(json!({"event": "e", "distinct_id": 42})).is_ok());
        for bad in [
            json!({"event": "", "distinct_id": "d"}),
            json!({"distinct_id": "d"}),
            json!({"event": "e"}),
            json!({"event": "e", "distinct_id": ""}),
            json!({"event": "e", "distinct_id": null, "properties": {}}),
            json!({"event": "e", "distinct_id": "", "properties": {"distinct_id": "d"}}),
            json!({"event": "e", "distinct_id": "d", "uuid": "not-a-uuid"}),
            json!({"event": "e", "distinct_id": "d", "uuid": 7}),
        ] {
            assert_eq!(ph(bad.clone()).unwrap_err().status, 400, "{bad}");
        }
        assert_eq!(
            posthog_batch(&json!({"api_key": "k", "batch": []}))
                .unwrap_err()
                .status,
            400
        );
        let no_key = json!({"batch": [{"event": "e", "distinct_id": "d"}]});
        assert_eq!(posthog_batch(&no_key).unwrap_err().status, 401);
        let per_event = json!([{"event": "e", "distinct_id": "d", "api_key": "k"}]);
        assert!(posthog_batch(&per_event).is_ok());
        let mixed = json!([
            {"event": "e", "distinct_id": "d", "api_key": "k1"},
            {"event": "e", "distinct_id": "d", "properties": {"token": "k2"}}
        ]);
        assert_eq!(posthog_batch(&mixed).unwrap_err().status, 401);
    }
}
