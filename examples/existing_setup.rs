//! Adding closedloop-telemetry to an app that already has `fmt` + `EnvFilter` +
//! `tracing-opentelemetry`: one more `.with(layer)`, nothing else changes. The OpenTelemetry
//! trace id of the surrounding span reaches the relay message as `trace.otelTraceId`.
//!
//! ```sh
//! cargo run --example existing_setup
//! ```

use std::net::SocketAddr;

use closedloop_telemetry_collector::{Collector, Destination};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{info, info_span};
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A stand-in for the real relay, so the example runs with no accounts.
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let collector = Collector::start(addr)?;

    // The app's existing setup...
    let tracer_provider = SdkTracerProvider::builder().build();
    let otel = tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("desktop"));

    // ...plus our layer.
    let telemetry = closedloop_telemetry::builder(env!("CARGO_PKG_VERSION"))
        .relay(collector.relay_url(), None)
        .build()?;
    let (layer, guard) = telemetry.split();

    tracing_subscriber::registry()
        .with(EnvFilter::new("info"))
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(otel)
        .with(layer)
        .init();

    let span = info_span!("command", command_id = "cmd-42");
    let trace_id = span.in_scope(|| {
        info!(event = "command.started");
        info!(
            event = "command.completed",
            exit_code = 0,
            elapsed_ms = 310_u64
        );
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        format!("{:032x}", span.context().span().span_context().trace_id())
    });

    let report = guard.shutdown();
    println!("delivery: {report}");
    println!("span trace id:          {trace_id}");
    for r in collector.received_on(Destination::Relay) {
        println!(
            "relay {:<18} trace.otelTraceId={} trace.commandId={}",
            r.name, r.body["trace"]["otelTraceId"], r.body["trace"]["commandId"]
        );
        assert_eq!(r.body["trace"]["otelTraceId"], trace_id.as_str());
    }
    Ok(())
}
