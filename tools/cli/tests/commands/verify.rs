//! `verify`: the runbook automated, against the embedded collector and against relays.

use closedloop_telemetry_test_support as support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use closedloop_telemetry::EnvOptions;
use closedloop_telemetry_cli::verify::{run_with, VerifyError};
use support::server::{Reply, TestServer};
use tracing_subscriber::prelude::*;

fn env(relay: Option<String>, spool_dir: Option<&Path>) -> EnvOptions {
    EnvOptions::from_lookup(|k| match k {
        "CL_RELAY_URL" => relay.clone(),
        "CL_COMPUTE_TARGET_ID" => Some("ct-verify".into()),
        "CL_TELEMETRY_SPOOL_DIR" => spool_dir.map(|d| d.to_string_lossy().into_owned()),
        _ => None,
    })
    .unwrap()
}

/// A unique scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("cl-verify-{tag}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn sub(&self, name: &str) -> PathBuf {
        let d = self.0.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every path under `dir`.
fn contents(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(entry.path());
        if entry.path().is_dir() {
            out.extend(contents(&entry.path()));
        }
    }
    out
}

#[test]
fn probe_arrives_at_the_local_collector_with_the_envelope() {
    let report = run_with(env(None, None), Duration::from_secs(20)).unwrap();
    assert!(report.inspected);
    assert_eq!(report.compute_target_id, "ct-verify");
    assert!((200..300).contains(&report.status), "{}", report.status);
    assert!(!report.probe_id.is_empty());
    // The probe travels on the default 2 s cadence, not a flush.
    assert!(
        report.latency >= Duration::from_millis(1500),
        "{:?}",
        report.latency
    );
    let text = report.to_string();
    assert!(
        text.contains(
            "checked in the request sent and in the collector's stored copy: \
             trace.schemaVersion=\"1\" and trace.computeTargetId=ct-verify"
        ),
        "{text}"
    );
    assert!(text.contains(&report.probe_id), "{text}");
    // It says plainly that only this machine's pipeline was checked.
    assert!(
        text.contains(
            "nothing upstream was verified: the probe went to a local collector started for \
             this check, not to a relay"
        ),
        "{text}"
    );
    assert!(text.ends_with("verify: ok"));
}

#[test]
fn probe_is_accepted_by_a_configured_relay() {
    let server = TestServer::start(|_, _| Reply::status(202));
    let report = run_with(
        env(Some(server.url("/relay")), None),
        Duration::from_secs(20),
    )
    .unwrap();
    assert!(!report.inspected);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let m = &reqs[0].json()[0];
    assert_eq!(m["event"], "connection.established");
    assert_eq!(m["trace"]["schemaVersion"], "1");
    assert_eq!(m["trace"]["computeTargetId"], "ct-verify");
    // The acceptance confirmed is that of the probe's own id.
    assert_eq!(m["id"], report.probe_id.as_str());
    let text = report.to_string();
    assert!(text.contains("@trace.computeTargetId:ct-verify"), "{text}");
    assert!(text.contains("checked in the request sent: "), "{text}");
    assert!(
        text.contains("not checked: that Datadog indexed it"),
        "{text}"
    );
    assert!(!text.contains("nothing upstream was verified"), "{text}");
    assert!(text.ends_with("verify: ok"), "{text}");
}

#[test]
fn a_refusing_relay_fails_with_its_reason() {
    let server = TestServer::start(|_, _| Reply::status(401).body("bad token"));
    let err = run_with(
        env(Some(server.url("/relay")), None),
        Duration::from_secs(20),
    )
    .unwrap_err();
    match err {
        VerifyError::NotDelivered(_, why) => assert!(why.contains("401"), "{why}"),
        other => panic!("expected NotDelivered, got {other}"),
    }
}

/// Old events the app spooled for the relay are neither sent by `verify` nor taken for the
/// probe: with the probe's request refused (503) and every other request accepted, `verify`
/// fails, and the relay never sees the old events.
#[test]
fn an_old_spooled_event_is_never_taken_for_the_probe() {
    let scratch = Scratch::new("old-spool");
    let user_spool = scratch.sub("spool");
    let outage = Arc::new(AtomicBool::new(true));
    let flag = outage.clone();
    let server = TestServer::start(move |_, req| {
        let probe = String::from_utf8_lossy(&req.body).contains("connection.established");
        if flag.load(Ordering::SeqCst) || probe {
            Reply::status(503)
        } else {
            Reply::status(202)
        }
    });
    let url = server.url("/relay");

    // An earlier run of the app spooled 150 job.started events for this relay (an outage).
    let telemetry = closedloop_telemetry::builder("1.0.0")
        .relay(&url, None)
        .compute_target_id("ct-verify")
        .data_dir(scratch.sub("data"))
        .spool_dir(&user_spool)
        // Generous: in an outage shutdown waits this long, and everything must reach the spool.
        .shutdown_timeout(Duration::from_secs(2))
        // 150 at once, all to be spooled: not volume control.
        .rate_limit(None)
        .build()
        .unwrap();
    let (layer, guard) = telemetry.split();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for _ in 0..150 {
            tracing::info!(event = "job.started");
        }
    });
    assert_eq!(guard.shutdown().remaining(), 150);
    let seen_before = server.requests().len();

    outage.store(false, Ordering::SeqCst);
    let err = run_with(env(Some(url), Some(&user_spool)), Duration::from_secs(5)).unwrap_err();
    assert!(
        matches!(err, VerifyError::NotDelivered(..)),
        "expected NotDelivered, got {err}"
    );
    let during: Vec<String> = server.requests()[seen_before..]
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(!during.is_empty(), "the probe was tried");
    assert!(
        during.iter().all(|b| !b.contains("job.started")),
        "verify sent the app's spooled events"
    );
}

#[test]
fn the_binary_verifies_against_its_own_collector_and_leaves_no_directory() {
    let scratch = Scratch::new("bin");
    let (home, cache, data, tmp) = (
        scratch.sub("home"),
        scratch.sub("cache"),
        scratch.sub("data"),
        scratch.sub("tmp"),
    );
    let out = verify_command()
        .args(["verify", "--local"])
        .env("CL_COMPUTE_TARGET_ID", "ct-bin")
        .env("HOME", &home)
        .env("XDG_CACHE_HOME", &cache)
        .env("XDG_DATA_HOME", &data)
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("computeTargetId=ct-bin"), "{stdout}");
    assert!(stdout.contains("nothing upstream was verified"), "{stdout}");
    for dir in [&home, &cache, &data, &tmp] {
        assert_eq!(
            contents(dir),
            Vec::<PathBuf>::new(),
            "verify left files behind"
        );
    }
    let disabled = std::process::Command::new(env!("CARGO_BIN_EXE_closedloop-telemetry"))
        .args(["verify", "--local"])
        .env("DO_NOT_TRACK", "1")
        .env("HOME", &home)
        .env("XDG_CACHE_HOME", &cache)
        .env("XDG_DATA_HOME", &data)
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert_eq!(disabled.status.code(), Some(1));
}

/// The binary, with no `CL_*` / `DD_*` / `DO_NOT_TRACK` from the environment running the tests.
fn verify_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_closedloop-telemetry"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CL_") || k.starts_with("DD_") || k == "DO_NOT_TRACK" {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Without `CL_RELAY_URL` there is nothing upstream to verify: `verify` says so and exits 1
/// (no "verify: ok") unless `--local` asked for a check of this machine's pipeline only.
#[test]
fn the_binary_without_a_relay_fails_unless_local_is_asked_for() {
    let scratch = Scratch::new("no-relay");
    let out = verify_command()
        .arg("verify")
        .env("CL_COMPUTE_TARGET_ID", "ct-bin")
        .env("HOME", scratch.sub("home"))
        .env("XDG_CACHE_HOME", scratch.sub("cache"))
        .env("XDG_DATA_HOME", scratch.sub("data"))
        .env("TMPDIR", scratch.sub("tmp"))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(!stdout.contains("verify: ok"), "{stdout}");
    assert!(
        stderr.contains("nothing upstream was verified: CL_RELAY_URL is not set"),
        "{stderr}"
    );
    assert!(stderr.contains("--local"), "{stderr}");
}
