//! [`TelemetryHandle`] (what the app keeps) and [`TelemetryGuard`] (flushes on drop).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use closedloop_telemetry_exporters::__private::delivery::Delivery;
use closedloop_telemetry_exporters::__private::pipeline::Pipeline;
use closedloop_telemetry_exporters::Destination;
use closedloop_telemetry_exporters::{DeliveryReport, DeliveryStatsSnapshot};
use closedloop_telemetry_layers::ActivityLogStore;
use closedloop_telemetry_layers::{GatewaySession, LayerStats, LayerStatsSnapshot};
use opentelemetry_sdk::logs::SdkLoggerProvider;

use crate::consent::{Consent, ConsentError};
use crate::orphans::OrphanSpool;

/// A cheap, cloneable handle to the running telemetry: runtime state, stats, flush, shutdown.
#[derive(Debug, Clone)]
pub struct TelemetryHandle {
    pub(crate) inner: Arc<HandleInner>,
}

#[derive(Debug)]
pub(crate) struct HandleInner {
    pub(crate) provider: Option<SdkLoggerProvider>,
    /// The exporters' pipeline (`None` when telemetry is disabled).
    pub(crate) pipeline: Option<Pipeline>,
    /// Its destinations, in the order of its deliveries.
    pub(crate) destinations: Vec<Destination>,
    pub(crate) gateway: GatewaySession,
    pub(crate) activity: ActivityLogStore,
    pub(crate) layer_stats: Arc<LayerStats>,
    pub(crate) upstream: Arc<AtomicBool>,
    pub(crate) compute_target_id: String,
    /// Spool directories no configured stream uses (found at start, less those a consent
    /// denial deleted since).
    pub(crate) orphan_spools: Mutex<Vec<OrphanSpool>>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) final_report: Mutex<Option<DrainReport>>,
    /// The current consent choice (see [`crate::consent`]).
    pub(crate) consent: Mutex<Consent>,
    /// Held for the whole of a [`TelemetryHandle::set_consent`] (value, layer gate,
    /// destinations' gates, purge, file), so concurrent calls take effect one after another
    /// and the last one's choice is the state. [`TelemetryHandle::consent`] does not wait
    /// for it.
    pub(crate) consent_change: Mutex<()>,
    /// Where the choice is persisted.
    pub(crate) data_dir: Option<PathBuf>,
    /// Where the destinations' spools are (`None`: memory only).
    pub(crate) spool_base: Option<PathBuf>,
    /// The destination directories in it that this run's streams use.
    pub(crate) spool_dirs: Vec<String>,
    /// The app's name (its namespace in the default directories).
    pub(crate) app_name: String,
    /// `release_version` (for the crash events the facade writes itself).
    pub(crate) release: String,
    /// Whether crashes are captured (`TelemetryBuilder::capture_panics`): the panic hook writes
    /// for this telemetry and the run keeps a session marker.
    pub(crate) capture_panics: bool,
    /// This run's session marker (`session.rs`): `None` with telemetry disabled, consent
    /// denied, no data directory, or after a clean shutdown.
    pub(crate) session: Arc<Mutex<crate::session::Session>>,
}

/// Live counters of the layer and of every running stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryStats {
    /// What the layer did with the events it saw.
    pub layer: LayerStatsSnapshot,
    /// Records the pipeline could not decode (from other bridges only); each is also counted
    /// as `invalid` on the destinations it routed to.
    pub invalid_records: u64,
    /// Per stream, in the order they were configured.
    pub streams: Vec<StreamStats>,
    /// Spool directories for destinations no longer configured, with their bytes, as found at
    /// start (less those a consent denial deleted since); each is deleted by the first start
    /// after its expiry (see [`OrphanSpool`]).
    pub orphan_spools: Vec<OrphanSpool>,
}

/// The counters of one running stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    /// Which stream.
    pub kind: Destination,
    /// Events the app emitted in this run that route to this destination: waiting in the
    /// pipeline's queue, taken by its worker, or dropped at the queue's door (full, shut down)
    /// and counted there. The same number as `delivery.routed`; see `docs/RELIABILITY.md`,
    /// "Accounting".
    pub routed: u64,
    /// The delivery engine's counters (sent, queued, retried, dropped by reason, …).
    pub delivery: DeliveryStatsSnapshot,
}

impl TelemetryStats {
    /// The counters of one stream, if it runs.
    pub fn stream(&self, kind: Destination) -> Option<&StreamStats> {
        self.streams.iter().find(|s| s.kind == kind)
    }

    /// Events routed to PostHog, and to the diagnostics stream (relay or Datadog): the
    /// numbers of the example's `emitted:` line.
    pub fn routed(&self) -> (u64, u64) {
        let count = |wanted: &[Destination]| {
            self.streams
                .iter()
                .filter(|s| wanted.contains(&s.kind))
                .map(|s| s.routed)
                .sum()
        };
        (
            count(&[Destination::PostHog]),
            count(&[Destination::Relay, Destination::Datadog]),
        )
    }

    /// Events routed to OTLP, when it runs (the example's ` otlp=` count).
    pub fn routed_otlp(&self) -> Option<u64> {
        self.stream(Destination::Otlp).map(|s| s.routed)
    }
}

/// What a flush or a shutdown did by its deadline, per destination: returned by
/// [`TelemetryHandle::flush`], [`TelemetryHandle::shutdown`] and [`TelemetryGuard::shutdown`].
///
/// After a flush, what remained stays queued and goes out later. After a shutdown, what
/// remained was dropped (counted as `shutdown`) or, with a spool, stays on disk for the next
/// start (counted as `spooled`). `Display` gives one line: `posthog: sent=… dropped=…
/// remaining=…; relay: …`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DrainReport {
    /// Per destination: what remained at the deadline (see [`DeliveryReport`]).
    pub streams: Vec<(Destination, DeliveryReport)>,
}

impl DrainReport {
    /// Whether every destination delivered or settled everything by the deadline.
    pub fn is_complete(&self) -> bool {
        self.streams.iter().all(|(_, r)| r.is_complete())
    }

    /// Events not delivered by the deadline, over all destinations.
    pub fn remaining(&self) -> u64 {
        self.streams.iter().map(|(_, r)| r.remaining).sum()
    }
}

impl std::fmt::Display for DrainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_streams(f, &self.streams)
    }
}

/// `posthog: sent=… dropped=… remaining=…; relay: …`, or "no upstream stream".
fn write_streams(
    f: &mut std::fmt::Formatter<'_>,
    streams: &[(Destination, DeliveryReport)],
) -> std::fmt::Result {
    if streams.is_empty() {
        return write!(f, "telemetry: no upstream stream");
    }
    for (i, (kind, r)) in streams.iter().enumerate() {
        if i > 0 {
            write!(f, "; ")?;
        }
        write!(
            f,
            "{}: sent={} dropped={} remaining={}",
            kind.as_str(),
            r.stats.sent,
            r.stats.dropped.total(),
            r.remaining
        )?;
        if r.stats.spooled > 0 {
            write!(f, " (spooled for the next start: {})", r.stats.spooled)?;
        }
    }
    Ok(())
}

impl TelemetryHandle {
    /// The gateway-session handle: call `set` on every (re)connection.
    pub fn gateway(&self) -> &GatewaySession {
        &self.inner.gateway
    }

    /// The local activity log.
    pub fn activity(&self) -> &ActivityLogStore {
        &self.inner.activity
    }

    /// The computeTargetId every event carries.
    pub fn compute_target_id(&self) -> &str {
        &self.inner.compute_target_id
    }

    /// The app's name as used for its directories (see
    /// [`TelemetryBuilder::app_name`](crate::TelemetryBuilder::app_name)).
    pub fn app_name(&self) -> &str {
        &self.inner.app_name
    }

    /// Whether events currently reach the upstream streams (false while consent is denied).
    pub fn is_upstream_enabled(&self) -> bool {
        self.inner.pipeline.is_some() && self.inner.upstream.load(Ordering::Relaxed)
    }

    /// The destinations and their handles.
    fn deliveries(&self) -> impl Iterator<Item = (Destination, &Delivery)> + '_ {
        let deliveries = match &self.inner.pipeline {
            Some(p) => p.deliveries(),
            None => &[],
        };
        self.inner.destinations.iter().copied().zip(deliveries)
    }

    /// Reports by destination.
    fn by_destination(&self, reports: Vec<DeliveryReport>) -> Vec<(Destination, DeliveryReport)> {
        self.inner
            .destinations
            .iter()
            .copied()
            .zip(reports)
            .collect()
    }

    /// The user's current consent choice.
    pub fn consent(&self) -> Consent {
        *self.inner.consent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies and persists the user's choice. Returns how many queued events were purged.
    ///
    /// `Denied` takes effect at once: the layer stops making records, every stream's queued
    /// events (including those a retry was waiting for) are dropped and counted as `purged`, and
    /// no further connection is made. Every other spool under the spool directory is deleted
    /// too (destinations not configured in this run, spools of earlier processes; logged at
    /// `info`, not counted), except one another running process holds (left to it, with a
    /// warning: it purges it at its next start with the denial stored). Each engine closes
    /// its own gate too, so a record from a
    /// thread that passed the layer's gate a moment before is dropped (counted as `purged`)
    /// instead of sent, and a request already on the wire is waited for (within the shutdown
    /// timeout; it is not retried): once this returns, no request carrying an event leaves the
    /// process. The activity log keeps
    /// working. `Granted` resumes the streams. With `DO_NOT_TRACK=1` / `CL_TELEMETRY_DISABLED=1` there are no streams, so a
    /// grant changes nothing for this run, but the choice is still stored.
    ///
    /// The choice is applied even when it cannot be persisted; the error says why it was not.
    /// Calls from several threads take effect one at a time, whole, in the order they get
    /// through: the state afterwards (`consent()`, the gates, the stored file) is the last
    /// call's choice. Never blocks longer than the shutdown timeout (plus that of a call it
    /// waits behind).
    pub fn set_consent(&self, consent: Consent) -> Result<u64, ConsentError> {
        let inner = &self.inner;
        // One transition at a time, from the first step to the file: a Granted racing a
        // Denied must not leave the choice saying one thing and the gates doing the other.
        let _change = inner
            .consent_change
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *inner.consent.lock().unwrap_or_else(|p| p.into_inner()) = consent;
        let mut purged = 0;
        match consent {
            Consent::Granted => {
                if let Some(p) = &inner.pipeline {
                    p.resume();
                }
                inner.upstream.store(true, Ordering::Release);
                self.begin_session();
            }
            Consent::Denied => {
                inner.upstream.store(false, Ordering::Release);
                // No marker while denied: an abnormal end of this run is not reported.
                self.end_session(false);
                // Every destination's gate closes first, so nothing new is queued or sent;
                // the records already past the layer's gate wait in the pipeline's queue and
                // are purged with the rest, within one deadline that also waits for a
                // request still on the wire.
                if let Some(p) = &inner.pipeline {
                    purged = p.purge(inner.shutdown_timeout);
                }
                // Then every other spool of the app: destinations not configured in this run
                // (another URL or key, a stream off), `pid-<pid>` spools of earlier processes.
                // Deleted, not counted; a spool another running process holds is left to it.
                if let Some(base) = &inner.spool_base {
                    crate::orphans::purge_denied(base, &[], &inner.spool_dirs);
                    inner
                        .orphan_spools
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .retain(|o| o.dir.exists());
                }
            }
        }
        let dir = inner.data_dir.as_deref().ok_or(ConsentError::NoDataDir)?;
        crate::consent::store(dir, consent).map_err(|source| ConsentError::Io {
            dir: dir.to_path_buf(),
            source,
        })?;
        Ok(purged)
    }

    /// Starts this run's session marker, when crashes are captured, telemetry runs, consent is
    /// granted and there is a data directory (and none exists yet, nor has the run shut down; see `session.rs`).
    pub(crate) fn begin_session(&self) {
        let inner = &self.inner;
        let ready = inner.capture_panics && inner.accepts_crash_events();
        let (Some(dir), true) = (&inner.data_dir, ready) else {
            return;
        };
        let gateway = inner.gateway.get();
        inner
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .begin(dir, &inner.release, gateway.as_deref());
    }

    /// Removes this run's session marker: at a clean shutdown (`last`: none is made again), or
    /// at a consent denial.
    fn end_session(&self, last: bool) {
        self.inner
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .end(last);
    }

    /// Which upstream streams run (empty when telemetry is disabled).
    pub fn streams(&self) -> Vec<Destination> {
        self.inner.destinations.clone()
    }

    /// Live counters.
    pub fn stats(&self) -> TelemetryStats {
        TelemetryStats {
            layer: self.inner.layer_stats.snapshot(),
            invalid_records: self
                .inner
                .pipeline
                .as_ref()
                .map_or(0, Pipeline::invalid_records),
            streams: self
                .deliveries()
                .map(|(kind, d)| {
                    let delivery = d.stats();
                    StreamStats {
                        kind,
                        routed: delivery.routed,
                        delivery,
                    }
                })
                .collect(),
            orphan_spools: self
                .inner
                .orphan_spools
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// Sends everything queued now on every stream, waiting at most `timeout` overall.
    pub fn flush(&self, timeout: Duration) -> DrainReport {
        let reports = match &self.inner.pipeline {
            Some(p) => p.flush(timeout),
            None => Vec::new(),
        };
        DrainReport {
            streams: self.by_destination(reports),
        }
    }

    /// Delivers what is queued within the shutdown deadline (default 5 s), then stops every
    /// stream and reports what remained. Safe to call more than once and from any thread; later
    /// calls return the first report. Works for apps that installed a global subscriber and
    /// never drop the guard.
    pub fn shutdown(&self) -> DrainReport {
        let mut done = self
            .inner
            .final_report
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(report) = done.as_ref() {
            return report.clone();
        }
        let reports = match &self.inner.pipeline {
            Some(p) => p.shutdown(self.inner.shutdown_timeout),
            None => Vec::new(),
        };
        let report = DrainReport {
            streams: self.by_destination(reports),
        };
        if let Some(p) = &self.inner.provider {
            // The processors are already stopped; this only marks the provider shut so later
            // records are refused cheaply.
            let _ = p.shutdown_with_timeout(Duration::from_millis(100));
        }
        // A clean end: the next start has no abnormal exit to report.
        self.end_session(true);
        *done = Some(report.clone());
        report
    }
}

/// Flushes and stops every stream when dropped, within the shutdown deadline.
///
/// Keep it alive for the life of the app: `let _ = telemetry.guard;` drops it at once and
/// stops telemetry immediately; bind it to a named variable (`let _guard = ...`).
#[must_use = "dropping the guard shuts telemetry down; bind it to a named variable"]
#[derive(Debug)]
pub struct TelemetryGuard {
    pub(crate) handle: TelemetryHandle,
}

impl TelemetryGuard {
    /// The handle (clone it freely).
    pub fn handle(&self) -> &TelemetryHandle {
        &self.handle
    }

    /// Shuts down now and returns the report (dropping the guard afterwards does nothing).
    pub fn shutdown(self) -> DrainReport {
        self.handle.shutdown()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let report = self.handle.shutdown();
        if !report.is_complete() {
            tracing::warn!(
                target: "closedloop_telemetry::internal",
                %report,
                "telemetry shut down with events undelivered"
            );
        }
    }
}
