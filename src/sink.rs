//! One upstream stream as the facade sees it: its delivery engine and its routing rule.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use closedloop_telemetry_exporters::decode::Event;
use closedloop_telemetry_exporters::delivery::Delivery;

/// Which upstream a sink delivers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// PostHog product analytics.
    PostHog,
    /// The cloud relay (Datadog-bound diagnostics).
    Relay,
    /// Direct Datadog logs intake (diagnostics, when there is no relay).
    Datadog,
}

impl StreamKind {
    /// `"posthog"`, `"relay"` or `"datadog"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            StreamKind::PostHog => "posthog",
            StreamKind::Relay => "relay",
            StreamKind::Datadog => "datadog",
        }
    }

    /// Whether an event goes to this kind of stream under the catalogue.
    pub fn routes(self, event: &Event, allow_custom: bool) -> bool {
        match (self, event.entry) {
            (StreamKind::PostHog, Some(e)) => e.posthog.is_some(),
            (StreamKind::PostHog, None) => false,
            (_, Some(e)) => e.relay.is_some(),
            (_, None) => allow_custom,
        }
    }
}

/// A running stream.
#[derive(Debug, Clone)]
pub(crate) struct Sink {
    pub(crate) kind: StreamKind,
    pub(crate) delivery: Delivery,
    pub(crate) allow_custom: bool,
    /// Events routed to this stream (handed to its engine, whatever happened next).
    pub(crate) routed: Arc<AtomicU64>,
}

impl Sink {
    pub(crate) fn name(&self) -> &'static str {
        self.kind.as_str()
    }

    pub(crate) fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// Whether the event goes to this stream; counts it as routed when it does.
    pub(crate) fn routes(&self, event: &Event) -> bool {
        let yes = self.kind.routes(event, self.allow_custom);
        if yes {
            self.routed.fetch_add(1, Ordering::Relaxed);
        }
        yes
    }

    pub(crate) fn routed(&self) -> u64 {
        self.routed.load(Ordering::Relaxed)
    }
}
