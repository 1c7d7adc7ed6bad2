//! The envelope every event carries (`docs/ARCHITECTURE.md`, "The envelope"), as serde types.
//!
//! Keys are camelCase and absent values are omitted, never `null`:
//!
//! ```
//! use closedloop_telemetry_layers::__private::envelope::{Diagnostics, TraceEnvelope};
//! let mut trace = TraceEnvelope::new("2026-11-25T09:14:03.120Z".into(), "ct-1".into());
//! trace.job_id = Some("job-7".into());
//! assert_eq!(
//!     serde_json::to_string(&trace).unwrap(),
//!     r#"{"schemaVersion":"1","timestamp":"2026-11-25T09:14:03.120Z","computeTargetId":"ct-1","jobId":"job-7"}"#
//! );
//! let diag = Diagnostics { exit_code: Some(0), ..Default::default() };
//! assert_eq!(serde_json::to_string(&diag).unwrap(), r#"{"exitCode":0}"#);
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The schema version every envelope carries.
pub(crate) const SCHEMA_VERSION: &str = "1";

/// The envelope plus trace context: the relay message's `trace` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceEnvelope {
    /// Always `"1"` (the schema version).
    pub schema_version: String,
    /// Event time, ISO-8601 UTC with milliseconds and `Z` (see [`format_timestamp`]).
    pub timestamp: String,
    /// The machine / install id; non-empty.
    pub compute_target_id: String,
    /// The current gateway session, if connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_session_id: Option<String>,
    /// The command this event belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// The operation this event belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    /// Trace context: loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_id: Option<String>,
    /// Trace context: job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Trace context: loop session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_session_id: Option<String>,
    /// OpenTelemetry trace id (32 hex digits) when the record had a trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otel_trace_id: Option<String>,
    /// OpenTelemetry span id (16 hex digits) when the record had a trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otel_span_id: Option<String>,
}

impl TraceEnvelope {
    /// An envelope with the mandatory keys set and everything else absent.
    pub fn new(timestamp: String, compute_target_id: String) -> Self {
        TraceEnvelope {
            schema_version: SCHEMA_VERSION.to_string(),
            timestamp,
            compute_target_id,
            ..Default::default()
        }
    }
}

/// The optional `diagnostics` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostics {
    /// Process exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Last ≤ 4096 bytes of output; only with verbose telemetry, redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tail: Option<String>,
    /// Last ≤ 4096 bytes of stderr; only with verbose telemetry, redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
    /// Terminating signal name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_signal: Option<String>,
    /// Elapsed wall time in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<i64>,
    /// Bytes written to stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_bytes: Option<i64>,
    /// Why an operation was aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_reason: Option<String>,
    /// Spawn metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawn_meta: Option<Map<String, Value>>,
    /// Model token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_usage: Option<Map<String, Value>>,
    /// An error stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_stack: Option<String>,
    /// The event's other fields.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

impl Diagnostics {
    /// Whether nothing is set (the `diagnostics` key is then omitted).
    pub fn is_empty(&self) -> bool {
        *self == Diagnostics::default()
    }
}

/// Formats a time as ISO-8601 UTC with millisecond precision (truncated) and a `Z` suffix.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use closedloop_telemetry_layers::__private::envelope::format_timestamp;
/// let t = UNIX_EPOCH + Duration::from_millis(1_795_598_043_120);
/// assert_eq!(format_timestamp(t), "2026-11-25T09:14:03.120Z");
/// ```
pub fn format_timestamp(t: std::time::SystemTime) -> String {
    // Times before 1970 read as the epoch; times past jiff's range (year 9999) as its end.
    let at =
        jiff::Timestamp::try_from(t.max(std::time::UNIX_EPOCH)).unwrap_or(jiff::Timestamp::MAX);
    format!("{at:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_across_leap_years_and_epoch() {
        assert_eq!(format_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(format_timestamp(leap), "2000-02-29T00:00:00.000Z");
        let end = UNIX_EPOCH + Duration::from_millis(4_102_444_799_999);
        assert_eq!(format_timestamp(end), "2099-12-31T23:59:59.999Z");
        let truncated = UNIX_EPOCH + Duration::from_nanos(1_999_999_999);
        assert_eq!(format_timestamp(truncated), "1970-01-01T00:00:01.999Z");
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(format_timestamp(before), "1970-01-01T00:00:00.000Z");
        // About the year 17800: past jiff's range, within every platform's `SystemTime`
        // (Windows' ends in the year 30828).
        let far = UNIX_EPOCH + Duration::from_secs(500_000_000_000);
        assert!(format_timestamp(far).starts_with("9999-12-"));
    }

    #[test]
    fn empty_diagnostics_serialize_to_empty_object() {
        assert!(Diagnostics::default().is_empty());
        assert_eq!(
            serde_json::to_string(&Diagnostics::default()).unwrap(),
            "{}"
        );
    }
}
