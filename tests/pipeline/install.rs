//! The facade: one builder call, a layer added to an existing subscriber, a guard that flushes,
//! DO_NOT_TRACK, the persisted computeTargetId.

use closedloop_telemetry_test_support as support;

use std::time::Duration;

use closedloop_telemetry::EnvOptions;
use closedloop_telemetry::{ActivityKind, Destination};
use support::server::{Reply, TestServer};
use tracing::info;
use tracing_subscriber::prelude::*;

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cl-install-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn layer_joins_an_existing_subscriber_and_the_guard_flushes_on_drop() {
    let server = TestServer::start(|_, _| Reply::ok());
    let telemetry = closedloop_telemetry::builder("3.1.4")
        .spool_dir(temp_dir("spool"))
        .posthog("phc_test", server.base())
        .compute_target_id("ct-install")
        .build()
        .unwrap();
    let (layer, guard) = telemetry.split();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
        .with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let _c = tracing::info_span!("command", command_id = "C1").entered();
        info!(event = "command.started");
        info!(event = "command.completed", exit_code = 0);
        info!(event = "job.completed"); // relay-only: not for PostHog
    });
    assert_eq!(guard.handle().streams(), [Destination::PostHog]);
    drop(guard); // well before the 30 s batch timer
    let reqs = server.wait_for(1, Duration::from_secs(5));
    assert_eq!(reqs.len(), 1);
    let body = reqs[0].json();
    let batch = body["batch"].as_array().unwrap();
    let names: Vec<_> = batch.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["command_started", "command_completed"]);
    for e in batch {
        assert_eq!(e["distinct_id"], "ct-install");
        assert_eq!(e["properties"]["release_version"], "3.1.4");
        assert_eq!(e["properties"]["command_id"], "C1");
    }
}

#[test]
fn handle_shutdown_works_without_dropping_the_guard_and_reports() {
    let server = TestServer::start(|_, _| Reply::ok());
    let telemetry = closedloop_telemetry::builder("1.0.0")
        .spool_dir(temp_dir("spool"))
        .posthog("phc_test", server.base())
        .compute_target_id("ct")
        .build()
        .unwrap();
    let handle = telemetry.handle();
    let (layer, guard) = telemetry.split();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info!(event = "approval.requested");
    });
    let report = handle.shutdown();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.streams[0].1.stats.sent, 1);
    assert_eq!(
        handle.shutdown(),
        report,
        "second call returns the first report"
    );
    drop(guard); // no second shutdown, no hang
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn do_not_track_makes_no_connection_and_keeps_the_activity_log() {
    let server = TestServer::start(|_, _| Reply::ok());
    let env = EnvOptions::from_lookup(|k| match k {
        "DO_NOT_TRACK" => Some("1".into()),
        "CL_POSTHOG_API_KEY" => Some("phc_test".into()),
        "CL_POSTHOG_HOST" => Some(server.base()),
        "CL_RELAY_URL" => Some(server.url("/relay")),
        _ => None,
    })
    .unwrap();
    let telemetry = closedloop_telemetry::builder("1.0.0")
        .spool_dir(temp_dir("spool"))
        .compute_target_id("ct")
        .merge_env(env)
        .build()
        .unwrap();
    let handle = telemetry.handle();
    assert!(handle.streams().is_empty());
    assert!(!handle.is_upstream_enabled());
    let (layer, guard) = telemetry.split();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info!(event = "connection.established");
        info!(
            activity = "security",
            summary = "sandbox blocked a write",
            body = "/etc/hosts"
        );
    });
    drop(guard);
    // With DO_NOT_TRACK no stream (and so no thread that could send) exists at all.
    assert!(handle.stats().streams.is_empty(), "no upstream stream");
    assert!(
        server.requests().is_empty(),
        "DO_NOT_TRACK must make zero requests"
    );
    let entries = handle.activity().snapshot();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].kind, ActivityKind::Security);
    assert_eq!(handle.stats().layer.emitted, 0);
}

#[test]
fn compute_target_id_is_created_once_and_reused() {
    let dir = temp_dir("id");
    let build = || {
        closedloop_telemetry::builder("1.0.0")
            .spool_dir(temp_dir("spool"))
            .data_dir(&dir)
            .build()
            .unwrap()
    };
    let first = build().handle().compute_target_id().to_string();
    let second = build().handle().compute_target_id().to_string();
    assert_eq!(first, second);
    assert_eq!(first.len(), 36);
    let configured = closedloop_telemetry::builder("1.0.0")
        .spool_dir(temp_dir("spool"))
        .data_dir(&dir)
        .compute_target_id("from-config")
        .build()
        .unwrap();
    assert_eq!(configured.handle().compute_target_id(), "from-config");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unusable_data_dir_falls_back_to_a_run_id_without_failing() {
    let dir = temp_dir("file");
    let file = dir.join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let t = closedloop_telemetry::builder("1.0.0")
        .spool_dir(temp_dir("spool"))
        .data_dir(file.join("sub"))
        .build()
        .unwrap();
    assert_eq!(t.handle().compute_target_id().len(), 36);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_malformed_url_is_a_named_error_not_a_panic() {
    let err = closedloop_telemetry::builder("1.0.0")
        .spool_dir(temp_dir("spool"))
        .posthog("phc_test", "not a url")
        .compute_target_id("ct")
        .build()
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("CL_POSTHOG_HOST"), "{msg}");
    assert!(
        !msg.contains("phc_test"),
        "the key never appears in errors: {msg}"
    );
}
