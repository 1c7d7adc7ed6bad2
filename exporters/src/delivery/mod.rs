//! The delivery engine every exporter shares: bounded queue, batching, retries, live stats,
//! flush and shutdown with deadlines.
//!
//! # Shape
//!
//! ```text
//! PipelineProcessor::emit / export() / submit()      (app or caller thread, never blocks)
//!   └ queue (queue.rs): records with their destination mask, the compact overflow
//!     (overflow.rs) past its bound; past both: dropped, counted queue_full
//!          ▼  one background thread per pipeline (worker/background.rs)
//!   decode once → per destination: Worker::accept → WireFormat::encode → Item (UUIDv7)
//!     → backlog (bounded, evicts oldest; spool) → batcher: max items / bytes / delay
//!     → WireFormat::frame → gzip? → Transport::send (timeout; a task per request)
//!     → retry::RetryPolicy::decide → done / backoff / split / drop
//! ```
//!
//! - The engine knows nothing of OpenTelemetry beyond the records it queues:
//!   [`Delivery::submit`] takes decoded events; records are decoded on the background with
//!   [`decode`](crate::decode::decode). Nothing on the caller's side blocks, does I/O or needs
//!   an ambient runtime, so it works under `BatchLogProcessor`, `SimpleLogProcessor` and
//!   inside or outside tokio.
//! - The handle ([`Delivery`], `engine.rs`) and the worker (`worker/`) share only the
//!   command enum (`command.rs`), the queue (`queue.rs`) and the configuration (`config.rs`).
//! - Each pipeline owns ONE named thread (`closedloop-telemetry`, or
//!   `closedloop-telemetry-<stream>` for an exporter alone) with a current-thread tokio
//!   runtime, inside `Context::enter_telemetry_suppressed_scope()`; it sleeps until a batch
//!   is due, a backoff ends, a spool sync or deadline comes, or a command or the queue wakes it.
//! - Items ([`Item`](wire_format::Item)) are pre-encoded JSON values with a stable UUIDv7, mapped once on the
//!   worker; retries re-frame the same items (fresh per-request fields such as `sent_at`).
//! - The network sits behind [`Transport`]: [`HttpTransport`], or a channel transport for
//!   the relay ([`relay`](crate::relay)); with the `testing` feature also `MemoryTransport`,
//!   which records each request in memory instead. The engine wraps every send in the
//!   per-request timeout.
//! - Retry rules are the pure [`RetryPolicy::decide`] (see [`retry`]).
//! - Every loss is counted by [`DropReason`] in [`DeliveryStats`](stats::DeliveryStats), with a warning on the first
//!   loss of each kind; rejected batches are also logged once per HTTP status.
//!
//! # Plugging in a stream
//!
//! ```no_run
//! use std::time::Duration;
//! use closedloop_telemetry_exporters::__private::decode::Event;
//! use closedloop_telemetry_layers::__private::catalogue::CatalogueEntry;
//! use closedloop_telemetry_exporters::__private::delivery::*;
//! use closedloop_telemetry_exporters::{BuildError, DeliveryOptions};
//!
//! struct Relay;
//! impl WireFormat for Relay {
//!     fn name(&self) -> &'static str { "relay" }
//!     fn routes(&self, entry: Option<&CatalogueEntry>) -> bool { entry.is_some_and(|r| r.relay.is_some()) }
//!     fn encode(&self, e: &Event, id: uuid::Uuid) -> Result<Vec<u8>, InvalidEvent> {
//!         Ok(serde_json::to_vec(&serde_json::json!({"event": e.name, "id": id.to_string()})).unwrap())
//!     }
//!     fn frame(&self, items: &[&[u8]], out: &mut Vec<u8>) { frame_json_array(items, out) }
//! }
//!
//! let url = parse_http_url("CL_RELAY_URL", "https://relay.example/ingest")?;
//! let transport = HttpTransport::new(
//!     url,
//!     &[("content-type", "application/json".into())],
//!     Duration::from_secs(10),
//! )?;
//! let limits = Limits {
//!     max_items: 100,
//!     max_body_bytes: 4 << 20,
//!     max_delay: Duration::from_secs(2),
//!     expiry: None,
//! };
//! let delivery = Delivery::start(Relay, transport, limits, &DeliveryOptions::default())?;
//! // In LogExporter::export: decode the records, then delivery.submit(events)
//! let report = delivery.shutdown(Duration::from_secs(5));
//! # Ok::<(), BuildError>(())
//! ```
//!
//! # Flush and shutdown
//!
//! [`Delivery::flush`] sends everything queued at once (ignoring the batch delay, honouring a
//! running backoff) and returns by its deadline with the count still queued; those stay
//! queued. [`Delivery::shutdown`] does the same, then answers with the count that remains and
//! stops the worker: without a spool those are dropped (counted as `shutdown`); with a spool
//! ([`SpoolOptions`](crate::spool::SpoolOptions)) they stay on disk (counted as `spooled`) and go out on the next start. An
//! in-flight request is abandoned at the deadline, so a dead or hanging server never holds
//! shutdown past it. Later exports get `AlreadyShutdown`.
//!
//! # Consent
//!
//! [`Delivery::purge`] drops everything queued, in memory and in the spool (acknowledged so
//! nothing is replayed), cancels any backoff and counts the items as `purged`.

mod backlog;
mod batcher;
pub(crate) mod body;
mod command;
mod config;
mod engine;
mod error;
mod http;
#[cfg(any(test, feature = "testing"))]
mod memory;
mod options;
mod overflow;
mod queue;
#[cfg(test)]
mod queue_tests;
pub(crate) mod range;
pub(crate) mod retry;
mod stats;
pub(crate) mod tap;
mod tls;
mod transport;
mod wire_format;
mod worker;

pub use body::gzip_bytes;
pub(crate) use engine::{launch, Core, WeakDelivery};
pub use engine::{CrashWrite, Delivery, DeliveryReport, DeliverySpec};
pub use error::BuildError;
pub use http::{parse_http_url, HttpTransport};
#[cfg(any(test, feature = "testing"))]
pub use memory::{plain_body, MemoryTransport};
pub use options::{DeliveryOptions, DeliveryOptionsBuilder, DEFAULT_SHUTDOWN_TIMEOUT};
pub use range::{check_range, deadline_after, MAX_BATCH_DELAY, MAX_DURATION_SETTING};
pub use retry::RetryPolicy;
pub use stats::{DeliveryStatsSnapshot, DropReason, DroppedCounts};
pub use tap::{SentOutcome, SentRecord, SentRing, SENT_RING_CAPACITY};
pub use transport::{BoxFuture, Request, Response, Transport, TransportError};
pub(crate) use wire_format::join_items;
pub use wire_format::{frame_json_array, InvalidEvent, Limits, WireFormat};
