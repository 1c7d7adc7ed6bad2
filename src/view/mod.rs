//! The local view page (cargo feature `view`): see [`ViewServer`].

mod conn;
mod server;
mod state;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use closedloop_telemetry_exporters::__private::delivery::SentRing;
use closedloop_telemetry_exporters::DropReason;
use closedloop_telemetry_layers::ActivityEntry;

pub use conn::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS, SEND_DEADLINE};

use crate::TelemetryHandle;
use closedloop_telemetry_exporters::__private::server_thread::{
    bind_loopback, check_loopback, ServerThread,
};
use server::{accept_loop, ViewCtx};
use state::History;
pub use state::{Source, StreamHealth};

/// A running local view page (cargo feature `view`): one self-contained page showing the
/// activity log, what each stream sent (after redaction) and the streams' health, live.
///
/// [`TelemetryHandle::serve_view`] serves it for a running pipeline (a desktop app embeds the
/// page in its webview as the Activity Log tab); the command-line tool's `collect --ui` serves
/// it for what its local collector receives.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let telemetry = closedloop_telemetry::builder("1.0.0").build()?;
/// let view = telemetry.handle().serve_view("127.0.0.1:0".parse()?)?;
/// println!("ui: {}", view.url());
/// # Ok(()) }
/// ```
///
/// # The page and its endpoints
///
/// - `/`: the page, its CSS and JS inline (no CDN, no fonts: it works offline), with the current
///   state embedded so the first paint needs no request.
/// - `/api/activity`, `/api/sent`, `/api/stats`: the same data as JSON, newest first
///   (`?from=<seq>` for entries from a sequence number on).
/// - `/api/live`: server-sent `update` events with what is new, checked once a second. A stream
///   with nothing new for 2 s ends and the page reconnects 3 s later, resuming from its last
///   event id; so an open stream never holds a headless browser's virtual clock. A stream
///   lasts at most 30 s, and one whose browser has not taken its earlier events within
///   `SEND_DEADLINE` (3 s) ends too. At most 16 streams are open at once (more get 503).
///
/// # Safety against other local users and web pages
///
/// It listens on loopback only (other addresses are refused), every request needs the random
/// per-run token (`?token=`, `X-View-Token` or `Authorization: Bearer`; else 403), `Host` must
/// be `localhost` or a loopback address (else 403: DNS rebinding), no CORS header is ever
/// sent, and every answer carries a strict `Content-Security-Policy` whose inline script and
/// style need the per-run nonce. Activity bodies travel only in response bodies, never in a
/// URL.
///
/// What one client can cost is bounded whether it has the token or not: at most
/// `MAX_CONNECTIONS` (64) connections are open at once (a new one over the bound is closed at
/// once, unanswered); a connection that has not sent a request head within
/// `HEADER_READ_TIMEOUT` (3 s) of opening, or of its previous answer, is closed; and a write
/// that makes no progress for `SEND_DEADLINE` (3 s) closes its connection, so a client that
/// stops reading frees its descriptor, task and live-stream slot.
///
/// # Cost
///
/// The server runs on its own thread with telemetry suppressed and logs nothing, so it never
/// feeds back into telemetry; the app's threads never wait for it. It keeps no copy of the
/// activity log: each answer and each live tick copies only the entries it returns (those
/// after the client's cursor, at most the newest 1,000; see
/// [`ActivityLogStore::since`](crate::ActivityLogStore::since)). The engines publish into a
/// ring of "sent" records only once a view is attached (before that, one atomic load per batch
/// outcome); the ring keeps the last 1,000 items, each cut to 8 KiB.
///
/// Dropping it (or [`shutdown`](ViewServer::shutdown)) stops it.
pub struct ViewServer {
    addr: SocketAddr,
    token: String,
    live_opened: Arc<AtomicU64>,
    server: ServerThread,
}

impl std::fmt::Debug for ViewServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewServer")
            .field("addr", &self.addr)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl ViewServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The per-run token every request must carry.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `http://127.0.0.1:<port>/?token=<token>`: the page, ready to open.
    pub fn url(&self) -> String {
        format!("http://{}/?token={}", self.addr, self.token)
    }

    /// How many live streams (`/api/live`) were opened so far (for tests and diagnostics).
    pub fn live_streams_opened(&self) -> u64 {
        self.live_opened.load(Ordering::Relaxed)
    }

    /// Stops the server and waits for its thread. Idempotent; also done on drop.
    pub fn shutdown(&self) {
        self.server.shutdown();
    }
}

/// A random token from two v4 UUIDs (getrandom-backed): 244 random bits, hex.
fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Binds `addr` (loopback only) and serves `source` on a thread of its own (the command-line
/// tool serves its collector this way; not API).
pub fn serve(addr: SocketAddr, source: Arc<dyn Source>) -> io::Result<ViewServer> {
    let (listener, addr) = bind_loopback(addr, "view")?;
    let token = random_token();
    let live_opened = Arc::new(AtomicU64::new(0));
    let ctx = Arc::new(ViewCtx {
        source,
        history: Arc::new(History::default()),
        token: token.clone(),
        nonce: uuid::Uuid::new_v4().simple().to_string(),
        live_opened: live_opened.clone(),
        live_open: Arc::default(),
    });
    let server = ServerThread::spawn("closedloop-telemetry-view", move |stop| {
        accept_loop(listener, ctx, stop)
    })?;
    Ok(ViewServer {
        addr,
        token,
        live_opened,
        server,
    })
}

/// The view of a running pipeline.
struct HandleSource {
    handle: TelemetryHandle,
    ring: Arc<SentRing>,
}

impl Source for HandleSource {
    fn title(&self) -> &'static str {
        "Telemetry: activity and what leaves this machine"
    }

    fn activity(&self, from: u64, max: usize) -> Option<Vec<ActivityEntry>> {
        Some(self.handle.activity().since(from, max))
    }

    fn sent(&self) -> &SentRing {
        &self.ring
    }

    fn health(&self) -> Vec<StreamHealth> {
        self.handle
            .stats()
            .streams
            .iter()
            .map(|s| {
                let d = &s.delivery;
                StreamHealth {
                    name: s.kind.as_str(),
                    counters: vec![
                        ("routed", s.routed),
                        ("queued", d.queued),
                        ("sent", d.sent),
                        ("spooled", d.spooled),
                        ("retried", d.retried),
                        ("requests", d.requests),
                    ],
                    dropped: DropReason::ALL
                        .iter()
                        .map(|r| (r.as_str(), d.dropped.get(*r)))
                        .collect(),
                    last_error: d.last_error.clone(),
                    rate_limited_by_name: d
                        .rate_limited_by_name
                        .iter()
                        .map(|(k, v)| (k.clone(), *v))
                        .collect(),
                    rate_of: d.sent,
                }
            })
            .collect()
    }
}

impl TelemetryHandle {
    /// Serves the local view page (see [`ViewServer`]) on `addr`, which must be a loopback
    /// address (`127.0.0.1:0` picks a free port; anything else is an `InvalidInput` error).
    /// From now on every stream publishes what it sends, spools or drops into one ring of the
    /// last 1,000 items. Print or open [`ViewServer::url`]; keep the server alive as long as the
    /// page should answer.
    pub fn serve_view(&self, addr: SocketAddr) -> io::Result<ViewServer> {
        // Refuse a non-loopback address before attaching anything.
        check_loopback(addr, "view")?;
        // One ring for every stream: the first engine's, if a view attached one already.
        let mut ring = SentRing::new();
        if let Some(p) = &self.inner.pipeline {
            for delivery in p.deliveries() {
                ring = delivery.attach_tap(ring);
            }
        }
        let source = HandleSource {
            handle: self.clone(),
            ring,
        };
        serve(addr, Arc::new(source))
    }
}
