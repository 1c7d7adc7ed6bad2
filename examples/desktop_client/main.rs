//! The main job: a scripted desktop session through `tracing` alone, delivered to PostHog and
//! the relay (or Datadog) — or, with no stream variables set, to an embedded local collector.
//!
//! ```sh
//! cargo run --example desktop_client
//! ```
//!
//! It always flushes before it exits (exit code 0) and prints as its last line
//! `emitted: posthog=<n> relay=<m>` (and ` otlp=<k>` when `CL_OTLP_ENDPOINT` is set): how many
//! of the events it emitted route to each stream under the current configuration.
//!
//! With `--view` (cargo feature `view`) it also serves the local view page, prints
//! `ui: http://127.0.0.1:<port>/?token=<token>` and, after the session, keeps the page open
//! until Ctrl-C.

mod session;
mod view;

use std::net::SocketAddr;
use std::time::Instant;

use closedloop_telemetry::EnvOptions;
use closedloop_telemetry_collector::print::{format_received, PrintFormat};
use closedloop_telemetry_collector::Collector;
use tracing_subscriber::prelude::*;

fn main() {
    let started = Instant::now();
    let env = match EnvOptions::from_env() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("configuration error: {e}");
            std::process::exit(2);
        }
    };
    let no_streams =
        env.posthog.is_none() && env.relay.is_none() && env.datadog.is_none() && env.otlp.is_none();
    let collector = (no_streams && !env.disabled).then(|| {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("loopback address");
        Collector::start(addr).expect("start the local collector on loopback")
    });

    // The embedded collector's demo events spool in a directory of this run's own (removed at
    // exit), not in the machine's spool, which belongs to real destinations.
    let demo_spool = (collector.is_some() && env.spool_dir.is_none()).then(|| {
        std::env::temp_dir().join(format!("closedloop-demo-spool-{}", std::process::id()))
    });
    let mut builder = closedloop_telemetry::builder(env!("CARGO_PKG_VERSION")).merge_env(env);
    if let Some(dir) = &demo_spool {
        builder = builder.spool_dir(dir);
    }
    if let Some(c) = &collector {
        println!(
            "no stream variables set: sending both streams to the local collector at {}",
            c.addr()
        );
        builder = builder
            .posthog("phc_local_collector", c.posthog_host())
            .relay(c.relay_url(), None);
    }
    let telemetry = match builder.build() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("telemetry could not start: {e}");
            std::process::exit(2);
        }
    };
    let handle = telemetry.handle();
    let (layer, guard) = telemetry.split();
    let view = std::env::args()
        .any(|a| a == "--view")
        .then(|| view::start(&handle));

    // The app's own logging stays as it is; our layer joins it.
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::EnvFilter::new(
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "off".into()),
                )),
        )
        .with(layer)
        .init();

    let streams: Vec<_> = handle.streams().iter().map(|s| s.as_str()).collect();
    println!(
        "computeTargetId={} streams=[{}]",
        handle.compute_target_id(),
        streams.join(", ")
    );

    session::play(handle.gateway());

    // Flush on exit rather than waiting for the batch timers.
    let report = guard.shutdown();
    let stats = handle.stats();
    println!(
        "\n== delivery ({:.1?} since start)\n{report}",
        started.elapsed()
    );

    if let Some(c) = &collector {
        for (title, stream) in [
            (
                "PostHog /batch/",
                closedloop_telemetry_collector::Destination::PostHog,
            ),
            (
                "relay (desktop.telemetry)",
                closedloop_telemetry_collector::Destination::Relay,
            ),
        ] {
            let got = c.received_on(stream);
            println!("\n== {title}: {} events", got.len());
            for r in &got {
                println!("{}", format_received(r, PrintFormat::Human));
            }
        }
        c.shutdown();
    }
    if let Some(dir) = &demo_spool {
        let _ = std::fs::remove_dir_all(dir);
    }

    let activity = handle.activity().snapshot();
    println!("\n== activity log (local only): {} entries", activity.len());
    for e in &activity {
        println!(
            "{:<8} {:<50} body={} bytes{}",
            e.kind.as_str(),
            e.summary,
            e.body.len(),
            if e.truncated { " (truncated)" } else { "" }
        );
    }

    let (posthog, relay) = stats.routed();
    match stats.routed_otlp() {
        Some(otlp) => println!("emitted: posthog={posthog} relay={relay} otlp={otlp}"),
        None => println!("emitted: posthog={posthog} relay={relay}"),
    }
    if let Some(view) = view {
        view.wait();
    }
}
