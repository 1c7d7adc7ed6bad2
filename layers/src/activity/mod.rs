//! The local activity log (`docs/ARCHITECTURE.md`, "The activity log"): a bounded, in-memory record
//! of REQUEST and SECURITY entries for the app's own UI.
//!
//! Nothing here is ever sent upstream. [`ActivityLayer`] only writes into an [`ActivityLogStore`];
//! the [`TelemetryLayer`](crate::TelemetryLayer) skips every event that carries an `activity`
//! field, and the exporters' decoder refuses records with an `activity` attribute, so an activity
//! entry cannot become a telemetry record even when a generic bridge forwards it.
//!
//! ```
//! use closedloop_telemetry_layers::activity::{ActivityKind, ActivityLayer, ActivityLogStore};
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

mod entry;
mod layer;
mod store;

pub use entry::{ActivityEntry, ActivityKind, BODY_MAX_BYTES, SUMMARY_MAX_BYTES};
pub use layer::{ActivityLayer, ACTIVITY_FIELD};
pub use store::{ActivityLogStore, ActivitySubscription, ActivityUpdate, DEFAULT_CAPACITY};
