// A binary of its own: it sets DO_NOT_TRACK and CL_* in the process environment.
//! `DO_NOT_TRACK=1` / `CL_TELEMETRY_DISABLED=1` in the process environment win over every
//! builder call, through every public entry point that reads the environment.
//!
//! These tests change the process environment, so they live alone in this binary and run one
//! at a time under `ENV_LOCK`.

use closedloop_telemetry_test_support as support;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use closedloop_telemetry::EnvOptions;
use closedloop_telemetry::{Destination, Telemetry};
use closedloop_telemetry_exporters::{BuildError, PostHogExporterBuilder};
use support::server::{Reply, TestServer};
use tracing_subscriber::prelude::*;

static ENV_LOCK: Mutex<()> = Mutex::new(());

const OFF_VARS: [&str; 2] = ["DO_NOT_TRACK", "CL_TELEMETRY_DISABLED"];

/// Holds the lock and a configured environment; restores a clean one when dropped.
struct Env {
    _lock: MutexGuard<'static, ()>,
    vars: Vec<&'static str>,
}

impl Env {
    /// Both streams on `server`, everything in a temporary directory, plus `off_var=1`
    /// (none if `None`).
    fn set(server: &TestServer, off_var: Option<&'static str>) -> Env {
        let lock = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let dir = temp_dir();
        let mut pairs: Vec<(&'static str, String)> = vec![
            ("CL_POSTHOG_API_KEY", "phc_test".into()),
            ("CL_POSTHOG_HOST", server.base()),
            ("CL_RELAY_URL", server.url("/relay")),
            ("CL_COMPUTE_TARGET_ID", "ct-dnt".into()),
            (
                "CL_TELEMETRY_SPOOL_DIR",
                dir.join("spool").display().to_string(),
            ),
            // Nothing may land in the real user's directories.
            ("XDG_DATA_HOME", dir.join("data").display().to_string()),
            ("XDG_CACHE_HOME", dir.join("cache").display().to_string()),
        ];
        for var in OFF_VARS {
            std::env::remove_var(var);
        }
        if let Some(var) = off_var {
            pairs.push((var, "1".into()));
        }
        for (k, v) in &pairs {
            std::env::set_var(k, v);
        }
        Env {
            _lock: lock,
            vars: pairs.iter().map(|(k, _)| *k).collect(),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for k in &self.vars {
            std::env::remove_var(k);
        }
    }
}

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("cl-dnt-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// No stream runs, events emitted through the layer reach nobody, and the server saw nothing.
fn assert_nothing_leaves(telemetry: Telemetry, server: &TestServer, what: &str) {
    let handle = telemetry.handle();
    assert_eq!(handle.streams(), Vec::<Destination>::new(), "{what}");
    assert!(!handle.is_upstream_enabled(), "{what}");
    let (layer, guard) = telemetry.split();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!(event = "command.started");
        tracing::info!(event = "job.completed", exit_code = 0);
    });
    assert!(guard.shutdown().is_complete());
    // With no stream there is no worker that could send later: the check is final.
    assert!(server.requests().is_empty(), "{what}: a request went out");
}

#[test]
fn from_env_then_disabled_false_keeps_telemetry_off() {
    let server = TestServer::start(|_, _| Reply::ok());
    for var in OFF_VARS {
        let _env = Env::set(&server, Some(var));
        let t = closedloop_telemetry::builder("1.0.0")
            .from_env()
            .unwrap()
            .disabled(false)
            .build()
            .unwrap();
        assert_nothing_leaves(t, &server, &format!("{var}: from_env().disabled(false)"));

        // Streams set in code after from_env(), then disabled(false).
        let t = closedloop_telemetry::builder("1.0.0")
            .from_env()
            .unwrap()
            .posthog("phc_code", server.base())
            .relay(server.url("/relay"), None)
            .disabled(false)
            .build()
            .unwrap();
        assert_nothing_leaves(t, &server, &format!("{var}: setters after from_env()"));

        // disabled(false) before from_env().
        let t = closedloop_telemetry::builder("1.0.0")
            .disabled(false)
            .from_env()
            .unwrap()
            .build()
            .unwrap();
        assert_nothing_leaves(t, &server, &format!("{var}: disabled(false).from_env()"));

        // An environment read separately and merged.
        let t = closedloop_telemetry::builder("1.0.0")
            .merge_env(EnvOptions::from_env().unwrap())
            .disabled(false)
            .merge_env(EnvOptions::default())
            .build()
            .unwrap();
        assert_nothing_leaves(t, &server, &format!("{var}: merge_env().disabled(false)"));
    }
}

#[test]
fn the_same_setup_without_the_variable_does_send() {
    // The control: proves the setup above would reach the server if the variable were unset.
    let server = TestServer::start(|_, _| Reply::ok());
    let _env = Env::set(&server, None);
    let t = closedloop_telemetry::builder("1.0.0")
        .from_env()
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        t.handle().streams(),
        vec![Destination::PostHog, Destination::Relay]
    );
    let (layer, guard) = t.split();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!(event = "command.started");
    });
    guard.shutdown();
    assert_eq!(server.wait_for(2, Duration::from_secs(10)).len(), 2);
}

#[test]
fn posthog_exporter_from_env_refuses_to_build() {
    let server = TestServer::start(|_, _| Reply::ok());
    for var in OFF_VARS {
        let _env = Env::set(&server, Some(var));
        let built = PostHogExporterBuilder::from_env()
            .api_key("phc_code")
            .host(server.base())
            .build();
        assert!(
            matches!(built, Err(BuildError::Disabled(v)) if v == var),
            "{var}: {built:?}"
        );
    }
    let _env = Env::set(&server, None);
    assert!(PostHogExporterBuilder::from_env().build().is_ok());
    assert!(server.requests().is_empty());
}

#[test]
fn init_honours_do_not_track() {
    // `init` installs the global subscriber, so only this test calls it.
    let server = TestServer::start(|_, _| Reply::ok());
    let _env = Env::set(&server, Some("DO_NOT_TRACK"));
    let guard = closedloop_telemetry::init("1.0.0").unwrap();
    assert_eq!(guard.handle().streams(), Vec::<Destination>::new());
    tracing::info!(event = "command.started");
    assert!(guard.shutdown().is_complete());
    assert!(server.requests().is_empty());
}
