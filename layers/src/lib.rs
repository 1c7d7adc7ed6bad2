//! The tracing side of closedloop-telemetry: the layers that turn `tracing` events into
//! OpenTelemetry log records, and the local activity log.
//!
//! Application code writes ordinary `tracing` spans and events; [`TelemetryLayer`] turns every
//! event that has an `event = "<category>"` field into an OpenTelemetry log record following
//! the record convention (`layers/src/convention.rs`), for the events of the catalogue
//! (`layers/src/catalogue.rs`). [`ActivityLayer`] feeds the local-only [`ActivityLogStore`]
//! from events with an `activity` field. This crate has no HTTP client and no async runtime.
//!
//! ```
//! use closedloop_telemetry_layers::{ActivityKind, ActivityLayer, ActivityLogStore};
//! use tracing_subscriber::prelude::*;
//!
//! let store = ActivityLogStore::new();
//! let subscriber = tracing_subscriber::registry().with(ActivityLayer::new(store.clone()));
//! tracing::subscriber::with_default(subscriber, || {
//!     tracing::info!(activity = "request", body = "GET /v1/jobs", "listed jobs");
//! });
//! store.record(ActivityKind::Security, "sandbox blocked a write", "/etc/hosts");
//!
//! let entries = store.snapshot(); // newest last
//! assert_eq!(entries[0].summary, "listed jobs");
//! assert_eq!(entries[1].kind, ActivityKind::Security);
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod activity;
mod bounded;
mod catalogue;
mod convention;
mod envelope;
mod gateway;
mod layer;
mod stats;
mod truncate;

pub use activity::{
    ActivityEntry, ActivityKind, ActivityLayer, ActivityLogStore, ActivitySubscription,
    ActivityUpdate,
};
pub use gateway::GatewaySession;
pub use layer::{TelemetryLayer, TelemetryLayerBuilder};
pub use stats::{LayerStats, LayerStatsSnapshot};

/// **Not API: may change without notice.** What the other crates of this workspace (the
/// exporters, the facade, the tools, the tests and benches) need from this one beyond its
/// public items: the event catalogue, the record convention, the envelope types, UTF-8-safe
/// truncation and a few bounds. Hidden from the docs; nothing here is covered by semver.
#[doc(hidden)]
pub mod __private {
    /// The event catalogue as one data table.
    pub mod catalogue {
        pub use crate::catalogue::{
            lookup, markdown_table, CatalogueEntry, DatadogStatus, APP_CRASHED, APP_PANICKED,
            CATALOGUE, LIBRARY_EVENTS, RATE_LIMITED,
        };
    }
    /// The record convention: which attributes a log record carries.
    pub mod convention {
        pub use crate::convention::{Field, Kind, Section, CUSTOM_EVENT_NAME, EVENT, EXTRA_PREFIX};
    }
    /// The envelope every event carries, as serde types.
    pub mod envelope {
        pub use crate::envelope::{format_timestamp, Diagnostics, TraceEnvelope};
    }
    /// UTF-8-safe truncation.
    pub mod truncate {
        pub use crate::truncate::{keep_head, keep_tail, FIELD_MAX_BYTES, TAIL_MAX_BYTES};
    }
    pub use crate::activity::{BODY_MAX_BYTES, DEFAULT_CAPACITY};

    /// Calls `observer` with the new gateway session id on every later change of `session`
    /// (on the thread that makes it); the first observer stays. Returns whether this one was
    /// taken.
    pub fn observe_gateway(
        session: &crate::GatewaySession,
        observer: impl Fn(Option<&str>) + Send + Sync + 'static,
    ) -> bool {
        session.observe(observer)
    }
    pub use crate::layer::{current_trace_context, is_ignored_target, MAX_WARNED_NAMES};
}
