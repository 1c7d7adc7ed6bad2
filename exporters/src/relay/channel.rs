//! The channel transport: batches go to the app's own relay connection (e.g. its WebSocket)
//! instead of HTTP, and the app acknowledges, fails or rejects each one.
//!
//! ```
//! use std::time::Duration;
//! use closedloop_telemetry_exporters::{RelayConnection, RelayExporterBuilder};
//!
//! let conn = RelayConnection::new(16);
//! let exporter = RelayExporterBuilder::default().channel(conn.clone()).build().unwrap();
//! // The app's connection task:
//! // while let Some(batch) = conn.recv_timeout(Duration::from_secs(1)) {
//! //     match websocket.send(batch.body()) {
//! //         Ok(()) => batch.ack(),
//! //         Err(e) if e.is_permanent() => batch.reject(e.to_string()), // counted, never retried
//! //         Err(e) => batch.fail(e.to_string()),                       // retried
//! //     }
//! // }
//! conn.set_connected(false); // delivery pauses (batches wait under the usual retry rules)
//! conn.set_connected(true);  // delivery resumes at once, without waiting for a backoff
//! # drop(exporter);
//! ```
//!
//! # A stalled connection task
//!
//! A batch is offered to the app for one request timeout (`timeout`, 10 s by default). If the
//! app's task has not taken it with [`RelayConnection::recv_timeout`] by then (it is stuck, or
//! busy elsewhere), the batch is **withdrawn**: it stays in the engine's queue, the attempt
//! counts as an outage (retried with backoff, without limit, like a lost connection), and
//! `recv_timeout` silently skips the withdrawn copy if the task comes back to it later. A batch
//! is also withdrawn when the engine stops waiting for it for any other reason (shutdown
//! deadline, consent purge). So a task that resumes after a stall only ever receives the batch
//! the engine is waiting for now, never stale copies it would send as duplicates. A batch the
//! app *did* take is the app's until it answers: if the engine times out waiting for that
//! answer the batch is retried, and the relay may then see it twice (with the same message
//! ids, as after any retry).
//!
//! # Lifetimes
//!
//! The engine's transport holds the connection, and the connection holds its engines only
//! weakly: an exporter the app drops without a shutdown still stops within its shutdown
//! deadline (and releases its spool) while the app keeps the connection. One connection can
//! feed several exporters in turn; reporting it resumed wakes every one still alive.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::delivery::{
    BoxFuture, Delivery, Request, Response, Transport, TransportError, WeakDelivery,
};

/// A batch waits in the channel for the app.
const QUEUED: u8 = 0;
/// The app took it with `recv_timeout`.
const TAKEN: u8 = 1;
/// The engine stopped waiting for it before the app took it; `recv_timeout` skips it.
const WITHDRAWN: u8 = 2;

/// The app's answer to one batch.
#[derive(Debug)]
enum Answer {
    Ack,
    Fail(String),
    Reject(String),
}

/// One batch handed to the app: a JSON array of `desktop.telemetry` messages.
#[derive(Debug)]
pub struct RelayBatch {
    body: Vec<u8>,
    items: usize,
    reply: oneshot::Sender<Answer>,
    state: Arc<AtomicU8>,
    taken: Option<oneshot::Sender<()>>,
}

impl RelayBatch {
    /// The JSON array to send over the connection.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// How many messages it carries.
    pub fn items(&self) -> usize {
        self.items
    }

    /// The relay acknowledged the batch: it is delivered.
    pub fn ack(self) {
        let _ = self.reply.send(Answer::Ack);
    }

    /// The batch could not be delivered now; it goes back to the queue and is retried, without
    /// limit, like a lost connection. Dropping a batch without answering counts as a failure
    /// too.
    pub fn fail(self, reason: impl Into<String>) {
        let _ = self.reply.send(Answer::Fail(reason.into()));
    }

    /// The batch can never be delivered (e.g. the relay refuses it for good): it is dropped,
    /// counted as `rejected` with `reason` (redacted) in `last_error`, and never retried, so
    /// the stream moves on to the next batch.
    pub fn reject(self, reason: impl Into<String>) {
        let _ = self.reply.send(Answer::Reject(reason.into()));
    }

    /// Claims a queued batch for the app; `false` if the engine withdrew it.
    fn take(&mut self) -> bool {
        let ok = self
            .state
            .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if let (true, Some(taken)) = (ok, self.taken.take()) {
            let _ = taken.send(());
        }
        ok
    }
}

/// Withdraws a batch the app has not taken yet when the engine stops waiting for it (the
/// transport's future ends or is dropped).
struct Withdraw(Arc<AtomicU8>);

impl Withdraw {
    /// `true` if the batch was still queued and is now withdrawn.
    fn withdraw(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        self.withdraw();
    }
}

/// The app's side of the channel transport. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RelayConnection {
    inner: Arc<ConnInner>,
}

#[derive(Debug)]
struct ConnInner {
    tx: SyncSender<RelayBatch>,
    rx: Mutex<Receiver<RelayBatch>>,
    connected: AtomicBool,
    /// The engines this connection feeds, held weakly: the engine's own transport holds the
    /// connection, so a strong handle here would keep the engine (and its thread and spool
    /// lock) alive after the app dropped the exporter.
    deliveries: Mutex<Vec<WeakDelivery>>,
}

impl RelayConnection {
    /// A connection that holds at most `capacity` batches waiting for the app (connected).
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = sync_channel(capacity.max(1));
        RelayConnection {
            inner: Arc::new(ConnInner {
                tx,
                rx: Mutex::new(rx),
                connected: AtomicBool::new(true),
                deliveries: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The next batch to send, waiting at most `timeout`. Batches the engine has withdrawn
    /// (not taken within the request timeout; see the module docs) are skipped.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<RelayBatch> {
        let deadline = Instant::now().checked_add(timeout);
        let rx = self.inner.rx.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let left = deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
            // Timeout and disconnection both mean "no batch now".
            let mut batch = rx.recv_timeout(left).ok()?;
            if batch.take() {
                return Some(batch);
            }
        }
    }

    /// Reports the connection state. Lost: delivery pauses (batches stay queued). Resumed:
    /// delivery resumes at once, cancelling any backoff.
    pub fn set_connected(&self, connected: bool) {
        let was = self.inner.connected.swap(connected, Ordering::AcqRel);
        if connected && !was {
            let live: Vec<Delivery> = self
                .inner
                .deliveries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter_map(WeakDelivery::upgrade)
                .collect();
            for d in live {
                d.wake();
            }
        }
    }

    /// Whether the app reported the connection up.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// Feeds `delivery` too (every engine attached and still alive is woken on resume).
    pub(crate) fn attach(&self, delivery: &Delivery) {
        let mut all = self
            .inner
            .deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        all.retain(|d| d.upgrade().is_some());
        all.push(delivery.downgrade());
    }
}

/// The engine's side: hands each request to the app and waits for its answer.
pub(crate) struct ChannelTransport {
    conn: RelayConnection,
    /// How long a batch waits for the app to take it before it is withdrawn.
    pickup: Duration,
}

impl ChannelTransport {
    /// `pickup`: how long a batch waits for the app's task (the request timeout).
    pub(crate) fn new(conn: RelayConnection, pickup: Duration) -> Self {
        ChannelTransport { conn, pickup }
    }
}

impl Transport for ChannelTransport {
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(async move {
            if !self.conn.is_connected() {
                return Err(TransportError::Unavailable("relay connection lost".into()));
            }
            let (reply, answer) = oneshot::channel();
            let (taken, was_taken) = oneshot::channel();
            let state = Arc::new(AtomicU8::new(QUEUED));
            let batch = RelayBatch {
                body: request.body,
                items: request.items,
                reply,
                state: state.clone(),
                taken: Some(taken),
            };
            match self.conn.inner.tx.try_send(batch) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    return Err(TransportError::Unavailable("relay connection busy".into()))
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(TransportError::Unavailable(
                        "relay connection closed".into(),
                    ))
                }
            }
            // From here on, however this future ends, a batch still queued is withdrawn.
            let guard = Withdraw(state);
            if tokio::time::timeout(self.pickup, was_taken).await.is_err() && guard.withdraw() {
                return Err(TransportError::Unavailable(
                    "the app's relay connection task did not take the batch in time".into(),
                ));
            }
            match answer.await {
                Ok(Answer::Ack) => Ok(Response {
                    status: 200,
                    retry_after: None,
                    reason: String::new(),
                    body: Vec::new(),
                }),
                Ok(Answer::Fail(reason)) => Err(TransportError::Connection(reason)),
                Ok(Answer::Reject(reason)) => Err(TransportError::Rejected(reason)),
                Err(_) => Err(TransportError::Connection(
                    "the app dropped the batch without an answer".into(),
                )),
            }
        })
    }
}
