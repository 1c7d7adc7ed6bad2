//! Shared harness for the PostHog end-to-end tests: the real `TelemetryLayer` over an
//! `SdkLoggerProvider` whose exporter is a `StreamExporter` pointed at a loopback `TestServer`.

#![allow(dead_code)]

use std::collections::HashSet;
use std::time::Duration;

use closedloop_telemetry_exporters::__private::decode::Event;
use closedloop_telemetry_exporters::{DeliveryOptions, DeliveryOptionsBuilder, RetryPolicy};
use closedloop_telemetry_exporters::{
    DeliveryReport, FlushThrough, PostHogExporterBuilder, StreamExporter,
};
use closedloop_telemetry_layers::__private::catalogue::lookup;
use closedloop_telemetry_layers::__private::envelope::{
    format_timestamp, Diagnostics, TraceEnvelope,
};
use closedloop_telemetry_layers::TelemetryLayer;
use opentelemetry::logs::LoggerProvider;
use opentelemetry_sdk::logs::{
    log_processor_with_async_runtime, BatchLogProcessor, SdkLoggerProvider,
};
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

use closedloop_telemetry_test_support::server::{Request, TestServer};

/// A fake key; the tests check it never leaks into logs or errors.
pub const KEY: &str = "phc_test_key_0123456789";
pub const WAIT: Duration = Duration::from_secs(5);

/// Short backoffs so retry tests stay fast.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(60),
        max_attempts: 10,
    }
}

pub fn builder(server_base: &str) -> PostHogExporterBuilder {
    PostHogExporterBuilder::default()
        .api_key(KEY)
        .host(server_base)
        .delivery(fast_delivery().build())
}

/// The delivery options of [`builder`]: fast retries, everything else at its default.
pub fn fast_delivery() -> DeliveryOptionsBuilder {
    DeliveryOptions::builder().with_retry_policy(fast_retry())
}

/// Which SDK processor carries records to the exporter.
#[derive(Debug, Clone, Copy)]
pub enum Processor {
    Simple,
    Batch,
    /// The SDK's batch processor on the async runtime (`runtime::Tokio`; needs a runtime).
    AsyncRuntimeBatch,
    /// The stock batch processor wrapped in `FlushThrough`.
    FlushThroughBatch,
}

pub struct Harness {
    pub exporter: StreamExporter,
    pub provider: SdkLoggerProvider,
    pub dispatch: Dispatch,
}

impl Harness {
    pub fn new(builder: PostHogExporterBuilder) -> Self {
        Self::with(builder, Processor::Simple, false)
    }

    pub fn with(builder: PostHogExporterBuilder, processor: Processor, verbose: bool) -> Self {
        let exporter = builder.build().expect("exporter builds");
        let provider = match processor {
            Processor::Simple => {
                SdkLoggerProvider::builder().with_simple_exporter(exporter.clone())
            }
            Processor::Batch => SdkLoggerProvider::builder().with_batch_exporter(exporter.clone()),
            Processor::AsyncRuntimeBatch => SdkLoggerProvider::builder().with_log_processor(
                log_processor_with_async_runtime::BatchLogProcessor::builder(
                    exporter.clone(),
                    opentelemetry_sdk::runtime::Tokio,
                )
                .build(),
            ),
            Processor::FlushThroughBatch => {
                SdkLoggerProvider::builder().with_log_processor(FlushThrough::new(
                    BatchLogProcessor::builder(exporter.clone()).build(),
                    [exporter.clone()],
                ))
            }
        }
        .build();
        let layer = TelemetryLayer::builder(provider.logger("app"))
            .compute_target_id("ct-test")
            .release_version("9.9.9")
            .verbose(verbose)
            .build();
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
        Harness {
            exporter,
            provider,
            dispatch,
        }
    }

    /// Runs `f` with the telemetry subscriber as the thread's default.
    pub fn emit(&self, f: impl FnOnce()) {
        tracing::dispatcher::with_default(&self.dispatch, f);
    }

    /// Emits `n` `command.completed` events numbered by `exit_code`.
    pub fn emit_n(&self, n: usize) {
        self.emit(|| {
            for i in 0..n {
                tracing::info!(event = "command.completed", exit_code = i as i64);
            }
        });
    }

    /// Pushes the SDK's own buffer into the exporter, then flushes the exporter.
    pub fn flush(&self, timeout: Duration) -> DeliveryReport {
        let _ = self.provider.force_flush();
        self.exporter.flush(timeout)
    }
}

/// The `batch` array of a request.
pub fn batch(req: &Request) -> Vec<serde_json::Value> {
    req.json()["batch"].as_array().expect("batch array").clone()
}

pub fn uuids(req: &Request) -> Vec<String> {
    batch(req)
        .iter()
        .map(|e| e["uuid"].as_str().expect("uuid").to_string())
        .collect()
}

pub fn sizes(reqs: &[Request]) -> Vec<usize> {
    reqs.iter().map(|r| batch(r).len()).collect()
}

pub fn unique(ids: impl IntoIterator<Item = String>) -> HashSet<String> {
    ids.into_iter().collect()
}

/// A loopback address nothing listens on: bind a port, then drop the listener.
pub fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// A decoded event built by hand, for tests that submit straight to the engine.
pub fn event(name: &str) -> Event {
    let now = std::time::SystemTime::now();
    Event {
        name: name.into(),
        entry: lookup(name),
        time: now,
        severity: None,
        trace: TraceEnvelope::new(format_timestamp(now), "ct-test".into()),
        diagnostics: Diagnostics::default(),
        release_version: None,
        sample_rate: None,
    }
}

pub fn server_ok() -> TestServer {
    TestServer::always(200)
}
