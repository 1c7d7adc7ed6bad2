//! Datadog logs-intake checks (see the [module docs](super)).

use serde_json::Value;

use super::schemas::{check, Definition};
use super::{bad, Accepted, Rejection, DATADOG_MAX_BODY_BYTES, DATADOG_MAX_ITEMS};

/// Checks the Datadog API key header, before the body is looked at.
pub fn datadog_auth(api_key: Option<&str>) -> Result<(), Rejection> {
    match api_key.map(str::trim) {
        Some(k) if !k.is_empty() => Ok(()),
        _ => Err(Rejection::new(
            403,
            "Forbidden: API key is missing or invalid",
        )),
    }
}

/// Validates a Datadog logs-intake body (uncompressed length `len`): an array of at most
/// [`DATADOG_MAX_ITEMS`] items (a single object counts as one), each with a `message` valid
/// against the published `datadog-item.v1.json` (a non-empty string).
pub fn datadog_batch(len: usize, body: &Value) -> Result<Vec<Accepted>, Rejection> {
    // Size and count limits are the intake's, and are about the request, not an item.
    if len > DATADOG_MAX_BODY_BYTES {
        return Err(Rejection::new(
            413,
            "Payload too large: over 5 MB uncompressed",
        ));
    }
    let items: Vec<&Value> = match body {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![body],
        _ => return Err(bad("body must be a JSON array of log items")),
    };
    if items.len() > DATADOG_MAX_ITEMS {
        return Err(Rejection::new(
            413,
            format!(
                "Payload too large: {} items, at most {DATADOG_MAX_ITEMS}",
                items.len()
            ),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            // Not Datadog's rule but ours: our items always carry the event name there.
            let message = item
                .get("message")
                .ok_or_else(|| bad(format!("item {i}: missing string `message`")))?;
            check(Definition::DatadogMessage, message)
                .map_err(|why| bad(format!("item {i}: `message`: {why}")))?;
            Ok(Accepted {
                name: message.as_str().unwrap_or_default().to_string(),
                id: item.get("id").and_then(Value::as_str).map(str::to_string),
                body: item.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UUID: &str = "0190e1a2-3b4c-7d5e-8f60-718293a4b5c6";

    #[test]
    fn datadog_rules() {
        assert_eq!(datadog_auth(None).unwrap_err().status, 403);
        assert_eq!(datadog_auth(Some(" ")).unwrap_err().status, 403);
        let items = json!([{"message": "job.failed", "id": UUID}]);
        assert_eq!(
            datadog_batch(10, &items).unwrap()[0].id.as_deref(),
            Some(UUID)
        );
        assert_eq!(
            datadog_batch(DATADOG_MAX_BODY_BYTES + 1, &items)
                .unwrap_err()
                .status,
            413
        );
        let many = Value::Array(vec![json!({"message": "m"}); DATADOG_MAX_ITEMS + 1]);
        assert_eq!(datadog_batch(10, &many).unwrap_err().status, 413);
        assert_eq!(
            datadog_batch(10, &json!([{"status": "info"}]))
                .unwrap_err()
                .status,
            400
        );
    }
}
