//! The facade's `TelemetryStats`: every stream's engine, and the facade's `routed` per stream
//! is the engine's.

use closedloop_telemetry::TelemetryStats;

use super::Accounted;

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
