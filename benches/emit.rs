//! App-thread cost of one telemetry event, every contender side by side in one run.
//!
//! The event: two nested spans with 5 context fields, and
//! `info!(event = "command.completed", exit_code, elapsed_ms, stdout_bytes, log_tail = <2 KiB>)`.
//! Each case runs twice: spans entered once outside the loop, and (`_spans`) spans created and
//! entered on every iteration. Run with `cargo bench --bench emit`; see BENCHMARKS.md.

use std::hint::black_box;
use std::time::Duration;

use closedloop_telemetry_layers::TelemetryLayer;
use criterion::{criterion_group, criterion_main, Criterion};
use opentelemetry::logs::LoggerProvider;
use opentelemetry_appender_tracing::layer::{OpenTelemetryTracingBridge, TracingSpanAttributes};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{BatchLogProcessor, LogBatch, LogExporter, SdkLoggerProvider};
use tracing::{info, info_span, Dispatch};
use tracing_subscriber::prelude::*;

#[derive(Debug)]
struct NoopExporter;

impl LogExporter for NoopExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

struct NoopLayer;
impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for NoopLayer {}

fn batch_provider() -> SdkLoggerProvider {
    SdkLoggerProvider::builder()
        .with_log_processor(BatchLogProcessor::builder(NoopExporter).build())
        .build()
}

fn emit(tail: &str) {
    info!(
        event = "command.completed",
        exit_code = 0,
        elapsed_ms = 1532_u64,
        stdout_bytes = 20_480_u64,
        log_tail = tail
    );
}

fn spans() -> (tracing::Span, tracing::Span) {
    let outer = info_span!(
        "loop",
        loop_id = "loop-4f1c",
        loop_session_id = "ls-77a0",
        gateway_session_id = "gw-19b2"
    );
    let inner = outer.in_scope(|| info_span!("command", command_id = "cmd-0042", job_id = "job-9"));
    (outer, inner)
}

fn bench_case(c: &mut Criterion, name: &str, dispatch: Option<Dispatch>) {
    let tail: String = "npm WARN deprecated package@1.0.0: use something else\n"
        .chars()
        .cycle()
        .take(2048)
        .collect();
    let run = |f: &mut dyn FnMut()| match &dispatch {
        Some(d) => tracing::dispatcher::with_default(d, f),
        None => f(),
    };
    let mut group = c.benchmark_group("emit");
    group.bench_function(name, |b| {
        run(&mut || {
            let (outer, inner) = spans();
            let _o = outer.enter();
            let _i = inner.enter();
            b.iter(|| emit(&tail));
        })
    });
    group.bench_function(format!("{name}_spans"), |b| {
        run(&mut || {
            b.iter(|| {
                let (outer, inner) = spans();
                let _o = outer.enter();
                let _i = inner.enter();
                emit(&tail);
            })
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_case(c, "no_subscriber", None);
    bench_case(
        c,
        "noop_layer",
        Some(Dispatch::new(
            tracing_subscriber::registry().with(NoopLayer),
        )),
    );
    bench_case(
        c,
        "fmt_json",
        Some(Dispatch::new(
            tracing_subscriber::registry().with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::sink),
            ),
        )),
    );

    let provider = batch_provider();
    bench_case(
        c,
        "otel_bridge_batch",
        Some(Dispatch::new(
            tracing_subscriber::registry().with(OpenTelemetryTracingBridge::new(&provider)),
        )),
    );
    let _ = provider.shutdown();

    let provider = batch_provider();
    bench_case(
        c,
        "otel_bridge_batch_span_attrs",
        Some(Dispatch::new(
            tracing_subscriber::registry().with(
                OpenTelemetryTracingBridge::builder(&provider)
                    .with_tracing_span_attributes(TracingSpanAttributes::all())
                    .build(),
            ),
        )),
    );
    let _ = provider.shutdown();

    for (name, verbose) in [("closedloop_default", false), ("closedloop_verbose", true)] {
        let provider = batch_provider();
        let layer = TelemetryLayer::builder(provider.logger("bench"))
            .compute_target_id("ct-bench")
            .release_version("1.0.0")
            .verbose(verbose)
            .build();
        bench_case(
            c,
            name,
            Some(Dispatch::new(tracing_subscriber::registry().with(layer))),
        );
        let _ = provider.shutdown();
    }
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
