//! Sending: take the next batch, exchange it with the transport while still serving
//! commands, and apply the retry policy's decision.

use std::time::{Instant, SystemTime};

use closedloop_telemetry_layers::truncate::keep_head;

use super::{sleep_until, Worker, LAST_ERROR_MAX_BYTES};
use crate::delivery::batcher::{is_expired, take_batch, Batch};
use crate::delivery::body::build_request;
use crate::delivery::retry::{Decision, Outcome};
use crate::delivery::stats::DropReason;
use crate::delivery::transport::{Request, Response, TransportError};
use crate::redact::Redactor;

impl Worker {
    pub(super) async fn send_next(&mut self) {
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
            self.backlog.settle(&expired, Instant::now());
            if items.is_empty() {
                return;
            }
            self.inflight.push_back(Batch::new(items));
        }
        let Some(batch) = self.inflight.front_mut() else {
            return;
        };
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
        let Some(request) = request else {
            self.inflight.pop_front();
            self.backlog.settle(&expired_items, Instant::now());
            return;
        };
        // Acknowledged with the rest of the batch (acks cover everything before them).
        self.backlog.forget(&expired_items);
        self.stats.request();
        // `None`: abandoned at the shutdown deadline; finish() counts the batch.
        if let Some(result) = self.exchange(request).await {
            self.on_result(result, attempts);
        }
    }

    /// Sends one request, still serving commands meanwhile; `None` when the shutdown
    /// deadline passes first (the request is abandoned).
    async fn exchange(&mut self, request: Request) -> Option<Result<Response, TransportError>> {
        let transport = self.transport.clone();
        let send = tokio::time::timeout(self.cfg.request_timeout, transport.send(request));
        tokio::pin!(send);
        loop {
            // The spool's sync interval holds while a request hangs, too.
            let deadline = [self.next_deadline(), self.backlog.sync_due()]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                result = &mut send => return Some(result.unwrap_or(Err(TransportError::Timeout))),
                cmd = self.rx.recv(), if !self.closed => self.on_command(cmd),
                _ = sleep_until(deadline) => {
                    let now = Instant::now();
                    self.spool_tick(now);
                    self.settle_flushes(now);
                    if self.shutdown.as_ref().is_some_and(|(d, _)| *d <= now) {
                        return None;
                    }
                }
            }
        }
    }

    fn on_result(&mut self, result: Result<Response, TransportError>, attempts: u32) {
        let items = self.inflight.front().map_or(0, |b| b.items.len());
        let (outcome, error) = match &result {
            Ok(r) => (
                Outcome::Status {
                    status: r.status,
                    retry_after: r.retry_after.as_deref(),
                },
                self.describe(r),
            ),
            Err(TransportError::Timeout) => (Outcome::Timeout, "request timed out".to_string()),
            Err(e) => (Outcome::Connection, e.to_string()),
        };
        let connection = outcome == Outcome::Connection;
        let attempt = 1 + if connection {
            self.connect_failures
        } else {
            attempts
        };
        let decision =
            self.cfg
                .retry
                .decide(outcome, attempt, items, SystemTime::now(), fastrand::f64());
        if !connection {
            self.connect_failures = 0;
        }
        if decision != Decision::Done {
            self.stats.set_last_error(error.clone());
        }
        match decision {
            Decision::Done => {
                if let Some(batch) = self.inflight.pop_front() {
                    self.backlog.settle(&batch.items, Instant::now());
                }
                self.stats.delivered(items as u64);
                self.backoff_until = None;
            }
            Decision::Backoff(wait) => {
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
                    self.backlog.settle(&batch.items, Instant::now());
                }
                let first = self.stats.dropped(reason, items as u64, &error);
                if let (DropReason::Rejected, Ok(r)) = (reason, &result) {
                    // Log once per status: the first rejection was already logged by the stats.
                    if self.warned_status.insert(r.status) && !first {
                        tracing::warn!(
                            stream = self.stream.name(),
                            status = r.status,
                            error = %error,
                            "telemetry batch rejected by the server and dropped"
                        );
                    }
                }
            }
        }
    }

    /// `"HTTP 400 (<meaning>): <reason>"`: the stream's reading of the status, if it has one,
    /// and the server's text, redacted (the stream's own credentials, then every pattern of
    /// the [`Redactor`]) before it is truncated.
    fn describe(&self, r: &Response) -> String {
        let mut text = r.reason.trim().to_string();
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
