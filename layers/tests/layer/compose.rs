//! The layer composes with the setups apps already have: fmt + EnvFilter, per-layer filters,
//! and tracing-opentelemetry (whose trace context reaches the record).

use std::io::Write;
use std::sync::{Arc, Mutex};

use closedloop_telemetry_layers::TelemetryLayer;
use opentelemetry::logs::LoggerProvider;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::info;
use tracing_subscriber::{filter::LevelFilter, prelude::*, EnvFilter, Layer};

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs_provider() -> (InMemoryLogExporter, SdkLoggerProvider) {
    let exporter = InMemoryLogExporter::default();
    let provider = SdkLoggerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    (exporter, provider)
}

#[test]
fn composes_with_fmt_and_env_filter() {
    let (exporter, provider) = logs_provider();
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::registry()
        .with(EnvFilter::new("info"))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(move || writer.clone()),
        )
        .with(TelemetryLayer::builder(provider.logger("t")).build());
    tracing::subscriber::with_default(subscriber, || {
        info!(event = "command.completed", exit_code = 0);
        info!("plain log line");
        tracing::debug!(event = "command.started"); // filtered out by EnvFilter for everyone
    });
    let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert_eq!(out.lines().count(), 2, "fmt saw both info events: {out}");
    let recs = exporter.get_emitted_logs().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].record.event_name(), Some("command.completed"));
}

#[test]
fn works_under_a_per_layer_filter() {
    let (exporter, provider) = logs_provider();
    let subscriber = tracing_subscriber::registry().with(
        TelemetryLayer::builder(provider.logger("t"))
            .build()
            .with_filter(LevelFilter::WARN),
    );
    tracing::subscriber::with_default(subscriber, || {
        info!(event = "command.completed");
        tracing::warn!(event = "connection.degraded");
        tracing::error!(event = "connection.lost");
    });
    let names: Vec<_> = exporter
        .get_emitted_logs()
        .unwrap()
        .iter()
        .map(|l| l.record.event_name().unwrap())
        .collect();
    assert_eq!(names, ["connection.degraded", "connection.lost"]);
}

#[test]
fn tracing_opentelemetry_trace_context_reaches_the_record() {
    let (exporter, provider) = logs_provider();
    let tracer_provider = SdkTracerProvider::builder().build();
    let tracer = tracer_provider.tracer("t");
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(TelemetryLayer::builder(provider.logger("t")).build());
    tracing::subscriber::with_default(subscriber, || {
        let _g = tracing::info_span!("command", command_id = "C9").entered();
        info!(event = "command.completed");
    });
    let recs = exporter.get_emitted_logs().unwrap();
    let tc = recs[0].record.trace_context().expect("trace context set");
    assert_ne!(tc.trace_id, opentelemetry::TraceId::INVALID);
    assert_ne!(tc.span_id, opentelemetry::SpanId::INVALID);
}
