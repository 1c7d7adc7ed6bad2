//! [`ActivityLayer`]: tracing events with `activity = "request" | "security"` become entries.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;

use super::entry::{ActivityKind, BODY_MAX_BYTES, SUMMARY_MAX_BYTES};
use super::store::ActivityLogStore;

/// The field that marks an event as an activity entry.
pub(super) const ACTIVITY_FIELD: &str = "activity";

/// The tracing layer that feeds an [`ActivityLogStore`].
///
/// An event becomes an entry when it has an `activity` field equal to `request` or `security`
/// (ASCII case ignored). The summary is the `summary` field, else the event's message; the body
/// is the `body` field (a string, or any `Display` / `Debug` value formatted with a bound so a
/// huge value costs at most about 8 KiB). Any other `activity` value is ignored and counted
/// ([`ActivityLayer::ignored`]). Events without an `activity` field are not looked at.
///
/// The layer only writes into its store: it never forwards anything anywhere else.
#[derive(Debug, Clone)]
pub struct ActivityLayer {
    store: ActivityLogStore,
    ignored: Arc<AtomicU64>,
}

impl ActivityLayer {
    /// A layer recording into `store` (a clone of it shares the same log).
    pub fn new(store: ActivityLogStore) -> Self {
        ActivityLayer {
            store,
            ignored: Arc::default(),
        }
    }

    /// The store this layer records into.
    pub fn store(&self) -> &ActivityLogStore {
        &self.store
    }

    /// How many events had an `activity` field with an unknown value and were ignored.
    pub fn ignored(&self) -> u64 {
        self.ignored.load(Ordering::Relaxed)
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for ActivityLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().fields().field(ACTIVITY_FIELD).is_none() {
            return;
        }
        let mut fields = ActivityFields::default();
        event.record(&mut fields);
        let Some(kind) = fields.kind else {
            self.ignored.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let summary = fields.summary.or(fields.message).unwrap_or_default();
        self.store
            .record(kind, summary, fields.body.unwrap_or_default());
    }
}

#[derive(Default)]
struct ActivityFields {
    kind: Option<ActivityKind>,
    summary: Option<String>,
    message: Option<String>,
    body: Option<String>,
}

impl Visit for ActivityFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            ACTIVITY_FIELD => self.kind = ActivityKind::parse(value),
            "summary" => self.summary = Some(bounded_str(value, SUMMARY_MAX_BYTES)),
            "message" => self.message = Some(bounded_str(value, SUMMARY_MAX_BYTES)),
            "body" => self.body = Some(bounded_str(value, BODY_MAX_BYTES + 1)),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // One byte past each bound, so the store still sees (and marks) an over-long body.
        match field.name() {
            ACTIVITY_FIELD => self.kind = ActivityKind::parse(&debug_string(value, 16)),
            "summary" => self.summary = Some(debug_string(value, SUMMARY_MAX_BYTES)),
            "message" => self.message = Some(debug_string(value, SUMMARY_MAX_BYTES)),
            "body" => self.body = Some(debug_string(value, BODY_MAX_BYTES + 1)),
            _ => {}
        }
    }
}

fn bounded_str(s: &str, max: usize) -> String {
    crate::truncate::keep_head(s, max).to_string()
}

/// Formats `value` with `{:?}`, keeping at most `max` bytes (on a character boundary).
fn debug_string(value: &dyn fmt::Debug, max: usize) -> String {
    crate::bounded::debug_string(value, max).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_debug_stops_at_the_bound() {
        let big = "ü".repeat(10_000);
        let s = debug_string(&format_args!("{big}"), 9);
        assert_eq!(s, "üüüü");
        assert_eq!(debug_string(&7, 16), "7");
    }
}
