//! The HTTP-stack filter matches crate names exactly: an app crate whose name merely starts
//! like one (`hyper_dash`, `rustls_cfg`) keeps its telemetry, while `hyper::proto` events (the
//! stack our exporters use) are never captured. Through the public builder, default policy.
#![cfg(feature = "testing")]

use closedloop_telemetry::testing::capture;

#[test]
fn app_crates_named_like_the_http_stack_keep_their_telemetry() {
    let got = capture(|| {
        tracing::info!(target: "hyper_dash", event = "command.completed", job_id = "from-hyper-dash");
        tracing::info!(target: "rustls_cfg::load", event = "command.completed", job_id = "from-rustls-cfg");
        tracing::info!(target: "hyper::proto::h1", event = "command.completed", job_id = "from-hyper");
        tracing::info!(target: "h2::codec", event = "command.completed", job_id = "from-h2");
        tracing::info!(target: "reqwest", event = "command.completed", job_id = "from-reqwest");
    });
    let mut relay: Vec<&str> = got
        .relay
        .iter()
        .filter_map(|m| m["trace"]["jobId"].as_str())
        .collect();
    relay.sort_unstable();
    assert_eq!(
        relay,
        ["from-hyper-dash", "from-rustls-cfg"],
        "{:#?}",
        got.relay
    );
    let mut posthog: Vec<&str> = got
        .posthog
        .iter()
        .filter_map(|e| e["properties"]["job_id"].as_str())
        .collect();
    posthog.sort_unstable();
    assert_eq!(posthog, ["from-hyper-dash", "from-rustls-cfg"]);
}
