//! One upstream stream as the facade sees it: its kind and its delivery engine. Routing is the
//! exporters' (see [`StreamKind::routes`]); the sink asks its engine.

use closedloop_telemetry_exporters::delivery::{Delivery, DropReason};
use closedloop_telemetry_exporters::posthog::wire::routes_to_posthog;
use closedloop_telemetry_exporters::relay::wire::routes_to_relay;
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

    /// Whether an event with this catalogue row (`None`: a custom event) goes to this kind of
    /// stream: the exporters' own rule (`posthog::wire::routes_to_posthog`,
    /// `relay::wire::routes_to_relay`), for when no stream runs (the audit).
    pub fn routes(self, entry: Option<&CatalogueEntry>, allow_custom: bool) -> bool {
        match self {
            StreamKind::PostHog => routes_to_posthog(entry),
            StreamKind::Relay | StreamKind::Datadog => routes_to_relay(entry, allow_custom),
        }
    }
}

/// A running stream.
#[derive(Debug, Clone)]
pub(crate) struct Sink {
    pub(crate) kind: StreamKind,
    pub(crate) delivery: Delivery,
}

impl Sink {
    pub(crate) fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// Whether an event with this catalogue row goes to this stream: asks its engine
    /// ([`Delivery::routes`]), a pure question. The engine counts the event as `routed` when
    /// it is handed over ([`Delivery::submit`]) or dropped in front of it
    /// ([`Sink::count_refused`]): one counter, so the facade and the engine never disagree.
    pub(crate) fn routes(&self, entry: Option<&CatalogueEntry>) -> bool {
        self.delivery.routes(entry)
    }

    /// Counts `n` events this stream would have taken that were dropped before its engine
    /// saw them: `routed` and dropped for `reason`, in the engine's counters.
    pub(crate) fn count_refused(&self, reason: DropReason, n: u64, why: &str) {
        if n > 0 {
            self.delivery.count_refused(reason, n, why);
        }
    }
}
