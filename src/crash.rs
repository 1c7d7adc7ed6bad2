//! Crashes are telemetry too (issue 23): the panic hook, and the `app.panicked` /
//! `app.crashed` events it and the session markers (`session.rs`) produce.
//!
//! With [`TelemetryBuilder::capture_panics`](crate::TelemetryBuilder::capture_panics) on (the
//! default), `build` registers the running telemetry with one process-wide panic hook,
//! installed by the first such `build` over whatever hook was installed before (the app's, the
//! default one), which it calls after its own work. On a panic the hook builds one
//! `app.panicked` event (the message, the location and backtrace frames, the thread's name, the
//! current span's trace context) and writes it straight into the spool of every destination
//! that takes it, fsynced (`Delivery::write_crash`: one detached spool of one item per
//! destination). This process's background then adopts and delivers it if the process lives
//! on; otherwise the next start does.
//!
//! The hook never blocks on the pipeline: it takes no lock the background holds, and the only
//! lock it takes (the list of running telemetry) it only tries. A panic inside a panic hook
//! aborts the process in std (`catch_unwind` cannot help there), so its code is written not to
//! panic: no `unwrap`, no indexing, every string cut on a character boundary. A second panic
//! while the hook is at work (another thread's) is ignored: it goes straight to the previous
//! hook, without waiting. With consent denied or telemetry disabled nothing is written.

use std::any::Any;
use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::SystemTime;

use closedloop_telemetry_exporters::__private::decode::Event;
use closedloop_telemetry_exporters::__private::delivery::CrashWrite;
use closedloop_telemetry_layers::__private::catalogue::lookup;
use closedloop_telemetry_layers::__private::envelope::{
    format_timestamp, Diagnostics, TraceEnvelope,
};
use closedloop_telemetry_layers::__private::observe_gateway;
use closedloop_telemetry_layers::__private::truncate::{keep_head, FIELD_MAX_BYTES};
use opentelemetry::logs::Severity;
use serde_json::{Map, Value};

use crate::handle::{HandleInner, TelemetryHandle};
use crate::session::{self, RunInfo};

/// The event the panic hook writes, and the one a start writes for a run that ended abnormally
/// (see `session.rs`): the catalogue's names.
pub(crate) use closedloop_telemetry_layers::__private::catalogue::{
    APP_CRASHED as CRASHED, APP_PANICKED as PANICKED,
};

/// The running telemetry the hook writes to (dead entries are dropped at each registration).
static TARGETS: Mutex<Vec<Weak<HandleInner>>> = Mutex::new(Vec::new());
/// Installs the hook once per process.
static INSTALL: Once = Once::new();
/// Set while the hook writes: a panic meanwhile (any thread) is ignored.
static BUSY: AtomicBool = AtomicBool::new(false);
/// How many times the hook tries the list's lock before giving up (it is held only to push or
/// copy a few pointers).
const LOCK_TRIES: usize = 1_000;

/// At `build` with crash capture on: reports the runs that ended abnormally (one
/// `app.crashed` each, see `session.rs`), starts this run's session marker and makes this
/// telemetry a target of the panic hook (installed now if it is not yet). With telemetry
/// disabled or consent denied, dead runs' markers are deleted unreported and none is made.
pub(crate) fn start(handle: &TelemetryHandle) {
    let inner = &handle.inner;
    if let Some(dir) = &inner.data_dir {
        if inner.accepts_crash_events() {
            for run in session::claim_dead(dir) {
                let mut diagnostics = Diagnostics {
                    elapsed_ms: run.elapsed_ms(),
                    ..Default::default()
                };
                diagnostics.extra = crashed_extra(&run);
                let mut trace = TraceEnvelope::default();
                let event = inner.crash_event(CRASHED, SystemTime::now(), &mut trace, diagnostics);
                inner.write_crash(&event);
            }
            handle.begin_session();
            // Each (re)connection rewrites the marker: the gateway session, and a sign of life
            // (`elapsedMs` of an `app.crashed`). The app's thread that sets the session only
            // hands the write to the pipeline's background thread (no file I/O on it); rare
            // (once per connection), small, no fsync.
            let weak = Arc::downgrade(inner);
            observe_gateway(&inner.gateway, move |id| {
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let Some(pipeline) = &inner.pipeline else {
                    return;
                };
                let id = id.map(str::to_string);
                // The session alone, not the handle: the background never holds the last
                // reference to the handle (whose drop would wait on the background).
                let session = inner.session.clone();
                pipeline.run_in_background(move || {
                    session
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .set_gateway(id.as_deref());
                });
            });
        } else {
            session::forget_dead(dir);
        }
    }
    if inner.pipeline.is_some() {
        register(inner);
    }
}

/// Installs the process's panic hook (once) and makes `inner` one of its targets.
fn register(inner: &Arc<HandleInner>) {
    // std refuses to change the hook from a panicking thread (a `build` in a `Drop` during
    // unwinding): then only a later `build` installs it.
    if !std::thread::panicking() {
        INSTALL.call_once(install);
    }
    let mut targets = TARGETS.lock().unwrap_or_else(|p| p.into_inner());
    targets.retain(|t| t.strong_count() > 0);
    targets.push(Arc::downgrade(inner));
}

/// Chains our hook in front of the one installed now.
fn install() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        exclusive(|| on_panic(info));
        previous(info);
    }));
}

/// Runs `write` unless another call is under way (a panic on another thread while the hook
/// writes); then returns false at once, without waiting.
fn exclusive(write: impl FnOnce()) -> bool {
    if BUSY.swap(true, Ordering::AcqRel) {
        return false;
    }
    write();
    BUSY.store(false, Ordering::Release);
    true
}

/// The running telemetry, without waiting on the list's lock for long.
fn targets() -> Vec<Arc<HandleInner>> {
    for _ in 0..LOCK_TRIES {
        match TARGETS.try_lock() {
            Ok(list) => return list.iter().filter_map(Weak::upgrade).collect(),
            Err(std::sync::TryLockError::Poisoned(p)) => {
                return p.into_inner().iter().filter_map(Weak::upgrade).collect()
            }
            Err(std::sync::TryLockError::WouldBlock) => std::thread::yield_now(),
        }
    }
    Vec::new()
}

/// The names of our own threads (the pipeline's background, the view page's server): a
/// panic there is not written, as it may have happened half-way through the very state the
/// write would need (the queue's lock), and our threads' failures are not the app's telemetry.
const OWN_THREADS: &str = "closedloop-telemetry";

fn on_panic(info: &PanicHookInfo<'_>) {
    let thread = std::thread::current();
    if thread.name().is_some_and(|n| n.starts_with(OWN_THREADS)) {
        return;
    }
    let targets = targets();
    if targets.iter().all(|t| !t.accepts_crash_events()) {
        return;
    }
    let time = SystemTime::now();
    let mut diagnostics = Diagnostics {
        abort_reason: Some(cut(message(info.payload()))),
        error_stack: Some(cut(&stack(info))),
        ..Default::default()
    };
    diagnostics.extra.insert(
        "thread".into(),
        Value::String(cut(thread.name().unwrap_or("<unnamed>"))),
    );
    let mut context = TraceEnvelope::default();
    closedloop_telemetry_layers::__private::current_trace_context(&mut context);
    for t in targets {
        let mut trace = context.clone();
        let event = t.crash_event(PANICKED, time, &mut trace, diagnostics.clone());
        t.write_crash(&event);
    }
}

impl HandleInner {
    /// Whether crash events may be written for this telemetry now: a pipeline runs (telemetry
    /// is not disabled) and consent is granted.
    pub(crate) fn accepts_crash_events(&self) -> bool {
        self.pipeline.is_some() && self.upstream.load(Ordering::Acquire)
    }

    /// A crash event of this telemetry: its computeTargetId and release, the gateway session
    /// (unless `trace`, the span's context, has one).
    pub(crate) fn crash_event(
        &self,
        name: &'static str,
        time: SystemTime,
        trace: &mut TraceEnvelope,
        diagnostics: Diagnostics,
    ) -> Event {
        let mut envelope =
            TraceEnvelope::new(format_timestamp(time), self.compute_target_id.clone());
        let context = std::mem::take(trace);
        envelope.gateway_session_id = context
            .gateway_session_id
            .or_else(|| self.gateway.get().map(|g| g.to_string()));
        envelope.command_id = context.command_id;
        envelope.operation_id = context.operation_id;
        envelope.loop_id = context.loop_id;
        envelope.job_id = context.job_id;
        envelope.loop_session_id = context.loop_session_id;
        Event {
            name: name.to_string(),
            entry: lookup(name),
            time,
            severity: Some(Severity::Error),
            trace: envelope,
            diagnostics,
            release_version: Some(self.release.clone()),
            // Never sampled (nor rate-limited): written past the pipeline's door.
            sample_rate: None,
        }
    }

    /// Writes `event` into every destination's spool (those that take it), durably; returns
    /// how many took it. Nothing with consent denied or telemetry disabled.
    pub(crate) fn write_crash(&self, event: &Event) -> usize {
        if !self.accepts_crash_events() {
            return 0;
        }
        let Some(pipeline) = &self.pipeline else {
            return 0;
        };
        pipeline
            .deliveries()
            .iter()
            .map(|d| d.write_crash(event))
            .filter(|w| matches!(w, CrashWrite::Spooled | CrashWrite::Queued))
            .count()
    }
}

/// At most [`FIELD_MAX_BYTES`] of `s`, cut on a character boundary.
fn cut(s: &str) -> String {
    keep_head(s, FIELD_MAX_BYTES).to_string()
}

/// The panic's message: the payload when it is a string.
fn message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}

/// Frames where a panic enters std's machinery: everything above the first of them is the
/// hook's own (this hook, the hook chain, the backtrace capture).
const PANIC_ENTRY: &[&str] = &[
    "__rustc::rust_begin_unwind",
    "rust_begin_unwind",
    "std::panicking::begin_panic",
    "core::panicking::",
];

/// Frames of the panic machinery between the entry and the code that panicked.
const MACHINERY: &[&str] = &[
    "__rustc::rust_begin_unwind",
    "rust_begin_unwind",
    "std::panicking::",
    "core::panicking::",
    "std::panic::panic_any",
    "core::option::unwrap_failed",
    "core::option::expect_failed",
    "core::result::unwrap_failed",
    "std::sys::backtrace::__rust_end_short_backtrace",
];

/// Where the panic happened and the backtrace from there: `at file:line:col`, then one line
/// per frame, `function (file:line:col)`. Captured whether or not `RUST_BACKTRACE` is set;
/// the hook's and the panic machinery's frames are left out, and so is everything below the
/// thread's entry point (what std's short backtrace leaves out too).
fn stack(info: &PanicHookInfo<'_>) -> String {
    let mut out = String::new();
    if let Some(l) = info.location() {
        out.push_str(&format!("at {}:{}:{}", l.file(), l.line(), l.column()));
    }
    let text = std::backtrace::Backtrace::force_capture().to_string();
    let frames = frames(&text);
    let is = |f: &str, list: &[&str]| list.iter().any(|m| f.starts_with(m));
    let entry = frames
        .iter()
        .position(|(f, _)| is(f, PANIC_ENTRY))
        .unwrap_or(0);
    let own = frames
        .iter()
        .skip(entry)
        .skip_while(|(f, _)| is(f, MACHINERY));
    for (function, at) in own {
        // std's (and the test harness's) marker of the thread's entry point.
        if function.contains("__rust_begin_short_backtrace") || out.len() >= FIELD_MAX_BYTES {
            break;
        }
        out.push('\n');
        out.push_str(function);
        if let Some(at) = at {
            out.push_str(" (");
            out.push_str(at);
            out.push(')');
        }
    }
    out
}

/// The frames of std's backtrace text: each `N: function` line with the `at file:line:col`
/// line that follows it, if any.
fn frames(text: &str) -> Vec<(&str, Option<&str>)> {
    let mut frames: Vec<(&str, Option<&str>)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(at) = line.strip_prefix("at ") {
            if let Some(last) = frames.last_mut() {
                if last.1.is_none() {
                    last.1 = Some(at);
                }
            }
        } else if let Some((n, function)) = line.split_once(": ") {
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                frames.push((function, None));
            }
        }
    }
    frames
}

/// The `extra` of an `app.crashed` event: what the dead run's marker said.
fn crashed_extra(run: &RunInfo) -> Map<String, Value> {
    let mut extra = Map::new();
    extra.insert("previousRelease".into(), Value::String(cut(&run.release)));
    extra.insert(
        "previousStartedAt".into(),
        Value::String(format_timestamp(run.started_at())),
    );
    extra.insert("previousPid".into(), Value::from(run.pid));
    if let Some(g) = &run.gateway_session_id {
        extra.insert("previousGatewaySessionId".into(), Value::String(cut(g)));
    }
    extra
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_pair_functions_with_their_locations() {
        let text = "   0: std::backtrace::Backtrace::force_capture\n             at /rustc/x/library/std/src/backtrace.rs:1:2\n   1: app::main\n             at ./src/main.rs:3:4\n   2: no_location\n";
        assert_eq!(
            frames(text),
            vec![
                (
                    "std::backtrace::Backtrace::force_capture",
                    Some("/rustc/x/library/std/src/backtrace.rs:1:2")
                ),
                ("app::main", Some("./src/main.rs:3:4")),
                ("no_location", None),
            ]
        );
        assert!(frames("").is_empty());
        assert!(frames("at nowhere\n: \nx: y").is_empty());
    }

    #[test]
    fn the_test_kit_installs_no_panic_hook() {
        // No other test of this binary builds telemetry with crash capture on.
        let captured = crate::testing::capture(|| tracing::info!(event = "job.started"));
        assert_eq!(captured.relay.len(), 1);
        assert!(!INSTALL.is_completed());
    }

    #[test]
    fn a_panic_while_the_hook_writes_is_ignored() {
        let mut inner = None;
        assert!(exclusive(|| inner = Some(exclusive(|| unreachable!()))));
        assert_eq!(
            inner,
            Some(false),
            "the second one did not wait, and wrote nothing"
        );
        assert!(exclusive(|| ()), "free again afterwards");
    }

    #[test]
    fn messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(FIELD_MAX_BYTES);
        let c = cut(&long);
        assert!(c.len() <= FIELD_MAX_BYTES && long.starts_with(&c));
        assert_eq!(message(&"x"), "x");
        assert_eq!(message(&String::from("y")), "y");
        assert_eq!(message(&7u8), "Box<dyn Any>");
    }
}
