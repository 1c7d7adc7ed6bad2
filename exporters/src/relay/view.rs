//! The `diagnostics` object as both diagnostics wires send it: borrowed from the [`Event`], every
//! free-text field and tail redacted, and shrinkable when an item is over its size limit.
//!
//! [`Event`]: crate::decode::Event

use std::borrow::Cow;

use closedloop_telemetry_layers::__private::envelope::Diagnostics;
use closedloop_telemetry_layers::__private::truncate::{keep_head, keep_tail};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::redact::{FreeText, Redactor};

/// [`Diagnostics`] with the same JSON shape, borrowing from it, with tails and every free-text
/// field redacted ([`Redactor::redact_tail`], [`Redactor::free_text`]).
///
/// Absent values are omitted, never `null`; [`DiagnosticsView::is_empty`] tells when the whole
/// `diagnostics` key should be omitted.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticsView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_tail: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr_tail: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_signal: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    elapsed_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stdout_bytes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    abort_reason: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spawn_meta: Option<Cow<'a, Map<String, Value>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_usage: Option<Cow<'a, Map<String, Value>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_stack: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "is_empty_map")]
    extra: Cow<'a, Map<String, Value>>,
}

// serde hands `skip_serializing_if` a reference to the field, which is a `Cow`.
#[allow(clippy::ptr_arg)]
fn is_empty_map(m: &Cow<'_, Map<String, Value>>) -> bool {
    m.is_empty()
}

impl<'a> DiagnosticsView<'a> {
    /// A view of `d`: tails go through [`Redactor::redact_tail`] (they are only present with
    /// verbose telemetry on), every other string through [`Redactor::free_text`], always.
    pub fn new(d: &'a Diagnostics, redactor: &Redactor) -> Self {
        // No `..`: a field added to `Diagnostics` must be added here too.
        let Diagnostics {
            exit_code,
            log_tail,
            stderr_tail,
            exit_signal: _,
            elapsed_ms,
            stdout_bytes,
            abort_reason: _,
            spawn_meta: _,
            token_usage: _,
            error_stack: _,
            extra: _,
        } = d;
        // No `..` here either: a free-text field added to `FreeText` must be sent here too.
        let FreeText {
            exit_signal,
            abort_reason,
            error_stack,
            spawn_meta,
            token_usage,
            extra,
        } = redactor.free_text(d);
        let tail = |t: &'a Option<String>| t.as_deref().map(|t| redactor.redact_tail_cow(t));
        DiagnosticsView {
            exit_code: *exit_code,
            log_tail: tail(log_tail),
            stderr_tail: tail(stderr_tail),
            exit_signal,
            elapsed_ms: *elapsed_ms,
            stdout_bytes: *stdout_bytes,
            abort_reason,
            spawn_meta,
            token_usage,
            error_stack,
            extra,
        }
    }

    /// Whether nothing is set (the `diagnostics` key is then omitted).
    pub fn is_empty(&self) -> bool {
        self.exit_code.is_none()
            && self.log_tail.is_none()
            && self.stderr_tail.is_none()
            && self.exit_signal.is_none()
            && self.elapsed_ms.is_none()
            && self.stdout_bytes.is_none()
            && self.abort_reason.is_none()
            && self.spawn_meta.is_none()
            && self.token_usage.is_none()
            && self.error_stack.is_none()
            && self.extra.is_empty()
    }

    /// The bytes the variable-size parts (tails, stack) take, for sizing buffers.
    pub(crate) fn text_len(&self) -> usize {
        [&self.log_tail, &self.stderr_tail, &self.error_stack]
            .iter()
            .map(|t| t.as_ref().map_or(0, |t| t.len()))
            .sum()
    }

    /// Makes the encoding at least `excess` bytes smaller, cutting in this order: the tails
    /// (keeping their ends), the error stack (keeping its start), the largest `extra` entries,
    /// then `spawnMeta` and `tokenUsage`. Returns false when nothing is left to cut.
    ///
    /// Removing `k` bytes of a string removes at least `k` bytes of its JSON encoding, so one
    /// call per cut kind is enough unless that kind had less than `excess` to give.
    fn shrink(&mut self, excess: usize) -> bool {
        for tail in [&mut self.log_tail, &mut self.stderr_tail] {
            if let Some(t) = tail.take() {
                if t.len() > excess {
                    *tail = Some(Cow::Owned(keep_tail(&t, t.len() - excess).to_string()));
                }
                return true;
            }
        }
        if let Some(s) = self.error_stack.take() {
            if s.len() > excess {
                self.error_stack = Some(Cow::Owned(keep_head(&s, s.len() - excess).to_string()));
            }
            return true;
        }
        if !self.extra.is_empty() {
            let mut sizes: Vec<(usize, &String)> = self
                .extra
                .iter()
                .map(|(k, v)| (k.len() + json_len(v) + 4, k))
                .collect();
            sizes.sort_unstable_by_key(|(size, _)| std::cmp::Reverse(*size));
            let (mut freed, mut drop) = (0, Vec::new());
            for (size, key) in sizes {
                if freed >= excess {
                    break;
                }
                freed += size;
                drop.push(key.clone());
            }
            let extra = self.extra.to_mut();
            for key in drop {
                extra.remove(&key);
            }
            return true;
        }
        self.spawn_meta.take().is_some() || self.token_usage.take().is_some()
    }
}

fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(0, |b| b.len())
}

/// Encodes an item around `diagnostics` with `encode`, shrinking the diagnostics until the
/// encoding is at most `max` bytes. Returns the bytes and whether anything was cut.
///
/// When nothing is left to cut (the envelope alone is too big) the oversize bytes are returned
/// as they are: the item is never dropped here.
pub(crate) fn encode_within<'a>(
    mut diagnostics: DiagnosticsView<'a>,
    max: usize,
    encode: impl Fn(&DiagnosticsView<'a>) -> Vec<u8>,
) -> (Vec<u8>, bool) {
    let mut bytes = encode(&diagnostics);
    let mut shrunk = false;
    while bytes.len() > max && diagnostics.shrink(bytes.len() - max) {
        shrunk = true;
        bytes = encode(&diagnostics);
    }
    (bytes, shrunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full() -> Diagnostics {
        Diagnostics {
            exit_code: Some(1),
            log_tail: Some("log token=hunter2".into()),
            stderr_tail: Some("err".into()),
            exit_signal: Some("SIGKILL".into()),
            elapsed_ms: Some(5),
            stdout_bytes: Some(7),
            abort_reason: Some("user".into()),
            spawn_meta: Some(json!({"pid": 1}).as_object().unwrap().clone()),
            token_usage: Some(json!({"input": 2}).as_object().unwrap().clone()),
            error_stack: Some("at main".into()),
            extra: json!({"k": "v"}).as_object().unwrap().clone(),
        }
    }

    #[test]
    fn view_without_secrets_serializes_like_diagnostics() {
        let mut d = full();
        d.log_tail = Some("log".into());
        assert_eq!(
            serde_json::to_value(DiagnosticsView::new(&d, Redactor::shared())).unwrap(),
            serde_json::to_value(&d).unwrap()
        );
        let empty = Diagnostics::default();
        assert!(DiagnosticsView::new(&empty, Redactor::shared()).is_empty());
        assert_eq!(
            serde_json::to_string(&DiagnosticsView::new(&empty, Redactor::shared())).unwrap(),
            "{}"
        );
    }

    #[test]
    fn view_redacts_tails_and_every_free_text_field() {
        let mut d = full();
        d.error_stack = Some("token=visible-in-stack".into());
        d.abort_reason = Some("password=hunter2".into());
        d.extra.insert("api_key".into(), json!("k-123"));
        let v = serde_json::to_value(DiagnosticsView::new(&d, Redactor::shared())).unwrap();
        assert_eq!(v["logTail"], "log token=[REDACTED:secret]");
        assert_eq!(v["errorStack"], "token=[REDACTED:secret]");
        assert_eq!(v["abortReason"], "password=[REDACTED:secret]");
        assert_eq!(v["extra"]["api_key"], "[REDACTED:secret]");
        assert!(!v.to_string().contains("visible-in-stack"));
    }

    #[test]
    fn shrink_cuts_tails_then_stack_then_extra() {
        let mut d = full();
        d.log_tail = Some("a".repeat(100));
        d.error_stack = Some("s".repeat(100));
        let mut v = DiagnosticsView::new(&d, Redactor::shared());
        assert!(v.shrink(30));
        assert_eq!(v.log_tail.as_deref(), Some(&*"a".repeat(70)));
        assert!(v.shrink(200)); // log tail gone
        assert!(v.log_tail.is_none() && v.stderr_tail.is_some());
        assert!(v.shrink(200)); // stderr tail gone
        assert!(v.shrink(10));
        assert_eq!(v.error_stack.as_deref(), Some(&*"s".repeat(90)));
        assert!(v.shrink(1000)); // stack gone
        assert!(v.shrink(1)); // extra entry gone
        assert!(v.extra.is_empty());
        assert!(v.shrink(1) && v.shrink(1)); // spawnMeta, tokenUsage
        assert!(!v.shrink(1));
        assert_eq!(v.exit_code, Some(1), "scalars are never cut");
    }
}
