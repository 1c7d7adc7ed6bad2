//! What one client connection may cost the app: how many are open at once, how long one may
//! wait before it sends a request, and how long a write may wait for a client that stopped
//! reading. Each bound frees the connection's file descriptor and task without help from the
//! client, so a local user (token or not) cannot pile up connections the app pays for.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// The most connections a view serves at once (64). A new connection over the bound is closed
/// at once, unanswered; the page needs two or three (the page itself, its live stream, an API
/// call), and the 16 live streams a view allows leave room for the rest.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a connection may take to send a request's head (3 s): counted from when it opens,
/// and again from each answer on a kept-alive connection, so an idle connection is closed
/// then too. On loopback a head arrives in one packet within milliseconds; a browser reopens a
/// closed idle connection by itself.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one write to a client (and the hand-over of one live event to its connection)
/// may wait for the client to read (3 s). A client that reads nothing for that long has
/// stopped reading: its answer or live stream ends, and its connection and slot are freed.
pub const SEND_DEADLINE: Duration = Duration::from_secs(3);

/// The connection slots: one is held for as long as its connection is open.
pub(super) struct Slots(Arc<Semaphore>);

impl Slots {
    /// [`MAX_CONNECTIONS`] slots.
    pub(super) fn new() -> Self {
        Slots(Arc::new(Semaphore::new(MAX_CONNECTIONS)))
    }

    /// A free slot, if any; never waits.
    pub(super) fn try_take(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}

/// The HTTP/1 settings every view connection is served with: the header read timeout, on the
/// runtime's timer.
pub(super) fn http1() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
}

/// A connection whose writes fail with `TimedOut` once one has made no progress for
/// [`SEND_DEADLINE`]: hyper then drops the connection, and with it the response body.
pub(super) struct WriteDeadline<T> {
    io: T,
    /// Set when a write returns `Pending`, cleared when one makes progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteDeadline<T> {
    pub(super) fn new(io: T) -> Self {
        WriteDeadline { io, stalled: None }
    }

    /// Passes a write's `polled` through: progress clears the deadline, `Pending` starts it
    /// (if not running) and fails once it has passed.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        self.expired(cx)
    }

    /// `Pending` until the deadline of the stalled write has passed, then `TimedOut`.
    fn expired<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(SEND_DEADLINE)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing within the send deadline",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    // A flush or shutdown moves no bytes of its own: it waits under the same deadline, but
    // only a write that makes progress clears it.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Pending => self.expired(cx),
            done => done,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_shutdown(cx) {
            Poll::Pending => self.expired(cx),
            done => done,
        }
    }
}
