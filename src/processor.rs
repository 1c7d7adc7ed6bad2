//! The facade's log processor: hands every record straight to the exporters' own bounded
//! queues. The exporters batch, retry and spool on their workers, so a second queue in front
//! of them (the SDK's `BatchLogProcessor`) would only add a copy of every record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use closedloop_telemetry_exporters::decode::{decode, DecodeError, DecodeOptions};
use closedloop_telemetry_exporters::delivery::{Delivery, DeliveryReport};
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord};

use crate::sink::Sink;

/// Decodes each record once and submits the event to every sink that routes it.
#[derive(Debug)]
pub(crate) struct FanoutProcessor {
    sinks: Arc<Vec<Sink>>,
    decode: DecodeOptions,
    invalid: Arc<AtomicU64>,
}

impl FanoutProcessor {
    pub(crate) fn new(
        sinks: Arc<Vec<Sink>>,
        decode: DecodeOptions,
        invalid: Arc<AtomicU64>,
    ) -> Self {
        FanoutProcessor {
            sinks,
            decode,
            invalid,
        }
    }
}

impl LogProcessor for FanoutProcessor {
    fn emit(&self, record: &mut SdkLogRecord, _scope: &InstrumentationScope) {
        let event = match decode(record, &self.decode) {
            Ok(event) => event,
            Err(DecodeError::NoEventName | DecodeError::ActivityEntry) => return,
            Err(_) => {
                // Only records from other bridges can get here (the layer always sets a
                // name and a computeTargetId); count them where the app can see them.
                self.invalid.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let mut targets = self.sinks.iter().filter(|s| s.routes(&event)).peekable();
        while let Some(sink) = targets.next() {
            // The last target takes the event itself; earlier ones get a copy.
            let ev = if targets.peek().is_some() {
                event.clone()
            } else {
                return drop(sink.delivery().submit(vec![event]));
            };
            let _ = sink.delivery().submit(vec![ev]);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let report = flush_all(&self.sinks, crate::DEFAULT_SHUTDOWN_TIMEOUT);
        if report.iter().all(|(_, r)| r.is_complete()) {
            Ok(())
        } else {
            Err(OTelSdkError::Timeout(crate::DEFAULT_SHUTDOWN_TIMEOUT))
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        shutdown_all(&self.sinks, timeout).map(|_| ())
    }
}

/// Flushes every sink in parallel, all within one deadline.
pub(crate) fn flush_all(sinks: &[Sink], timeout: Duration) -> Vec<(&'static str, DeliveryReport)> {
    in_parallel(sinks, |d| d.flush(timeout))
}

/// Shuts every sink down in parallel, all within one deadline. `AlreadyShutdown` when every
/// sink was already shut.
pub(crate) fn shutdown_all(
    sinks: &[Sink],
    timeout: Duration,
) -> Result<Vec<(&'static str, DeliveryReport)>, OTelSdkError> {
    let reports: Vec<_> = in_parallel(sinks, |d| d.shutdown(timeout))
        .into_iter()
        .filter_map(|(name, r)| r.ok().map(|r| (name, r)))
        .collect();
    if reports.is_empty() && !sinks.is_empty() {
        return Err(OTelSdkError::AlreadyShutdown);
    }
    Ok(reports)
}

fn in_parallel<T: Send>(
    sinks: &[Sink],
    f: impl Fn(&Delivery) -> T + Sync,
) -> Vec<(&'static str, T)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = sinks
            .iter()
            .map(|sink| {
                let f = &f;
                (sink.name(), s.spawn(move || f(sink.delivery())))
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|(name, h)| h.join().ok().map(|r| (name, r)))
            .collect()
    })
}
