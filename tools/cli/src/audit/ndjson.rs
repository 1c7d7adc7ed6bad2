//! Sessions piped in as NDJSON: one JSON object per line, each emitted as a `tracing` event.
//!
//! ```text
//! {"event":"job.failed","level":"error","exit_code":1,"log_tail":"npm ERR! ...","tool":"npm"}
//! {"activity":"request","summary":"POST /v1/run","body":"{\"cmd\":\"npm test\"}"}
//! {"event":"command.started","command_id":"cmd-1","message":"starting"}
//! ```
//!
//! `tracing` needs field names known at compile time, so each line is mapped:
//!
//! - `event`, `activity`, `summary`, `body` and `message` become those fields; `level` (`trace`,
//!   `debug`, `info`, `warn`, `error`; default `info`) picks the event's level;
//! - the convention fields (`exit_code`, `elapsed_ms`, `stdout_bytes`, `log_tail`,
//!   `stderr_tail`, `exit_signal`, `abort_reason`, `error_stack`, `spawn_meta`, `token_usage`,
//!   `command_id`, `operation_id`, `loop_id`, `job_id`, `loop_session_id`,
//!   `gateway_session_id`) become the fields of the same name (objects as JSON text, as apps
//!   pass them);
//! - every other key is one of the event's other fields (`extra`): the audit attaches it to the
//!   decoded event exactly as the layer would have (scalars as they are, objects and arrays as
//!   JSON text, `null` omitted), so it shows up in PostHog properties and `diagnostics.extra`.
//!   A convention field with the wrong type is treated the same way, as the layer does.

use serde_json::{Map, Value};

/// A line that is not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("NDJSON line {line}: {reason}")]
pub struct NdjsonError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// One parsed line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Line {
    pub(crate) level: Level,
    pub(crate) strings: Vec<(&'static str, String)>,
    pub(crate) ints: Vec<(&'static str, i64)>,
    pub(crate) counts: Vec<(&'static str, u64)>,
    /// The other fields (attached after decoding, see the module docs).
    pub(crate) extra: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Level {
    Trace,
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

const STRINGS: &[&str] = &[
    "event",
    "activity",
    "summary",
    "body",
    "message",
    "log_tail",
    "stderr_tail",
    "exit_signal",
    "abort_reason",
    "error_stack",
    "spawn_meta",
    "token_usage",
    "command_id",
    "operation_id",
    "loop_id",
    "job_id",
    "loop_session_id",
    "gateway_session_id",
];
const COUNTS: &[&str] = &["elapsed_ms", "stdout_bytes"];

/// Parses a whole NDJSON session. Blank lines are skipped.
pub fn parse(text: &str) -> Result<Vec<Line>, NdjsonError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let err = |reason: String| NdjsonError {
            line: i + 1,
            reason,
        };
        let value: Value = serde_json::from_str(raw).map_err(|e| err(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(err("not a JSON object".into()));
        };
        out.push(parse_line(map).map_err(err)?);
    }
    Ok(out)
}

fn parse_line(map: Map<String, Value>) -> Result<Line, String> {
    let mut line = Line::default();
    for (key, value) in map {
        if key == "level" {
            line.level = match value.as_str().map(str::to_ascii_lowercase).as_deref() {
                Some("trace") => Level::Trace,
                Some("debug") => Level::Debug,
                Some("info") => Level::Info,
                Some("warn" | "warning") => Level::Warn,
                Some("error") => Level::Error,
                _ => return Err(format!("unknown level {value}")),
            };
            continue;
        }
        if let Some(name) = STRINGS.iter().find(|n| **n == key) {
            match value {
                Value::String(s) => line.strings.push((name, s)),
                Value::Object(_) if key == "spawn_meta" || key == "token_usage" => {
                    line.strings.push((name, value.to_string()))
                }
                Value::Null => {}
                other if key == "event" || key == "activity" => {
                    return Err(format!("`{key}` must be a string, got {other}"))
                }
                other => {
                    line.extra.insert(key, other);
                }
            }
        } else if key == "exit_code" {
            match value.as_i64() {
                Some(n) => line.ints.push(("exit_code", n)),
                None => extra(&mut line.extra, key, value),
            }
        } else if let Some(name) = COUNTS.iter().find(|n| **n == key) {
            match value.as_u64() {
                Some(n) => line.counts.push((name, n)),
                None => extra(&mut line.extra, key, value),
            }
        } else {
            extra(&mut line.extra, key, value);
        }
    }
    Ok(line)
}

/// An extra field as the layer would record it: scalars as they are, the rest as JSON text.
fn extra(map: &mut Map<String, Value>, key: String, value: Value) {
    let value = match value {
        Value::Null => return,
        v @ (Value::Bool(_) | Value::Number(_) | Value::String(_)) => v,
        v => Value::String(v.to_string()),
    };
    map.insert(key, value);
}

impl Line {
    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        self.strings
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    fn int(&self, key: &str) -> Option<i64> {
        self.ints.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn count(&self, key: &str) -> Option<u64> {
        self.counts.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// Emits every line as a `tracing` event on the current subscriber; `index` is attached as
/// the `audit_line` field so the audit can re-attach the line's other fields.
pub(crate) fn emit(lines: &[Line]) {
    for (index, l) in lines.iter().enumerate() {
        let index = index as u64;
        macro_rules! at {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    event = l.str("event"),
                    activity = l.str("activity"),
                    summary = l.str("summary"),
                    body = l.str("body"),
                    exit_code = l.int("exit_code"),
                    elapsed_ms = l.count("elapsed_ms"),
                    stdout_bytes = l.count("stdout_bytes"),
                    log_tail = l.str("log_tail"),
                    stderr_tail = l.str("stderr_tail"),
                    exit_signal = l.str("exit_signal"),
                    abort_reason = l.str("abort_reason"),
                    error_stack = l.str("error_stack"),
                    spawn_meta = l.str("spawn_meta"),
                    token_usage = l.str("token_usage"),
                    command_id = l.str("command_id"),
                    operation_id = l.str("operation_id"),
                    loop_id = l.str("loop_id"),
                    job_id = l.str("job_id"),
                    loop_session_id = l.str("loop_session_id"),
                    gateway_session_id = l.str("gateway_session_id"),
                    audit_line = (!l.extra.is_empty()).then_some(index),
                    message = l.str("message"),
                )
            };
        }
        match l.level {
            Level::Trace => at!(tracing::Level::TRACE),
            Level::Debug => at!(tracing::Level::DEBUG),
            Level::Info => at!(tracing::Level::INFO),
            Level::Warn => at!(tracing::Level::WARN),
            Level::Error => at!(tracing::Level::ERROR),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_known_fields_and_keeps_the_rest_as_extra() {
        let lines = parse(
            r#"{"event":"job.failed","level":"error","exit_code":1,"elapsed_ms":-5,"tool":"npm","meta":{"a":1},"gone":null}

{"activity":"request","summary":"POST /x"}"#,
        )
        .unwrap();
        assert_eq!(lines.len(), 2);
        let l = &lines[0];
        assert_eq!(l.level, Level::Error);
        assert_eq!(l.str("event"), Some("job.failed"));
        assert_eq!(l.int("exit_code"), Some(1));
        assert_eq!(l.count("elapsed_ms"), None);
        assert_eq!(l.extra["elapsed_ms"], -5);
        assert_eq!(l.extra["tool"], "npm");
        assert_eq!(l.extra["meta"], r#"{"a":1}"#);
        assert!(!l.extra.contains_key("gone"));
        assert_eq!(parse("[1]").unwrap_err().line, 1);
        assert_eq!(parse("\n{\"event\":2}").unwrap_err().line, 2);
    }
}
