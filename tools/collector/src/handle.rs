//! [`Collector`] and its builder: the handle that owns the server thread and reads the record.

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use super::received::{Arrival, Counts, Destination, Received, Rejected};
use super::recorder::{Recorder, DEFAULT_MAX_KEPT, DEFAULT_MAX_KEPT_BYTES};
use super::server::{accept_loop, ServerCtx, DATADOG_PATH, RELAY_PATH};
use closedloop_telemetry_exporters::__private::server_thread::{bind_loopback, ServerThread};

/// Builder for [`Collector`]. Defaults: bind `127.0.0.1:0` (any free port), no relay token,
/// keep at most [`DEFAULT_MAX_KEPT`] accepted events and [`DEFAULT_MAX_KEPT_BYTES`] (32 MiB) of
/// them, dropping the oldest past either bound.
#[derive(Clone)]
pub struct CollectorBuilder {
    bind: SocketAddr,
    relay_token: Option<String>,
    max_kept: usize,
    max_kept_bytes: usize,
}

impl std::fmt::Debug for CollectorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorBuilder")
            .field("bind", &self.bind)
            .field(
                "relay_token",
                &self.relay_token.as_ref().map(|_| "<redacted>"),
            )
            .field("max_kept", &self.max_kept)
            .field("max_kept_bytes", &self.max_kept_bytes)
            .finish()
    }
}

impl Default for CollectorBuilder {
    fn default() -> Self {
        CollectorBuilder {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            relay_token: None,
            max_kept: DEFAULT_MAX_KEPT,
            max_kept_bytes: DEFAULT_MAX_KEPT_BYTES,
        }
    }
}

impl CollectorBuilder {
    /// The address to listen on; it must be a loopback address (port 0 picks a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Requires `Authorization: Bearer <token>` on the relay endpoint (401 otherwise).
    pub fn relay_token(mut self, token: impl Into<String>) -> Self {
        self.relay_token = Some(token.into());
        self
    }

    /// Keeps at most `n` accepted events (default [`DEFAULT_MAX_KEPT`]); past it the oldest are
    /// dropped and counted ([`Counts::not_kept`]). All are counted per stream either way.
    pub fn max_kept(mut self, n: usize) -> Self {
        self.max_kept = n;
        self
    }

    /// Keeps at most `bytes` of accepted events (default [`DEFAULT_MAX_KEPT_BYTES`]), each
    /// counting its name, id and JSON as serialized; past it the oldest are dropped and counted
    /// ([`Counts::not_kept`]), and an event larger than `bytes` alone is counted, never kept.
    pub fn max_kept_bytes(mut self, bytes: usize) -> Self {
        self.max_kept_bytes = bytes;
        self
    }

    /// Binds and starts serving. Fails if the address is not loopback or cannot be bound.
    pub fn start(self) -> io::Result<Collector> {
        let (listener, addr) = bind_loopback(self.bind, "collector")?;
        let recorder = Arc::new(Recorder::new(self.max_kept, self.max_kept_bytes));
        let ctx = Arc::new(ServerCtx {
            recorder: recorder.clone(),
            relay_token: self.relay_token,
        });
        let server = ServerThread::spawn("closedloop-collector", move |stop| {
            accept_loop(listener, ctx, stop)
        })?;
        Ok(Collector {
            addr,
            recorder,
            server,
        })
    }
}

/// A local collector: a loopback HTTP server that accepts PostHog `/batch/`, relay and Datadog
/// logs-intake posts, validates them as the real services do, and records what it accepted.
///
/// It runs on its own thread with its own tokio runtime, so callers need no runtime. Dropping it
/// (or [`shutdown`](Collector::shutdown)) stops the server.
///
/// ```
/// use closedloop_telemetry_collector::Collector;
/// let collector = Collector::start("127.0.0.1:0".parse().unwrap()).unwrap();
/// assert!(collector.relay_url().ends_with("/relay"));
/// assert_eq!(collector.counts().total(), 0);
/// ```
pub struct Collector {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    server: ServerThread,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("addr", &self.addr)
            .field("counts", &self.recorder.counts())
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// A builder; see [`CollectorBuilder`] for the defaults.
    pub fn builder() -> CollectorBuilder {
        CollectorBuilder::default()
    }

    /// Starts a collector on `bind` (a loopback address; `127.0.0.1:0` picks a free port).
    pub fn start(bind: SocketAddr) -> io::Result<Collector> {
        Self::builder().bind(bind).start()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`: the value for `CL_POSTHOG_HOST` (the exporter appends `/batch/`).
    pub fn posthog_host(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://<addr>/relay`: the value for `CL_RELAY_URL`.
    pub fn relay_url(&self) -> String {
        format!("http://{}{RELAY_PATH}", self.addr)
    }

    /// `http://<addr>/api/v2/logs`: the value for `DD_LOGS_URL`.
    pub fn datadog_url(&self) -> String {
        format!("http://{}{DATADOG_PATH}", self.addr)
    }

    /// `http://<addr>`: the value for `CL_OTLP_ENDPOINT` (records are posted to `/v1/logs`).
    pub fn otlp_endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every kept accepted event, in arrival order (the newest, within the bounds set on
    /// [`CollectorBuilder`]; [`Counts::not_kept`] counts the ones dropped).
    pub fn received(&self) -> Vec<Received> {
        self.recorder.received()
    }

    /// The kept accepted events of one stream, in arrival order.
    pub fn received_on(&self, stream: Destination) -> Vec<Received> {
        self.recorder.received_on(stream)
    }

    /// The most recent rejected requests (at most
    /// [`MAX_KEPT_REJECTIONS`](super::MAX_KEPT_REJECTIONS), each reason cut to
    /// [`MAX_REASON_BYTES`](super::MAX_REASON_BYTES)), oldest first;
    /// [`Counts::rejections_not_kept`] counts the ones dropped.
    pub fn rejected(&self) -> Vec<Rejected> {
        self.recorder.rejected()
    }

    /// Waits until at least `n` events were accepted in total (all streams) or `timeout`
    /// passed, then returns [`received`](Collector::received).
    pub fn wait_for(&self, n: u64, timeout: Duration) -> Vec<Received> {
        self.recorder.wait_until(timeout, |c| c.total() >= n);
        self.received()
    }

    /// Waits until at least `n` events were accepted on `stream` or `timeout` passed; returns
    /// whether they were.
    pub fn wait_for_stream(&self, stream: Destination, n: u64, timeout: Duration) -> bool {
        self.recorder.wait_until(timeout, |c| c.get(stream) >= n)
    }

    /// The counters: accepted events per stream, rejected requests, and the events and
    /// rejections dropped from what is kept.
    pub fn counts(&self) -> Counts {
        self.recorder.counts()
    }

    /// The distinct ids seen on `stream` among kept events. Nothing is de-duplicated on
    /// arrival, so `received_on(stream).len() - unique_ids(stream).len()` counts redeliveries.
    pub fn unique_ids(&self, stream: Destination) -> BTreeSet<String> {
        self.recorder.unique_ids(stream)
    }

    /// Subscribes to arrivals from now on (accepted events and rejected requests). The buffer
    /// holds [`SUBSCRIPTION_BUFFER`](super::SUBSCRIPTION_BUFFER) arrivals; when it is full,
    /// further ones are dropped for this subscriber and counted, never waited for.
    pub fn subscribe(&self) -> Receiver<Arrival> {
        self.recorder.subscribe()
    }

    /// Forgets everything received and rejected so far and resets the counters.
    pub fn clear(&self) {
        self.recorder.clear();
    }

    /// The shared record (for the command-line tool's view page; not API).
    #[doc(hidden)]
    pub fn recorder(&self) -> Arc<Recorder> {
        self.recorder.clone()
    }

    /// Stops the server and waits for its thread. Idempotent; also done on drop.
    pub fn shutdown(&self) {
        self.server.shutdown();
    }
}
