//! Sending: take the next batch and build its request (the background carries it to the
//! transport), then apply the retry policy's decision to the outcome.

use std::time::{Duration, Instant, SystemTime};

use closedloop_telemetry_layers::__private::truncate::keep_head;

use super::{Worker, LAST_ERROR_MAX_BYTES};
use crate::delivery::batcher::{is_expired, take_batch, Batch};
use crate::delivery::body::build_request;
use crate::delivery::retry::{Decision, Outcome};
use crate::delivery::stats::DropReason;
use crate::delivery::tap::SentOutcome;
use crate::delivery::transport::{Request, Response, TransportError};
use crate::redact::Redactor;

/// The slowest uplink a request body is given time for: 50 KB/s (400 kbit/s).
pub(crate) const MIN_UPLINK_BYTES_PER_SEC: u64 = 50_000;

/// How long one exchange may take: `request_timeout` to connect (the transport's own connect
/// timeout fires first, so a destination that never accepts is always a connection failure,
/// an outage), then `request_timeout` plus the body's time at [`MIN_UPLINK_BYTES_PER_SEC`] to
/// send it and get the answer. A 5 MB batch on a 100 KB/s uplink therefore fits.
pub(crate) fn exchange_budget(request_timeout: Duration, body_bytes: usize) -> Duration {
    let transfer =
        Duration::from_millis((body_bytes as u64).saturating_mul(1000) / MIN_UPLINK_BYTES_PER_SEC);
    request_timeout
        .saturating_add(request_timeout)
        .saturating_add(transfer)
}

impl Worker {
    /// The next request to send, if any: the batch in front (a retry) or a new one. Marks the
    /// worker as sending until [`Worker::finish_send`].
    pub(crate) fn start_send(&mut self) -> Option<Request> {
        if self.is_denied() || self.sending {
            return None;
        }
        let now = SystemTime::now();
        if self.inflight.is_empty() {
            self.backlog
                .refill(self.cfg.limits.max_items, Instant::now());
            let (items, expired) =
                take_batch(&mut self.backlog, &self.cfg.limits, self.overhead, now);
            self.drop_items(
                DropReason::Expired,
                expired.len(),
                "older than the expiry age",
            );
            self.tap_expired(&expired);
            self.backlog.settle(&expired, Instant::now());
            if items.is_empty() {
                return None;
            }
            self.inflight.push_back(Batch::new(items));
        }
        let batch = self.inflight.front_mut()?;
        // A batch that waited through long backoffs may have expired meanwhile.
        let expiry = self.cfg.limits.expiry;
        let (expired_items, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut batch.items)
            .into_iter()
            .partition(|i| is_expired(i, expiry, now));
        batch.items = kept;
        let expired = expired_items.len();
        let request = (!batch.items.is_empty())
            .then(|| build_request(&*self.stream, &batch.items, self.cfg.gzip));
        let attempts = batch.attempts;
        self.drop_items(DropReason::Expired, expired, "older than the expiry age");
        self.tap_expired(&expired_items);
        let Some(request) = request else {
            self.inflight.pop_front();
            self.backlog.settle(&expired_items, Instant::now());
            return None;
        };
        // Dropped and counted: acknowledged on their own (never past an item in flight).
        self.backlog.settle(&expired_items, Instant::now());
        self.stats.request();
        self.sending = true;
        self.attempts = attempts;
        Some(request)
    }

    /// How long the exchange of `request` may take (see [`exchange_budget`]).
    pub(crate) fn budget(&self, request: &Request) -> Duration {
        exchange_budget(self.cfg.request_timeout, request.body.len())
    }

    /// The transport, for the background to send with.
    pub(crate) fn transport(&self) -> std::sync::Arc<dyn crate::delivery::transport::Transport> {
        self.transport.clone()
    }

    /// The outcome of the request [`Worker::start_send`] gave out: `None` when it was
    /// abandoned at the shutdown deadline (`finish` counts the batch).
    pub(crate) fn finish_send(&mut self, result: Option<Result<Response, TransportError>>) {
        self.sending = false;
        if let Some(result) = result {
            self.on_result(result, self.attempts);
        }
        self.answer_purges();
    }

    /// The outcome of one exchange: classify it, decide (retry policy), then apply the
    /// decision (queue and counters, with logging). Every send's outcome passes through here.
    fn on_result(&mut self, result: Result<Response, TransportError>, attempts: u32) {
        let items = self.inflight.front().map_or(0, |b| b.items.len());
        let (outcome, error) = self.classify(&result);
        if let Err(TransportError::Tls(reason)) = &result {
            self.warn_tls(reason);
        }
        let connection = outcome == Outcome::Connection;
        let decision = self.decide(outcome, attempts, items);
        if decision != Decision::Done {
            self.stats.set_last_error(error.clone());
        }
        let status = result.as_ref().ok().map(|r| r.status);
        let partial = match (&result, decision) {
            (Ok(r), Decision::Done) => self.stream.partially_rejected(&r.body),
            _ => None,
        };
        self.apply(decision, connection, items, &error, status);
        if let Some((rejected, message)) = partial {
            self.count_partial(items, rejected, &message);
        }
    }

    /// A 2xx that rejected some of the batch (OTLP's `partial_success`): `apply` counted the
    /// whole batch as sent; move the rejected ones to `rejected` (at most the batch) and log the
    /// server's message once per stream.
    fn count_partial(&mut self, items: usize, rejected: u64, message: &str) {
        let rejected = rejected.min(items as u64);
        let mut text = message.trim().to_string();
        self.stream.redact(&mut text);
        let text = Redactor::shared().redact(&text).into_owned();
        let detail = format!(
            "partial success: {rejected} of {items} rejected: {}",
            keep_head(&text, LAST_ERROR_MAX_BYTES)
        );
        let logged = self
            .stats
            .reclassify_sent(rejected, DropReason::Rejected, &detail);
        self.stats.set_last_error(detail.clone());
        if !std::mem::replace(&mut self.warned_partial, true) && !logged {
            tracing::warn!(
                stream = self.stream.name(),
                rejected,
                error = %detail,
                "telemetry batch partly rejected by the server; those events are dropped"
            );
        }
    }

    /// What happened, for the retry policy, and as text for `last_error` and logs (redacted).
    fn classify<'r>(&self, result: &'r Result<Response, TransportError>) -> (Outcome<'r>, String) {
        match result {
            Ok(r) => (
                Outcome::Status {
                    status: r.status,
                    retry_after: r.retry_after.as_deref(),
                },
                self.describe(r),
            ),
            Err(TransportError::Timeout) => (Outcome::Timeout, "request timed out".to_string()),
            Err(TransportError::Rejected(reason)) => {
                let mut text = reason.clone();
                self.stream.redact(&mut text);
                let text = Redactor::shared().redact(&text).into_owned();
                (
                    Outcome::Rejected,
                    format!("rejected: {}", keep_head(&text, LAST_ERROR_MAX_BYTES)),
                )
            }
            Err(e) => (Outcome::Connection, e.to_string()),
        }
    }

    /// Logs a failed TLS handshake once per destination and reason (a certificate problem
    /// does not fix itself between retries, so one line says it): the stream, the host and
    /// rustls's reason. The events stay queued and spooled, retried as in an outage.
    fn warn_tls(&mut self, reason: &str) {
        const MAX_REASONS: usize = 8;
        if self.warned_tls.len() < MAX_REASONS && self.warned_tls.insert(reason.to_string()) {
            tracing::warn!(
                stream = self.stream.name(),
                error = %reason,
                "telemetry TLS handshake failed: this machine does not accept the server's \
                 certificate (events are kept and retried; see docs/RELIABILITY.md, \
                 \"Corporate networks\")"
            );
        }
    }

    /// The retry decision for the batch in front: the policy's, except that a batch whose
    /// consent was denied while it was on the wire gets no second attempt (dropped as
    /// `purged`, and added to the waiting purges' counts). Connection failures count per
    /// destination, other failures per batch.
    fn decide(&mut self, outcome: Outcome<'_>, attempts: u32, items: usize) -> Decision {
        let connection = outcome == Outcome::Connection;
        let attempt = 1 + if connection {
            self.connect_failures
        } else {
            attempts
        };
        let mut decision =
            self.cfg
                .retry
                .decide(outcome, attempt, items, SystemTime::now(), fastrand::f64());
        if let Outcome::Status { status, .. } = outcome {
            let error = !(200..300).contains(&status);
            if error && matches!(decision, Decision::Backoff(_)) && !self.stream.retries(status) {
                decision = Decision::Drop(DropReason::Rejected);
            }
        }
        if self.is_denied() && matches!(decision, Decision::Backoff(_) | Decision::Split) {
            decision = Decision::Drop(DropReason::Purged);
            for p in &mut self.purge_replies {
                p.purged += items as u64;
            }
        }
        if !connection {
            self.connect_failures = 0;
        }
        decision
    }

    /// Carries out a decision on the batch in front: settle and count it (delivered or
    /// dropped), schedule the backoff, or split it.
    fn apply(
        &mut self,
        decision: Decision,
        connection: bool,
        items: usize,
        error: &str,
        status: Option<u16>,
    ) {
        match decision {
            Decision::Done => {
                if let Some(batch) = self.inflight.pop_front() {
                    self.tap(&batch.items, || SentOutcome::Sent);
                    self.backlog.settle(&batch.items, Instant::now());
                }
                self.stats.delivered(items as u64);
                self.backoff_until = None;
            }
            Decision::Backoff(wait) => {
                let first_failure = match self.inflight.front() {
                    Some(_) if connection => self.connect_failures == 0,
                    Some(batch) => batch.attempts == 0,
                    None => false,
                };
                if first_failure {
                    // Published once per batch, not on every retry.
                    if let Some(batch) = self.inflight.front() {
                        let spooled = self.backlog.is_durable();
                        let error = error.to_string();
                        self.tap(&batch.items, || SentOutcome::Retrying { spooled, error });
                    }
                }
                if connection {
                    self.connect_failures = self.connect_failures.saturating_add(1);
                } else if let Some(batch) = self.inflight.front_mut() {
                    batch.attempts += 1;
                }
                self.stats.retry();
                self.backoff_until = Some(crate::delivery::deadline_after(Instant::now(), wait));
            }
            Decision::Split => {
                if let Some(batch) = self.inflight.pop_front() {
                    let (front, back) = batch.split();
                    self.inflight.push_front(back);
                    self.inflight.push_front(front);
                }
            }
            Decision::Drop(reason) => {
                if let Some(batch) = self.inflight.pop_front() {
                    self.tap(&batch.items, Self::dropped_outcome(reason, error));
                    self.backlog.settle(&batch.items, Instant::now());
                }
                let first = self.stats.dropped(reason, items as u64, error);
                if let (DropReason::Rejected, Some(status)) = (reason, status) {
                    self.warn_rejected(status, error, first);
                }
            }
        }
    }

    fn tap_expired(&self, items: &[crate::delivery::wire_format::Item]) {
        let why = "older than the expiry age";
        self.tap(items, Self::dropped_outcome(DropReason::Expired, why));
    }

    /// Logs a rejected batch once per status (for a 3xx: with its redacted `Location`), unless
    /// the stats' first-drop warning (`already_logged`) just did.
    fn warn_rejected(&mut self, status: u16, error: &str, already_logged: bool) {
        if self.warned_status.insert(status) && !already_logged {
            tracing::warn!(
                stream = self.stream.name(),
                status,
                error = %error,
                "telemetry batch rejected by the server and dropped"
            );
        }
    }

    /// `"HTTP 400 (<meaning>): <reason>"`: the stream's reading of the status, if it has one,
    /// and the server's text, redacted (the stream's own credentials, then every pattern of
    /// the [`Redactor`]) before it is truncated.
    fn describe(&self, r: &Response) -> String {
        let own = (!(200..300).contains(&r.status))
            .then(|| self.stream.reason(&r.body))
            .flatten();
        let mut text = own.unwrap_or_else(|| r.reason.clone()).trim().to_string();
        self.stream.redact(&mut text);
        let text = Redactor::shared().redact(&text).into_owned();
        let reason = keep_head(&text, LAST_ERROR_MAX_BYTES);
        let status = match self.stream.explain(r.status) {
            Some(meaning) => format!("HTTP {} ({meaning})", r.status),
            None => format!("HTTP {}", r.status),
        };
        if reason.is_empty() {
            status
        } else {
            format!("{status}: {reason}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exchange_budget_outlasts_the_connect_timeout_and_a_slow_uplink() {
        let t = Duration::from_secs(10);
        // Connecting alone can never use up the budget: a connect timeout is always reported
        // by the transport (a connection failure), not by the engine's timeout.
        assert!(exchange_budget(t, 0) > t);
        // A full 5 MB Datadog batch on a 100 KB/s uplink takes 50 s.
        let five_mb = 5 * 1024 * 1024;
        assert!(exchange_budget(t, five_mb) > Duration::from_secs(50) + t);
        assert_eq!(exchange_budget(Duration::MAX, usize::MAX), Duration::MAX);
    }
}
