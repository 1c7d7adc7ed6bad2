//! The records a collector keeps: accepted events, rejected requests, and counters.

use std::time::SystemTime;

use serde_json::Value;

pub use closedloop_telemetry_exporters::Destination;

/// One accepted event.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The endpoint it arrived on.
    pub stream: Destination,
    /// The PostHog event name, the relay message's `event`, the Datadog item's `message`, or
    /// the OTLP record's `eventName`.
    pub name: String,
    /// The PostHog `uuid`, the relay message's `id`, the Datadog item's `id`, or the OTLP
    /// record's `event.id`, when present.
    pub id: Option<String>,
    /// The event as sent: the PostHog batch entry, the relay message, the Datadog item, or the
    /// OTLP log record as OTLP/JSON.
    pub body: Value,
    /// When the collector accepted it.
    pub at: SystemTime,
}

/// One rejected request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The endpoint it was sent to (`None` for an unknown path).
    pub stream: Option<Destination>,
    /// The HTTP status the collector answered.
    pub status: u16,
    /// Why, as sent in the response body (at most
    /// [`MAX_REASON_BYTES`](super::MAX_REASON_BYTES)).
    pub reason: String,
    /// When.
    pub at: SystemTime,
}

/// Something that reached the collector, as delivered to subscribers.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrival {
    /// An accepted event.
    Received(Received),
    /// A rejected request.
    Rejected(Rejected),
}

/// Counters of a collector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Events accepted on the PostHog endpoint.
    pub posthog: u64,
    /// Messages accepted on the relay endpoint.
    pub relay: u64,
    /// Items accepted on the Datadog endpoint.
    pub datadog: u64,
    /// Log records accepted on the OTLP endpoint.
    pub otlp: u64,
    /// Requests answered with an error status.
    pub rejected_requests: u64,
    /// Accepted events (counted above) that are not kept: the oldest are dropped once the
    /// collector keeps its maximum number or bytes of events, and an event larger than the byte
    /// bound alone is never kept (see [`CollectorBuilder`](super::CollectorBuilder)).
    pub not_kept: u64,
    /// Rejected requests (counted in `rejected_requests`) no longer kept: the oldest are
    /// dropped past [`MAX_KEPT_REJECTIONS`](super::MAX_KEPT_REJECTIONS).
    pub rejections_not_kept: u64,
    /// Arrivals a subscriber missed because its buffer was full.
    pub subscriber_drops: u64,
}

impl Counts {
    /// Accepted events on one stream.
    pub fn get(&self, stream: Destination) -> u64 {
        match stream {
            Destination::PostHog => self.posthog,
            Destination::Relay => self.relay,
            Destination::Datadog => self.datadog,
            Destination::Otlp => self.otlp,
        }
    }

    /// Accepted events on all streams.
    pub fn total(&self) -> u64 {
        self.posthog + self.relay + self.datadog + self.otlp
    }

    pub(super) fn add(&mut self, stream: Destination, n: u64) {
        match stream {
            Destination::PostHog => self.posthog += n,
            Destination::Relay => self.relay += n,
            Destination::Datadog => self.datadog += n,
            Destination::Otlp => self.otlp += n,
        }
    }
}
