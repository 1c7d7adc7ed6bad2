//! One upstream stream as the facade sees it: its delivery engine and its routing rule.

use closedloop_telemetry_exporters::decode::Event;
use closedloop_telemetry_exporters::delivery::{Delivery, DropReason};
use closedloop_telemetry_layers::catalogue::CatalogueEntry;

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
        self.routes_entry(event.entry, allow_custom)
    }

    /// Whether an event with this catalogue row (`None`: a custom event) goes to this kind of
    /// stream.
    pub fn routes_entry(self, entry: Option<&CatalogueEntry>, allow_custom: bool) -> bool {
        match (self, entry) {
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
}

impl Sink {
    pub(crate) fn name(&self) -> &'static str {
        self.kind.as_str()
    }

    pub(crate) fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// Whether the event goes to this stream. The stream's engine counts it as `routed` when
    /// it is handed over ([`Delivery::submit`]) or dropped in front of it
    /// ([`Sink::count_refused`]): one counter, so the facade and the engine never disagree.
    pub(crate) fn routes(&self, event: &Event) -> bool {
        self.kind.routes(event, self.allow_custom)
    }

    /// Counts `n` events this stream would have taken that were dropped before its engine
    /// saw them: `routed` and dropped for `reason`, in the engine's counters.
    pub(crate) fn count_refused(&self, reason: DropReason, n: u64, why: &str) {
        if n > 0 {
            self.delivery.count_refused(reason, n, why);
        }
    }
}
