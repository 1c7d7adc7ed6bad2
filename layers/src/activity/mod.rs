//! The local activity log (`docs/ARCHITECTURE.md`, "The activity log"): a bounded, in-memory record
//! of REQUEST and SECURITY entries for the app's own UI.
//!
//! Nothing here is ever sent upstream. [`ActivityLayer`] only writes into an [`ActivityLogStore`];
//! the [`TelemetryLayer`](crate::TelemetryLayer) skips every event that carries an `activity`
//! field, and the exporters' decoder refuses records with an `activity` attribute, so an activity
//! entry cannot become a telemetry record even when a generic bridge forwards it.

mod entry;
mod layer;
mod store;

pub use entry::{ActivityEntry, ActivityKind, BODY_MAX_BYTES};
pub use layer::ActivityLayer;
pub use store::{ActivityLogStore, ActivitySubscription, ActivityUpdate, DEFAULT_CAPACITY};
