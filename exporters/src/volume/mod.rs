//! Volume control: per-name token buckets applied at the pipeline's door (`limiter.rs`, pure
//! [`bucket`]), deterministic sampling by event id ([`sampler`]), and the public settings
//! ([`RateLimit`], [`VolumeOptions`]). See `docs/RELIABILITY.md`, "Volume control".

pub(crate) mod bucket;
mod limit;
pub(crate) mod limiter;
mod options;
pub(crate) mod report;
pub(crate) mod sampler;

pub use limit::{ParseRateLimitError, RateLimit};
pub use options::VolumeOptions;

/// The event the pipeline emits to report what it rate-limited.
pub(crate) use closedloop_telemetry_layers::__private::catalogue::RATE_LIMITED as REPORT_EVENT;

/// Told each rate-limit report as it is made, on the pipeline's background: per destination
/// (its stream name) the report's window and what was limited there, by name (PostHog's
/// included, which gets no report event). The facade writes it to the activity log.
pub type LimitObserver =
    std::sync::Arc<dyn Fn(&str, std::time::Duration, &[(String, u64)]) + Send + Sync>;
