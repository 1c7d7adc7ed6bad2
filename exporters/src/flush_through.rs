//! [`FlushThrough`]: makes `SdkLoggerProvider::force_flush` reach our exporters' queues.
//!
//! In opentelemetry_sdk 0.33 the `LogExporter` trait has no flush: a provider's `force_flush`
//! drains its processor into the exporter, and there it stops. Our exporters hand records to a
//! delivery engine that batches them (PostHog waits up to 30 s for a batch to fill), so without
//! this wrapper a `force_flush` leaves events queued, not sent.

use std::time::Duration;

use opentelemetry::logs::Severity;
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord};
use opentelemetry_sdk::Resource;

use crate::exporter::StreamExporter;

/// Wraps a `LogProcessor` (the stock `BatchLogProcessor` or `SimpleLogProcessor` over one of our
/// exporters) so that `force_flush` also sends what the exporters hold, waiting up to their
/// flush deadline (5 s). Everything else is passed through unchanged.
///
/// ```no_run
/// use closedloop_telemetry_exporters::{FlushThrough, PostHogExporterBuilder};
/// use opentelemetry_sdk::logs::{BatchLogProcessor, SdkLoggerProvider};
///
/// let exporter = PostHogExporterBuilder::from_env().build().unwrap();
/// let processor = BatchLogProcessor::builder(exporter.clone()).build();
/// let provider = SdkLoggerProvider::builder()
///     .with_log_processor(FlushThrough::new(processor, [exporter]))
///     .build();
/// // … emit …
/// provider.force_flush().unwrap(); // delivered, not just queued
/// ```
#[derive(Debug)]
pub struct FlushThrough<P> {
    inner: P,
    exporters: Vec<StreamExporter>,
}

impl<P: LogProcessor> FlushThrough<P> {
    /// `inner` processes records as before; `exporters` (clones of the ones inside it) are
    /// flushed after it on every `force_flush`.
    pub fn new(inner: P, exporters: impl IntoIterator<Item = StreamExporter>) -> Self {
        FlushThrough {
            inner,
            exporters: exporters.into_iter().collect(),
        }
    }
}

impl<P: LogProcessor> LogProcessor for FlushThrough<P> {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        self.inner.emit(record, scope);
    }

    /// Flushes the inner processor into the exporters, then every exporter to its destination;
    /// the first error is returned after all were tried.
    fn force_flush(&self) -> OTelSdkResult {
        let first = self.inner.force_flush();
        self.exporters
            .iter()
            .map(StreamExporter::force_flush)
            .fold(first, |acc, r| acc.and(r))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        self.inner.event_enabled(level, target, name)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
