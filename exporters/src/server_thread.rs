//! A loopback HTTP listener served on a thread of its own: what the local collector and the
//! view page share (not API: for the facade's `view` feature and the tools crates). The thread runs a current-thread tokio runtime inside
//! `Context::enter_telemetry_suppressed_scope()`, so nothing it does becomes telemetry, and
//! [`ServerThread::shutdown`] (also run on drop) stops it and waits for it.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

/// An `InvalidInput` error unless `addr` is a loopback address (`what` names the server).
pub fn check_loopback(addr: SocketAddr, what: &str) -> io::Result<()> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("the {what} only listens on loopback (127.0.0.1 or ::1), not {addr}"),
    ))
}

/// Binds `addr`, which must be a loopback address (`what` names the server in the error),
/// as a non-blocking listener; returns it with the address it got (port 0 picks a free one).
pub fn bind_loopback(addr: SocketAddr, what: &str) -> io::Result<(TcpListener, SocketAddr)> {
    check_loopback(addr, what)?;
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// The serving thread; stopped and joined on [`shutdown`](Self::shutdown) or drop.
#[derive(Debug)]
pub struct ServerThread {
    worker: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl ServerThread {
    /// Runs `serve(stop)` to completion on a new thread named `name`; `stop` resolves when
    /// the server is shut down.
    pub fn spawn<F, Fut>(name: &str, serve: F) -> io::Result<Self>
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // It may share a process with the telemetry pipeline: nothing it does may be
                // captured as telemetry.
                let _suppressed = opentelemetry::Context::enter_telemetry_suppressed_scope();
                runtime.block_on(serve(stop_rx));
            })?;
        Ok(Self {
            worker: Mutex::new(Some((stop_tx, thread))),
        })
    }

    /// Stops the server and waits for its thread. Idempotent.
    pub fn shutdown(&self) {
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((stop, thread)) = worker {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}
