//! `verify`: the runbook automated, against the embedded collector and against relays.

mod support;

use std::time::Duration;

use closedloop_telemetry::config::EnvConfig;
use closedloop_telemetry::verify::{run_with, VerifyError};
use support::server::{Reply, TestServer};

/// A fresh spool directory, so runs never share (or replay) each other's events.
fn spool_dir() -> String {
    let d = std::env::temp_dir().join(format!("cl-verify-{}", uuid::Uuid::new_v4()));
    d.to_string_lossy().into_owned()
}

fn env(relay: Option<String>) -> EnvConfig {
    EnvConfig::from_lookup(|k| match k {
        "CL_RELAY_URL" => relay.clone(),
        "CL_COMPUTE_TARGET_ID" => Some("ct-verify".into()),
        "CL_TELEMETRY_SPOOL_DIR" => Some(spool_dir()),
        _ => None,
    })
    .unwrap()
}

#[test]
fn probe_arrives_at_the_local_collector_with_the_envelope() {
    let report = run_with(env(None), Duration::from_secs(20)).unwrap();
    assert!(report.inspected);
    assert_eq!(report.compute_target_id, "ct-verify");
    // The probe travels on the default 2 s cadence, not a flush.
    assert!(
        report.latency >= Duration::from_millis(1500),
        "{:?}",
        report.latency
    );
    let text = report.to_string();
    assert!(text.contains("trace.schemaVersion=\"1\""), "{text}");
    assert!(text.ends_with("verify: ok"));
}

#[test]
fn probe_is_accepted_by_a_configured_relay() {
    let server = TestServer::start(|_, _| Reply::status(202));
    let report = run_with(env(Some(server.url("/relay"))), Duration::from_secs(20)).unwrap();
    assert!(!report.inspected);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let m = &reqs[0].json()[0];
    assert_eq!(m["event"], "connection.established");
    assert_eq!(m["trace"]["schemaVersion"], "1");
    assert_eq!(m["trace"]["computeTargetId"], "ct-verify");
    assert!(report
        .to_string()
        .contains("@trace.computeTargetId:ct-verify"));
}

#[test]
fn a_refusing_relay_fails_with_its_reason() {
    let server = TestServer::start(|_, _| Reply::status(401).body("bad token"));
    let err = run_with(env(Some(server.url("/relay"))), Duration::from_secs(20)).unwrap_err();
    match err {
        VerifyError::NotDelivered(_, why) => assert!(why.contains("401"), "{why}"),
        other => panic!("expected NotDelivered, got {other}"),
    }
}

#[test]
fn the_binary_verifies_against_its_own_collector() {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_closedloop-telemetry"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CL_") || k.starts_with("DD_") || k == "DO_NOT_TRACK" {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .arg("verify")
        .env("CL_COMPUTE_TARGET_ID", "ct-bin")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("computeTargetId=ct-bin"), "{stdout}");
    let disabled = std::process::Command::new(env!("CARGO_BIN_EXE_closedloop-telemetry"))
        .arg("verify")
        .env("DO_NOT_TRACK", "1")
        .output()
        .unwrap();
    assert_eq!(disabled.status.code(), Some(1));
}
