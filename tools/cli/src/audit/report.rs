//! The audit's result: per stream what would be sent, per event what was dropped or redacted.

use std::fmt;

use closedloop_telemetry_exporters::__private::decode::Event;
use closedloop_telemetry_exporters::__private::redact::Redactor;
use closedloop_telemetry_exporters::__private::DestinationExt;
use closedloop_telemetry_layers::__private::catalogue::lookup;
use closedloop_telemetry_layers::__private::truncate::TAIL_MAX_BYTES;

use super::observe::Seen;
use super::posthog_body::posthog_body;
use closedloop_telemetry::Destination;

/// What [`run`](super::run) found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuditReport {
    /// Whether verbose telemetry (redacted tails) was on.
    pub verbose: bool,
    /// The computeTargetId the items carry (a placeholder when none is configured or stored).
    pub compute_target_id: String,
    /// Run-wide remarks (no stream configured, telemetry disabled, consent denied).
    pub notes: Vec<String>,
    /// Per stream, what would be sent (empty when nothing would be).
    pub streams: Vec<StreamAudit>,
    /// Every event of the session, in order, with where it goes and what was dropped.
    pub events: Vec<AuditedEvent>,
    /// Entries the local activity log got (never sent).
    pub activity_entries: usize,
}

/// What one stream would send.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StreamAudit {
    /// Which stream.
    pub kind: Destination,
    /// Each event's wire item (one JSON value), byte for byte as the exporter encodes it
    /// (ids and timestamps differ on every run).
    pub items: Vec<String>,
    /// All items framed as one request body (PostHog: the `/batch/` object with the project
    /// key replaced by a placeholder; relay and Datadog: a JSON array). The engine splits
    /// larger sessions into several requests.
    pub body: String,
}

impl StreamAudit {
    pub(crate) fn new(kind: Destination, items: Vec<String>, sent_at: &str) -> Self {
        let body = match kind {
            Destination::PostHog => posthog_body(&items, sent_at),
            _ => format!("[{}]", items.join(",")),
        };
        StreamAudit { kind, items, body }
    }
}

/// One event of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditedEvent {
    /// The event name, or `activity <kind>: <summary>` for activity entries.
    pub label: String,
    /// The streams it would be sent to (`posthog as command_started`, `relay`, …).
    pub sent_to: Vec<String>,
    /// What was dropped, cut or redacted, and why.
    pub findings: Vec<Finding>,
}

/// One dropped, cut or redacted field, or an event that is not forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// The field (wire name) or `event` for the whole event.
    pub field: String,
    /// `dropped`, `cut`, `redacted`, `not forwarded` or `local only`.
    pub action: &'static str,
    /// Why.
    pub why: String,
}

fn finding(field: &str, action: &'static str, why: impl Into<String>) -> Finding {
    Finding {
        field: field.into(),
        action,
        why: why.into(),
    }
}

/// Pairs what the app wrote (`seen`) with what the layer recorded (`events`, same order).
pub(crate) fn explain(
    seen: &[Seen],
    events: &[Event],
    verbose: bool,
    allow_custom: bool,
    streams: &[Destination],
) -> Vec<AuditedEvent> {
    let mut next = events.iter().peekable();
    let mut out = Vec::new();
    for s in seen {
        if let Some(kind) = s.get("activity") {
            out.push(AuditedEvent {
                label: format!("activity {kind}: {}", s.get("summary").unwrap_or("")),
                sent_to: Vec::new(),
                findings: vec![finding(
                    "event",
                    "local only",
                    "activity entries stay in the local activity log and are never sent",
                )],
            });
            continue;
        }
        let Some(name) = s.get("event") else {
            continue; // a plain log line: not telemetry
        };
        let mut ev = AuditedEvent {
            label: name.to_string(),
            sent_to: Vec::new(),
            findings: Vec::new(),
        };
        if lookup(name).is_none() && !allow_custom {
            ev.findings.push(finding(
                "event",
                "not forwarded",
                "unknown event: not in the catalogue (custom events are off)",
            ));
            out.push(ev);
            continue;
        }
        let decoded = next.next_if(|e| e.name == name);
        if let Some(e) = decoded {
            for &k in streams {
                if !k.routes(e.entry, allow_custom) {
                    continue;
                }
                ev.sent_to.push(match (k, e.entry.and_then(|r| r.posthog)) {
                    (Destination::PostHog, Some(n)) if n != name => format!("posthog as {n}"),
                    _ => k.as_str().to_string(),
                });
            }
        }
        if ev.sent_to.is_empty() {
            ev.findings.push(finding(
                "event",
                "not forwarded",
                "routed to none of the configured streams",
            ));
        }
        if s.get("message").is_some() {
            ev.findings.push(finding(
                "message",
                "dropped",
                "the message text is never forwarded; only structured fields are",
            ));
        }
        for (field, wire) in [("log_tail", "logTail"), ("stderr_tail", "stderrTail")] {
            let Some(raw) = s.get(field) else { continue };
            tail_findings(&mut ev, wire, raw, decoded, verbose, streams);
        }
        if let Some(e) = decoded {
            free_text_findings(&mut ev, e);
        }
        out.push(ev);
    }
    out
}

fn tail_findings(
    ev: &mut AuditedEvent,
    wire: &str,
    raw: &str,
    decoded: Option<&Event>,
    verbose: bool,
    streams: &[Destination],
) {
    if !verbose {
        ev.findings.push(finding(
            wire,
            "dropped",
            "verbose telemetry is off (CL_TELEMETRY_VERBOSE=1 or .verbose(true) sends redacted tails)",
        ));
        return;
    }
    if streams.contains(&Destination::PostHog)
        && ev.sent_to.iter().any(|s| s.starts_with("posthog"))
    {
        ev.findings.push(finding(
            wire,
            "dropped",
            "tails never go to PostHog (relay / Datadog only)",
        ));
    }
    if raw.len() > TAIL_MAX_BYTES {
        ev.findings.push(finding(
            wire,
            "cut",
            format!(
                "{} bytes: only the last {TAIL_MAX_BYTES} are kept",
                raw.len()
            ),
        ));
    }
    let kept = decoded.and_then(|e| match wire {
        "logTail" => e.diagnostics.log_tail.as_deref(),
        _ => e.diagnostics.stderr_tail.as_deref(),
    });
    if let Some(kept) = kept {
        let before = markers(kept);
        let after = markers(&Redactor::shared().redact_tail(kept));
        let new: Vec<String> = after.into_iter().filter(|m| !before.contains(m)).collect();
        if !new.is_empty() {
            ev.findings.push(finding(
                wire,
                "redacted",
                format!("secrets replaced before sending: {}", new.join(", ")),
            ));
        }
    }
}

/// Why a free-text field shows redaction markers.
pub(crate) const FREE_TEXT_WHY: &str =
    "secrets replaced before sending, on every stream, verbose or not";

/// Findings for the free-text fields (`errorStack`, `abortReason`, `exitSignal`, `spawnMeta`,
/// `tokenUsage`, each `extra` entry): the markers the wire encoders' redaction adds.
fn free_text_findings(ev: &mut AuditedEvent, e: &Event) {
    let d = &e.diagnostics;
    let f = Redactor::shared().free_text(d);
    let json = |v: &serde_json::Map<String, serde_json::Value>| {
        serde_json::to_string(v).unwrap_or_default()
    };
    let mut fields: Vec<(String, String, String)> = Vec::new();
    for (wire, raw, out) in [
        ("exitSignal", &d.exit_signal, &f.exit_signal),
        ("abortReason", &d.abort_reason, &f.abort_reason),
        ("errorStack", &d.error_stack, &f.error_stack),
    ] {
        if let (Some(raw), Some(out)) = (raw, out) {
            fields.push((wire.into(), raw.clone(), out.to_string()));
        }
    }
    for (wire, raw, out) in [
        ("spawnMeta", &d.spawn_meta, &f.spawn_meta),
        ("tokenUsage", &d.token_usage, &f.token_usage),
    ] {
        if let (Some(raw), Some(out)) = (raw, out) {
            fields.push((wire.into(), json(raw), json(out)));
        }
    }
    for (key, raw) in &d.extra {
        let out = f.extra.get(key).map(|v| v.to_string()).unwrap_or_default();
        fields.push((key.clone(), raw.to_string(), out));
    }
    for (wire, raw, out) in fields {
        let before = markers(&raw);
        let new: Vec<String> = markers(&out)
            .into_iter()
            .filter(|m| !before.contains(m))
            .collect();
        if !new.is_empty() {
            ev.findings.push(finding(
                &wire,
                "redacted",
                format!("{FREE_TEXT_WHY}: {}", new.join(", ")),
            ));
        }
    }
}

/// Every `[REDACTED:<kind>]` marker in `text`, in order.
pub(crate) fn markers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("[REDACTED:") {
        let tail = &rest[start..];
        match tail.find(']') {
            Some(end) => {
                out.push(tail[..=end].to_string());
                rest = &tail[end + 1..];
            }
            None => break,
        }
    }
    out
}

impl AuditReport {
    /// Events the session wrote that no stream gets (unknown names), not counting activity.
    pub fn not_forwarded(&self) -> usize {
        self.count("not forwarded")
    }

    fn count(&self, action: &str) -> usize {
        self.events
            .iter()
            .flat_map(|e| &e.findings)
            .filter(|f| f.action == action)
            .count()
    }

    /// The audit of one stream, if it would send.
    pub fn stream(&self, kind: Destination) -> Option<&StreamAudit> {
        self.streams.iter().find(|s| s.kind == kind)
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "closedloop-telemetry audit: dry run, nothing was sent\n\
             verbose={} computeTargetId={}",
            if self.verbose { "on" } else { "off" },
            self.compute_target_id
        )?;
        writeln!(
            f,
            "redaction: free text (errorStack, abortReason, exitSignal, and every string in \
             spawnMeta, tokenUsage and extra) is always redacted on every stream; log tails are \
             sent, redacted, only with verbose on"
        )?;
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        writeln!(f, "\n== what would be sent")?;
        if self.streams.is_empty() {
            writeln!(f, "nothing")?;
        }
        for s in &self.streams {
            let frame = match s.kind {
                Destination::PostHog => {
                    "POST /batch/ {\"api_key\":\"<project api key>\",\"batch\":[...],\"sent_at\":\"...\"}"
                }
                Destination::Relay => "a JSON array of desktop.telemetry messages",
                Destination::Datadog => "POST /api/v2/logs, a JSON array of log items",
                Destination::Otlp => {
                    "POST /v1/logs, an ExportLogsServiceRequest (each log record shown as OTLP/JSON)"
                }
            };
            writeln!(
                f,
                "-- {}: {} events, {frame}",
                s.kind.as_str(),
                s.items.len()
            )?;
            for item in &s.items {
                writeln!(f, "{item}")?;
            }
        }
        writeln!(
            f,
            "\n== per event: where it goes, what was dropped or redacted, and why"
        )?;
        for e in &self.events {
            let to = if e.sent_to.is_empty() {
                "nowhere".to_string()
            } else {
                e.sent_to.join(", ")
            };
            writeln!(f, "{} -> {to}", e.label)?;
            for x in &e.findings {
                writeln!(f, "    {} {}: {}", x.field, x.action, x.why)?;
            }
        }
        let sent: Vec<String> = self
            .streams
            .iter()
            .map(|s| format!("{}={}", s.kind.as_str(), s.items.len()))
            .collect();
        writeln!(
            f,
            "\n== summary\nsent: {} | not forwarded: {} | fields dropped: {} | redacted: {} | \
             activity entries (local only): {}",
            if sent.is_empty() {
                "nothing".into()
            } else {
                sent.join(" ")
            },
            self.not_forwarded(),
            self.count("dropped"),
            self.count("redacted"),
            self.activity_entries
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_in_order() {
        assert_eq!(
            markers("a [REDACTED:github_token] b [REDACTED:password] [REDACTED:x"),
            ["[REDACTED:github_token]", "[REDACTED:password]"]
        );
    }
}
