//! The accounting invariant on one engine's counters or on the facade's `TelemetryStats`,
//! asserted the same way by every test that has the stats at hand.

use closedloop_telemetry_exporters::DeliveryStatsSnapshot;

mod facade;

/// What a test can check the invariant on: one engine's counters, or the facade's.
pub trait Accounted {
    /// Asserts the invariant; `what` names the caller in the failure message.
    fn check(&self, what: &str);
}

impl Accounted for DeliveryStatsSnapshot {
    fn check(&self, what: &str) {
        assert_eq!(
            self.routed + self.replayed,
            self.sent + self.dropped.total() + self.queued,
            "{what}: routed + replayed = sent + dropped.total() + queued must hold: {self:?}"
        );
    }
}

impl<T: Accounted> Accounted for &T {
    fn check(&self, what: &str) {
        (**self).check(what)
    }
}

/// Asserts `routed + replayed = sent + dropped.total() + queued` for every stream (see
/// docs/RELIABILITY.md, "Accounting"), and for the facade that its `routed` per stream is the
/// engine's. Call it at the end of every fault, spool and consent test.
#[track_caller]
pub fn assert_accounting(stats: impl Accounted) {
    stats.check(&format!("{}", std::panic::Location::caller()));
}
