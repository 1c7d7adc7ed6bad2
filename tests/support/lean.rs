//! A lean HTTP/1.1 receiver on 127.0.0.1 for load tests and benches: it answers every request
//! `200 OK` at once, keeps connections alive, and hands each body (with its arrival time) to a
//! callback instead of storing it. Unlike [`super::server::TestServer`] it has no request cap;
//! it stops when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type OnBody = dyn Fn(Instant, &[u8]) + Send + Sync;

/// The receiver; dropping it stops it.
pub struct LeanServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
}

impl LeanServer {
    /// Starts a receiver that calls `on_body` for every request body.
    pub fn start(on_body: impl Fn(Instant, &[u8]) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let on_body: Arc<OnBody> = Arc::new(on_body);
        let (s, r) = (stop.clone(), requests.clone());
        std::thread::Builder::new()
            .name("lean-http-server".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (s, r, f) = (s.clone(), r.clone(), on_body.clone());
                            std::thread::spawn(move || serve(conn, &s, &r, &*f));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
            .unwrap();
        LeanServer {
            addr,
            stop,
            requests,
        }
    }

    /// A receiver that only counts requests.
    pub fn counting() -> Self {
        Self::start(|_, _| {})
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for LeanServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(conn: TcpStream, stop: &AtomicBool, requests: &AtomicU64, on_body: &OnBody) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = conn.set_nodelay(true);
    let mut writer = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::with_capacity(64 * 1024, conn);
    let mut line = String::new();
    let mut body = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        // Headers.
        let mut len = 0usize;
        let mut started = false;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if !started
                        && matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    continue;
                }
                Err(_) => return,
            }
            started = true;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        body.resize(len, 0);
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let at = Instant::now();
        requests.fetch_add(1, Ordering::Relaxed);
        on_body(at, &body);
        let reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n{\"status\":1}";
        if writer.write_all(reply).is_err() {
            return;
        }
    }
}
