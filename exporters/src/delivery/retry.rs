//! The retry policy: a pure function from one attempt's outcome to what happens next.
//!
//! | outcome | decision |
//! |---|---|
//! | 2xx | [`Decision::Done`] (the body is not parsed) |
//! | 429, 502, 503, 504 | [`Decision::Backoff`], never exhausted: the destination says it is unavailable (an outage), not that the batch is at fault, so events wait in the queue and spool |
//! | connection error (including a connect timeout: a destination that never accepts) | [`Decision::Backoff`], never exhausted, for the same reason |
//! | 408, 500 and other 5xx, request timeout | [`Decision::Backoff`], or [`Decision::Drop`] with [`DropReason::RetriesExhausted`] once `attempt >= max_attempts`: these can be caused by the batch itself (a payload the server chokes on, a body too slow to send), and a batch that always fails must not block the stream for ever |
//! | 413 | [`Decision::Split`] when the batch has more than one item, else [`Decision::Drop`] with [`DropReason::TooLarge`] |
//! | other 4xx (and 1xx/3xx: redirects are never followed) | [`Decision::Drop`] with [`DropReason::Rejected`] |
//! | refused by the transport ([`Outcome::Rejected`], e.g. the app's relay connection) | [`Decision::Drop`] with [`DropReason::Rejected`] |
//!
//! Backoff is capped exponential with full jitter: `jitter × min(max_backoff, base × 2^(attempt-1))`,
//! and a `Retry-After` from the server (seconds or an HTTP-date) is a minimum on top of that,
//! clamped to `max_retry_after` (60 s by default) so a hostile or broken header cannot park the
//! queue for hours.

use std::time::{Duration, SystemTime};

use super::stats::DropReason;

/// What one attempt ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome<'a> {
    /// The server answered.
    Status {
        /// The HTTP status code.
        status: u16,
        /// The raw `Retry-After` header, if any.
        retry_after: Option<&'a str>,
    },
    /// The destination could not be reached (refused, reset, DNS, TLS, link down).
    Connection,
    /// No answer within the per-request timeout (after connecting).
    Timeout,
    /// The transport refused the batch for good (never retried).
    Rejected,
}

/// What to do with the batch after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Delivered.
    Done,
    /// Keep the batch and try again after this long.
    Backoff(Duration),
    /// Split the batch in halves and send each.
    Split,
    /// Give the batch up, counted under this reason.
    Drop(DropReason),
}

/// Backoff and give-up parameters. Defaults: base 500 ms, cap 30 s, `Retry-After` clamp 60 s,
/// 10 attempts (outages, i.e. connection errors and 429/502/503/504, excepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first backoff's upper bound (before jitter).
    pub base: Duration,
    /// The largest backoff the exponential part reaches.
    pub max_backoff: Duration,
    /// The largest `Retry-After` honoured; longer values are cut to this.
    pub max_retry_after: Duration,
    /// Attempts (counting the failed one) after which a batch answered with 408, 500 or another
    /// 5xx outside 502–504, or timed out, is dropped as [`DropReason::RetriesExhausted`].
    /// Outages (connection errors, 429, 502, 503, 504) never count.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// Decides what follows an attempt.
    ///
    /// `attempt` is 1 for the first failure of this batch (for connection errors: the number of
    /// consecutive connection failures of the destination), `items` the batch size, `now` the
    /// wall clock (for HTTP-date `Retry-After`) and `jitter` a number in `[0, 1)` (the caller
    /// passes `fastrand::f64()`; tests pass fixed values).
    pub(crate) fn decide(
        &self,
        outcome: Outcome<'_>,
        attempt: u32,
        items: usize,
        now: SystemTime,
        jitter: f64,
    ) -> Decision {
        let (retry_after, exhausts) = match outcome {
            Outcome::Status { status, .. } if (200..300).contains(&status) => {
                return Decision::Done
            }
            Outcome::Status { status: 413, .. } if items > 1 => return Decision::Split,
            Outcome::Status { status: 413, .. } => return Decision::Drop(DropReason::TooLarge),
            Outcome::Status {
                status,
                retry_after,
            } if status == 408 || status == 429 || (500..600).contains(&status) => (
                retry_after.and_then(|v| parse_retry_after(v, now)),
                !is_unavailable(status),
            ),
            Outcome::Status { .. } | Outcome::Rejected => {
                return Decision::Drop(DropReason::Rejected)
            }
            Outcome::Timeout => (None, true),
            Outcome::Connection => (None, false),
        };
        if exhausts && attempt >= self.max_attempts {
            return Decision::Drop(DropReason::RetriesExhausted);
        }
        let backoff = self.jittered(attempt, jitter);
        let floor = retry_after.map_or(Duration::ZERO, |d| d.min(self.max_retry_after));
        Decision::Backoff(backoff.max(floor))
    }

    /// `jitter × min(max_backoff, base × 2^(attempt-1))`.
    fn jittered(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let ceiling = self
            .base
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff);
        ceiling.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Whether `status` says the destination as a whole is unavailable (rate limited, overloaded,
/// down or behind a failing gateway) rather than that this batch failed: 429, 502, 503, 504.
/// Such answers are an outage, retried without limit like connection errors.
pub(crate) fn is_unavailable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date (a date in the past is zero).
/// Returns `None` for anything else.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_statuses_are_429_502_503_504() {
        assert!(is_unavailable(503) && is_unavailable(429));
        assert!(!is_unavailable(500) && !is_unavailable(408));
    }

    #[test]
    fn retry_after_in_seconds_parses_and_anything_else_is_none() {
        assert_eq!(
            parse_retry_after("3", SystemTime::now()),
            Some(Duration::from_secs(3))
        );
        assert_eq!(parse_retry_after("soon", SystemTime::now()), None);
    }

    const S: fn(u16) -> Outcome<'static> = |status| Outcome::Status {
        status,
        retry_after: None,
    };

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(60),
            max_attempts: 5,
        }
    }

    fn decide(outcome: Outcome<'_>, attempt: u32) -> Decision {
        policy().decide(outcome, attempt, 20, SystemTime::now(), 0.5)
    }

    #[test]
    fn every_2xx_is_done() {
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(decide(S(s), 1), Decision::Done, "{s}");
        }
    }

    #[test]
    fn retryable_statuses_back_off() {
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(matches!(decide(S(s), 1), Decision::Backoff(_)), "{s}");
        }
        assert!(matches!(decide(Outcome::Timeout, 1), Decision::Backoff(_)));
        assert!(matches!(
            decide(Outcome::Connection, 1),
            Decision::Backoff(_)
        ));
    }

    #[test]
    fn other_4xx_and_odd_statuses_are_rejected() {
        for s in [
            400, 401, 403, 404, 405, 409, 422, 451, 301, 302, 307, 308, 100,
        ] {
            assert_eq!(decide(S(s), 1), Decision::Drop(DropReason::Rejected), "{s}");
        }
        assert_eq!(
            decide(Outcome::Rejected, 1),
            Decision::Drop(DropReason::Rejected)
        );
    }

    #[test]
    fn payload_too_large_splits_then_drops_a_single_item() {
        let p = policy();
        let now = SystemTime::now();
        assert_eq!(p.decide(S(413), 1, 2, now, 0.5), Decision::Split);
        assert_eq!(
            p.decide(S(413), 1, 1, now, 0.5),
            Decision::Drop(DropReason::TooLarge)
        );
    }

    #[test]
    fn backoff_is_capped_exponential_with_full_jitter() {
        let p = policy();
        let now = SystemTime::now();
        let b = |attempt, jitter| match p.decide(S(503), attempt, 3, now, jitter) {
            Decision::Backoff(d) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(b(1, 1.0), Duration::from_millis(100));
        assert_eq!(b(2, 1.0), Duration::from_millis(200));
        assert_eq!(b(3, 1.0), Duration::from_millis(400));
        assert_eq!(b(4, 1.0), Duration::from_millis(800));
        assert_eq!(b(3, 0.5), Duration::from_millis(200));
        assert_eq!(b(1, 0.0), Duration::ZERO);
        // The cap holds even for absurd attempt numbers (connection errors never exhaust).
        let c = |attempt| match p.decide(Outcome::Connection, attempt, 3, now, 1.0) {
            Decision::Backoff(d) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(c(5), Duration::from_millis(1600));
        assert_eq!(c(6), Duration::from_secs(2));
        assert_eq!(c(1_000), Duration::from_secs(2));
    }

    #[test]
    fn retries_are_exhausted_except_for_outages() {
        for s in [408, 500, 501, 505, 599] {
            assert!(matches!(decide(S(s), 4), Decision::Backoff(_)), "{s}");
            assert_eq!(
                decide(S(s), 5),
                Decision::Drop(DropReason::RetriesExhausted),
                "{s}"
            );
        }
        assert_eq!(
            decide(Outcome::Timeout, 5),
            Decision::Drop(DropReason::RetriesExhausted)
        );
        // An outage of any length: the destination is down, not the batch at fault.
        for s in [429, 502, 503, 504] {
            assert!(matches!(decide(S(s), 1_000), Decision::Backoff(_)), "{s}");
        }
        assert!(matches!(
            decide(Outcome::Connection, 500),
            Decision::Backoff(_)
        ));
    }

    #[test]
    fn outage_backoff_stays_capped() {
        // Retrying for ever must not mean waiting longer and longer.
        assert_eq!(
            policy().decide(S(503), 1_000, 3, SystemTime::now(), 1.0),
            Decision::Backoff(Duration::from_secs(2))
        );
    }

    #[test]
    fn retry_after_seconds_is_a_minimum_and_clamped() {
        let with = |v: &'static str| Outcome::Status {
            status: 429,
            retry_after: Some(v),
        };
        assert_eq!(
            decide(with("7"), 1),
            Decision::Backoff(Duration::from_secs(7))
        );
        // Shorter than the jittered backoff: the backoff wins.
        assert_eq!(
            policy().decide(with("0"), 4, 3, SystemTime::now(), 1.0),
            Decision::Backoff(Duration::from_millis(800))
        );
        assert_eq!(
            decide(with("86400"), 1),
            Decision::Backoff(Duration::from_secs(60))
        );
        // Garbage is ignored, not fatal.
        assert_eq!(
            decide(with("later"), 1),
            Decision::Backoff(Duration::from_millis(50))
        );
    }

    #[test]
    fn retry_after_http_date() {
        let now = httpdate::parse_http_date("Wed, 25 Nov 2026 09:14:03 GMT").unwrap();
        let p = policy();
        let with = |v: &'static str| Outcome::Status {
            status: 503,
            retry_after: Some(v),
        };
        assert_eq!(
            p.decide(with("Wed, 25 Nov 2026 09:14:13 GMT"), 1, 3, now, 0.0),
            Decision::Backoff(Duration::from_secs(10))
        );
        // In the past: no floor.
        assert_eq!(
            p.decide(with("Wed, 25 Nov 2026 09:00:00 GMT"), 1, 3, now, 0.0),
            Decision::Backoff(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 10:14:03 GMT", now),
            Some(Duration::from_secs(3600))
        );
    }
}
