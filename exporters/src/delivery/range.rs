//! Duration ranges and overflow-free deadlines: no setting or argument can make the engine
//! panic in time arithmetic (see `docs/RELIABILITY.md`, "Configuration ranges").
//!
//! | setting | range |
//! |---|---|
//! | request `timeout`, `shutdown_timeout` | above zero, at most [`MAX_DURATION_SETTING`] (1 h) |
//! | [`RetryPolicy`] `base`, `max_backoff`, `max_retry_after` | at most 1 h |
//! | relay / Datadog `max_delay` | at most [`MAX_BATCH_DELAY`] (60 s) |
//! | PostHog `flush_interval` | at most 30 s (the spec's cadence) |
//!
//! Arguments that are not settings (the `timeout` of a flush or shutdown call) accept any
//! value: [`deadline_after`] turns `Duration::MAX` into "decades from now" instead of a panic.

use std::time::{Duration, Instant};

use super::error::BuildError;
use super::retry::RetryPolicy;

/// The longest timeout or retry setting any builder accepts (1 hour).
pub const MAX_DURATION_SETTING: Duration = Duration::from_secs(3600);

/// The longest a partial relay or Datadog batch may wait (the runbook's 60 s bound for an
/// event to reach Datadog).
pub const MAX_BATCH_DELAY: Duration = Duration::from_secs(60);

/// How far away a deadline that would overflow `Instant` is put instead (about 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `Ok` when `value` lies in `min..=max`, else a [`BuildError::InvalidValue`] naming `setting`.
///
/// ```
/// use std::time::Duration;
/// use closedloop_telemetry_exporters::__private::delivery::check_range;
/// assert!(check_range("timeout", Duration::from_secs(1), Duration::ZERO, Duration::from_secs(2)).is_ok());
/// let err = check_range("timeout", Duration::MAX, Duration::ZERO, Duration::from_secs(2)).unwrap_err();
/// assert!(err.to_string().contains("timeout"));
/// ```
pub fn check_range(
    setting: &'static str,
    value: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), BuildError> {
    if value < min || value > max {
        let reason = if min > Duration::ZERO && value < min && min <= Duration::from_nanos(1) {
            "must be greater than zero".to_string()
        } else {
            format!("{value:?} is not within {min:?}..={max:?}")
        };
        return Err(BuildError::InvalidValue { setting, reason });
    }
    Ok(())
}

/// The checks of a [`RetryPolicy`]: every duration at most [`MAX_DURATION_SETTING`].
pub(crate) fn check_retry(retry: &RetryPolicy) -> Result<(), BuildError> {
    for (setting, value) in [
        ("retry_policy.base", retry.base),
        ("retry_policy.max_backoff", retry.max_backoff),
        ("retry_policy.max_retry_after", retry.max_retry_after),
    ] {
        check_range(setting, value, Duration::ZERO, MAX_DURATION_SETTING)?;
    }
    Ok(())
}

/// A positive duration of at most [`MAX_DURATION_SETTING`] (timeouts).
pub(crate) fn check_timeout(setting: &'static str, value: Duration) -> Result<(), BuildError> {
    check_range(
        setting,
        value,
        Duration::from_nanos(1),
        MAX_DURATION_SETTING,
    )
}

/// `now + timeout`, or about 30 years from `now` when that sum would overflow.
pub fn deadline_after(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout)
        .or_else(|| now.checked_add(timeout.min(FAR_FUTURE)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_timeouts_give_a_far_deadline_not_a_panic() {
        let now = Instant::now();
        assert!(deadline_after(now, Duration::MAX) > now + Duration::from_secs(3600));
        assert_eq!(deadline_after(now, Duration::ZERO), now);
    }

    #[test]
    fn ranges_name_the_setting() {
        let e = check_timeout("timeout", Duration::ZERO).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value for timeout: must be greater than zero"
        );
        let e = check_timeout("shutdown_timeout", Duration::MAX).unwrap_err();
        assert!(e.to_string().contains("shutdown_timeout"), "{e}");
        let retry = RetryPolicy {
            max_backoff: Duration::MAX,
            ..RetryPolicy::default()
        };
        let e = check_retry(&retry).unwrap_err();
        assert!(e.to_string().contains("retry_policy.max_backoff"), "{e}");
    }
}
