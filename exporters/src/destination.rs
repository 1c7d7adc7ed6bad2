//! [`Destination`]: where a stream of events goes. One name for the same thing in the stats,
//! the collector, the audit and the view.

use closedloop_telemetry_layers::__private::catalogue::CatalogueEntry;

use crate::posthog::wire::routes_to_posthog;
use crate::relay::wire::routes_to_relay;

/// A destination the library delivers to (and the endpoint of the local collector an event
/// arrived on). Serialized in lower case: `"posthog"`, `"relay"`, `"datadog"`, `"otlp"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Destination {
    /// PostHog product analytics.
    PostHog,
    /// The cloud relay (Datadog-bound diagnostics).
    Relay,
    /// Direct Datadog logs intake (diagnostics, when there is no relay).
    Datadog,
    /// An OpenTelemetry Collector over OTLP/HTTP (diagnostics, beside the relay or Datadog).
    Otlp,
}

impl Destination {
    /// Every destination, in display order.
    pub const ALL: [Destination; 4] = [
        Destination::PostHog,
        Destination::Relay,
        Destination::Datadog,
        Destination::Otlp,
    ];

    /// `"posthog"`, `"relay"`, `"datadog"` or `"otlp"`.
    ///
    /// ```
    /// use closedloop_telemetry_exporters::Destination;
    /// assert_eq!(Destination::PostHog.as_str(), "posthog");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Destination::PostHog => "posthog",
            Destination::Relay => "relay",
            Destination::Datadog => "datadog",
            Destination::Otlp => "otlp",
        }
    }

    /// Whether an event with this catalogue row (`None`: a custom event) goes to this
    /// destination: its wire format's own rule (`posthog::wire::routes_to_posthog`,
    /// `relay::wire::routes_to_relay`), for when no pipeline runs (the audit).
    pub(crate) fn routes(self, entry: Option<&CatalogueEntry>, allow_custom: bool) -> bool {
        match self {
            Destination::PostHog => routes_to_posthog(entry),
            Destination::Relay | Destination::Datadog | Destination::Otlp => {
                routes_to_relay(entry, allow_custom)
            }
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
