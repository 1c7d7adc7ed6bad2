//! What the default pipeline costs a desktop app that runs all day, and what a burst does to it
//! (issue 14, items 3 and 4). Run with `cargo bench --bench desktop` (Linux: it reads `/proc`).
//!
//! Every case runs the real facade (`closedloop_telemetry::builder(..).posthog(..).build()`,
//! spool on as by default, in a directory of the run's own) against a lean loopback receiver
//! that answers `200` at once; the cases marked *PostHog + relay* add `.relay(..)` at the same
//! receiver (which answers any path). The receiver runs in a child process (this binary, started
//! again with `CL_DESKTOP_BENCH_RECEIVER=1`), so its threads are not counted as ours.
//!
//! - **burst**: 100,000 events back to back, then quiet until the pipeline has settled every
//!   one (sent or dropped). Lost = emitted − sent. Peak RSS (`VmHWM`, reset first) against the
//!   RSS just before. Then the OpenTelemetry bridge over a stock `BatchLogProcessor` (no-op
//!   exporter) on the same burst: lost = emitted − exported.
//! - **burst_otlp**: the same burst with OTLP as the only stream (`.otlp(..)`, protobuf and
//!   gzip as by default): lost = emitted − sent. Both bursts measure the pipeline's capacity,
//!   so they run with the rate limiter off (`rate_limit(None)`), and their lines say so.
//! - **burst_limited**: the same burst (PostHog) with the default rate limit (10/s, burst 100
//!   per name): `rate_limited` = refused by the limiter, `lost_other` = emitted − sent −
//!   rate_limited, which must be 0. The other cases run with the default limit, which their
//!   steady 1 event/s never reaches.
//! - **held**: what one event costs while it waits in memory: 20,000 records made by the real
//!   layer and kept in the form the hand-off holds them, RSS after minus before, per record.
//! - **wakeups**: voluntary + involuntary context switches summed over every thread
//!   (`/proc/self/task/*/status`), per second, idle and at a steady 1 event/s (the app thread's
//!   own wake to emit included).
//! - **wakeups_relay**: the same windows, measured the same way (the same function), with the
//!   facade configured with PostHog + relay; the line gives the 1 event/s window.
//! - **threads**: the library's background threads in the PostHog + relay configuration after
//!   `build()` and a first event (flushed): threads of `/proc/self/task/*/comm` that did not
//!   exist before `build()` and whose name starts with `closedloop-tel` (the kernel truncates
//!   `closedloop-telemetry-handoff`, `-posthog`, `-relay` to 15 bytes: `closedloop-tele`).
//! - **fsyncs**: the spool's own counter (`SpoolStats::fsyncs`), per second, same windows.
//! - **cpu**: CPU time of every thread in the 1 event/s window, as seconds per hour. The line
//!   uses `/proc/self/task/*/schedstat` (nanoseconds): utime + stime of `/proc/self/task/*/stat`
//!   count 10 ms ticks, too coarse for the ~30 ms a 30 s window takes (the table shows both).
//! - **startup**: `build()` on the app thread with a 64 MiB spool to replay and 10 orphaned
//!   `pid-N` spool directories to adopt.
//!
//! The first lines printed are machine-readable (one per measurement); a table follows.
//! `CL_DESKTOP_ONLY=steady` runs only the idle and 1 event/s windows (PostHog, then PostHog +
//! relay), with wake-ups per thread and the background threads.

#[path = "common/event.rs"]
mod event;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use closedloop_telemetry_exporters::__private::spool::{Spool, SpoolItem};
use closedloop_telemetry_exporters::SpoolOptions;
use closedloop_telemetry_layers::TelemetryLayer;
use closedloop_telemetry_test_support::server::TestServer;
use event::{emit, spans, tail};
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry::InstrumentationScope;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    BatchLogProcessor, LogBatch, LogExporter, LogProcessor, SdkLogRecord, SdkLoggerProvider,
};
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

const BURST: u64 = 100_000;
const HELD: usize = 20_000;
const IDLE_WINDOW: Duration = Duration::from_secs(10);
const PACED_WINDOW: u64 = 30; // events, one per second
const SPOOL_MIB: u64 = 64;
const ORPHAN_DIRS: u64 = 10;
const RECEIVER_ENV: &str = "CL_DESKTOP_BENCH_RECEIVER";
/// The library's thread names (`closedloop-telemetry-…`) as `comm` shows them: 15 bytes at most.
const LIB_THREAD_PREFIX: &str = "closedloop-tel";

fn main() {
    if std::env::var_os(RECEIVER_ENV).is_some() {
        return receiver_child();
    }
    if !cfg!(target_os = "linux") {
        eprintln!("benches/desktop.rs reads /proc: Linux only");
        return;
    }
    let started = Instant::now();
    let receiver = Receiver::spawn();
    let root = std::env::temp_dir().join(format!("closedloop-desktop-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(root.clone());

    if std::env::var("CL_DESKTOP_ONLY").as_deref() == Ok("steady") {
        // Only the idle and 1 event/s windows (for working on wake-ups).
        for streams in [Streams::PostHog, Streams::PostHogRelay] {
            let steady = steady(&receiver, &root.join(streams.dir()), streams);
            let label = streams.label();
            println!("{label}: background threads {:?}", steady.background);
            for (name, w) in [("idle", &steady.idle), ("1 event/s", &steady.paced)] {
                println!(
                    "{label}, {name}: wakeups {:.2}/s, fsyncs {:.2}/s",
                    w.wakeups_per_s(),
                    w.fsyncs_per_s()
                );
                for (thread, n) in w.by_thread() {
                    println!("  {thread}: {n:.2}/s");
                }
            }
        }
        return;
    }
    // The pipeline's capacity: the rate limiter off. Then the same burst with the default limit.
    let burst_otlp_run = |r| burst(r, &root.join("burst-otlp"), Streams::Otlp, false);
    let burst_limited = burst(
        &receiver,
        &root.join("burst-limited"),
        Streams::PostHog,
        true,
    );
    let burst = burst(&receiver, &root.join("burst"), Streams::PostHog, false);
    let burst_otlp = burst_otlp_run(&receiver);
    let bridge = bridge_burst();
    let held = held_bytes();
    let startup = startup(&receiver, &root.join("startup"));
    // PostHog only, then PostHog + relay: the same windows, one after the other.
    let (steady, relay) = (
        steady(
            &receiver,
            &root.join(Streams::PostHog.dir()),
            Streams::PostHog,
        ),
        steady(
            &receiver,
            &root.join(Streams::PostHogRelay.dir()),
            Streams::PostHogRelay,
        ),
    );

    println!(
        "burst (rate limit off): n={BURST} closedloop_lost={} bridge_lost={} closedloop_rss_delta_kib={}",
        burst.lost, bridge.lost, burst.rss_delta_kib
    );
    println!(
        "burst_otlp (rate limit off): n={BURST} lost={}",
        burst_otlp.lost
    );
    println!(
        "burst_limited: n={BURST} rate_limited={} lost_other={}",
        burst_limited.rate_limited, burst_limited.lost_other
    );
    println!(
        "wakeups: idle_per_s={:.2} one_event_per_s={:.2}",
        steady.idle.wakeups_per_s(),
        steady.paced.wakeups_per_s()
    );
    println!(
        "wakeups_relay: one_event_per_s={:.2}",
        relay.paced.wakeups_per_s()
    );
    println!(
        "fsyncs: idle_per_s={:.2} one_event_per_s={:.2}",
        steady.idle.fsyncs_per_s(),
        steady.paced.fsyncs_per_s()
    );
    println!(
        "cpu: one_event_per_s_seconds_per_hour={:.2}",
        steady.paced.cpu_s_per_hour()
    );
    println!("threads: background={}", relay.library_threads());
    println!(
        "startup: build_ms={:.3} spool_mib={SPOOL_MIB} orphan_dirs={ORPHAN_DIRS}",
        startup.build_ms
    );

    println!();
    println!("| measurement | value |");
    println!("|---|---:|");
    println!("| burst: events emitted back to back (rate limit off) | {BURST} |");
    println!(
        "| burst, closedloop: sent / lost (by reason) | {} / {} {} |",
        burst.sent, burst.lost, burst.drops
    );
    println!(
        "| burst, closedloop: emit time, settle time | {:.1} ms, {:.1} ms |",
        burst.emit_ms, burst.settle_ms
    );
    println!(
        "| burst to OTLP alone: sent / lost (by reason), settle time | {} / {} {}, {:.1} ms |",
        burst_otlp.sent, burst_otlp.lost, burst_otlp.drops, burst_otlp.settle_ms
    );
    println!(
        "| burst, closedloop: RSS before, peak, delta | {} KiB, {} KiB, **{} KiB** |",
        burst.rss_before_kib, burst.peak_kib, burst.rss_delta_kib
    );
    println!(
        "| burst with the default rate limit: sent / rate_limited / lost otherwise | {} / {} / {} |",
        burst_limited.sent, burst_limited.rate_limited, burst_limited.lost_other
    );
    println!(
        "| burst, bridge (BatchLogProcessor): exported / lost | {} / {} |",
        bridge.exported, bridge.lost
    );
    println!(
        "| burst, bridge: emit time, RSS delta | {:.1} ms, {} KiB |",
        bridge.emit_ms, bridge.rss_delta_kib
    );
    println!(
        "| bytes per held event ({HELD} records as the hand-off holds them) | {:.0} B |",
        held
    );
    println!(
        "| wakeups/s idle ({:.0} s) | {:.2} |",
        steady.idle.secs,
        steady.idle.wakeups_per_s()
    );
    println!(
        "| wakeups/s at 1 event/s ({:.0} s) | {:.2} |",
        steady.paced.secs,
        steady.paced.wakeups_per_s()
    );
    for (name, w) in steady.paced.by_thread() {
        println!("| … of which `{name}` | {:.2} |", w);
    }
    println!(
        "| fsyncs/s idle, at 1 event/s | {:.2}, {:.2} |",
        steady.idle.fsyncs_per_s(),
        steady.paced.fsyncs_per_s()
    );
    println!(
        "| CPU s/hour at 1 event/s (stat, 10 ms ticks; schedstat, ns) | {:.2}; {:.2} |",
        steady.paced.stat_s_per_hour(),
        steady.paced.sched_s_per_hour()
    );
    println!(
        "| wakeups/s, PostHog + relay: idle ({:.0} s), at 1 event/s ({:.0} s) | {:.2}, **{:.2}** |",
        relay.idle.secs,
        relay.paced.secs,
        relay.idle.wakeups_per_s(),
        relay.paced.wakeups_per_s()
    );
    for (name, w) in relay.paced.by_thread() {
        println!("| … of which `{name}` | {:.2} |", w);
    }
    // Threads `build()` started that are not the library's would show here (none expected).
    let others: Vec<&str> = relay
        .background
        .iter()
        .map(String::as_str)
        .filter(|name| !name.starts_with(LIB_THREAD_PREFIX))
        .collect();
    println!(
        "| background threads after `build()` and a first event: PostHog; PostHog + relay | {}; **{}**{} |",
        steady.library_threads(),
        relay.library_threads(),
        if others.is_empty() {
            String::new()
        } else {
            format!(" (and other new threads: `{}`)", others.join("`, `"))
        }
    );
    println!(
        "| start-up: `build()` | **{:.3} ms** ({:.1} MiB spool, {ORPHAN_DIRS} orphan dirs) |",
        startup.build_ms, startup.spool_mib
    );
    println!(
        "| start-up: replay and adoption done on the worker after | {:.0} ms |",
        startup.ready_ms
    );
    println!("| whole bench | {:.1} s |", started.elapsed().as_secs_f64());
    drop(receiver);
}

// ---------------------------------------------------------------------------------------------
// The event, the facade and the bridge.

/// Runs `f` with the spans of the event entered, under `dispatch`.
fn in_spans<T>(dispatch: &Dispatch, f: impl FnOnce() -> T) -> T {
    tracing::dispatcher::with_default(dispatch, || {
        let (outer, inner) = spans();
        let _o = outer.enter();
        let _i = inner.enter();
        f()
    })
}

/// The streams a facade sends to, all at the lean receiver.
#[derive(Debug, Clone, Copy)]
enum Streams {
    PostHog,
    PostHogRelay,
    /// OTLP alone (the diagnostics stream to an OpenTelemetry Collector).
    Otlp,
}

impl Streams {
    /// How the output names it.
    fn label(self) -> &'static str {
        match self {
            Streams::PostHog => "PostHog",
            Streams::PostHogRelay => "PostHog + relay",
            Streams::Otlp => "OTLP",
        }
    }

    /// The scratch directory (under the run's) of its steady windows.
    fn dir(self) -> &'static str {
        match self {
            Streams::PostHog => "steady",
            Streams::PostHogRelay => "steady-relay",
            Streams::Otlp => "steady-otlp",
        }
    }
}

/// The facade for `streams`; `limited`: with the default rate limit (10/s, burst 100 per
/// name), else with the limiter off.
fn facade(
    receiver: &Receiver,
    dir: &Path,
    streams: Streams,
    limited: bool,
) -> (
    Dispatch,
    closedloop_telemetry::TelemetryGuard,
    closedloop_telemetry::TelemetryHandle,
) {
    let mut builder = closedloop_telemetry::builder("1.0.0")
        .data_dir(dir.join("data"))
        .spool_dir(dir.join("spool"))
        .compute_target_id("ct-bench")
        .release_version("1.0.0")
        .shutdown_timeout(Duration::from_secs(2));
    if !limited {
        builder = builder.rate_limit(None);
    }
    match streams {
        Streams::PostHog => builder = builder.posthog("phc_bench", receiver.base.clone()),
        Streams::PostHogRelay => {
            builder = builder
                .posthog("phc_bench", receiver.base.clone())
                .relay(format!("{}/relay", receiver.base), None)
        }
        Streams::Otlp => builder = builder.otlp(receiver.base.clone()),
    }
    let telemetry = builder.build().expect("facade builds");
    let (layer, guard) = telemetry.split();
    let handle = guard.handle().clone();
    (
        Dispatch::new(tracing_subscriber::registry().with(layer)),
        guard,
        handle,
    )
}

/// Events the rate limiter refused, on every stream.
fn rate_limited(handle: &closedloop_telemetry::TelemetryHandle) -> u64 {
    handle
        .stats()
        .streams
        .iter()
        .map(|s| s.delivery.dropped.rate_limited)
        .sum()
}

/// Sent, dropped (all reasons) and fsyncs of every stream.
fn counters(handle: &closedloop_telemetry::TelemetryHandle) -> (u64, u64, u64, String) {
    let s = handle.stats();
    let mut sent = 0;
    let mut dropped = 0;
    let mut fsyncs = 0;
    let mut why = String::new();
    for st in &s.streams {
        sent += st.delivery.sent;
        dropped += st.delivery.dropped.total();
        fsyncs += st.delivery.spool.map_or(0, |sp| sp.fsyncs);
        if st.delivery.dropped.total() > 0 {
            why = format!("{:?}", st.delivery.dropped);
        }
    }
    (sent, dropped, fsyncs, why)
}

// ---------------------------------------------------------------------------------------------
// Burst.

struct BurstResult {
    sent: u64,
    /// Refused by the rate limiter (0 with it off).
    rate_limited: u64,
    /// Lost for any other reason: emitted − sent − rate_limited.
    lost_other: u64,
    lost: u64,
    drops: String,
    emit_ms: f64,
    settle_ms: f64,
    rss_before_kib: u64,
    peak_kib: u64,
    rss_delta_kib: u64,
}

/// `limited`: with the default rate limit (`burst_limited`), else with the limiter off (the
/// pipeline's capacity).
fn burst(receiver: &Receiver, dir: &Path, streams: Streams, limited: bool) -> BurstResult {
    let (dispatch, guard, handle) = facade(receiver, dir, streams, limited);
    let tail = tail();
    // Warm up: connections, allocator arenas, the spool's files.
    // (With the default limit the warm-up's first 100 use up the burst of `command.completed`.)
    in_spans(&dispatch, || (0..200).for_each(|_| emit(&tail)));
    handle.flush(Duration::from_secs(5));
    let (sent0, dropped0, _, _) = counters(&handle);
    let limited0 = rate_limited(&handle);
    let rss_before_kib = proc_status_kib("VmRSS");
    reset_peak_rss();
    let start = Instant::now();
    in_spans(&dispatch, || (0..BURST).for_each(|_| emit(&tail)));
    let emit_ms = start.elapsed().as_secs_f64() * 1e3;
    // Quiet: wait (without flushing: the pipeline's own cadence) until every event is settled.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut sent, mut dropped, mut why);
    loop {
        let c = counters(&handle);
        (sent, dropped, why) = (c.0 - sent0, c.1 - dropped0, c.3);
        if sent + dropped >= BURST || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let settle_ms = start.elapsed().as_secs_f64() * 1e3;
    let peak_kib = proc_status_kib("VmHWM");
    let limited = rate_limited(&handle) - limited0;
    drop(guard.shutdown());
    BurstResult {
        rate_limited: limited,
        lost_other: BURST - (sent + limited).min(BURST),
        sent,
        lost: BURST - sent.min(BURST),
        drops: if dropped > 0 { why } else { String::new() },
        emit_ms,
        settle_ms,
        rss_before_kib,
        peak_kib,
        rss_delta_kib: peak_kib.saturating_sub(rss_before_kib),
    }
}

/// Counts what it is given and does nothing else.
#[derive(Debug, Default)]
struct NoopExporter(Arc<AtomicU64>);

impl LogExporter for NoopExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        self.0
            .fetch_add(batch.iter().count() as u64, Ordering::Relaxed);
        Ok(())
    }
}

struct BridgeResult {
    exported: u64,
    lost: u64,
    emit_ms: f64,
    rss_delta_kib: u64,
}

fn bridge_burst() -> BridgeResult {
    let exported = Arc::new(AtomicU64::new(0));
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(BatchLogProcessor::builder(NoopExporter(exported.clone())).build())
        .build();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry().with(OpenTelemetryTracingBridge::new(&provider)),
    );
    let tail = tail();
    in_spans(&dispatch, || (0..200).for_each(|_| emit(&tail)));
    let _ = provider.force_flush();
    let before = exported.load(Ordering::Relaxed);
    let rss_before = proc_status_kib("VmRSS");
    reset_peak_rss();
    let start = Instant::now();
    in_spans(&dispatch, || (0..BURST).for_each(|_| emit(&tail)));
    let emit_ms = start.elapsed().as_secs_f64() * 1e3;
    let _ = provider.force_flush();
    let peak = proc_status_kib("VmHWM");
    let _ = provider.shutdown();
    let got = exported.load(Ordering::Relaxed) - before;
    BridgeResult {
        exported: got,
        lost: BURST - got.min(BURST),
        emit_ms,
        rss_delta_kib: peak.saturating_sub(rss_before),
    }
}

// ---------------------------------------------------------------------------------------------
// Bytes per held event.

/// Keeps every record it is given, moved out as the facade's hand-off does.
#[derive(Debug)]
struct Holder {
    held: Mutex<Vec<SdkLogRecord>>,
    blank: opentelemetry_sdk::logs::SdkLogger,
}

impl LogProcessor for Holder {
    fn emit(&self, record: &mut SdkLogRecord, _scope: &InstrumentationScope) {
        use opentelemetry::logs::Logger as _;
        let r = std::mem::replace(record, self.blank.create_log_record());
        self.held.lock().unwrap().push(r);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// RSS growth per record for [`HELD`] records made by the real layer, held as the hand-off
/// holds them.
fn held_bytes() -> f64 {
    let holder = Arc::new(Holder {
        held: Mutex::new(Vec::new()),
        blank: SdkLoggerProvider::builder().build().logger("blank"),
    });
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(SharedHolder(holder.clone()))
        .build();
    let layer = TelemetryLayer::builder(provider.logger("closedloop-telemetry"))
        .compute_target_id("ct-bench")
        .release_version("1.0.0")
        .constants_from_exporter(true)
        .build();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    let tail = tail();
    in_spans(&dispatch, || (0..100).for_each(|_| emit(&tail)));
    holder.held.lock().unwrap().clear();
    let before = proc_status_kib("VmRSS");
    in_spans(&dispatch, || (0..HELD).for_each(|_| emit(&tail)));
    let after = proc_status_kib("VmRSS");
    let n = holder.held.lock().unwrap().len().max(1);
    let per = (after.saturating_sub(before) * 1024) as f64 / n as f64;
    holder.held.lock().unwrap().clear();
    per
}

#[derive(Debug)]
struct SharedHolder(Arc<Holder>);

impl LogProcessor for SharedHolder {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        self.0.emit(record, scope)
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Start-up.

struct StartupResult {
    build_ms: f64,
    ready_ms: f64,
    spool_mib: f64,
}

fn startup(receiver: &Receiver, dir: &Path) -> StartupResult {
    // Find the stream's spool directory: run once, spool one event, shut down.
    let stream_dir = {
        let (dispatch, guard, _) = facade(receiver, dir, Streams::PostHog, true);
        in_spans(&dispatch, || emit("x"));
        drop(guard.shutdown());
        find_spool_dir(&dir.join("spool")).expect("the stream spooled in its directory")
    };
    // Fill it (and 10 orphans) to 64 MiB of unacknowledged items, ~1 KiB each.
    let payload = vec![b'x'; 1000];
    let per_orphan: u64 = 256 << 10;
    let main_bytes = (SPOOL_MIB << 20) - ORPHAN_DIRS * per_orphan - (256 << 10);
    let fill = |d: &Path, bytes: u64| {
        let mut s = Spool::open(d, SpoolOptions::default()).expect("spool opens");
        while s.stats().bytes_on_disk < bytes {
            let item = SpoolItem::new(uuid::Uuid::now_v7(), now_ms(), payload.clone());
            s.append(&item).expect("append");
        }
        s.sync().expect("sync");
        s.stats().bytes_on_disk
    };
    let mut total = fill(&stream_dir, main_bytes);
    for i in 0..ORPHAN_DIRS {
        total += fill(
            &stream_dir.join(format!("pid-{}", 4_000_000 + i)),
            per_orphan,
        );
    }
    let start = Instant::now();
    let (_dispatch, guard, handle) = facade(receiver, dir, Streams::PostHog, true);
    let build_ms = start.elapsed().as_secs_f64() * 1e3;
    // How long the worker then takes to open, scan and adopt (replayed items are counted).
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let s = handle.stats();
        if s.streams.iter().any(|st| st.delivery.replayed > 0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let ready_ms = start.elapsed().as_secs_f64() * 1e3;
    drop(guard.shutdown());
    StartupResult {
        build_ms,
        ready_ms,
        spool_mib: total as f64 / (1 << 20) as f64,
    }
}

/// The directory (under `base`) that holds `.seg` files.
fn find_spool_dir(base: &Path) -> Option<PathBuf> {
    let mut stack = vec![base.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "seg") {
                return Some(d);
            }
        }
    }
    None
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// ---------------------------------------------------------------------------------------------
// Idle and 1 event/s.

struct Window {
    secs: f64,
    /// Per thread: name, context switches, of which voluntary.
    wakeups: HashMap<u32, (String, u64, u64)>,
    fsyncs: u64,
    cpu_ticks: u64,
    sched_ns: u64,
}

impl Window {
    fn wakeups_per_s(&self) -> f64 {
        self.wakeups.values().map(|(_, n, _)| *n).sum::<u64>() as f64 / self.secs
    }
    fn fsyncs_per_s(&self) -> f64 {
        self.fsyncs as f64 / self.secs
    }
    /// CPU seconds per hour: from `schedstat` (nanoseconds), else `stat` (clock ticks).
    fn cpu_s_per_hour(&self) -> f64 {
        if self.sched_ns > 0 {
            self.sched_s_per_hour()
        } else {
            self.stat_s_per_hour()
        }
    }
    fn stat_s_per_hour(&self) -> f64 {
        self.cpu_ticks as f64 / clock_ticks() / self.secs * 3600.0
    }
    fn sched_s_per_hour(&self) -> f64 {
        self.sched_ns as f64 / 1e9 / self.secs * 3600.0
    }
    /// Wakeups per second by thread (name as the kernel truncates it, and tid), busiest first.
    fn by_thread(&self) -> Vec<(String, f64)> {
        let mut v: Vec<_> = self
            .wakeups
            .iter()
            .filter(|(_, (_, n, _))| *n > 0)
            .map(|(tid, (name, n, vol))| {
                let per_s = |x: u64| x as f64 / self.secs;
                let v = per_s(*vol);
                (format!("{name} ({tid}; voluntary {v:.2}/s)"), per_s(*n))
            })
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }
}

struct Steady {
    idle: Window,
    paced: Window,
    /// Names (`comm`) of the threads that `build()` and a first event started, sorted.
    background: Vec<String>,
}

impl Steady {
    /// How many of [`Steady::background`] are the library's (named `closedloop-telemetry-…`).
    fn library_threads(&self) -> usize {
        self.background
            .iter()
            .filter(|name| name.starts_with(LIB_THREAD_PREFIX))
            .count()
    }
}

/// The idle and 1 event/s windows of a facade sending to `streams`, and the threads it runs.
fn steady(receiver: &Receiver, dir: &Path, streams: Streams) -> Steady {
    let before = thread_names();
    let (dispatch, guard, handle) = facade(receiver, dir, streams, true);
    let tail = tail();
    // Get everything started and delivered (counting the threads after the first event), then
    // let it go quiet.
    in_spans(&dispatch, || emit(&tail));
    handle.flush(Duration::from_secs(5));
    let mut background: Vec<String> = thread_names()
        .into_iter()
        .filter(|(tid, _)| !before.contains_key(tid))
        .map(|(_, name)| name)
        .collect();
    background.sort();
    in_spans(&dispatch, || (0..9).for_each(|_| emit(&tail)));
    handle.flush(Duration::from_secs(5));
    // Past the spool's sync interval (3 s), so the idle window starts quiet.
    std::thread::sleep(Duration::from_secs(5));

    let t0 = Snapshot::take(&handle);
    std::thread::sleep(IDLE_WINDOW);
    let idle = Snapshot::take(&handle).since(&t0);

    let t0 = Snapshot::take(&handle);
    let start = Instant::now();
    for i in 1..=PACED_WINDOW {
        in_spans(&dispatch, || emit(&tail));
        let next = start + Duration::from_secs(i);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let paced = Snapshot::take(&handle).since(&t0);
    drop(guard.shutdown());
    Steady {
        idle,
        paced,
        background,
    }
}

/// This process's threads: tid → name (`/proc/self/task/*/comm`, at most 15 bytes).
fn thread_names() -> HashMap<u32, String> {
    let mut names = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Ok(comm) = std::fs::read_to_string(e.path().join("comm")) {
                names.insert(tid, comm.trim_end().to_string());
            }
        }
    }
    names
}

struct Snapshot {
    at: Instant,
    tasks: HashMap<u32, TaskCounts>,
    fsyncs: u64,
}

#[derive(Default, Clone)]
struct TaskCounts {
    name: String,
    switches: u64,
    voluntary: u64,
    ticks: u64,
    sched_ns: u64,
}

impl Snapshot {
    fn take(handle: &closedloop_telemetry::TelemetryHandle) -> Snapshot {
        let fsyncs = counters(handle).2;
        let mut tasks = HashMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
            for e in dir.flatten() {
                let Some(tid) = e.file_name().to_str().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                tasks.insert(tid, task_counts(&e.path()));
            }
        }
        Snapshot {
            at: Instant::now(),
            tasks,
            fsyncs,
        }
    }

    fn since(&self, earlier: &Snapshot) -> Window {
        let mut w = Window {
            secs: self.at.duration_since(earlier.at).as_secs_f64(),
            wakeups: HashMap::new(),
            fsyncs: self.fsyncs - earlier.fsyncs,
            cpu_ticks: 0,
            sched_ns: 0,
        };
        for (tid, now) in &self.tasks {
            let then = earlier.tasks.get(tid).cloned().unwrap_or_default();
            w.wakeups.insert(
                *tid,
                (
                    now.name.clone(),
                    now.switches.saturating_sub(then.switches),
                    now.voluntary.saturating_sub(then.voluntary),
                ),
            );
            w.cpu_ticks += now.ticks.saturating_sub(then.ticks);
            w.sched_ns += now.sched_ns.saturating_sub(then.sched_ns);
        }
        w
    }
}

fn task_counts(dir: &Path) -> TaskCounts {
    let mut c = TaskCounts::default();
    if let Ok(status) = std::fs::read_to_string(dir.join("status")) {
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                let n = v.trim().parse::<u64>().unwrap_or(0);
                c.switches += n;
                if line.starts_with("voluntary") {
                    c.voluntary += n;
                }
            } else if let Some(v) = line.strip_prefix("Name:") {
                c.name = v.trim().to_string();
            }
        }
    }
    if let Ok(stat) = std::fs::read_to_string(dir.join("stat")) {
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            c.ticks = num(11) + num(12);
        }
    }
    if let Ok(s) = std::fs::read_to_string(dir.join("schedstat")) {
        c.sched_ns = s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
    }
    c
}

/// `/proc/*/stat` counts in USER_HZ, which Linux fixes at 100 for user space.
fn clock_ticks() -> f64 {
    100.0
}

fn proc_status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::to_string))
        })
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets `VmHWM` to the current RSS.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// The receiver, in a child process.

struct Receiver {
    base: String,
    child: Child,
}

impl Receiver {
    fn spawn() -> Receiver {
        let exe = std::env::current_exe().expect("own path");
        let mut child = Command::new(exe)
            .env(RECEIVER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("receiver child starts");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("piped"))
            .read_line(&mut line)
            .expect("receiver prints its address");
        Receiver {
            base: line.trim().to_string(),
            child,
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The child: a lean receiver until its stdin closes.
fn receiver_child() {
    let server = TestServer::counting();
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{}", server.base());
    let _ = out.flush();
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
    drop(server);
}
