//! The hand-off with a real delivery engine over an in-process transport: flush pushes
//! everything through, a full queue drops at the door and counts it, shutdown drains first.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use closedloop_telemetry_exporters::decode::{DecodeOptions, Event};
use closedloop_telemetry_exporters::delivery::{
    frame_json_array, BoxFuture, Delivery, DeliveryOptions, InvalidEvent, Limits, Request,
    Response, Stream, Transport, TransportError,
};
use closedloop_telemetry_layers::catalogue::CatalogueEntry;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLoggerProvider};

use super::*;
use crate::sink::StreamKind;

/// A stream whose first `routes` call (on the hand-off worker, as it routes) can be held
/// until the test opens the gate: the worker is then stuck mid-delivery.
#[derive(Clone, Default)]
struct Gate(Arc<GateInner>);

#[derive(Default)]
struct GateInner {
    entered: Mutex<Option<Sender<()>>>,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn arm(&self) -> std::sync::mpsc::Receiver<()> {
        let (tx, rx) = channel();
        *self.0.entered.lock().unwrap() = Some(tx);
        rx
    }

    fn open(&self) {
        *self.0.open.lock().unwrap() = true;
        self.0.opened.notify_all();
    }
}

impl Stream for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }
    fn routes(&self, _: Option<&CatalogueEntry>) -> bool {
        // Take the sender in its own statement: the lock must not be held while waiting (the
        // door asks `routes` too, from the app thread).
        let entered = self.0.entered.lock().unwrap().take();
        if let Some(tx) = entered {
            let _ = tx.send(());
            let mut open = self.0.open.lock().unwrap();
            while !*open {
                open = self.0.opened.wait(open).unwrap();
            }
        }
        true
    }
    fn encode(&self, e: &Event, id: uuid::Uuid) -> Result<Vec<u8>, InvalidEvent> {
        Ok(format!(r#"{{"event":"{}","id":"{id}"}}"#, e.name).into_bytes())
    }
    fn frame(&self, items: &[&[u8]], out: &mut Vec<u8>) {
        frame_json_array(items, out)
    }
}

/// Acknowledges every request.
struct Acks;

impl Transport for Acks {
    fn send(&self, _: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(async {
            Ok(Response {
                status: 200,
                retry_after: None,
                reason: String::new(),
            })
        })
    }
}

fn start(capacity: usize) -> (Handoff, Delivery, Gate) {
    let gate = Gate::default();
    let limits = Limits {
        max_items: 20,
        max_body_bytes: 1 << 20,
        max_delay: Duration::from_secs(30),
        expiry: None,
    };
    let options = DeliveryOptions::builder()
        .with_queue_capacity(10_000)
        .build();
    let delivery = Delivery::start(gate.clone(), Acks, limits, &options).unwrap();
    let sinks = Arc::new(vec![Sink {
        kind: StreamKind::PostHog,
        delivery: delivery.clone(),
    }]);
    let decode = DecodeOptions {
        compute_target_id: Some("ct-handoff".into()),
        ..DecodeOptions::default()
    };
    let handoff =
        Handoff::with_capacity(sinks, decode, Arc::new(AtomicU64::new(0)), capacity).unwrap();
    (handoff, delivery, gate)
}

fn record() -> SdkLogRecord {
    let provider = SdkLoggerProvider::builder().build();
    let mut r = provider.logger("test").create_log_record();
    r.set_event_name("command.completed");
    r
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

/// Events the engine took in: queued, sent or dropped by it.
fn taken(d: &Delivery) -> u64 {
    let s = d.stats();
    s.queued + s.sent + s.dropped.total()
}

#[test]
fn flush_pushes_every_record_through_to_the_sinks() {
    let (handoff, delivery, _) = start(CAPACITY);
    for _ in 0..50 {
        handoff.push(record());
    }
    assert!(handoff.flush(soon()));
    assert_eq!(
        taken(&delivery),
        50,
        "all handed to the engine by the flush"
    );
    assert!(delivery.flush(Duration::from_secs(5)).is_complete());
    assert_eq!(delivery.stats().sent, 50);
}

#[test]
fn a_full_queue_drops_at_the_door_and_counts_queue_full() {
    let (handoff, delivery, gate) = start(4);
    let entered = gate.arm();
    handoff.push(record());
    entered
        .recv_timeout(Duration::from_secs(5))
        .expect("the worker took the first record");
    // The worker is held inside its delivery: 4 records fit, 6 are dropped at once.
    for _ in 0..10 {
        handoff.push(record());
    }
    gate.open();
    assert!(handoff.flush(soon()));
    assert_eq!(delivery.stats().dropped.queue_full, 6);
    assert!(delivery.flush(Duration::from_secs(5)).is_complete());
    let s = delivery.stats();
    assert_eq!((s.sent, s.dropped.total()), (5, 6));
}

#[test]
fn shutdown_drains_first_then_refuses_and_counts() {
    let (handoff, delivery, _) = start(CAPACITY);
    for _ in 0..3 {
        handoff.push(record());
    }
    assert!(handoff.shutdown(soon()));
    assert_eq!(taken(&delivery), 3);
    handoff.push(record());
    assert_eq!(delivery.stats().dropped.shutdown, 1);
    assert!(
        handoff.flush(soon()),
        "a flush after shutdown returns at once"
    );
    assert!(handoff.shutdown(soon()), "a second shutdown is a no-op");
}
