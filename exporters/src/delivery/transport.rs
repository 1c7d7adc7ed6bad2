//! The seam between the engine and the network: one request body in, one outcome out.
//!
//! [`HttpTransport`](super::HttpTransport) POSTs over reqwest. The relay's channel transport
//! ([`RelayConnection`](crate::relay::RelayConnection), `relay/channel.rs`) hands the body to
//! the app's own relay connection and waits for its acknowledgement; it reports a lost
//! connection as [`TransportError::Unavailable`], a batch the app refuses for good as
//! [`TransportError::Rejected`], and calls [`Delivery::wake`](super::Delivery::wake) when the
//! app reports the connection back.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future (keeps [`Transport`] object-safe on stable Rust).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One request the engine wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The framed (and possibly gzip-compressed) body.
    pub body: Vec<u8>,
    /// Per-request headers, e.g. `("content-encoding", "gzip")`. Fixed headers (content type,
    /// credentials) belong to the transport's own configuration.
    pub headers: Vec<(&'static str, String)>,
    /// How many items the body carries (for transports that report per item).
    pub items: usize,
}

/// What the destination answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code (a channel transport answers 200 for an acknowledgement).
    pub status: u16,
    /// The `Retry-After` header, verbatim.
    pub retry_after: Option<String>,
    /// The server's reason text for non-2xx answers (the body, truncated); empty on success.
    pub reason: String,
    /// The answer's body as received (at most
    /// 64 KiB), for destinations that read it (OTLP:
    /// a `partial_success`, or a protobuf `Status`); empty when the transport has none.
    pub body: Vec<u8>,
}

/// Why a request got no answer. Every variant but [`Rejected`](Self::Rejected) is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Could not connect (refused, DNS, proxy) or the connection broke mid-request.
    #[error("connection: {0}")]
    Connection(String),
    /// The TLS handshake failed (unknown issuer, expired, wrong name): the host and the
    /// reason. Retried like a lost connection (an outage): the events are kept.
    #[error("TLS: {0}")]
    Tls(String),
    /// The destination is known to be down (e.g. the app's relay connection is lost).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// No answer within the per-request timeout.
    #[error("timed out")]
    Timeout,
    /// The destination refused this batch for good (e.g. the app's relay connection cannot
    /// ever send it): dropped and counted as `rejected`, never retried.
    #[error("rejected: {0}")]
    Rejected(String),
}

/// Sends request bodies somewhere. Called only from the engine's worker thread, inside its
/// current-thread tokio runtime and a telemetry-suppressed context; the engine enforces the
/// per-request timeout around [`Transport::send`].
pub trait Transport: Send + Sync + 'static {
    /// Sends one request and reports the answer.
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>>;
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        (**self).send(request)
    }
}
