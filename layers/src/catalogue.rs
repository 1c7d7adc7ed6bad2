//! The event catalogue (`docs/ARCHITECTURE.md`, "The event catalogue") as one data table.
//!
//! Application code emits the dot name (`event = "job.completed"`). Each row says where that
//! event goes: the relay/Datadog diagnostics stream (`desktop.telemetry`), PostHog product
//! analytics (underscore names), both, and with which Datadog status. The README's catalogue
//! table is generated from [`CATALOGUE`] by [`markdown_table`] and checked by a test.

/// Datadog log status for a diagnostics event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatadogStatus {
    /// Normal lifecycle events.
    Info,
    /// Degraded but recoverable situations.
    Warn,
    /// Failures.
    Error,
}

impl DatadogStatus {
    /// The status string the Datadog intake expects.
    pub const fn as_str(self) -> &'static str {
        match self {
            DatadogStatus::Info => "info",
            DatadogStatus::Warn => "warn",
            DatadogStatus::Error => "error",
        }
    }
}

/// The pipeline's report of what its rate limits refused (made by the library, never limited).
pub const RATE_LIMITED: &str = "telemetry.rate_limited";
/// The panic hook's event.
pub const APP_PANICKED: &str = "app.panicked";
/// The event a start makes for a previous run that ended abnormally.
pub const APP_CRASHED: &str = "app.crashed";

/// The catalogue's events the library makes itself (the seed's are the others).
pub const LIBRARY_EVENTS: &[&str] = &[RATE_LIMITED, APP_PANICKED, APP_CRASHED];

/// One catalogue row: an emitted name and its routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueEntry {
    /// The dot name application code emits, e.g. `command.completed`.
    pub name: &'static str,
    /// The name on the relay diagnostics stream, or `None` when the event is PostHog-only.
    pub relay: Option<&'static str>,
    /// The PostHog event name, or `None` when the event is diagnostics-only.
    pub posthog: Option<&'static str>,
    /// The PostHog `reason` property, for events folded into `command_failed`.
    pub posthog_reason: Option<&'static str>,
    /// The Datadog status of the diagnostics item.
    pub status: DatadogStatus,
}

const fn row(
    name: &'static str,
    relay: bool,
    posthog: Option<&'static str>,
    posthog_reason: Option<&'static str>,
    status: DatadogStatus,
) -> CatalogueEntry {
    CatalogueEntry {
        name,
        relay: if relay { Some(name) } else { None },
        posthog,
        posthog_reason,
        status,
    }
}

use DatadogStatus::{Error, Info, Warn};

/// Every event the library knows, in the product's order (`docs/ARCHITECTURE.md`).
pub const CATALOGUE: &[CatalogueEntry] = &[
    row(
        "command.initiated",
        true,
        Some("command_initiated"),
        None,
        Info,
    ),
    row("command.started", true, Some("command_started"), None, Info),
    row(
        "command.completed",
        true,
        Some("command_completed"),
        None,
        Info,
    ),
    row("command.failed", false, Some("command_failed"), None, Error),
    row(
        "command.timeout",
        true,
        Some("command_failed"),
        Some("timeout"),
        Error,
    ),
    row(
        "command.cancelled",
        true,
        Some("command_failed"),
        Some("cancelled"),
        Warn,
    ),
    row(
        "command.gateway_error",
        true,
        Some("command_failed"),
        Some("gateway_error"),
        Error,
    ),
    row(
        "approval.requested",
        false,
        Some("approval_requested"),
        None,
        Info,
    ),
    row(
        "approval.resolved",
        false,
        Some("approval_resolved"),
        None,
        Info,
    ),
    row(
        "connection.established",
        true,
        Some("desktop_connection_established"),
        None,
        Info,
    ),
    row(
        "connection.reconnection_resumed",
        true,
        Some("desktop_reconnection_resumed"),
        None,
        Info,
    ),
    row(
        "connection.degraded",
        true,
        Some("desktop_connection_degraded"),
        None,
        Warn,
    ),
    row(
        "connection.lost",
        true,
        Some("desktop_connection_lost"),
        None,
        Error,
    ),
    row(
        "sandbox.blocked_operation",
        false,
        Some("sandbox_blocked_operation"),
        None,
        Warn,
    ),
    row("job.started", true, None, None, Info),
    row("job.completed", true, None, None, Info),
    row("job.failed", true, None, None, Error),
    row("job.cancelled", true, None, None, Warn),
    row("job.auth_challenge", true, None, None, Warn),
    row("job.recovery.finalize_replayed", true, None, None, Info),
    row("preflight.binary_not_found", true, None, None, Error),
    row("preflight.script_not_found", true, None, None, Error),
    row("preflight.spawn_failed", true, None, None, Error),
    row("queue.stats_changed", true, None, None, Info),
    // Made by the pipeline itself (never by the app, never rate-limited): what the rate
    // limits refused on this diagnostics destination (`extra.window_s`, `extra.dropped`).
    row(RATE_LIMITED, true, None, None, Warn),
    row(
        "healthcheck.failure_detected",
        true,
        Some("healthcheck.failure_detected"),
        None,
        Warn,
    ),
    row(
        "healthcheck.recovered",
        true,
        Some("healthcheck.recovered"),
        None,
        Info,
    ),
    row(
        "healthcheck.failure_persistent",
        true,
        Some("healthcheck.failure_persistent"),
        None,
        Error,
    ),
    // Issue 23: crashes. Written by the library itself (the panic hook, the start after an
    // abnormal exit), never emitted by application code; a crash count per release is product
    // data, so PostHog gets them too.
    row(APP_PANICKED, true, Some("app_panicked"), None, Error),
    row(APP_CRASHED, true, Some("app_crashed"), None, Error),
];

/// Looks up an emitted dot name.
///
/// ```
/// use closedloop_telemetry_layers::__private::catalogue::lookup;
/// let row = lookup("command.timeout").unwrap();
/// assert_eq!(row.posthog, Some("command_failed"));
/// assert_eq!(row.posthog_reason, Some("timeout"));
/// assert!(lookup("made.up").is_none());
/// ```
pub fn lookup(name: &str) -> Option<&'static CatalogueEntry> {
    // The layer names its records with the table's own `&'static str`: find that by address
    // first (no byte comparison), then by value.
    CATALOGUE
        .iter()
        .find(|e| std::ptr::eq(e.name, name))
        .or_else(|| CATALOGUE.iter().find(|e| e.name == name))
}

/// The README's catalogue table, rendered from [`CATALOGUE`].
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| emitted `event` | relay / Datadog (`desktop.telemetry`) | PostHog event | PostHog `reason` | Datadog status |\n|---|---|---|---|---|\n",
    );
    for e in CATALOGUE {
        let cell = |v: Option<&str>| v.map_or("—".to_string(), |s| format!("`{s}`"));
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | `{}` |\n",
            e.name,
            cell(e.relay),
            cell(e.posthog),
            cell(e.posthog_reason),
            e.status.as_str()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_routed_somewhere() {
        for (i, e) in CATALOGUE.iter().enumerate() {
            assert!(
                e.relay.is_some() || e.posthog.is_some(),
                "{} routes nowhere",
                e.name
            );
            assert!(
                CATALOGUE[i + 1..].iter().all(|o| o.name != e.name),
                "{} twice",
                e.name
            );
            assert_eq!(
                e.posthog_reason.is_some(),
                e.posthog == Some("command_failed") && e.name != "command.failed"
            );
        }
    }

    #[test]
    fn seed_lists_match_the_table() {
        let seed = || {
            CATALOGUE
                .iter()
                .filter(|e| !LIBRARY_EVENTS.contains(&e.name))
        };
        let relay: Vec<_> = seed().filter_map(|e| e.relay).collect();
        assert_eq!(relay.len(), 23, "the seed lists 23 diagnostics categories");
        let mut posthog: Vec<_> = seed().filter_map(|e| e.posthog).collect();
        posthog.dedup();
        assert_eq!(posthog.len(), 14, "the seed lists 14 PostHog events");
    }
}
