//! Crashes are telemetry too (issue 23), with real processes: this binary's test
//! `crash::child` re-executed in a role (the panic hook is process-wide, so only children
//! install it; this process never builds telemetry here). Each child is an app using the
//! public API with default settings (`closedloop_telemetry::init`, the destinations from the
//! environment, the default data and spool directories under a `HOME` of its own), sending to
//! one loopback receiver for PostHog and the relay.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use closedloop_telemetry_test_support as support;
use serde_json::Value;
use support::process::TempDir;
use support::server::{Reply, TestServer};

/// Selects the child's role.
const ROLE: &str = "CL_CRASH_TEST_ROLE";
/// Set for a `start` child that waits for a line on stdin before it starts.
const WAIT_FOR_GO: &str = "CL_CRASH_TEST_WAIT";
/// The bound on every wait (never a threshold: the tests pass as soon as what they wait for
/// happens).
const WAIT: Duration = Duration::from_secs(60);
/// The panic message: two secrets the redactor removes and a mark that stays.
const MESSAGE: &str =
    "job exploded for alice@example.com with ghp_abcdefghijklmnopqrstuvwxyz0123456789 CRASH-MARK";

// ---------------------------------------------------------------------------------------
// The children.

/// Not a test on its own: the body of the child processes below (does nothing without
/// `CL_CRASH_TEST_ROLE`).
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    match role.as_str() {
        "panic_main" => panic_main(),
        "panic_thread" => panic_thread(),
        "panic_unwind" => panic_unwind(),
        "quiet" => quiet(),
        "run" => run(),
        "start" => start(),
        other => panic!("unknown role {other}"),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn wait_for_stdin_to_close() {
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// An app whose main thread panics inside a span. Its own panic hook, installed before `init`,
/// reports whether the event was already on disk when it ran (ours runs first), then aborts the
/// process like `panic = "abort"`: no unwinding, no shutdown.
fn panic_main() {
    static PANIC_AT: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let cache = PathBuf::from(std::env::var_os("XDG_CACHE_HOME").unwrap());
    std::panic::set_hook(Box::new(move |_| {
        // For the record (not asserted): how long our hook took before this one ran.
        let ours = PANIC_AT.get().map(Instant::elapsed).unwrap_or_default();
        let on_disk = files(&cache)
            .iter()
            .any(|f| std::fs::read(f).is_ok_and(|b| b.windows(10).any(|w| w == b"CRASH-MARK")));
        say(&format!("HOOK_TIME {} us", ours.as_micros()));
        say(&format!("APP_HOOK ran, event_on_disk={on_disk}"));
        std::process::abort();
    }));
    let _guard = closedloop_telemetry::init("3.1.4").unwrap();
    say(&format!(
        "THREAD {}",
        std::thread::current().name().unwrap_or("<unnamed>")
    ));
    let _span = tracing::info_span!("job", loop_id = "loop-7", job_id = "job-9").entered();
    PANIC_AT.get_or_init(Instant::now);
    panic!("{MESSAGE}");
}

/// An app whose main thread panics and unwinds: the guard's drop shuts telemetry down cleanly.
fn panic_unwind() {
    let _guard = closedloop_telemetry::init("3.1.4").unwrap();
    say("READY");
    panic!("{MESSAGE}");
}

/// An app with consent denied (`CL_CRASH_TEST_DENIED`) or telemetry disabled (`DO_NOT_TRACK`)
/// one of whose threads panics; it runs until killed.
fn quiet() {
    let builder = closedloop_telemetry::builder("3.1.4").from_env().unwrap();
    let builder = match std::env::var_os("CL_CRASH_TEST_DENIED") {
        Some(_) => builder.default_consent(closedloop_telemetry::Consent::Denied),
        None => builder,
    };
    let guard = builder.build().unwrap().init_global().unwrap();
    let worker = std::thread::spawn(|| panic!("{MESSAGE}"));
    assert!(worker.join().is_err());
    say("PANICKED");
    wait_for_stdin_to_close();
    drop(guard);
}

/// An app one of whose threads panics inside a span; it goes on until stdin closes.
fn panic_thread() {
    let guard = closedloop_telemetry::init("3.1.4").unwrap();
    let worker = std::thread::Builder::new()
        .name("worker-7".into())
        .spawn(|| {
            let _span = tracing::info_span!("job", loop_id = "loop-8", job_id = "job-10").entered();
            panic!("{MESSAGE}");
        })
        .unwrap();
    assert!(worker.join().is_err());
    tracing::info!(event = "connection.established");
    say("PANICKED");
    wait_for_stdin_to_close();
    let handle = guard.handle().clone();
    assert!(guard.shutdown().is_complete());
    // The panic is this run's own event: routed, like the one the app emitted.
    let stats = handle.stats();
    support::accounting::assert_accounting(&stats);
    assert_eq!(stats.routed(), (2, 2), "{stats:?}");
    say("ACCOUNTED");
}

/// An app that runs until stdin closes (then shuts down cleanly) or it is killed.
fn run() {
    let guard = closedloop_telemetry::init("2.7.1").unwrap();
    guard.handle().gateway().set("gw-41");
    tracing::info!(event = "connection.established");
    // The marker's rewrite for the new gateway session runs on the pipeline's background; a
    // flush, taken there after it, returns once it has run (the kill must come after it).
    let _ = guard.handle().flush(std::time::Duration::from_secs(5));
    say(&format!("READY {}", std::process::id()));
    wait_for_stdin_to_close();
    drop(guard);
    say("CLEAN");
}

/// An app that starts, delivers what is due and exits cleanly.
fn start() {
    if std::env::var_os(WAIT_FOR_GO).is_some() {
        say("WAITING");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    let guard = closedloop_telemetry::init("2.8.0").unwrap();
    let report = guard.handle().flush(Duration::from_secs(30));
    say(&format!("FLUSHED complete={}", report.is_complete()));
    // For a failure's message: what each stream did.
    for s in guard.handle().stats().streams {
        let d = &s.delivery;
        say(&format!(
            "STATS {} routed={} replayed={} sent={} dropped={} queued={} spool={:?}",
            s.kind.as_str(),
            s.routed,
            d.replayed,
            d.sent,
            d.dropped.total(),
            d.queued,
            d.spool
        ));
    }
    drop(guard);
}

// ---------------------------------------------------------------------------------------
// The parent's side.

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(_) => out.push(entry.path()),
                Err(_) => {}
            }
        }
    }
    out
}

/// One machine: a home, data and cache directory of its own, and a receiver that answers 503
/// until opened.
struct Machine {
    root: TempDir,
    server: TestServer,
    open: Arc<AtomicBool>,
}

/// A running child: its stdin, its stdout lines.
struct App {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Machine {
    fn new(open: bool) -> Self {
        let flag = Arc::new(AtomicBool::new(open));
        let f = flag.clone();
        let server = TestServer::start(move |_, _| match f.load(Ordering::SeqCst) {
            true => Reply::ok(),
            false => Reply::status(503),
        });
        let root = TempDir::new("crash");
        for sub in ["home", "cache", "data"] {
            std::fs::create_dir_all(root.path().join(sub)).unwrap();
        }
        Machine {
            root,
            server,
            open: flag,
        }
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    fn spawn(&self, role: &str, envs: &[(&str, &str)]) -> App {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        for (k, _) in std::env::vars() {
            if k.starts_with("CL_") || k.starts_with("DD_") || k == "DO_NOT_TRACK" {
                cmd.env_remove(k);
            }
        }
        cmd.args([
            "--exact",
            "crash::child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("HOME", self.root.path().join("home"))
        .env("XDG_CACHE_HOME", self.root.path().join("cache"))
        .env("XDG_DATA_HOME", self.root.path().join("data"))
        .env("CL_POSTHOG_API_KEY", "phc_crash_test")
        .env("CL_POSTHOG_HOST", self.server.base())
        .env("CL_RELAY_URL", self.server.url("/relay"))
        .env(ROLE, role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        App {
            child,
            stdin,
            lines,
        }
    }

    /// Runs a `start` child to its end.
    fn start(&self) {
        self.start_with(&[]);
    }

    /// Runs a `start` child to its end, with `envs` set.
    fn start_with(&self, envs: &[(&str, &str)]) {
        let mut app = self.spawn("start", envs);
        app.expect("FLUSHED complete=true");
        app.exits_cleanly();
    }

    /// What arrived for event `name` (dot name): the PostHog events and the relay items.
    fn arrived(&self, name: &str) -> (Vec<Value>, Vec<Value>) {
        let posthog_name = name.replace('.', "_");
        let (mut posthog, mut relay) = (Vec::new(), Vec::new());
        for r in self.server.requests() {
            if r.method != "POST" {
                continue;
            }
            let body = r.json();
            if r.path.starts_with("/batch") {
                for e in body["batch"].as_array().into_iter().flatten() {
                    if e["event"] == posthog_name.as_str() {
                        posthog.push(e.clone());
                    }
                }
            } else if r.path.starts_with("/relay") {
                for e in body.as_array().into_iter().flatten() {
                    if e["event"] == name {
                        relay.push(e.clone());
                    }
                }
            }
        }
        (posthog, relay)
    }

    /// Waits until the relay has received event `name`.
    fn wait_for_relay(&self, name: &str) {
        let deadline = Instant::now() + WAIT;
        while self.arrived(name).1.is_empty() {
            assert!(Instant::now() < deadline, "no {name} on the relay");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many events `name` arrived on PostHog and on the relay, each counted once by its
    /// id (a batch sent again after a failed answer holds the same events).
    fn count(&self, name: &str) -> (usize, usize) {
        let (posthog, relay) = self.arrived(name);
        let ids = |events: &[Value], key: &str| {
            events
                .iter()
                .map(|e| e[key].as_str().unwrap().to_string())
                .collect::<HashSet<_>>()
                .len()
        };
        (ids(&posthog, "uuid"), ids(&relay, "id"))
    }
}

impl App {
    /// The next line that holds `prefix`, from there on (the harness prints lines of its own,
    /// and starts the first on the child's line).
    fn expect(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(at) = line.find(prefix) {
                        return line[at..].to_string();
                    }
                }
                Err(_) => panic!("the child never printed {prefix:?}"),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn close_stdin(&mut self) {
        self.stdin.take();
    }

    fn go(&mut self) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the child did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn exits_cleanly(&mut self) {
        let status = self.wait();
        assert!(status.success(), "child failed: {status}");
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `s` holds no secret of [`MESSAGE`] and keeps its mark.
fn assert_redacted(s: &str) {
    assert!(s.contains("CRASH-MARK"), "{s}");
    assert!(s.contains("[REDACTED:email]"), "{s}");
    assert!(!s.contains("alice@example.com"), "{s}");
    assert!(!s.contains("ghp_abcdef"), "{s}");
}

// ---------------------------------------------------------------------------------------
// The tests.

#[test]
fn a_panic_on_the_main_thread_is_delivered_by_the_next_start_once_on_both_streams() {
    // The receiver is down while the app runs: whatever the dying app could still send fails.
    let m = Machine::new(false);
    let mut app = m.spawn("panic_main", &[]);
    let thread = app.expect("THREAD ")["THREAD ".len()..].to_string();
    eprintln!("crash: our hook's work, {}", app.expect("HOOK_TIME"));
    // The app's own hook, installed before init, ran after ours: the event was on disk.
    assert_eq!(app.expect("APP_HOOK"), "APP_HOOK ran, event_on_disk=true");
    assert!(!app.wait().success(), "the app aborted");
    assert_eq!(m.count("app.panicked"), (0, 0), "nothing got through");

    m.open();
    m.start();
    assert_eq!(
        m.count("app.panicked"),
        (1, 1),
        "exactly one on each stream"
    );
    let (posthog, relay) = m.arrived("app.panicked");
    let relay = &relay[0];
    let diagnostics = &relay["diagnostics"];
    assert_redacted(diagnostics["abortReason"].as_str().unwrap());
    let stack = diagnostics["errorStack"].as_str().unwrap();
    eprintln!("crash: errorStack ({} bytes):\n{stack}", stack.len());
    assert!(stack.starts_with("at tests/pipeline/crash.rs:"), "{stack}");
    assert!(stack.contains("panic_main"), "{stack}");
    assert_eq!(diagnostics["extra"]["thread"], thread.as_str());
    assert_eq!(relay["trace"]["loopId"], "loop-7");
    assert_eq!(relay["trace"]["jobId"], "job-9");
    let p = &posthog[0]["properties"];
    assert_redacted(p["abort_reason"].as_str().unwrap());
    assert!(p["error_stack"]
        .as_str()
        .unwrap()
        .starts_with("at tests/pipeline/crash.rs:"));
    assert_eq!(p["loop_id"], "loop-7");
    assert_eq!(p["job_id"], "job-9");
    assert_eq!(p["release_version"], "3.1.4");
    // It aborted without shutting down: the start also reports the abnormal exit.
    assert_eq!(m.count("app.crashed"), (1, 1));

    // A later start sends neither again.
    m.start();
    assert_eq!(m.count("app.panicked"), (1, 1));
    assert_eq!(m.count("app.crashed"), (1, 1));
}

#[test]
fn a_panic_on_another_thread_is_delivered_by_the_same_process_while_it_goes_on() {
    let m = Machine::new(true);
    let mut app = m.spawn("panic_thread", &[]);
    app.expect("PANICKED");
    m.wait_for_relay("app.panicked");
    assert!(
        app.child.try_wait().unwrap().is_none(),
        "delivered by the app itself, still running"
    );
    let (_, relay) = m.arrived("app.panicked");
    assert_eq!(relay[0]["diagnostics"]["extra"]["thread"], "worker-7");
    assert_eq!(relay[0]["trace"]["loopId"], "loop-8");
    assert_eq!(relay[0]["trace"]["jobId"], "job-10");
    assert_redacted(relay[0]["diagnostics"]["abortReason"].as_str().unwrap());
    // The app went on: its later event arrives too.
    app.close_stdin();
    app.expect("ACCOUNTED");
    app.exits_cleanly();
    assert_eq!(m.count("app.panicked"), (1, 1), "PostHog's at the shutdown");
    assert_eq!(m.count("connection.established").1, 1);
    // A clean end: nothing more at the next start.
    m.start();
    assert_eq!(m.count("app.panicked"), (1, 1));
    assert_eq!(m.count("app.crashed"), (0, 0));
}

#[test]
fn a_sigkill_is_reported_once_by_the_next_start() {
    let m = Machine::new(true);
    let mut app = m.spawn("run", &[]);
    app.expect("READY");
    let pid = app.pid();
    app.child.kill().unwrap(); // SIGKILL: no hook, no destructor, no shutdown.
    app.wait();

    // With rate limits that let nothing through the pipeline's door: the report is written
    // past it.
    m.start_with(&[("CL_TELEMETRY_RATE_LIMIT", "0/s,burst=0")]);
    assert_eq!(
        m.count("app.crashed"),
        (1, 1),
        "one app.crashed on each stream"
    );
    let (posthog, relay) = m.arrived("app.crashed");
    let extra = &relay[0]["diagnostics"]["extra"];
    assert_eq!(extra["previousPid"], pid);
    assert_eq!(extra["previousRelease"], "2.7.1");
    assert_eq!(extra["previousGatewaySessionId"], "gw-41");
    assert!(extra["previousStartedAt"].as_str().unwrap().ends_with('Z'));
    // The gateway session was its last sign of life.
    assert!(relay[0]["diagnostics"]["elapsedMs"].as_i64().unwrap() >= 0);
    assert_eq!(relay[0]["trace"]["schemaVersion"], "1");
    assert_eq!(posthog[0]["properties"]["previousPid"], pid);
    assert_eq!(posthog[0]["properties"]["release_version"], "2.8.0");

    // A second start sends none.
    m.start();
    assert_eq!(m.count("app.crashed"), (1, 1));
}

#[test]
fn a_clean_exit_is_not_a_crash() {
    let m = Machine::new(true);
    let mut app = m.spawn("run", &[]);
    app.expect("READY");
    app.close_stdin();
    app.expect("CLEAN");
    app.exits_cleanly();
    m.start();
    assert_eq!(m.count("connection.established").1, 1, "the run delivered");
    assert_eq!(m.count("app.crashed"), (0, 0));
}

#[test]
fn two_starts_at_once_after_one_crash_report_it_once() {
    let m = Machine::new(true);
    let mut app = m.spawn("run", &[]);
    app.expect("READY");
    app.child.kill().unwrap();
    app.wait();

    let mut a = m.spawn("start", &[(WAIT_FOR_GO, "1")]);
    let mut b = m.spawn("start", &[(WAIT_FOR_GO, "1")]);
    a.expect("WAITING");
    b.expect("WAITING");
    a.go();
    b.go();
    let mut said = Vec::new();
    for app in [&mut a, &mut b] {
        app.expect("FLUSHED complete=true");
        app.exits_cleanly();
        said.extend(app.lines.try_iter());
    }
    assert_eq!(m.count("app.crashed"), (1, 1), "one in total: {said:#?}");
}

#[test]
fn a_panic_that_unwinds_out_of_main_shuts_down_cleanly_and_is_reported_once() {
    let m = Machine::new(true);
    let mut app = m.spawn("panic_unwind", &[]);
    app.expect("READY");
    assert!(!app.wait().success(), "the test harness reports the panic");
    m.start();
    assert_eq!(m.count("app.panicked"), (1, 1));
    assert_eq!(
        m.count("app.crashed"),
        (0, 0),
        "the guard's drop ended the run cleanly"
    );
}

#[test]
fn with_consent_denied_or_telemetry_disabled_nothing_is_written_and_no_marker_kept() {
    for env in ["CL_CRASH_TEST_DENIED", "DO_NOT_TRACK"] {
        let m = Machine::new(true);
        let mut app = m.spawn("quiet", &[(env, "1")]);
        app.expect("PANICKED");
        let on_disk: Vec<PathBuf> = files(m.root.path())
            .into_iter()
            .filter(|f| {
                std::fs::read(f).is_ok_and(|b| b.windows(10).any(|w| w == b"CRASH-MARK"))
                    || f.components().any(|c| c.as_os_str() == "sessions")
            })
            .collect();
        assert!(on_disk.is_empty(), "{env}: {on_disk:?}");
        app.child.kill().unwrap();
        app.wait();
        // The next start (consent granted, telemetry on) has nothing to report.
        m.start();
        assert_eq!(m.count("app.panicked"), (0, 0), "{env}");
        assert_eq!(m.count("app.crashed"), (0, 0), "{env}");
    }
}
