//! Watches the session's `tracing` events as the app wrote them, before any layer changed them,
//! so the report can say what was dropped and why.

use std::sync::{Arc, Mutex};

use closedloop_telemetry_layers::__private::is_ignored_target;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// One event as written: its fields, values as text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen {
    pub(crate) fields: Vec<(&'static str, String)>,
}

impl Seen {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Records every event of the session (not our own internal ones).
#[derive(Debug, Default)]
pub(crate) struct Observer {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Observer {
    pub(crate) fn seen(&self) -> Arc<Mutex<Vec<Seen>>> {
        self.seen.clone()
    }
}

impl Visit for Seen {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields.push((field.name(), value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.fields.push((field.name(), format!("{value:?}")));
    }
}

impl<S: Subscriber> Layer<S> for Observer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if is_ignored_target(event.metadata().target()) {
            return;
        }
        let mut seen = Seen::default();
        event.record(&mut seen);
        if let Ok(mut all) = self.seen.lock() {
            all.push(seen);
        }
    }
}
