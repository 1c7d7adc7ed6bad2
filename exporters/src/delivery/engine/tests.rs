//! The engine with a non-HTTP stream and an in-process transport (the shape of the relay's
//! channel transport, `relay/channel.rs`): generic plumbing, expiry, and the JSON-array framing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use closedloop_telemetry_layers::__private::catalogue::{lookup, CatalogueEntry};
use closedloop_telemetry_layers::__private::envelope::{
    format_timestamp, Diagnostics, TraceEnvelope,
};

use crate::decode::Event;
use crate::delivery::*;

struct Names;

impl WireFormat for Names {
    fn name(&self) -> &'static str {
        "names"
    }
    fn routes(&self, entry: Option<&CatalogueEntry>) -> bool {
        entry.is_some_and(|r| r.relay.is_some())
    }
    fn encode(&self, e: &Event, id: uuid::Uuid) -> Result<Vec<u8>, InvalidEvent> {
        Ok(format!(r#"{{"event":"{}","id":"{id}"}}"#, e.name).into_bytes())
    }
    fn frame(&self, items: &[&[u8]], out: &mut Vec<u8>) {
        frame_json_array(items, out)
    }
}

/// Acknowledges every body and keeps it.
#[derive(Clone, Default)]
struct Acks(Arc<Mutex<Vec<Vec<u8>>>>);

impl Transport for Acks {
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        self.0.lock().unwrap().push(request.body);
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

fn event(name: &str, age: Duration) -> Event {
    let time = SystemTime::now() - age;
    Event {
        name: name.into(),
        entry: lookup(name),
        time,
        severity: None,
        trace: TraceEnvelope::new(format_timestamp(time), "ct".into()),
        diagnostics: Diagnostics::default(),
        release_version: None,
        sample_rate: None,
    }
}

#[test]
fn a_generic_stream_delivers_json_arrays_and_expires_old_items() {
    let acks = Acks::default();
    let limits = Limits {
        max_items: 100,
        max_body_bytes: 1 << 20,
        max_delay: Duration::from_secs(2),
        expiry: Some(Duration::from_secs(18 * 3600)),
    };
    let options = DeliveryOptions::builder().with_gzip(false).build();
    let delivery = Delivery::start(Names, acks.clone(), limits, &options).unwrap();
    delivery
        .submit(vec![
            event("job.completed", Duration::ZERO),
            event("job.failed", Duration::from_secs(19 * 3600)),
            event("approval.requested", Duration::ZERO), // not routed here
        ])
        .unwrap();
    let report = delivery.flush(Duration::from_secs(5));
    assert!(report.is_complete());
    let s = report.stats;
    assert_eq!(
        (s.sent, s.dropped.expired, s.ignored, s.requests),
        (1, 1, 1, 1)
    );
    let bodies = acks.0.lock().unwrap().clone();
    let v: serde_json::Value = serde_json::from_slice(&bodies[0]).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["event"], "job.completed");

    let report = delivery.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(report.remaining, 0);
    assert!(delivery.shutdown(Duration::from_secs(1)).is_err());
    assert!(delivery.submit(vec![]).is_err());
}
