//! A minimal stream for engine-level tests: each event is `{"seq": <name>, "id": <item id>}`,
//! so a receiver (or a spool reader) can judge delivery by sequence number and stable id.

use std::time::{Duration, SystemTime};

use closedloop_telemetry_exporters::__private::decode::Event;
use closedloop_telemetry_exporters::__private::delivery::{
    frame_json_array, parse_http_url, Delivery, HttpTransport, InvalidEvent, Limits, WireFormat,
};
use closedloop_telemetry_exporters::{DeliveryOptions, RetryPolicy};
use closedloop_telemetry_layers::__private::envelope::{
    format_timestamp, Diagnostics, TraceEnvelope,
};

/// The stream's name, and so its spool subdirectory.
pub const STREAM: &str = "tagged";

/// Encodes each event as `{"seq": <name>, "id": <item id>}`.
pub struct Tagged;

impl WireFormat for Tagged {
    fn name(&self) -> &'static str {
        STREAM
    }
    fn encode(&self, e: &Event, id: uuid::Uuid) -> Result<Vec<u8>, InvalidEvent> {
        let v = serde_json::json!({ "seq": e.name, "id": id.to_string() });
        Ok(serde_json::to_vec(&v).expect("json"))
    }
    fn frame(&self, items: &[&[u8]], out: &mut Vec<u8>) {
        frame_json_array(items, out)
    }
}

/// Event number `n` (its name is the number).
pub fn event(n: usize) -> Event {
    let now = SystemTime::now();
    Event {
        name: format!("{n}"),
        entry: None,
        time: now,
        severity: None,
        trace: TraceEnvelope::new(format_timestamp(now), "ct-tagged".into()),
        diagnostics: Diagnostics::default(),
        release_version: None,
        sample_rate: None,
    }
}

/// Short backoffs so retry tests stay fast.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(60),
        max_attempts: 20,
    }
}

/// The settings of a tagged engine that tests adjust before [`start`].
pub struct Config {
    /// The batching limits.
    pub limits: Limits,
    /// The engine's queue, in items.
    pub queue_capacity: usize,
    /// The transport's and the engine's request timeout.
    pub request_timeout: Duration,
    /// The retry policy.
    pub retry: RetryPolicy,
    /// The spool, or none.
    pub spool: Option<closedloop_telemetry_exporters::SpoolOptions>,
}

/// 100 items / 1 MiB / 20 ms batches, fast retries, a 500 ms request timeout, and `spool`.
pub fn config(spool: Option<closedloop_telemetry_exporters::SpoolOptions>) -> Config {
    Config {
        limits: Limits {
            max_items: 100,
            max_body_bytes: 1 << 20,
            max_delay: Duration::from_millis(20),
            expiry: None,
        },
        queue_capacity: DeliveryOptions::default().queue_capacity(),
        request_timeout: Duration::from_millis(500),
        retry: fast_retry(),
        spool,
    }
}

/// An engine POSTing the tagged stream to `{base}/ingest`.
pub fn start(base: &str, cfg: Config) -> Delivery {
    let url = parse_http_url("test", &format!("{base}/ingest")).unwrap();
    let transport = HttpTransport::new(
        url,
        &[("content-type", "application/json".into())],
        cfg.request_timeout,
    )
    .unwrap();
    let options = DeliveryOptions::builder()
        .with_queue_capacity(cfg.queue_capacity)
        .with_timeout(cfg.request_timeout)
        .with_retry_policy(cfg.retry)
        .with_spool(cfg.spool)
        .build();
    Delivery::start(Tagged, transport, cfg.limits, &options).unwrap()
}
