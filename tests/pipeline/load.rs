//! Sustained-load harness for the real facade (issue 7). Not part of the normal suite: every test
//! is `#[ignore]`d and prints its measurements. Run by hand, in release, one test at a time:
//!
//! ```text
//! cargo test --release --test pipeline load:: -- --ignored --nocapture --test-threads=1
//! ```
//!
//! - `sustained_100k_events_per_second`: 100k events/s for 10 s into a loopback receiver that
//!   answers `200` at once; events emitted against events delivered, drops by reason.
//! - `flood_peak_rss`: the peak RSS (`VmHWM`) of a 1M-event tight loop against the baseline
//!   before it.
//! - `latency_with_the_default_cadence`: emission-to-arrival latency p50/p99 of the relay
//!   stream with its default cadence (a partial batch goes 2 s after its first message).
//!
//! Goals are benchmark targets, never assertions: these tests only fail if the pipeline breaks.

use closedloop_telemetry_test_support as support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use closedloop_telemetry::{Destination, TelemetryGuard, TelemetryStats};
use support::process::status_kib;
use support::server::TestServer;
use tracing::{info, info_span, Dispatch};
use tracing_subscriber::prelude::*;

const TAIL: &str = "npm WARN deprecated package@1.0.0: use something else\n";

fn emit(tail: &str, n: u64) {
    info!(
        event = "command.completed",
        exit_code = 0,
        elapsed_ms = n,
        stdout_bytes = 20_480_u64,
        log_tail = tail
    );
}

/// A data and spool directory of this run's own: the machine's stored consent or spool must
/// not change what is measured.
fn run_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("closedloop-load-{}", std::process::id()))
}

/// The facade delivering PostHog to `receiver`, and a dispatch with its layer.
fn facade(receiver: &TestServer, flush_interval: Option<Duration>) -> (Dispatch, TelemetryGuard) {
    let mut builder = closedloop_telemetry::builder("1.0.0")
        .data_dir(run_dir().join("data"))
        .spool_dir(run_dir().join("spool"))
        .posthog("phc_load", receiver.base())
        .compute_target_id("ct-load")
        .shutdown_timeout(Duration::from_secs(30))
        // The harness measures the pipeline's capacity: the rate limiter off.
        .rate_limit(None);
    if let Some(i) = flush_interval {
        builder = builder.posthog_flush_interval(i);
    }
    let (layer, guard) = builder.build().expect("facade builds").split();
    // Our own warnings (first drop of each kind, with its stage) go to stderr.
    let warnings = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(tracing_subscriber::filter::LevelFilter::WARN);
    (
        Dispatch::new(tracing_subscriber::registry().with(layer).with(warnings)),
        guard,
    )
}

/// The facade delivering the relay stream to `receiver` on the default cadence (2 s).
fn relay_facade(receiver: &TestServer) -> (Dispatch, TelemetryGuard) {
    let (layer, guard) = closedloop_telemetry::builder("1.0.0")
        .data_dir(run_dir().join("data"))
        .spool_dir(run_dir().join("spool"))
        .relay(format!("{}/relay", receiver.base()), None)
        .compute_target_id("ct-load")
        .shutdown_timeout(Duration::from_secs(30))
        .rate_limit(None)
        .build()
        .expect("facade builds")
        .split();
    (
        Dispatch::new(tracing_subscriber::registry().with(layer)),
        guard,
    )
}

fn in_spans(f: impl FnOnce()) {
    let outer = info_span!(
        "loop",
        loop_id = "loop-4f1c",
        loop_session_id = "ls-77a0",
        gateway_session_id = "gw-19b2"
    );
    let _o = outer.enter();
    let _i = info_span!("command", command_id = "cmd-0042", job_id = "job-9").entered();
    f();
}

fn print_stats(label: &str, emitted: u64, stats: &TelemetryStats) {
    let ph = stats.stream(Destination::PostHog).expect("posthog stream");
    let ph = &ph.delivery;
    println!(
        "{label}: emitted {emitted}, layer emitted {}, delivered {}, requests {}, retried {}, \
         dropped {} ({:?}), still queued {}",
        stats.layer.emitted,
        ph.sent,
        ph.requests,
        ph.retried,
        ph.dropped.total(),
        ph.dropped,
        ph.queued
    );
}

/// CPU seconds used so far by each thread of this process, by thread name.
fn thread_cpu() -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ... utime stime ...": fields after the closing parenthesis.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map_or("", |(_, n)| n).to_string();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        out.push((name, ticks / 100.0));
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

fn print_cpu(label: &str, wall: Duration) {
    let cpu = thread_cpu();
    let total: f64 = cpu.iter().map(|(_, s)| s).sum();
    let list: Vec<String> = cpu
        .iter()
        .filter(|(_, s)| *s > 0.0)
        .map(|(n, s)| format!("{n} {s:.2}s"))
        .collect();
    println!(
        "{label}: CPU {total:.2}s over {wall:.2?} wall on {} cores: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        list.join(", ")
    );
}

fn tail() -> String {
    TAIL.chars().cycle().take(2048).collect()
}

#[test]
#[ignore = "load harness: run by hand in release"]
fn sustained_100k_events_per_second() {
    const RATE: u64 = 100_000;
    const SECONDS: u64 = 10;
    const PER_MS: u64 = RATE / 1000;
    let receiver = TestServer::counting();
    let (dispatch, guard) = facade(&receiver, None);
    let handle = guard.handle().clone();
    let tail = tail();
    let mut emitted = 0;
    let mut behind_ms = 0u64;
    let start = Instant::now();
    tracing::dispatcher::with_default(&dispatch, || {
        in_spans(|| {
            for ms in 0..SECONDS * 1000 {
                for _ in 0..PER_MS {
                    emit(&tail, emitted);
                    emitted += 1;
                }
                // Pace to the wall clock: sleep until the next millisecond is due.
                let due = start + Duration::from_millis(ms + 1);
                match due.checked_duration_since(Instant::now()) {
                    Some(wait) => std::thread::sleep(wait),
                    None => behind_ms += 1,
                }
            }
        })
    });
    let emitting = start.elapsed();
    print_stats("after emitting", emitted, &handle.stats());
    print_cpu("threads while emitting", emitting);
    let report = guard.shutdown();
    let drained = start.elapsed();
    let stats = handle.stats();
    print_stats("after shutdown", emitted, &stats);
    println!(
        "emitted {emitted} in {emitting:.2?} ({:.0} events/s, {behind_ms} ms slots late); \
         drained by {drained:.2?}; receiver answered {} requests; shutdown: {report}",
        emitted as f64 / emitting.as_secs_f64(),
        receiver.served()
    );
    let ph = &stats.stream(Destination::PostHog).unwrap().delivery;
    assert_eq!(stats.layer.emitted, emitted, "the layer saw every event");
    assert_eq!(
        ph.sent + ph.dropped.total() + ph.queued,
        emitted,
        "every event is delivered or counted"
    );
}

#[test]
#[ignore = "load harness: run by hand in release"]
fn flood_peak_rss() {
    const EVENTS: u64 = 1_000_000;
    let receiver = TestServer::counting();
    let (dispatch, guard) = facade(&receiver, None);
    let handle = guard.handle().clone();
    let tail = tail();
    tracing::dispatcher::with_default(&dispatch, || {
        in_spans(|| {
            // Warm up every thread and buffer, then settle.
            for n in 0..1000 {
                emit(&tail, n);
            }
        })
    });
    let _ = handle.flush(Duration::from_secs(5));
    // Reset the peak to the current RSS (Linux: "5" to clear_refs), so the baseline is the
    // running pipeline's steady state.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (base_hwm, base_rss) = (status_kib("VmHWM:"), status_kib("VmRSS:"));
    let start = Instant::now();
    tracing::dispatcher::with_default(&dispatch, || {
        in_spans(|| {
            for n in 0..EVENTS {
                emit(&tail, n);
            }
        })
    });
    let flood = start.elapsed();
    let peak_during = status_kib("VmHWM:");
    let report = guard.shutdown();
    let stats = handle.stats();
    print_stats("flood", EVENTS + 1000, &stats);
    println!(
        "flood of {EVENTS} in {flood:.2?} ({:.0} events/s); baseline RSS {base_rss} KiB \
         (HWM {base_hwm} KiB, reset: {reset}); peak during flood {peak_during} KiB: \
         +{} KiB; peak after shutdown {} KiB; shutdown: {report}",
        EVENTS as f64 / flood.as_secs_f64(),
        peak_during.saturating_sub(base_rss),
        status_kib("VmHWM:")
    );
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` to milliseconds since the epoch.
fn parse_ms(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    let num = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    if b.len() < 23 {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return -1;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
#[ignore = "load harness: run by hand in release"]
fn latency_with_the_default_cadence() {
    for (rate, seconds) in [(5u64, 20u64), (1000, 5)] {
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let sink = latencies.clone();
        let receiver = TestServer::lean(move |_, body| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
                return;
            };
            let mut l = sink.lock().unwrap();
            for e in v.as_array().into_iter().flatten() {
                if let Some(t) = e["trace"]["timestamp"].as_str().and_then(parse_ms) {
                    l.push(now - t);
                }
            }
        });
        let (dispatch, guard) = relay_facade(&receiver);
        let tail = tail();
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let start = Instant::now();
        let total = rate * seconds;
        tracing::dispatcher::with_default(&dispatch, || {
            in_spans(|| {
                for n in 0..total {
                    emit(&tail, n);
                    if let Some(w) =
                        (start + interval * (n as u32 + 1)).checked_duration_since(Instant::now())
                    {
                        std::thread::sleep(w);
                    }
                }
            })
        });
        // Let the last partial batch go on its timer (not on shutdown), then stop.
        std::thread::sleep(Duration::from_millis(2600));
        let report = guard.shutdown();
        let mut l = latencies.lock().unwrap().clone();
        l.sort_unstable();
        println!(
            "{rate} events/s for {seconds} s: {} of {total} arrived; latency ms p50 {} p99 {} \
             max {}; shutdown: {report}",
            l.len(),
            percentile(&l, 0.50),
            percentile(&l, 0.99),
            l.last().copied().unwrap_or(-1)
        );
    }
}
