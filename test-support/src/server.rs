//! The loopback receiver of the tests and the benches: a real HTTP/1.1 server on 127.0.0.1 that
//! keeps connections alive and stops when dropped. Two ways to run it:
//!
//! - recording ([`TestServer::start`] and the constructors after it): it records every request
//!   (gzip bodies inflated) and answers from a script. Bounded: at most [`MAX_REQUESTS`]
//!   requests and two minutes.
//! - lean ([`TestServer::lean`], [`TestServer::counting`]), for load tests and benches: it
//!   answers every request `200 OK` at once, keeps nothing, and hands each body as it came (with
//!   its arrival time) to a callback. Unbounded in requests and in time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The most requests a recording server answers.
pub const MAX_REQUESTS: usize = 20_000;

/// The longest a recording server accepts connections.
pub const MAX_LIFETIME: Duration = Duration::from_secs(120);

/// One request as the server saw it (a recording server inflates gzip bodies).
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target, e.g. `/batch/`.
    pub path: String,
    /// The headers, in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// When the body was read in full.
    pub at: Instant,
}

impl Request {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// How to answer one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Headers besides `content-length` and `content-type`.
    pub headers: Vec<(String, String)>,
    /// The body (sent as `application/json`).
    pub body: String,
    /// Waits this long before answering.
    pub delay: Duration,
    /// Close the connection without answering.
    pub reset: bool,
    /// Answer with a chunked body that never ends (bounded by `ENDLESS_MAX_BYTES`).
    pub endless: bool,
}

/// The most an endless body writes before the server gives up on it.
pub const ENDLESS_MAX_BYTES: usize = 256 << 20;
/// The longest an endless body is written.
pub const ENDLESS_MAX_TIME: Duration = Duration::from_secs(60);

impl Reply {
    /// `status`, no body, at once.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
            reset: false,
            endless: false,
        }
    }
    /// `200`, no body, at once.
    pub fn ok() -> Self {
        Reply::status(200)
    }
    /// Adds the header `k: v`.
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    /// Sets the body.
    pub fn body(mut self, b: &str) -> Self {
        self.body = b.into();
        self
    }
    /// Answers after `d`.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    /// `status` with a chunked body that never ends.
    pub fn endless(status: u16) -> Self {
        Reply {
            endless: true,
            ..Reply::status(status)
        }
    }
    /// Closes the connection without answering.
    pub fn reset() -> Self {
        Reply {
            reset: true,
            ..Reply::ok()
        }
    }
}

type Script = dyn Fn(usize, &Request) -> Reply + Send + Sync;
type OnBody = dyn Fn(Instant, &[u8]) + Send + Sync;

/// What the server does with a request.
enum Mode {
    /// Records it and answers from the script.
    Recording(Box<Script>),
    /// Hands its body to the callback and answers `200` at once.
    Lean(Box<OnBody>),
}

struct Shared {
    mode: Mode,
    requests: Mutex<Vec<Request>>,
    arrived: Condvar,
    stop: AtomicBool,
    served: AtomicUsize,
    /// Endless bodies the client stopped reading (the connection was closed under them).
    endless_closed: AtomicUsize,
    /// Read at most this many bytes per second of each connection (`None`: as fast as sent).
    read_rate: Option<usize>,
}

/// The receiver; dropping it stops it.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl TestServer {
    /// A recording server that answers request `n` (0-based) with `script(n, &request)`.
    pub fn start(script: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(None, script)
    }

    /// A lean receiver that calls `on_body` with each request's arrival time and body (as
    /// sent: gzip stays gzip), answers `200` with `{"status":1}` at once and records nothing.
    pub fn lean(on_body: impl Fn(Instant, &[u8]) + Send + Sync + 'static) -> Self {
        Self::spawn(Mode::Lean(Box::new(on_body)), None)
    }

    /// A lean receiver that only counts requests ([`served`](Self::served)).
    pub fn counting() -> Self {
        Self::lean(|_, _| {})
    }

    /// Like [`start`](Self::start), but reads each connection at `bytes_per_sec` (a slow
    /// uplink as the client sees it).
    pub fn throttled(
        bytes_per_sec: usize,
        script: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_with(Some(bytes_per_sec), script)
    }

    fn start_with(
        read_rate: Option<usize>,
        script: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::spawn(Mode::Recording(Box::new(script)), read_rate)
    }

    fn spawn(mode: Mode, read_rate: Option<usize>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            mode,
            requests: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            stop: AtomicBool::new(false),
            served: AtomicUsize::new(0),
            endless_closed: AtomicUsize::new(0),
            read_rate,
        });
        let s = shared.clone();
        std::thread::Builder::new()
            .name("test-http-server".into())
            .spawn(move || accept_loop(listener, s))
            .unwrap();
        TestServer { addr, shared }
    }

    /// A server that answers every request with `status`.
    pub fn always(status: u16) -> Self {
        Self::start(move |_, _| Reply::status(status))
    }

    /// A server that answers from a fixed list, then with the last entry forever.
    pub fn sequence(replies: Vec<Reply>) -> Self {
        Self::start(move |n, _| replies[n.min(replies.len() - 1)].clone())
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The requests recorded so far (none on a lean receiver).
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// How many requests arrived so far (recorded or not).
    pub fn served(&self) -> usize {
        self.shared.served.load(Ordering::SeqCst)
    }

    /// Waits until the client closed the connection under `n` endless bodies, or `timeout`
    /// passed; returns how many it closed.
    pub fn wait_endless_closed(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let closed = self.shared.endless_closed.load(Ordering::SeqCst);
            if closed >= n || Instant::now() >= deadline {
                return closed;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until at least `n` requests arrived or `timeout` passed; returns them.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        let mut reqs = self.shared.requests.lock().unwrap();
        while reqs.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            reqs = self.shared.arrived.wait_timeout(reqs, left).unwrap().0;
        }
        reqs.clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let started = Instant::now();
    // A recording server is bounded in time too: none outlives two minutes.
    let bounded = matches!(shared.mode, Mode::Recording(_));
    while !shared.stop.load(Ordering::SeqCst) && (!bounded || started.elapsed() < MAX_LIFETIME) {
        match listener.accept() {
            Ok((stream, _)) => {
                let s = shared.clone();
                let _ = std::thread::Builder::new()
                    .name("test-http-conn".into())
                    .spawn(move || serve(stream, s));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    // A recording server closes a connection idle for 30 s; a lean one wakes every 200 ms to
    // see whether it was stopped, and keeps an idle connection until then.
    let lean = matches!(shared.mode, Mode::Lean(_));
    let _ = stream.set_read_timeout(Some(if lean {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(30)
    }));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::with_capacity(
        64 * 1024,
        Throttled {
            inner: stream,
            rate: shared.read_rate,
        },
    );
    let keep_waiting = || lean && !shared.stop.load(Ordering::SeqCst);
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Some(req) = read_request(&mut reader, !lean, &keep_waiting) else {
            return;
        };
        let n = shared.served.fetch_add(1, Ordering::SeqCst);
        let reply = match &shared.mode {
            Mode::Lean(on_body) => {
                on_body(req.at, &req.body);
                Reply::ok().body(r#"{"status":1}"#)
            }
            Mode::Recording(script) => {
                if n >= MAX_REQUESTS {
                    return;
                }
                let reply = script(n, &req);
                let mut reqs = shared.requests.lock().unwrap();
                reqs.push(req);
                shared.arrived.notify_all();
                reply
            }
        };
        if !reply.delay.is_zero() {
            std::thread::sleep(reply.delay);
        }
        if reply.reset {
            let _ = writer.shutdown(std::net::Shutdown::Both);
            return;
        }
        if reply.endless {
            serve_endless(&mut writer, &reply, &shared);
            return;
        }
        let mut head = format!(
            "HTTP/1.1 {} X\r\ncontent-length: {}\r\ncontent-type: application/json\r\n",
            reply.status,
            reply.body.len()
        );
        for (k, v) in &reply.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if writer.write_all(head.as_bytes()).is_err()
            || writer.write_all(reply.body.as_bytes()).is_err()
        {
            return;
        }
    }
}

/// Writes `reply`'s status and then chunks until the client closes the connection (counted in
/// `endless_closed`), the server stops, or `ENDLESS_MAX_BYTES` or `ENDLESS_MAX_TIME` is reached.
fn serve_endless(writer: &mut TcpStream, reply: &Reply, shared: &Shared) {
    let mut head = format!(
        "HTTP/1.1 {} X\r\ntransfer-encoding: chunked\r\ncontent-type: text/plain\r\n\r\n",
        reply.status
    );
    let chunk = format!("{:x}\r\n{}\r\n", 8192, "x".repeat(8192));
    let mut written = 0;
    let _ = writer.set_write_timeout(Some(Duration::from_secs(30)));
    if writer.write_all(head.as_bytes()).is_err() {
        return;
    }
    head.clear();
    let started = Instant::now();
    while written < ENDLESS_MAX_BYTES
        && !shared.stop.load(Ordering::SeqCst)
        && started.elapsed() < ENDLESS_MAX_TIME
    {
        // Paced (about 8 MB/s), so a client that reads it whole is held, not flooded.
        std::thread::sleep(Duration::from_millis(1));
        match writer.write_all(chunk.as_bytes()) {
            Ok(()) => written += chunk.len(),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return
            }
            Err(_) => {
                shared.endless_closed.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

/// A connection read at most `rate` bytes per second.
struct Throttled {
    inner: TcpStream,
    rate: Option<usize>,
}

impl Read for Throttled {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(rate) = self.rate else {
            return self.inner.read(buf);
        };
        // Ten slices a second.
        let slice = (rate / 10).max(1);
        let cap = buf.len().min(slice);
        let n = self.inner.read(&mut buf[..cap])?;
        std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
        Ok(n)
    }
}

/// Is `e` a read timeout (`WouldBlock` on Unix, `TimedOut` on Windows)?
fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Reads one request; `None` when the connection closed, failed or timed out. A timeout
/// before its first byte is waited out as long as `keep_waiting` says so. `inflate`: gzip
/// bodies are inflated.
fn read_request(
    reader: &mut impl BufRead,
    inflate: bool,
    keep_waiting: &dyn Fn() -> bool,
) -> Option<Request> {
    let mut line = String::new();
    loop {
        match reader.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) => break,
            Err(e) if line.is_empty() && timed_out(&e) && keep_waiting() => continue,
            Err(_) => return None,
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let len: usize = find("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    if inflate && find("content-encoding").is_some_and(|v| v.eq_ignore_ascii_case("gzip")) {
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut inflated)
            .ok()?;
        body = inflated;
    }
    Some(Request {
        method,
        path,
        headers,
        body,
        at: Instant::now(),
    })
}

/// A loopback listener whose accept queue is full, so the kernel drops every new SYN: a
/// destination that never accepts (a firewall silently dropping packets). Hold on to it for as
/// long as the test needs the address; dropping it closes everything.
pub struct SilentListener {
    addr: SocketAddr,
    _listener: TcpListener,
    _fillers: Vec<TcpStream>,
}

impl SilentListener {
    /// Binds a listener that never accepts and fills its accept queue (at most 5000
    /// connections); `None` where the queue cannot be filled.
    pub fn start() -> Option<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").ok()?;
        let addr = listener.local_addr().ok()?;
        let mut fillers = Vec::new();
        while fillers.len() < 5000 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(s) => fillers.push(s),
                Err(_) => {
                    return Some(SilentListener {
                        addr,
                        _listener: listener,
                        _fillers: fillers,
                    })
                }
            }
        }
        None
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}
