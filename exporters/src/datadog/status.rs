//! What a Datadog logs intake HTTP status means for the batch that got it.
//!
//! The intake's documented contract ("Send logs", API v2): 202 accepted; 400 bad request
//! (payload format); 401 unauthorized (missing API key); 403 forbidden (invalid API key); 408
//! request timeout; 413 payload too large (over 5 MB uncompressed); 429 too many requests; 5xx
//! internal errors, to be retried later.
//!
//! The engine decides with the shared [`RetryPolicy`](crate::delivery::RetryPolicy); this table
//! gives the Datadog stream its words for a dropped batch (they appear in `last_error` and the
//! log line, e.g. `HTTP 403 (forbidden: the API key is invalid)`), and a test keeps the two in
//! agreement for every status.

/// The delivery decision for a response status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DatadogOutcome {
    /// Delivered (202; any 2xx).
    Accepted,
    /// The batch is dropped, counted and logged once with this reason; retrying cannot help.
    Drop {
        /// Why, for the log line and the shutdown report (never contains the API key).
        reason: &'static str,
    },
    /// The body was too large: split the batch in halves and send each.
    Split,
    /// Transient: keep the batch and retry with backoff, honouring `Retry-After`.
    Retry,
}

/// Classifies an intake response status.
///
/// | status | outcome |
/// |---|---|
/// | 2xx (202) | [`Accepted`](DatadogOutcome::Accepted) |
/// | 400 | drop: "bad request: the intake rejected the payload format" |
/// | 401 | drop: "unauthorized: the API key is missing" |
/// | 403 | drop: "forbidden: the API key is invalid" |
/// | 413 | [`Split`](DatadogOutcome::Split) |
/// | 408, 429, 5xx | [`Retry`](DatadogOutcome::Retry) |
/// | other 4xx | drop: "rejected by the intake" |
/// | anything else (1xx, 3xx, ≥ 600) | drop: "unexpected status" (redirects are never followed: the HTTP transport answers a 3xx as the status, and it is dropped as `rejected`) |
pub(crate) fn classify(status: u16) -> DatadogOutcome {
    use DatadogOutcome::{Accepted, Drop, Retry, Split};
    match status {
        200..=299 => Accepted,
        400 => Drop {
            reason: "bad request: the intake rejected the payload format",
        },
        401 => Drop {
            reason: "unauthorized: the API key is missing",
        },
        403 => Drop {
            reason: "forbidden: the API key is invalid",
        },
        413 => Split,
        408 | 429 | 500..=599 => Retry,
        402..=499 => Drop {
            reason: "rejected by the intake",
        },
        _ => Drop {
            reason: "unexpected status",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DatadogOutcome::*;

    #[test]
    fn the_whole_status_table() {
        let table: &[(u16, DatadogOutcome)] = &[
            (200, Accepted),
            (202, Accepted),
            (204, Accepted),
            (
                400,
                Drop {
                    reason: "bad request: the intake rejected the payload format",
                },
            ),
            (
                401,
                Drop {
                    reason: "unauthorized: the API key is missing",
                },
            ),
            (
                403,
                Drop {
                    reason: "forbidden: the API key is invalid",
                },
            ),
            (
                404,
                Drop {
                    reason: "rejected by the intake",
                },
            ),
            (
                405,
                Drop {
                    reason: "rejected by the intake",
                },
            ),
            (408, Retry),
            (413, Split),
            (
                422,
                Drop {
                    reason: "rejected by the intake",
                },
            ),
            (429, Retry),
            (500, Retry),
            (502, Retry),
            (503, Retry),
            (504, Retry),
            (599, Retry),
            (
                100,
                Drop {
                    reason: "unexpected status",
                },
            ),
            (
                302,
                Drop {
                    reason: "unexpected status",
                },
            ),
            (
                600,
                Drop {
                    reason: "unexpected status",
                },
            ),
        ];
        for &(status, want) in table {
            assert_eq!(classify(status), want, "status {status}");
        }
    }

    #[test]
    fn agrees_with_the_engine_retry_policy_on_every_status() {
        use crate::delivery::retry::{Decision, Outcome, RetryPolicy};
        let policy = RetryPolicy::default();
        let now = std::time::SystemTime::now();
        for status in 100..700 {
            let decision = policy.decide(
                Outcome::Status {
                    status,
                    retry_after: None,
                },
                1,
                2,
                now,
                0.5,
            );
            let agrees = match classify(status) {
                Accepted => decision == Decision::Done,
                Split => decision == Decision::Split,
                Retry => matches!(decision, Decision::Backoff(_)),
                Drop { .. } => matches!(decision, Decision::Drop(_)),
            };
            assert!(
                agrees,
                "status {status}: {:?} vs {decision:?}",
                classify(status)
            );
        }
    }

    #[test]
    fn every_status_is_classified_without_panicking() {
        for status in 0..=u16::MAX {
            let outcome = classify(status);
            assert_eq!(outcome == Accepted, (200..300).contains(&status));
        }
    }
}
