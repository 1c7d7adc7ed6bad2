//! [`VolumeOptions`]: one destination's rate limits and sample rates.

use std::collections::BTreeMap;

use super::RateLimit;

/// One destination's volume control: a rate limit for every event name (default
/// [`RateLimit::default`], 10/s with a burst of 100), limits for single names that replace it
/// (`None`: that name is never limited), and sample rates per name (none by default). Names are
/// the emitted dot names (`connection.degraded`). Set through
/// [`DeliveryOptionsBuilder`](crate::DeliveryOptionsBuilder).
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeOptions {
    pub(crate) default: Option<RateLimit>,
    pub(crate) per_name: BTreeMap<String, Option<RateLimit>>,
    pub(crate) sample: BTreeMap<String, f64>,
}

impl Default for VolumeOptions {
    fn default() -> Self {
        VolumeOptions {
            default: Some(RateLimit::default()),
            per_name: BTreeMap::new(),
            sample: BTreeMap::new(),
        }
    }
}

impl VolumeOptions {
    /// The limit for an event named `name` (`None`: not limited).
    pub fn rate_limit(&self, name: &str) -> Option<RateLimit> {
        match self.per_name.get(name) {
            Some(l) => *l,
            None => self.default,
        }
    }

    /// The limit for names without a limit of their own.
    pub fn default_rate_limit(&self) -> Option<RateLimit> {
        self.default
    }

    /// The sample rate of `name` (1: every event is kept).
    pub fn sample_rate(&self, name: &str) -> f64 {
        self.sample.get(name).copied().unwrap_or(1.0)
    }
}
