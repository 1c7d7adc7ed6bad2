//! The pipeline's queue with a real background over an in-process transport: flush pushes
//! everything through, a full queue drops at the door and counts it, a burst overflows and is
//! delivered in full, the overflow's bound holds while the background works on it, shutdown
//! drains first.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use closedloop_telemetry_layers::__private::catalogue::CatalogueEntry;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLoggerProvider};

use crate::decode::{DecodeOptions, Event};
use crate::delivery::engine::{launch, Core};
use crate::delivery::{
    frame_json_array, BoxFuture, Delivery, DeliveryOptions, DeliverySpec, InvalidEvent, Limits,
    Request, Response, Transport, TransportError, WireFormat,
};

const WAIT: Duration = Duration::from_secs(5);

/// A stream whose `encode` (on the background, as it takes an event in) can be held at its
/// `n`-th call until the test opens the gate: the background is then stuck mid-intake.
#[derive(Clone, Default)]
struct Gate(Arc<GateInner>);

/// The call number to hold at, and who to tell.
type Hold = (usize, Sender<()>);

#[derive(Default)]
struct GateInner {
    /// (call number to hold at, who to tell), and the calls so far.
    armed: Mutex<(Option<Hold>, usize)>,
    /// Holds so far, and holds released so far.
    holds: Mutex<(usize, usize)>,
    opened: Condvar,
}

impl Gate {
    /// Holds the background at the `n`-th encode from now (1: the next).
    fn arm(&self, n: usize) -> std::sync::mpsc::Receiver<()> {
        let (tx, rx) = channel();
        let mut armed = self.0.armed.lock().unwrap();
        let at = armed.1 + n;
        armed.0 = Some((at, tx));
        rx
    }

    /// Releases the holds so far.
    fn open(&self) {
        let mut holds = self.0.holds.lock().unwrap();
        holds.1 = holds.0;
        self.0.opened.notify_all();
    }
}

impl WireFormat for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }
    fn routes(&self, _: Option<&CatalogueEntry>) -> bool {
        true
    }
    fn encode(&self, e: &Event, id: uuid::Uuid) -> Result<Vec<u8>, InvalidEvent> {
        let hold = {
            let mut armed = self.0.armed.lock().unwrap();
            armed.1 += 1;
            let call = armed.1;
            match armed.0.take() {
                Some((at, tx)) if at == call => Some(tx),
                other => {
                    armed.0 = other;
                    None
                }
            }
        };
        if let Some(tx) = hold {
            let mut holds = self.0.holds.lock().unwrap();
            holds.0 += 1;
            let mine = holds.0;
            let _ = tx.send(());
            while holds.1 < mine {
                holds = self.0.opened.wait(holds).unwrap();
            }
        }
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
                body: Vec::new(),
            })
        })
    }
}

/// A pipeline of one destination, as `Pipeline` runs it.
struct Pipeline {
    core: std::sync::Arc<Core>,
    delivery: Delivery,
}

impl Pipeline {
    fn take(&self, slot: &mut SdkLogRecord) {
        self.core.queue.take(slot);
    }

    fn shutdown(&self, timeout: Duration) -> Vec<crate::delivery::DeliveryReport> {
        let reports = Delivery::shutdown_all(std::slice::from_ref(&self.delivery), timeout);
        self.core.queue.close();
        reports
    }
}

fn start(capacity: usize, overflow_bytes: usize) -> (Pipeline, Delivery, Gate) {
    let gate = Gate::default();
    let limits = Limits {
        max_items: 20,
        max_body_bytes: 1 << 20,
        max_delay: Duration::from_secs(30),
        expiry: None,
    };
    // A spool, as the facade runs by default: the backlog keeps everything the queue hands it
    // (its memory bound is the queue's, far below the bursts here).
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "closedloop-queue-test-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let options = DeliveryOptions::builder()
        .with_queue_capacity(capacity)
        .with_overflow_bytes(overflow_bytes)
        .with_spool_dir(dir)
        // These tests measure the queue's bounds with bursts of one name.
        .with_rate_limit(None)
        .build();
    let spec = DeliverySpec::new(gate.clone(), Acks, limits, &options).unwrap();
    let decode = DecodeOptions {
        compute_target_id: Some("ct-queue".into()),
        ..DecodeOptions::default()
    };
    let (core, mut deliveries) =
        launch(vec![spec], decode, "closedloop-queue-test".into(), None).unwrap();
    let delivery = deliveries.remove(0);
    let pipeline = Pipeline {
        core,
        delivery: delivery.clone(),
    };
    (pipeline, delivery, gate)
}

/// [`start`], then one record, which the background is held on (inside its encode) when this
/// returns.
fn start_held(capacity: usize, overflow_bytes: usize) -> (Pipeline, Delivery, Gate) {
    let (p, delivery, gate) = start(capacity, overflow_bytes);
    let entered = gate.arm(1);
    push(&p, 1);
    entered
        .recv_timeout(WAIT)
        .expect("the background took the first record");
    (p, delivery, gate)
}

fn record() -> SdkLogRecord {
    let provider = SdkLoggerProvider::builder().build();
    let mut r = provider.logger("test").create_log_record();
    r.set_event_name("command.completed");
    r
}

fn push(p: &Pipeline, n: usize) {
    for _ in 0..n {
        p.take(&mut record());
    }
}

/// The accounting invariant of one destination.
fn balanced(d: &Delivery) -> bool {
    let s = d.stats();
    s.routed + s.replayed == s.sent + s.dropped.total() + s.queued
}

#[test]
fn flush_pushes_every_record_through_to_the_wire() {
    let (p, delivery, _) = start(4096, 0);
    push(&p, 50);
    let s = delivery.stats();
    assert_eq!((s.routed, s.queued), (50, 50), "counted while they wait");
    assert!(delivery.flush(WAIT).is_complete());
    assert_eq!(delivery.stats().sent, 50);
    assert!(balanced(&delivery));
}

#[test]
fn a_full_queue_drops_at_the_door_and_counts_queue_full() {
    let (p, delivery, gate) = start_held(4, 0);
    // The background holds the first record: 3 more fit the bound of 4, 7 are dropped.
    push(&p, 10);
    let s = delivery.stats();
    assert_eq!((s.routed, s.dropped.queue_full), (11, 7), "{s:?}");
    assert!(balanced(&delivery));
    gate.open();
    assert!(delivery.flush(WAIT).is_complete());
    let s = delivery.stats();
    assert_eq!((s.sent, s.dropped.total()), (4, 7));
    assert!(balanced(&delivery));
}

#[test]
fn a_burst_past_the_queue_overflows_and_is_delivered_in_full() {
    let (p, delivery, gate) = start_held(4, 1 << 20);
    // 3 records queue as they are, 97 overflow.
    push(&p, 100);
    assert!(balanced(&delivery));
    gate.open();
    assert!(delivery.flush(WAIT).is_complete());
    let s = delivery.stats();
    assert_eq!((s.sent, s.dropped.total()), (101, 0));
}

#[test]
fn the_overflow_bound_holds_while_the_background_works_on_it() {
    // Room for the 4 records plus an overflow of a few hundred bytes.
    let bound = 600;
    let (p, delivery, gate) = start_held(4, bound);
    // Fill everything: 3 more records, then the overflow until the door drops.
    push(&p, 100);
    let full = delivery.stats();
    let overflowed = full.routed - full.dropped.queue_full - 4;
    assert!(overflowed > 0 && full.dropped.queue_full > 0, "{full:?}");
    // Let the background take the queue and hold it again inside the overflow chunk: the
    // chunk's bytes still count, so nothing more may overflow meanwhile.
    let entered = gate.arm(4 + 1);
    gate.open();
    entered
        .recv_timeout(WAIT)
        .expect("held inside the overflow chunk");
    let before = delivery.stats().dropped.queue_full;
    push(&p, 50);
    let s = delivery.stats();
    // The 4 record slots are free again (taken and finished); the overflow is not.
    assert!(
        s.dropped.queue_full >= before + 50 - 4,
        "the overflow took more while its chunk was in the works: {s:?}"
    );
    assert!(balanced(&delivery));
    gate.open();
    assert!(delivery.flush(WAIT).is_complete());
    let s = delivery.stats();
    assert_eq!(s.sent + s.dropped.queue_full, 151, "{s:?}");
    assert!(balanced(&delivery));
}

#[test]
fn shutdown_drains_first_then_refuses_and_counts() {
    let (p, delivery, _) = start(4096, 0);
    push(&p, 3);
    let reports = p.shutdown(WAIT);
    assert_eq!(reports.len(), 1);
    assert!(reports[0].is_complete());
    assert_eq!(delivery.stats().sent, 3);
    push(&p, 1);
    assert_eq!(delivery.stats().dropped.shutdown, 1);
    assert!(balanced(&delivery));
    assert!(p.shutdown(WAIT).is_empty(), "a second shutdown is a no-op");
}

#[test]
fn the_door_and_the_decoder_read_a_name_alike() {
    use opentelemetry::logs::AnyValue;
    use opentelemetry::Key;
    let mut custom = record();
    custom.set_event_name(closedloop_telemetry_layers::__private::convention::CUSTOM_EVENT_NAME);
    custom.add_attribute(
        Key::from_static_str("event"),
        AnyValue::from(" job.failed "),
    );
    let door = |r: &SdkLogRecord| crate::decode::event_name(r).ok().map(|n| n.entry);
    let entry = door(&custom).expect("an event");
    let event = crate::decode::decode(&custom, &DecodeOptions::default());
    assert_eq!(entry.map(|e| e.name), Some("job.failed"));
    assert!(event.is_err_and(|e| e == crate::decode::DecodeError::NoComputeTargetId));
    let mut activity = record();
    activity.add_attribute(Key::from_static_str("activity"), AnyValue::from("request"));
    assert!(door(&activity).is_none());
    let blank = SdkLoggerProvider::builder()
        .build()
        .logger("t")
        .create_log_record();
    assert!(door(&blank).is_none());
}
