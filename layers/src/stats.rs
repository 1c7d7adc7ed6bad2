//! Counters the layer keeps, readable by the app at any time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What the layer did with the events it saw. All counters are monotonic.
#[derive(Debug, Default)]
pub struct LayerStats {
    pub(crate) emitted: AtomicU64,
    pub(crate) unknown_name: AtomicU64,
    pub(crate) invalid_name: AtomicU64,
    pub(crate) suppressed: AtomicU64,
    pub(crate) truncated_fields: AtomicU64,
    pub(crate) retyped_fields: AtomicU64,
}

/// A point-in-time copy of [`LayerStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerStatsSnapshot {
    /// Records emitted to the OpenTelemetry logger.
    pub emitted: u64,
    /// Events with a name outside the catalogue that were not forwarded.
    pub unknown_name: u64,
    /// Events whose `event` field was empty, whitespace or not a string.
    pub invalid_name: u64,
    /// Events ignored because telemetry was suppressed or they came from an HTTP stack.
    pub suppressed: u64,
    /// String fields cut to their bound.
    pub truncated_fields: u64,
    /// Known fields with the wrong type, moved to `extra` under their own name.
    pub retyped_fields: u64,
}

impl LayerStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> LayerStatsSnapshot {
        LayerStatsSnapshot {
            emitted: self.emitted.load(Relaxed),
            unknown_name: self.unknown_name.load(Relaxed),
            invalid_name: self.invalid_name.load(Relaxed),
            suppressed: self.suppressed.load(Relaxed),
            truncated_fields: self.truncated_fields.load(Relaxed),
            retyped_fields: self.retyped_fields.load(Relaxed),
        }
    }

    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
}
