//! What the relay and direct-Datadog streams share: their settings, default batch delay and
//! maximum age. Imports neither stream.

mod settings;

use std::time::Duration;

/// A diagnostics batch (relay or Datadog) is sent at most this long after its first message
/// was queued, by default.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(2);

/// Diagnostics whose event time is older than this are expired (counted as `expired`), never
/// sent: Datadog's intake refuses them ("up to 18 hours in the past"), directly or through the
/// relay, which forwards to it.
pub const MAX_AGE: Duration = Duration::from_secs(18 * 3600);

pub(crate) use settings::DiagnosticsSettings;
