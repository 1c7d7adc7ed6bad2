// A binary of its own: its global allocator counts every byte the process allocates.
//! The local view (feature `view`): its security checks and bounds over plain loopback HTTP,
//! and the page itself in headless Chromium (skipped, with a message, when none is installed).
#![cfg(feature = "view")]

use closedloop_telemetry_test_support as support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use closedloop_telemetry::__private::view::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS, SEND_DEADLINE};
use closedloop_telemetry::ViewServer;
use closedloop_telemetry::{ActivityKind, TelemetryGuard, TelemetryHandle};
use closedloop_telemetry_collector::Collector;
use closedloop_telemetry_exporters::__private::delivery::SENT_RING_CAPACITY;
use serde_json::Value;
use support::process::TempDir;
use tracing::{error, info, Dispatch};
use tracing_subscriber::prelude::*;

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "ghp_4f9ZkqLr8TnW2xYc7VbM1sPdQ0aHjE3uKoIy";

/// One GET; returns the status, the headers (lower-cased) and the body.
fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the view");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut head = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a full response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn get_json(view: &ViewServer, path: &str) -> Value {
    let sep = if path.contains('?') { '&' } else { '?' };
    let path = format!("{path}{sep}token={}", view.token());
    let (status, head, body) = get(view.addr(), &view.addr().to_string(), &path, &[]);
    assert_eq!(status, 200, "{path}: {body}");
    assert!(head.contains("transfer-encoding: chunked") || !body.is_empty());
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// A pipeline sending both streams to a local collector, with its layer as this test's
/// subscriber (use [`Pipeline::emit`]).
struct Pipeline {
    _dir: TempDir,
    _collector: Collector,
    handle: TelemetryHandle,
    guard: Option<TelemetryGuard>,
    dispatch: Dispatch,
}

impl Pipeline {
    fn start(tag: &str) -> Pipeline {
        Self::start_with(tag, |b| b)
    }

    fn start_with(
        tag: &str,
        tweak: impl FnOnce(
            closedloop_telemetry::TelemetryBuilder,
        ) -> closedloop_telemetry::TelemetryBuilder,
    ) -> Pipeline {
        let dir = TempDir::new(tag);
        let collector = Collector::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let telemetry = tweak(
            closedloop_telemetry::builder("1.0.0")
                .posthog("phc_view_test", collector.posthog_host())
                .relay(collector.relay_url(), None)
                .compute_target_id("ct-view")
                .verbose(true)
                .data_dir(dir.path().join("data")),
        )
        .build()
        .unwrap();
        let handle = telemetry.handle();
        let (layer, guard) = telemetry.split();
        Pipeline {
            _dir: dir,
            _collector: collector,
            handle,
            guard: Some(guard),
            dispatch: Dispatch::new(tracing_subscriber::registry().with(layer)),
        }
    }

    fn emit(&self, f: impl FnOnce()) {
        tracing::dispatcher::with_default(&self.dispatch, f);
        let report = self.handle.flush(WAIT);
        assert!(report.is_complete(), "{report}");
    }

    /// A session: two activity entries (one over 8 KiB), a PostHog event and a relay event
    /// whose log tail carries a GitHub token.
    fn session(&self) {
        self.emit(|| {
            info!(
                activity = "request",
                summary = "POST /v1/commands/cmd-1/run",
                body = r#"{"cmd":"npm test"}"#
            );
            info!(
                activity = "security",
                summary = "sandbox blocked a write",
                body = "x".repeat(9000)
            );
            info!(
                event = "approval.requested",
                tool = "shell",
                risk = "medium"
            );
            error!(
                event = "job.failed",
                job_id = "job-1",
                exit_code = 1,
                elapsed_ms = 10_u64,
                log_tail = format!("npm ERR! token {SECRET}\n")
            );
        });
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Some(g) = self.guard.take() {
            let _ = g.shutdown();
        }
    }
}

#[test]
fn without_the_token_every_path_is_403_and_with_it_200() {
    let p = Pipeline::start("view-token");
    let view = p.handle.serve_view("127.0.0.1:0".parse().unwrap()).unwrap();
    let host = view.addr().to_string();
    for path in ["/", "/api/activity", "/api/sent", "/api/stats", "/api/live"] {
        let (status, head, _) = get(view.addr(), &host, path, &[]);
        assert_eq!(status, 403, "{path}");
        assert!(!head.contains("access-control-allow"), "{path}: {head}");
        let wrong = format!("{path}?token=not-the-token");
        assert_eq!(get(view.addr(), &host, &wrong, &[]).0, 403, "{wrong}");
    }
    // The token as a header works too, and a page answer carries the strict CSP with a nonce.
    let (status, head, body) = get(view.addr(), &host, "/", &[("x-view-token", view.token())]);
    assert_eq!(status, 200);
    let csp = head
        .lines()
        .find_map(|l| l.strip_prefix("content-security-policy: "))
        .expect("a CSP header");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'nonce-"),
        "{csp}"
    );
    assert!(!head.contains("access-control-allow"), "{head}");
    for external in ["src=\"http", "href=\"http", "@import", "url("] {
        assert!(!body.contains(external), "an external resource: {external}");
    }
    let bearer = format!("Bearer {}", view.token());
    let (status, ..) = get(
        view.addr(),
        &host,
        "/api/stats",
        &[("authorization", &bearer)],
    );
    assert_eq!(status, 200);
}

#[test]
fn a_host_that_is_not_a_loopback_name_is_403_even_with_the_token() {
    let p = Pipeline::start("view-host");
    let view = p.handle.serve_view("127.0.0.1:0".parse().unwrap()).unwrap();
    let path = format!("/api/stats?token={}", view.token());
    for host in [
        "evil.example",
        "evil.example:80",
        "localhost.evil.example",
        "10.1.2.3",
    ] {
        assert_eq!(get(view.addr(), host, &path, &[]).0, 403, "{host}");
    }
    let port = view.addr().port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".into(),
    ] {
        assert_eq!(get(view.addr(), &host, &path, &[]).0, 200, "{host}");
    }
}

#[test]
fn addresses_other_than_loopback_are_refused() {
    let p = Pipeline::start("view-bind");
    for addr in ["0.0.0.0:0", "192.0.2.1:0", "[::]:0"] {
        let addr: SocketAddr = addr.parse().unwrap();
        let err = p.handle.serve_view(addr).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{addr}");
    }
    assert!(p.handle.serve_view("[::1]:0".parse().unwrap()).is_ok() || !ipv6_loopback());
}

fn ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

#[test]
fn the_endpoints_show_activity_redacted_sent_items_and_counters() {
    let p = Pipeline::start("view-json");
    let view = p.handle.serve_view("127.0.0.1:0".parse().unwrap()).unwrap();
    p.session();
    let activity = get_json(&view, "/api/activity");
    let entries = activity["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{activity}");
    assert_eq!(entries[0]["kind"], "SECURITY", "newest first");
    assert_eq!(entries[0]["truncated"], true);
    let sent = get_json(&view, "/api/sent");
    let records = sent["records"].as_array().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["stream"] == "posthog" && r["outcome"] == "sent"),
        "{sent}"
    );
    let relay = records
        .iter()
        .find(|r| r["stream"] == "relay")
        .expect("a relay record");
    let body = relay["body"].as_str().unwrap();
    assert!(body.contains("[REDACTED:"), "{body}");
    assert!(!sent.to_string().contains(SECRET));
    let stats = get_json(&view, "/api/stats");
    let posthog = &stats["streams"][0];
    assert_eq!(posthog["name"], "posthog");
    assert!(
        posthog["counters"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["sent", 1])),
        "{stats}"
    );
}

#[test]
fn the_view_keeps_at_most_the_last_1000_sent_items() {
    // More events of one name than the default rate limit lets by: the ring is tested here.
    let p = Pipeline::start_with("view-bound", |b| b.rate_limit(None));
    let view = p.handle.serve_view("127.0.0.1:0".parse().unwrap()).unwrap();
    let n = SENT_RING_CAPACITY + 200;
    p.emit(|| {
        for i in 0..n {
            info!(
                event = "approval.requested",
                tool = "shell",
                risk = "low",
                n = i as u64
            );
        }
    });
    let stats = p.handle.stats();
    assert_eq!(stats.streams[0].delivery.sent, n as u64, "all were sent");
    let sent = get_json(&view, "/api/sent");
    let records = sent["records"].as_array().unwrap();
    assert_eq!(records.len(), SENT_RING_CAPACITY);
    assert_eq!(sent["next_seq"], n as u64);
    // Newest first, and the oldest 200 are gone.
    assert_eq!(records[0]["seq"], (n - 1) as u64);
    assert_eq!(records[SENT_RING_CAPACITY - 1]["seq"], 200);
}

// --- in a real browser ------------------------------------------------------------------------

/// The Chromium binary (`CHROMIUM`, else `chromium` or `chromium-browser` on the PATH).
/// The stats show, per stream, what the rate limit refused: as a drop reason and by name.
#[test]
fn the_stats_show_rate_limited_counts_per_stream_by_name() {
    let p = Pipeline::start("view-limited");
    let view = p.handle.serve_view("127.0.0.1:0".parse().unwrap()).unwrap();
    p.emit(|| {
        for i in 0..300u64 {
            info!(event = "connection.degraded", elapsed_ms = i);
        }
    });
    let stats = get_json(&view, "/api/stats");
    for name in ["posthog", "relay"] {
        let s = stats["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {stats}"));
        let limited = p
            .handle
            .stats()
            .streams
            .iter()
            .find(|st| st.kind.as_str() == name)
            .unwrap()
            .delivery
            .dropped
            .rate_limited;
        assert!(limited >= 190, "{name}: {limited}");
        assert!(
            s["dropped"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!(["rate_limited", limited])),
            "{s}"
        );
        assert_eq!(
            s["rate_limited_by_name"],
            serde_json::json!([["connection.degraded", limited]]),
            "{s}"
        );
    }
}

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(p.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// Starts headless Chromium on `url` with `args` (e.g. `--dump-dom`), in a fresh profile.
fn browser(bin: &PathBuf, profile: &TempDir, args: &[String], url: &str) -> Child {
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium")
}

/// Waits for Chromium to exit (at most 90 s) and returns what it printed.
fn output(mut child: Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not return within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out
}

#[test]
fn the_page_renders_in_headless_chromium_and_updates_live() {
    let Some(bin) = chromium() else {
        eprintln!(
            "SKIPPED the_page_renders_in_headless_chromium_and_updates_live: no chromium binary \
             (install it with `apt-get install -y chromium`, or set CHROMIUM=/path/to/chrome)"
        );
        return;
    };
    let p = Pipeline::start("view-browser");
    let view = p.handle.serve_view("127.0.0.1:0".parse().unwrap()).unwrap();
    p.session();

    // First paint: the current state, and Chromium returns although the page opens a live stream.
    let profile = TempDir::new("view-chromium");
    let dump = [
        "--dump-dom".to_string(),
        "--virtual-time-budget=4000".into(),
    ];
    let dom = output(browser(&bin, &profile, &dump, &view.url()));
    assert!(
        dom.contains("POST /v1/commands/cmd-1/run"),
        "activity entry missing:\n{dom}"
    );
    assert!(dom.contains("sandbox blocked a write"), "{dom}");
    assert!(dom.contains(">truncated<"), "truncation not marked");
    assert!(
        dom.contains(r#"<mark class="redacted">[REDACTED:"#),
        "no redaction marker:\n{dom}"
    );
    assert!(!dom.contains(SECRET));
    assert!(
        dom.contains("approval_requested") && dom.contains("job.failed"),
        "{dom}"
    );
    assert!(
        dom.contains(r#"data-counter="posthog.sent">1<"#),
        "counter missing:\n{dom}"
    );
    assert!(dom.contains(r#"data-counter="relay.sent">1<"#), "{dom}");

    // Live: once the page's stream is open, a new entry appears with no reload.
    let opened = view.live_streams_opened();
    let live = [
        "--dump-dom".to_string(),
        "--virtual-time-budget=10000".into(),
    ];
    let child = browser(&bin, &profile, &live, &view.url());
    let deadline = Instant::now() + Duration::from_secs(60);
    while view.live_streams_opened() == opened && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        view.live_streams_opened() > opened,
        "the page never opened its live stream"
    );
    p.emit(|| {
        info!(
            activity = "security",
            summary = "late entry after load",
            body = "pushed live"
        );
        info!(
            event = "approval.resolved",
            decision = "approved",
            wait_ms = 5_u64
        );
    });
    let dom = output(child);
    assert!(
        dom.contains("late entry after load"),
        "the live update did not arrive:\n{dom}"
    );
    assert!(dom.contains("approval_resolved"), "{dom}");
    assert!(dom.contains(r#"data-counter="posthog.sent">2<"#), "{dom}");

    // The README's screenshot, when asked for: CL_VIEW_SCREENSHOT=docs/view.png.
    if let Some(path) = std::env::var_os("CL_VIEW_SCREENSHOT") {
        p.emit(|| closedloop_telemetry_collector::demo::play(p.handle.gateway()));
        // Newest on top, and opened by the page: an event whose redacted secret shows.
        p.emit(|| {
            error!(
                event = "job.failed",
                job_id = "job-2",
                exit_code = 1,
                elapsed_ms = 10_u64,
                log_tail = format!("npm ERR! Unable to authenticate, token {SECRET}\n")
            )
        });
        let shot = [
            format!("--screenshot={}", PathBuf::from(path).display()),
            "--window-size=1200,820".into(),
            "--hide-scrollbars".into(),
            "--virtual-time-budget=4000".into(),
        ];
        output(browser(&bin, &profile, &shot, &view.url()));
    }
}

/// Waits until `/api/sent` holds a record matching `pred`; returns it.
fn wait_record(view: &ViewServer, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let sent = get_json(view, "/api/sent");
        if let Some(r) = sent["records"].as_array().unwrap().iter().find(|r| pred(r)) {
            return r.clone();
        }
        assert!(Instant::now() < deadline, "no such record: {sent}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_sent_part_says_why_an_item_was_dropped_retried_or_spooled() {
    use support::server::{Reply, TestServer};
    let posthog = TestServer::start(|_, _| Reply::status(400).body("invalid payload"));
    let relay = TestServer::always(503);
    let dir = TempDir::new("view-outcomes");
    let telemetry = closedloop_telemetry::builder("1.0.0")
        .posthog("phc_view_test", posthog.base())
        .relay(relay.url("/relay"), None)
        .compute_target_id("ct-view")
        .spool_dir(dir.path().join("spool"))
        .data_dir(dir.path().join("data"))
        .shutdown_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let handle = telemetry.handle();
    let (layer, guard) = telemetry.split();
    let view = handle.serve_view("127.0.0.1:0".parse().unwrap()).unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        info!(event = "approval.requested", tool = "shell", risk = "low");
        error!(event = "connection.lost", reason = "ping timeout");
    });
    let _ = handle.flush(Duration::from_millis(500));
    let dropped = wait_record(&view, |r| r["stream"] == "posthog");
    assert_eq!(dropped["outcome"], "dropped", "{dropped}");
    assert_eq!(dropped["reason"], "rejected");
    assert!(
        dropped["detail"].as_str().unwrap().contains("HTTP 400"),
        "{dropped}"
    );
    let retrying = wait_record(&view, |r| r["stream"] == "relay");
    assert_eq!(retrying["outcome"], "retrying", "{retrying}");
    assert_eq!(retrying["reason"], "spooled", "it waits in the spool");
    let _ = guard.shutdown();
    let spooled = wait_record(&view, |r| {
        r["stream"] == "relay" && r["outcome"] == "spooled"
    });
    assert_eq!(spooled["id"], retrying["id"], "the same item");
}

// --- bounds on what one client can cost ------------------------------------------------------

/// Counts every byte allocated in this test binary, so a test can see what one request copied.
struct Counting;

static ALLOCATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as u64, std::sync::atomic::Ordering::Relaxed);
        std::alloc::System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        std::alloc::System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size as u64, std::sync::atomic::Ordering::Relaxed);
        std::alloc::System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A pipeline with no destination (the builder's defaults), its data in `dir`, and its view.
fn bare(dir: &TempDir, capacity: Option<usize>) -> (closedloop_telemetry::Telemetry, ViewServer) {
    let mut builder = closedloop_telemetry::builder("1.0.0").data_dir(dir.path().join("data"));
    if let Some(n) = capacity {
        builder = builder.activity_capacity(n);
    }
    let telemetry = builder.build().unwrap();
    let view = telemetry
        .handle()
        .serve_view("127.0.0.1:0".parse().unwrap())
        .unwrap();
    (telemetry, view)
}

#[test]
fn a_request_for_what_is_new_copies_only_that_not_the_whole_log() {
    // A large log (as `activity_capacity(100_000)` allows): 2,000 entries with 8 KiB bodies.
    const ENTRIES: usize = 2000;
    let dir = TempDir::new("view-copy");
    let (telemetry, view) = bare(&dir, Some(ENTRIES));
    let store = telemetry.handle().activity().clone();
    let body = "x".repeat(8192);
    for i in 0..ENTRIES {
        store.record(ActivityKind::Request, format!("entry {i}"), &body);
    }
    let last = store.total_recorded() - 1;
    let path = format!("/api/activity?from={last}");
    // The whole log is 16 MB; one entry and an HTTP exchange are a few tens of KB. Other tests
    // allocate at the same time and only ever add to the count: the least of a few requests is
    // what one request cost.
    let log_bytes = (ENTRIES * body.len()) as u64;
    let mut least = u64::MAX;
    for _ in 0..20 {
        let before = ALLOCATED.load(std::sync::atomic::Ordering::Relaxed);
        let got = get_json(&view, &path);
        let cost = ALLOCATED.load(std::sync::atomic::Ordering::Relaxed) - before;
        least = least.min(cost);
        let entries = got["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "only the entry asked for");
        assert_eq!(entries[0]["seq"], last);
        assert_eq!(got["next_seq"], last + 1);
        if least < log_bytes / 8 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        least < log_bytes / 8,
        "one request for one entry allocated {least} bytes (the log holds {log_bytes})"
    );
    // The page's first paint and a plain request still get the newest 1,000, newest first.
    let all = get_json(&view, "/api/activity");
    let entries = all["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1000);
    assert_eq!(entries[0]["seq"], last);
    assert_eq!(entries[999]["seq"], last - 999);
    assert_eq!(all["next_seq"], last + 1);
}

/// Reads `stream` until the server closes it (end of stream or reset) and returns what came;
/// `None` if it is still open after `within`.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some(raw),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(raw), // reset
        }
    }
}

/// Sends `GET path` with the view's token on a new connection; returns what came back before
/// the server closed it (empty: closed unanswered).
fn raw_get(view: &ViewServer, path: &str) -> String {
    let mut stream = TcpStream::connect(view.addr()).expect("connect to the view");
    let sep = if path.contains('?') { '&' } else { '?' };
    let head = format!(
        "GET {path}{sep}token={} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        view.token(),
        view.addr()
    );
    // The server may have closed it already (over the bound): that is an answer too.
    let _ = stream.write_all(head.as_bytes());
    let raw = read_until_closed(&mut stream, WAIT)
        .unwrap_or_else(|| panic!("{path}: neither answered nor closed within {WAIT:?}"));
    String::from_utf8_lossy(&raw).into_owned()
}

#[test]
fn connections_over_the_bound_are_closed_at_once_until_one_ends() {
    let dir = TempDir::new("view-conn-bound");
    let (_telemetry, view) = bare(&dir, None);
    // Idle connections, no token, no request: as many as the bound allows.
    let mut idle: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(view.addr()).unwrap())
        .collect();
    // One more is closed without an answer, even with the token.
    let answer = raw_get(&view, "/api/stats");
    assert!(
        answer.is_empty(),
        "a connection over the bound was answered: {answer}"
    );
    // Once one ends, a new one is served.
    drop(idle.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = raw_get(&view, "/api/stats");
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {answer}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_connection_that_sends_no_request_is_closed_after_the_header_timeout() {
    let dir = TempDir::new("view-header-timeout");
    let (_telemetry, view) = bare(&dir, None);
    let mut silent = TcpStream::connect(view.addr()).unwrap();
    // A connection that sent half a request head, and one kept alive after an answer.
    let mut partial = TcpStream::connect(view.addr()).unwrap();
    partial
        .write_all(b"GET /api/stats HTTP/1.1\r\nhost: ")
        .unwrap();
    let mut kept = TcpStream::connect(view.addr()).unwrap();
    let head = format!(
        "GET /api/stats?token={} HTTP/1.1\r\nhost: {}\r\n\r\n",
        view.token(),
        view.addr()
    );
    kept.write_all(head.as_bytes()).unwrap();
    let within = HEADER_READ_TIMEOUT + WAIT;
    let silent = read_until_closed(&mut silent, within);
    assert_eq!(
        silent.as_deref(),
        Some(&[][..]),
        "a silent connection stays open"
    );
    assert!(
        read_until_closed(&mut partial, within).is_some(),
        "a half-sent head stays open"
    );
    let kept = read_until_closed(&mut kept, within).expect("an idle keep-alive stays open");
    assert!(kept.starts_with(b"HTTP/1.1 200"), "answered first");
}

#[test]
fn an_answer_the_client_does_not_read_is_abandoned_after_the_send_deadline() {
    // A 5 MB answer, more than a loopback connection buffers (see the next test).
    const ENTRIES: usize = 640;
    let dir = TempDir::new("view-write-deadline");
    let (telemetry, view) = bare(&dir, Some(ENTRIES));
    let body = "x".repeat(8192);
    for i in 0..ENTRIES {
        telemetry
            .handle()
            .activity()
            .record(ActivityKind::Request, format!("entry {i}"), &body);
    }
    let mut stalled = small_window_connection(view.addr());
    let head = format!(
        "GET /api/activity?token={} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        view.token(),
        view.addr()
    );
    stalled.write_all(head.as_bytes()).unwrap();
    // Not reading past the deadline: the server gives the connection up, keeping only what
    // the system had buffered for it.
    std::thread::sleep(SEND_DEADLINE + Duration::from_secs(2));
    let raw = read_until_closed(&mut stalled, WAIT).expect("the answer ends");
    let text = String::from_utf8_lossy(&raw);
    let (head, got) = text.split_once("\r\n\r\n").expect("the answer's head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .expect("a content-length")
        .parse()
        .unwrap();
    assert!(length > 4_000_000, "{length}");
    assert!(
        got.len() < length,
        "the server kept writing to a client that read nothing for {:?}",
        SEND_DEADLINE + Duration::from_secs(2)
    );
}

/// A connection whose receive buffer is as small as the system allows, so a server writing
/// to it stalls after a few KB when the client does not read.
fn small_window_connection(addr: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    })
}

#[test]
fn live_streams_that_stop_reading_end_and_free_their_slots() {
    const LIVE_MAX_OPEN: usize = 16;
    // Each stream's first event carries the whole log: 640 entries of 8 KiB, 5 MB, more than
    // a loopback connection buffers (about 3 MB with Linux's default autotuning), so a client
    // that does not read stalls the server's write at once.
    const ENTRIES: usize = 640;
    let dir = TempDir::new("view-stalled");
    let (telemetry, view) = bare(&dir, Some(ENTRIES));
    let store = telemetry.handle().activity().clone();
    let body = "x".repeat(8192);
    for i in 0..ENTRIES {
        store.record(ActivityKind::Request, format!("entry {i}"), &body);
    }
    // Something new every 200 ms, so no stream ends for being idle.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let recorder = {
        let stop = stop.clone();
        let store = store.clone();
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(60);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < until {
                store.record(ActivityKind::Request, "tick", "new");
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let head = format!(
        "GET /api/live?token={} HTTP/1.1\r\nhost: {}\r\n\r\n",
        view.token(),
        view.addr()
    );
    // Every slot taken by a client that asks and never reads.
    let mut stalled: Vec<TcpStream> = (0..LIVE_MAX_OPEN)
        .map(|_| {
            let mut s = small_window_connection(view.addr());
            s.write_all(head.as_bytes()).unwrap();
            s
        })
        .collect();
    let deadline = Instant::now() + WAIT;
    while view.live_streams_opened() < LIVE_MAX_OPEN as u64 {
        assert!(Instant::now() < deadline, "the streams never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = |answer: &str| answer.get(..12).unwrap_or(answer).to_string();
    assert_eq!(
        status(&raw_get(&view, "/api/live")),
        "HTTP/1.1 503",
        "all slots are taken"
    );
    // Their sends miss the deadline: the streams end, the slots free up, new streams open.
    let deadline = Instant::now() + SEND_DEADLINE + WAIT;
    loop {
        let mut probe = TcpStream::connect(view.addr()).unwrap();
        probe.set_read_timeout(Some(WAIT)).unwrap();
        probe.write_all(head.as_bytes()).unwrap();
        let mut first = [0u8; 12];
        probe.read_exact(&mut first).unwrap();
        if &first == b"HTTP/1.1 200" {
            break;
        }
        assert_eq!(&first, b"HTTP/1.1 503");
        assert!(
            Instant::now() < deadline,
            "stalled readers still hold every live slot after {:?}",
            SEND_DEADLINE + WAIT
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // And their connections were closed (while new entries still arrive every 200 ms).
    assert!(
        read_until_closed(&mut stalled[0], WAIT).is_some(),
        "a stalled reader's connection stays open"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    recorder.join().unwrap();
}
