//! Redaction of an event's free-text fields: `exitSignal`, `abortReason`, `errorStack`, and
//! every string inside `spawnMeta`, `tokenUsage` and `extra`. Both diagnostics wires and the
//! PostHog wire encode these views, whatever the verbose setting: free text written by the app
//! may hold a secret (`error_stack = %err` of an HTTP error, `note = "password=…"`).
//!
//! Inside a JSON object, a string whose **key** names a secret (the key rules of the
//! [module docs](super): `password`, `api_key`, `Authorization`, `DD_API_KEY`, …, matched the
//! same way) is replaced whole by its marker, so `db_password = "hunter2"` leaves as
//! `"db_password": "[REDACTED:secret]"`; every other string goes through
//! [`Redactor::redact`]. Object keys, numbers and booleans are kept as they are. Nothing is
//! copied when nothing matched.

use std::borrow::Cow;

use closedloop_telemetry_layers::__private::envelope::Diagnostics;
use serde_json::{Map, Value};

use super::keyed::{self, KeyRule};
use super::Redactor;

/// A JSON object as the wire carries it.
pub(crate) type Object = Map<String, Value>;

/// JSON nested deeper than this (the JSON parser's own limit) is replaced by the marker
/// `[REDACTED:nested]` rather than walked.
const MAX_DEPTH: usize = 128;

/// The free-text fields of one [`Diagnostics`], redacted by [`Redactor::free_text`].
/// Each field borrows from the diagnostics when nothing in it matched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FreeText<'a> {
    /// `exitSignal`.
    pub exit_signal: Option<Cow<'a, str>>,
    /// `abortReason`.
    pub abort_reason: Option<Cow<'a, str>>,
    /// `errorStack`.
    pub error_stack: Option<Cow<'a, str>>,
    /// `spawnMeta`, every string in it redacted.
    pub spawn_meta: Option<Cow<'a, Object>>,
    /// `tokenUsage`, every string in it redacted.
    pub token_usage: Option<Cow<'a, Object>>,
    /// `extra`, every string in it redacted.
    pub extra: Cow<'a, Object>,
}

impl Redactor {
    /// Redacts every free-text field of `d`: `exit_signal`, `abort_reason`, `error_stack`, and
    /// every string in `spawn_meta`, `token_usage` and `extra` (as [`Redactor::redact_object`]
    /// does). Tails are excepted: see [`Redactor::redact_tail`].
    pub fn free_text<'a>(&self, d: &'a Diagnostics) -> FreeText<'a> {
        let text = |s: &'a Option<String>| s.as_deref().map(|s| self.redact(s));
        let object = |m: &'a Option<Object>| m.as_ref().map(|m| self.redact_object(m));
        FreeText {
            exit_signal: text(&d.exit_signal),
            abort_reason: text(&d.abort_reason),
            error_stack: text(&d.error_stack),
            spawn_meta: object(&d.spawn_meta),
            token_usage: object(&d.token_usage),
            extra: self.redact_object(&d.extra),
        }
    }

    /// Redacts every string in a JSON object, at any depth, with [`Redactor::redact`]; a string
    /// under a key that names a secret (judged like the key of a `key=value` pair: `password`,
    /// `api_key`, `Authorization`, `DD_API_KEY`, …) is replaced whole by its marker. Keys,
    /// numbers and booleans are kept; nothing is copied when nothing matched.
    pub fn redact_object<'a>(&self, object: &'a Object) -> Cow<'a, Object> {
        match self.object(object, 0) {
            Some(changed) => Cow::Owned(changed),
            None => Cow::Borrowed(object),
        }
    }

    /// The redacted copy of `object`, or `None` when nothing in it changes.
    fn object(&self, object: &Object, depth: usize) -> Option<Object> {
        let mut out: Option<Object> = None;
        for (key, value) in object {
            let rule = keyed::rule_for_name(key);
            if let Some(v) = self.value(rule, value, depth + 1) {
                out.get_or_insert_with(|| object.clone())
                    .insert(key.clone(), v);
            }
        }
        out
    }

    /// The redacted copy of `value` (found under a key with `rule`), or `None` when unchanged.
    fn value(&self, rule: Option<&KeyRule>, value: &Value, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH && matches!(value, Value::Object(_) | Value::Array(_)) {
            return Some(Value::String(marker("nested")));
        }
        match value {
            Value::String(s) => {
                if let Some(rule) = rule.filter(|r| (r.accept)(s.trim())) {
                    return Some(Value::String(marker(rule.kind)));
                }
                match self.redact(s) {
                    Cow::Owned(s) => Some(Value::String(s)),
                    Cow::Borrowed(_) => None,
                }
            }
            Value::Array(items) => {
                let mut out: Option<Vec<Value>> = None;
                for (i, item) in items.iter().enumerate() {
                    if let Some(v) = self.value(rule, item, depth + 1) {
                        out.get_or_insert_with(|| items.clone())[i] = v;
                    }
                }
                out.map(Value::Array)
            }
            Value::Object(m) => self.object(m, depth).map(Value::Object),
            Value::Null | Value::Bool(_) | Value::Number(_) => None,
        }
    }
}

fn marker(kind: &str) -> String {
    let mut out = String::with_capacity(kind.len() + 11);
    super::push_marker(&mut out, kind);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn strings_are_redacted_at_any_depth_and_secret_keys_whole() {
        let m = obj(json!({
            "db_password": "hunter2 with spaces",
            "apiKey": "k-1",
            "Authorization": "Bearer abc",
            "note": "see https://u:pw@host.example/x",
            "env": {"GITHUB_TOKEN": "plain", "list": ["ok", "ghp_0123456789abcdefghijABCDEFGHIJ012345"]},
            "max_tokens": 256,
            "token_type": "bearer",
            "password": "",
            "secret": false,
        }));
        let out = Redactor::shared().redact_object(&m);
        assert_eq!(
            Value::Object(out.into_owned()),
            json!({
                "db_password": "[REDACTED:secret]",
                "apiKey": "[REDACTED:secret]",
                "Authorization": "[REDACTED:authorization]",
                "note": "see https://u:[REDACTED:url-password]@host.example/x",
                "env": {"GITHUB_TOKEN": "[REDACTED:secret]", "list": ["ok", "[REDACTED:github-token]"]},
                "max_tokens": 256,
                "token_type": "bearer",
                "password": "",
                "secret": false,
            })
        );
    }

    #[test]
    fn clean_fields_are_borrowed() {
        let d = Diagnostics {
            exit_signal: Some("SIGKILL".into()),
            error_stack: Some("at main (src/main.rs:3)".into()),
            spawn_meta: Some(obj(json!({"pid": 7, "argv": ["cargo", "build"]}))),
            extra: obj(json!({"model": "claude-sonnet", "approved": true})),
            ..Default::default()
        };
        let f = Redactor::shared().free_text(&d);
        assert!(matches!(f.exit_signal, Some(Cow::Borrowed(_))));
        assert!(matches!(f.error_stack, Some(Cow::Borrowed(_))));
        assert!(matches!(f.spawn_meta, Some(Cow::Borrowed(_))));
        assert!(matches!(f.extra, Cow::Borrowed(_)));
        assert!(f.abort_reason.is_none() && f.token_usage.is_none());
    }

    #[test]
    fn every_free_text_field_is_redacted() {
        let d = Diagnostics {
            exit_signal: Some("token=abc123".into()),
            abort_reason: Some("password=hunter2".into()),
            error_stack: Some("token=visible-in-stack".into()),
            spawn_meta: Some(obj(
                json!({"cmd": "curl -H 'Authorization: Bearer x1y2z3'"}),
            )),
            token_usage: Some(obj(json!({"key": "sk-proj-0123456789abcdefghijKLMN"}))),
            extra: obj(json!({"access_token": "t"})),
            ..Default::default()
        };
        let text = serde_json::to_string(&Redactor::shared().free_text(&d).extra).unwrap()
            + &format!("{:?}", Redactor::shared().free_text(&d));
        for secret in [
            "abc123",
            "hunter2",
            "visible-in-stack",
            "x1y2z3",
            "0123456789abcdefghij",
            "\"t\"",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn deep_json_is_bounded() {
        let mut v = json!("password=x");
        for _ in 0..200 {
            v = json!({ "a": v });
        }
        let out = Redactor::shared().redact_object(v.as_object().unwrap());
        assert!(serde_json::to_string(&out)
            .unwrap()
            .contains("[REDACTED:nested]"));
    }
}
