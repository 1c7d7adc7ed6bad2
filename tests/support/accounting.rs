//! The accounting invariant: the exporters' tests' version (one engine's counters), plus the
//! facade's `TelemetryStats`.

#![allow(dead_code)]

use closedloop_telemetry::TelemetryStats;

#[path = "../../exporters/tests/support/accounting.rs"]
mod engine;

#[allow(unused_imports)] // not every test binary asserts accounting
pub use engine::{assert_accounting, Accounted};

impl Accounted for TelemetryStats {
    fn check(&self, what: &str) {
        for s in &self.streams {
            assert_eq!(
                s.routed, s.delivery.routed,
                "{what}: the facade and the {:?} engine count the same routed events: {s:?}",
                s.kind
            );
            s.delivery.check(&format!("{what} ({:?})", s.kind));
        }
    }
}
