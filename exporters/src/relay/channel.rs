//! The channel transport: batches go to the app's own relay connection (e.g. its WebSocket)
//! instead of HTTP, and the app acknowledges or fails each one.
//!
//! ```
//! use std::time::Duration;
//! use closedloop_telemetry_exporters::relay::{RelayConnection, RelayExporterBuilder};
//!
//! let conn = RelayConnection::new(16);
//! let exporter = RelayExporterBuilder::default().channel(conn.clone()).build().unwrap();
//! // The app's connection task:
//! // while let Some(batch) = conn.recv_timeout(Duration::from_secs(1)) {
//! //     match websocket.send(batch.body()) { Ok(()) => batch.ack(), Err(e) => batch.fail(e.to_string()) }
//! // }
//! conn.set_connected(false); // delivery pauses (batches wait under the usual retry rules)
//! conn.set_connected(true);  // delivery resumes at once, without waiting for a backoff
//! # drop(exporter);
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::delivery::{BoxFuture, Delivery, Request, Response, Transport, TransportError};

/// One batch handed to the app: a JSON array of `desktop.telemetry` messages.
#[derive(Debug)]
pub struct RelayBatch {
    body: Vec<u8>,
    items: usize,
    reply: oneshot::Sender<Result<(), String>>,
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
        let _ = self.reply.send(Ok(()));
    }

    /// The batch could not be delivered; it goes back to the queue under the retry rules.
    /// Dropping a batch without answering counts as a failure too.
    pub fn fail(self, reason: impl Into<String>) {
        let _ = self.reply.send(Err(reason.into()));
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
    delivery: OnceLock<Delivery>,
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
                delivery: OnceLock::new(),
            }),
        }
    }

    /// The next batch to send, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<RelayBatch> {
        let rx = self.inner.rx.lock().unwrap_or_else(|p| p.into_inner());
        // Timeout and disconnection both mean "no batch now".
        rx.recv_timeout(timeout).ok()
    }

    /// Reports the connection state. Lost: delivery pauses (batches stay queued). Resumed:
    /// delivery resumes at once, cancelling any backoff.
    pub fn set_connected(&self, connected: bool) {
        let was = self.inner.connected.swap(connected, Ordering::AcqRel);
        if connected && !was {
            if let Some(d) = self.inner.delivery.get() {
                d.wake();
            }
        }
    }

    /// Whether the app reported the connection up.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    pub(crate) fn attach(&self, delivery: Delivery) {
        let _ = self.inner.delivery.set(delivery);
    }
}

/// The engine's side: hands each request to the app and waits for its answer.
pub(crate) struct ChannelTransport {
    conn: RelayConnection,
}

impl ChannelTransport {
    pub(crate) fn new(conn: RelayConnection) -> Self {
        ChannelTransport { conn }
    }
}

impl Transport for ChannelTransport {
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(async move {
            if !self.conn.is_connected() {
                return Err(TransportError::Unavailable("relay connection lost".into()));
            }
            let (reply, answer) = oneshot::channel();
            let batch = RelayBatch {
                body: request.body,
                items: request.items,
                reply,
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
            match answer.await {
                Ok(Ok(())) => Ok(Response {
                    status: 200,
                    retry_after: None,
                    reason: String::new(),
                }),
                Ok(Err(reason)) => Err(TransportError::Connection(reason)),
                Err(_) => Err(TransportError::Connection(
                    "the app dropped the batch without an answer".into(),
                )),
            }
        })
    }
}
