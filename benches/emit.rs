//! App-thread cost of one telemetry event, every contender side by side in one run.
//!
//! The event: two nested spans with 5 context fields, and
//! `info!(event = "command.completed", exit_code, elapsed_ms, stdout_bytes, log_tail = <2 KiB>)`.
//!
//! - Group `emit` (the definition): a tight loop. Each case runs twice: spans entered
//!   once outside the loop, and (`_spans`) spans created and entered on every iteration.
//! - Group `emit_paced`: the same event in bursts of [`BURST`] with a [`PAUSE`] between bursts
//!   (under 100k events/s), timing only the emits. Every pipeline keeps up at that rate, so this
//!   is the cost of an event that is actually delivered, not of one dropped at a full queue.
//!
//! `closedloop_*` run the real facade (`closedloop_telemetry::builder(..).build()`): its layer,
//! its processor and hand-off worker, and the PostHog stream's delivery engine, sending to a
//! lean loopback receiver that answers `200` at once. `closedloop_verbose` has verbose on with
//! PostHog alone, which sends no tails, so the tail is not read; `closedloop_verbose_relay`
//! adds the relay stream, which sends it: the 2 KiB tail is copied into the record, redacted,
//! encoded and delivered. The `otel_bridge_*` cases are the
//! reference: the OpenTelemetry bridge over a stock `BatchLogProcessor` and a no-op exporter.
//! `otel_bridge_otlp_http` is the anchor a user would actually build: the same bridge and batch
//! processor with the `opentelemetry-otlp` HTTP logs exporter (protobuf, blocking client)
//! posting to the same lean loopback receiver as ours; what it delivers is counted by a
//! wrapper around the exporter.
//! After each pipeline case a line on stderr says how many records it took and dropped, and
//! whether the rate limiter was on. The `closedloop_*` cases run with the rate limiter off (they
//! measure the pipeline), except in `emit_paced`: `closedloop_limiter_admits` (on, with a limit
//! never reached: the limiter's cost per event, beside `closedloop_default`) and
//! `closedloop_limiter_default` (the default 10/s, burst 100, refusing nearly every event).
//!
//! Run with `cargo bench --bench emit`; see BENCHMARKS.md.

#[path = "common/event.rs"]
mod event;

use event::{emit, spans, tail};

use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use closedloop_telemetry_test_support::server::TestServer;
use criterion::{criterion_group, criterion_main, Criterion};
use opentelemetry_appender_tracing::layer::{OpenTelemetryTracingBridge, TracingSpanAttributes};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{BatchLogProcessor, LogBatch, LogExporter, SdkLoggerProvider};
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

/// Events per burst in `emit_paced`.
const BURST: u64 = 100;
/// The pause after each burst in `emit_paced` (not timed).
const PAUSE: Duration = Duration::from_millis(1);

/// Counts what it is given and does nothing else.
#[derive(Debug, Default)]
struct NoopExporter(Arc<AtomicU64>);

impl LogExporter for NoopExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        self.0
            .fetch_add(batch.iter().count() as u64, Ordering::Relaxed);
        black_box(batch);
        Ok(())
    }
}

/// Forwards to the OTLP exporter and counts the records of every successful export.
#[derive(Debug)]
struct CountingOtlp(opentelemetry_otlp::LogExporter, Arc<AtomicU64>);

impl LogExporter for CountingOtlp {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let n = batch.iter().count() as u64;
        let result = self.0.export(batch).await;
        if result.is_ok() {
            self.1.fetch_add(n, Ordering::Relaxed);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.0.set_resource(resource)
    }
}

/// The anchor: the bridge, the stock batch processor and the OTLP HTTP logs exporter posting
/// to `receiver`.
fn otlp(
    c: &mut Criterion,
    name: &str,
    receiver: &TestServer,
    run: fn(&mut Criterion, &str, &Option<Dispatch>) -> u64,
) {
    use opentelemetry_otlp::WithExportConfig as _;
    let exported = Arc::new(AtomicU64::new(0));
    let exporter = opentelemetry_otlp::LogExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/logs", receiver.base()))
        .build()
        .expect("OTLP exporter builds");
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(
            BatchLogProcessor::builder(CountingOtlp(exporter, exported.clone())).build(),
        )
        .build();
    let dispatch = Some(Dispatch::new(
        tracing_subscriber::registry().with(OpenTelemetryTracingBridge::new(&provider)),
    ));
    let n = run(c, name, &dispatch);
    let _ = provider.shutdown();
    report(name, n, exported.load(Ordering::Relaxed), "");
}

struct NoopLayer;
impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for NoopLayer {}

fn with(dispatch: &Option<Dispatch>, f: &mut dyn FnMut()) {
    match dispatch {
        Some(d) => tracing::dispatcher::with_default(d, f),
        None => f(),
    }
}

/// Runs one case of group `emit` (both variants); returns how many events it emitted.
fn tight(c: &mut Criterion, name: &str, dispatch: &Option<Dispatch>) -> u64 {
    let emitted = Cell::new(0u64);
    let count = || emitted.set(emitted.get() + 1);
    let tail = tail();
    let mut group = c.benchmark_group("emit");
    group.bench_function(name, |b| {
        with(dispatch, &mut || {
            let (outer, inner) = spans();
            let _o = outer.enter();
            let _i = inner.enter();
            b.iter(|| {
                count();
                emit(&tail)
            });
        })
    });
    group.bench_function(format!("{name}_spans"), |b| {
        with(dispatch, &mut || {
            b.iter(|| {
                count();
                let (outer, inner) = spans();
                let _o = outer.enter();
                let _i = inner.enter();
                emit(&tail);
            })
        })
    });
    group.finish();
    emitted.get()
}

/// Runs one case of group `emit_paced`; returns how many events it emitted.
fn paced(c: &mut Criterion, name: &str, dispatch: &Option<Dispatch>) -> u64 {
    let emitted = Cell::new(0u64);
    let tail = tail();
    let mut group = c.benchmark_group("emit_paced");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(600));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            with(dispatch, &mut || {
                let (outer, inner) = spans();
                let _o = outer.enter();
                let _i = inner.enter();
                let mut left = iters;
                while left > 0 {
                    let n = left.min(BURST);
                    let start = Instant::now();
                    for _ in 0..n {
                        emit(&tail);
                    }
                    timed += start.elapsed();
                    left -= n;
                    std::thread::sleep(PAUSE);
                }
            });
            emitted.set(emitted.get() + iters);
            timed
        })
    });
    group.finish();
    emitted.get()
}

fn report(name: &str, emitted: u64, taken: u64, detail: &str) {
    let lost = emitted.saturating_sub(taken);
    eprintln!(
        "[{name}] emitted {emitted}, accepted {taken}, lost {lost} ({:.2}%){detail}",
        100.0 * lost as f64 / emitted.max(1) as f64
    );
}

/// The reference: the OpenTelemetry bridge over a stock batch processor.
fn bridge(
    c: &mut Criterion,
    name: &str,
    span_attrs: bool,
    run: fn(&mut Criterion, &str, &Option<Dispatch>) -> u64,
) {
    let exported = Arc::new(AtomicU64::new(0));
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(BatchLogProcessor::builder(NoopExporter(exported.clone())).build())
        .build();
    let bridge = if span_attrs {
        OpenTelemetryTracingBridge::builder(&provider)
            .with_tracing_span_attributes(TracingSpanAttributes::all())
            .build()
    } else {
        OpenTelemetryTracingBridge::new(&provider)
    };
    let dispatch = Some(Dispatch::new(tracing_subscriber::registry().with(bridge)));
    let n = run(c, name, &dispatch);
    let _ = provider.shutdown();
    report(name, n, exported.load(Ordering::Relaxed), "");
}

/// The rate limiter in a `closedloop_*` case.
#[derive(Clone, Copy, PartialEq)]
enum Limit {
    /// Off (`rate_limit(None)`): the pipeline's own cost, comparable with earlier runs.
    Off,
    /// On, with a limit no case reaches: every event pays the bucket check and is delivered
    /// (side by side with `Off`, the limiter's cost per event).
    Admits,
    /// The default (10/s, burst 100): at this bench's rates nearly every event is refused.
    Default,
}

/// Ours: the whole facade, delivering to a loopback receiver: the PostHog stream, and with
/// `relay` the relay stream too (the stream that sends verbose tails).
fn closedloop(
    c: &mut Criterion,
    name: &str,
    (verbose, relay, limit): (bool, bool, Limit),
    receiver: &TestServer,
    run: fn(&mut Criterion, &str, &Option<Dispatch>) -> u64,
) {
    // A fresh data and spool directory for each case, removed after it: neither the machine's
    // stored consent or spool nor an earlier case's leftovers may change what is measured.
    static CASE: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "closedloop-bench-{}-{}",
        std::process::id(),
        CASE.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut builder = closedloop_telemetry::builder("1.0.0")
        .data_dir(dir.join("data"))
        .spool_dir(dir.join("spool"))
        .posthog("phc_bench", receiver.base())
        .compute_target_id("ct-bench")
        .release_version("1.0.0")
        .verbose(verbose);
    if relay {
        builder = builder.relay(format!("{}/relay", receiver.base()), None);
    }
    builder = match limit {
        Limit::Off => builder.rate_limit(None),
        Limit::Admits => builder.rate_limit(closedloop_telemetry::RateLimit::new(1e12, u32::MAX)),
        Limit::Default => builder,
    };
    let limit_note = match limit {
        Limit::Off => "; rate limit off",
        Limit::Admits => "; rate limit on, never reached",
        Limit::Default => "; default rate limit (10/s, burst 100)",
    };
    let telemetry = builder.build().expect("facade builds");
    let (layer, guard) = telemetry.split();
    let handle = guard.handle().clone();
    let dispatch = Some(Dispatch::new(tracing_subscriber::registry().with(layer)));
    let n = run(c, name, &dispatch);
    let shutdown = guard.shutdown();
    let s = handle.stats();
    // Lost: the most any stream lost (each stream gets every event it routes); events the
    // default rate limit refused are reported apart (in `dropped`), not as lost.
    let mut lost = 0;
    let mut detail = String::new();
    for stream in &s.streams {
        let d = &stream.delivery;
        lost = lost.max(d.dropped.total() - d.dropped.shutdown - d.dropped.rate_limited);
        detail += &format!(
            "; {:?}: sent {} in {} requests, dropped {:?}",
            stream.kind, d.sent, d.requests, d.dropped
        );
    }
    report(
        name,
        n,
        s.layer.emitted - lost.min(s.layer.emitted),
        &format!("{limit_note}{detail}; at shutdown: {shutdown}"),
    );
    drop(handle);
    let _ = std::fs::remove_dir_all(&dir);
}

fn noop() -> Option<Dispatch> {
    Some(Dispatch::new(
        tracing_subscriber::registry().with(NoopLayer),
    ))
}

fn benches(c: &mut Criterion) {
    // First, while no dispatcher exists at all (callsite interest is global).
    tight(c, "no_subscriber", &None);
    tight(c, "noop_layer", &noop());
    tight(
        c,
        "fmt_json",
        &Some(Dispatch::new(
            tracing_subscriber::registry().with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::sink),
            ),
        )),
    );
    bridge(c, "otel_bridge_batch", false, tight);
    bridge(c, "otel_bridge_batch_span_attrs", true, tight);
    let receiver = TestServer::counting();
    otlp(c, "otel_bridge_otlp_http", &receiver, tight);
    // The pipeline's capacity: the rate limiter off (its cost is measured in `emit_paced`).
    closedloop(
        c,
        "closedloop_default",
        (false, false, Limit::Off),
        &receiver,
        tight,
    );
    closedloop(
        c,
        "closedloop_verbose",
        (true, false, Limit::Off),
        &receiver,
        tight,
    );
    closedloop(
        c,
        "closedloop_verbose_relay",
        (true, true, Limit::Off),
        &receiver,
        tight,
    );

    paced(c, "noop_layer", &noop());
    bridge(c, "otel_bridge_batch", false, paced);
    otlp(c, "otel_bridge_otlp_http", &receiver, paced);
    closedloop(
        c,
        "closedloop_default",
        (false, false, Limit::Off),
        &receiver,
        paced,
    );
    // The rate limiter's cost, side by side with the case above: every event checked and
    // admitted; then the default limit, which refuses nearly all of them at this rate.
    closedloop(
        c,
        "closedloop_limiter_admits",
        (false, false, Limit::Admits),
        &receiver,
        paced,
    );
    closedloop(
        c,
        "closedloop_limiter_default",
        (false, false, Limit::Default),
        &receiver,
        paced,
    );
    closedloop(
        c,
        "closedloop_verbose",
        (true, false, Limit::Off),
        &receiver,
        paced,
    );
    closedloop(
        c,
        "closedloop_verbose_relay",
        (true, true, Limit::Off),
        &receiver,
        paced,
    );
}

criterion_group! {
    name = emit_benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    targets = benches
}
criterion_main!(emit_benches);
