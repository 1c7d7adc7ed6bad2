//! One activity-log entry and its kind.

use std::fmt;
use std::time::SystemTime;

use serde::{Serialize, Serializer};

use crate::envelope::format_timestamp;
use crate::truncate::keep_head;

/// The most bytes of a body an entry keeps (8 KiB). Longer bodies keep their start, cut on a
/// UTF-8 boundary, and the entry is marked [`truncated`](ActivityEntry::truncated).
pub const BODY_MAX_BYTES: usize = 8192;

/// The most bytes of a summary an entry keeps. A summary is a one-line heading, so a longer one
/// keeps its start (cut on a UTF-8 boundary) without further marking.
pub(super) const SUMMARY_MAX_BYTES: usize = 512;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActivityKind {
    /// A request the app made or served (`activity = "request"`).
    Request,
    /// A security-relevant decision (`activity = "security"`).
    Security,
}

impl ActivityKind {
    /// `"REQUEST"` or `"SECURITY"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Request => "REQUEST",
            ActivityKind::Security => "SECURITY",
        }
    }

    /// Parses an `activity` field value, ignoring ASCII case: `request` or `security`.
    ///
    /// ```
    /// use closedloop_telemetry_layers::ActivityKind;
    /// assert_eq!(ActivityKind::parse("Security"), Some(ActivityKind::Security));
    /// assert_eq!(ActivityKind::parse("audit"), None);
    /// ```
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("request") {
            Some(ActivityKind::Request)
        } else if value.eq_ignore_ascii_case("security") {
            Some(ActivityKind::Security)
        } else {
            None
        }
    }
}

impl fmt::Display for ActivityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the activity log. Serializes with the timestamp as ISO-8601 UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActivityEntry {
    /// Position in the store's history, starting at 0; consecutive entries differ by one.
    pub seq: u64,
    /// REQUEST or SECURITY.
    pub kind: ActivityKind,
    /// When the entry was recorded.
    #[serde(serialize_with = "iso_timestamp")]
    pub timestamp: SystemTime,
    /// A one-line heading, at most 512 bytes.
    pub summary: String,
    /// The detail, at most 8 KiB (8,192 bytes).
    pub body: String,
    /// Whether the body was cut to 8 KiB.
    pub truncated: bool,
}

impl ActivityEntry {
    /// An entry with bounded summary and body (sequence number 0 until a store assigns one).
    pub(crate) fn bounded(kind: ActivityKind, summary: &str, body: &str) -> Self {
        let kept = keep_head(body, BODY_MAX_BYTES);
        ActivityEntry {
            seq: 0,
            kind,
            timestamp: SystemTime::now(),
            summary: keep_head(summary, SUMMARY_MAX_BYTES).to_string(),
            body: kept.to_string(),
            truncated: kept.len() < body.len(),
        }
    }
}

fn iso_timestamp<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_timestamp(*t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_cut_on_a_char_boundary_and_marked() {
        let body = "é".repeat(BODY_MAX_BYTES); // 2 bytes each
        let e = ActivityEntry::bounded(ActivityKind::Request, "s", &body);
        assert!(e.truncated);
        assert_eq!(e.body.len(), BODY_MAX_BYTES);
        let short = ActivityEntry::bounded(ActivityKind::Request, "s", "ok");
        assert!(!short.truncated);
    }

    #[test]
    fn serializes_kind_in_capitals_and_time_as_iso() {
        let mut e = ActivityEntry::bounded(ActivityKind::Security, "blocked", "");
        e.timestamp = std::time::UNIX_EPOCH;
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "SECURITY");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.000Z");
    }
}
