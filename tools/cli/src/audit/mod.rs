//! The audit view: what exactly would leave the machine for a session, with no network.
//!
//! [`run`] plays a session (the [demo](closedloop_telemetry_collector::demo) one, or [NDJSON](ndjson) lines) through
//! the configured pipeline in dry-run mode: the real [`TelemetryLayer`], the real decoder and
//! routing, and the real wire encoders (free-text and tail redaction included), with the
//! delivery engines replaced by a capture. Nothing is sent, nothing is written to disk. The
//! [`AuditReport`] lists per stream every item that would be sent, and per event which fields
//! were dropped or redacted and why.
//!
//! ```
//! let builder = closedloop_telemetry::builder("1.0.0").verbose(true);
//! let lines = closedloop_telemetry_cli::audit::ndjson::parse(
//!     r#"{"event":"job.failed","exit_code":1,"log_tail":"token ghp_4f9ZkqLr8TnW2xYc7VbM1sPdQ0aHjE3uKoIy"}"#,
//! ).unwrap();
//! let report = closedloop_telemetry_cli::audit::run_ndjson(&builder, &lines);
//! assert!(report.to_string().contains("[REDACTED:"));
//! ```

pub mod ndjson;
mod observe;
mod posthog_body;
mod report;

pub use posthog_body::PLACEHOLDER_API_KEY;

use std::sync::Mutex;

use closedloop_telemetry_exporters::__private::datadog::wire::datadog_item;
use closedloop_telemetry_exporters::__private::decode::{DecodeOptions, DecodingProcessor, Event};
use closedloop_telemetry_exporters::__private::posthog::wire::encode_event;
use closedloop_telemetry_exporters::__private::relay::wire::relay_item;
use closedloop_telemetry_exporters::__private::DestinationExt;
use closedloop_telemetry_layers::__private::envelope::format_timestamp;
use closedloop_telemetry_layers::{ActivityLayer, ActivityLogStore};
use closedloop_telemetry_layers::{GatewaySession, TelemetryLayer};
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use serde_json::Value;
use tracing_subscriber::prelude::*;

use closedloop_telemetry::{Consent, Destination, TelemetryBuilder};

pub use report::{AuditReport, AuditedEvent, Finding, StreamAudit};

/// The computeTargetId shown when none is configured or stored (the audit never creates one).
pub const PLACEHOLDER_COMPUTE_TARGET_ID: &str = "<computeTargetId>";

/// Audits the demo session ([`closedloop_telemetry_collector::demo::play`]) under `builder`'s configuration.
pub fn run_demo(builder: &TelemetryBuilder) -> AuditReport {
    run(builder, closedloop_telemetry_collector::demo::play)
}

/// Audits NDJSON lines (see [`ndjson`]) under `builder`'s configuration.
pub fn run_ndjson(builder: &TelemetryBuilder, lines: &[ndjson::Line]) -> AuditReport {
    let extras: Vec<_> = lines.iter().map(|l| l.extra.clone()).collect();
    run_inner(builder, |_| ndjson::emit(lines), extras)
}

/// Audits whatever `session` emits with `tracing` on the calling thread (it gets the
/// gateway-session handle, as an app would).
pub fn run(builder: &TelemetryBuilder, session: impl FnOnce(&GatewaySession)) -> AuditReport {
    run_inner(builder, session, Vec::new())
}

fn run_inner(
    builder: &TelemetryBuilder,
    session: impl FnOnce(&GatewaySession),
    extras: Vec<serde_json::Map<String, Value>>,
) -> AuditReport {
    let preview = closedloop_telemetry::__private::preview(builder);
    let consent = preview.consent;
    let compute_target_id = preview
        .compute_target_id
        .clone()
        .unwrap_or_else(|| PLACEHOLDER_COMPUTE_TARGET_ID.into());
    let release = preview.release_version.clone();
    let verbose = preview.verbose;
    let allow_custom = preview.allow_custom_events;

    let mut notes = Vec::new();
    let mut streams = preview.streams.clone();
    if streams.is_empty() {
        notes.push(
            "no stream configured: showing PostHog and the relay, as the desktop_client \
             example does"
                .to_string(),
        );
        streams = vec![Destination::PostHog, Destination::Relay];
    }
    let mut upstream = true;
    if preview.disabled {
        notes.push(
            "DO_NOT_TRACK / CL_TELEMETRY_DISABLED is set: no stream runs, nothing would be sent"
                .into(),
        );
        upstream = false;
    } else if consent == Consent::Denied {
        notes.push("consent is denied: nothing would be sent".into());
        upstream = false;
    }

    // The real layer over a capturing processor, plus the activity log and an observer.
    let decode_opts = DecodeOptions {
        compute_target_id: Some(compute_target_id.clone()),
        release_version: Some(release.clone()),
        keep_tails: verbose,
    };
    let captured = DecodingProcessor::new(decode_opts);
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(captured.clone())
        .build();
    let gateway = GatewaySession::default();
    let layer = TelemetryLayer::builder(provider.logger("closedloop-telemetry"))
        .compute_target_id(compute_target_id.as_str())
        .release_version(release.as_str())
        .verbose(verbose)
        .allow_custom_events(allow_custom)
        .gateway_session(gateway.clone())
        .build();
    let activity = ActivityLogStore::with_capacity(preview.activity_capacity);
    let observer = observe::Observer::default();
    let seen = observer.seen();
    let subscriber = tracing_subscriber::registry()
        .with(layer)
        .with(ActivityLayer::new(activity.clone()))
        .with(observer);
    tracing::subscriber::with_default(subscriber, || session(&gateway));
    let _ = provider.shutdown();

    let mut events: Vec<Event> = captured.take();
    for e in &mut events {
        if let Some(Value::Number(n)) = e.diagnostics.extra.remove("audit_line") {
            if let Some(extra) = n.as_u64().and_then(|i| extras.get(i as usize)) {
                e.diagnostics.extra.extend(extra.clone());
            }
        }
    }
    let seen = std::mem::take(&mut *lock(&seen));

    let hostname = closedloop_telemetry_exporters::__private::datadog::default_hostname();
    let stream_audits = if upstream {
        streams
            .iter()
            .map(|&kind| {
                let items: Vec<String> = events
                    .iter()
                    .filter(|e| kind.routes(e.entry, allow_custom))
                    .filter_map(|e| encode(kind, e, &hostname))
                    .collect();
                StreamAudit::new(kind, items, &format_timestamp(std::time::SystemTime::now()))
            })
            .collect()
    } else {
        Vec::new()
    };
    let audited = report::explain(&seen, &events, verbose, allow_custom, &streams);
    AuditReport {
        verbose,
        compute_target_id,
        notes,
        streams: stream_audits,
        events: audited,
        activity_entries: activity.snapshot().len(),
    }
}

/// One event in a stream's wire form, exactly as its exporter encodes it.
fn encode(kind: Destination, e: &Event, hostname: &str) -> Option<String> {
    let id = uuid::Uuid::now_v7();
    let bytes = match kind {
        Destination::PostHog => encode_event(e, id).ok()?,
        Destination::Relay => relay_item(e, id),
        Destination::Datadog => datadog_item(e, id, hostname).bytes,
        Destination::Otlp => {
            let record = closedloop_telemetry_exporters::__private::otlp::wire::log_record(e, id);
            serde_json::to_vec(&record).ok()?
        }
    };
    String::from_utf8(bytes).ok()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
