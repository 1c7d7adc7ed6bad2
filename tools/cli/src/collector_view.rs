//! The view of a local collector: its three destinations as the "sent" part (what arrived,
//! and the requests it rejected with the validation error), and their counts as health.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};

use closedloop_telemetry_exporters::__private::delivery::{SentOutcome, SentRing};
use closedloop_telemetry_exporters::DropReason;
use closedloop_telemetry_layers::ActivityEntry;

use closedloop_telemetry::__private::view::{Source, StreamHealth};
use closedloop_telemetry::ViewServer;
use closedloop_telemetry_collector::{Arrival, Collector, Destination};

/// Per destination: requests rejected and the last validation error.
#[derive(Default)]
struct Rejections {
    counts: [u64; 4],
    last: [Option<String>; 4],
    /// Rejected requests for no known endpoint.
    unknown: u64,
}

struct CollectorSource {
    arrivals: Mutex<Receiver<Arrival>>,
    ring: Arc<SentRing>,
    recorder: Arc<closedloop_telemetry_collector::Recorder>,
    rejections: Mutex<Rejections>,
}

fn index(s: Destination) -> usize {
    match s {
        Destination::PostHog => 0,
        Destination::Relay => 1,
        Destination::Datadog => 2,
        Destination::Otlp => 3,
    }
}

impl Source for CollectorSource {
    fn title(&self) -> &'static str {
        "Local collector: what the three destinations received"
    }

    fn activity(&self, _from: u64, _max: usize) -> Option<Vec<ActivityEntry>> {
        None
    }

    fn sent(&self) -> &SentRing {
        &self.ring
    }

    fn health(&self) -> Vec<StreamHealth> {
        let counts = self.recorder.counts();
        let rej = self
            .rejections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Destination::ALL
            .iter()
            .map(|s| StreamHealth {
                name: s.as_str(),
                counters: vec![
                    ("received", counts.get(*s)),
                    ("rejected_requests", rej.counts[index(*s)]),
                ],
                dropped: Vec::new(),
                last_error: rej.last[index(*s)].clone(),
                rate_limited_by_name: Vec::new(),
                rate_of: counts.get(*s),
            })
            .collect()
    }

    /// Moves what arrived since the last tick into the ring.
    fn tick(&self) {
        let arrivals = self.arrivals.lock().unwrap_or_else(PoisonError::into_inner);
        while let Ok(arrival) = arrivals.try_recv() {
            match arrival {
                Arrival::Received(r) => self.ring.push(
                    r.stream.as_str(),
                    r.id.unwrap_or_default(),
                    &r.body.to_string(),
                    SentOutcome::Sent,
                ),
                Arrival::Rejected(r) => {
                    let detail = format!("HTTP {}: {}", r.status, r.reason);
                    let mut rej = self
                        .rejections
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    let Some(stream) = r.stream else {
                        rej.unknown += 1;
                        continue;
                    };
                    rej.counts[index(stream)] += 1;
                    rej.last[index(stream)] = Some(detail.clone());
                    drop(rej);
                    let outcome = SentOutcome::Dropped {
                        reason: DropReason::Rejected,
                        detail,
                    };
                    self.ring.push(stream.as_str(), String::new(), "", outcome);
                }
            }
        }
    }
}

/// Serves the view page (see `closedloop_telemetry::view`) for what `collector` receives, on `addr` (loopback
/// only): the three destinations are the "sent" part, each rejected request shows there with
/// the collector's validation error, and the health part counts received events and rejected
/// requests per destination. Arrivals are taken about once a second from a subscription; the
/// ring keeps the last 1,000.
pub fn serve_collector_view(collector: &Collector, addr: SocketAddr) -> io::Result<ViewServer> {
    let arrivals = collector.subscribe();
    let source = CollectorSource {
        arrivals: Mutex::new(arrivals),
        ring: SentRing::new(),
        recorder: collector.recorder(),
        rejections: Mutex::default(),
    };
    closedloop_telemetry::__private::view::serve(addr, Arc::new(source))
}
