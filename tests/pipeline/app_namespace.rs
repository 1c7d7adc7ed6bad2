//! Each app that uses the library has its own spool and data directories under the OS
//! defaults, named after the app (by default its executable's name): one app's start never
//! deletes another app's spool, and one app's consent choice is not another's.
//!
//! Everything here runs with the default directories, so each app is a child process whose
//! `HOME`, `XDG_CACHE_HOME` and `XDG_DATA_HOME` point into a temporary directory (nothing
//! touches the real user's directories). A copy of this test binary under another name plays
//! another app.
#![cfg(unix)]

use closedloop_telemetry_test_support as support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use closedloop_telemetry::Consent;
use support::process::TempDir;
use support::server::{Reply, TestServer};
use tracing_subscriber::prelude::*;

/// Set in a child: what it does (see [`app`]).
const ROLE: &str = "CL_TEST_APP_ROLE";
/// Set in a child: the PostHog host.
const HOST: &str = "CL_TEST_APP_HOST";
/// Set in a child: the PostHog project key.
const KEY: &str = "CL_TEST_APP_KEY";

/// The child's side: does nothing unless [`ROLE`] is set. Prints `key=value` lines.
///
/// - `spool`: PostHog with the default directories, one event, the destination down: the
///   event stays in the spool.
/// - `deny`: stores a denial.
/// - `start`: starts with PostHog and reports its consent, computeTargetId and orphans.
#[test]
fn app() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let builder = || {
        closedloop_telemetry::builder("1.0.0")
            .posthog(std::env::var(KEY).unwrap(), std::env::var(HOST).unwrap())
            .shutdown_timeout(Duration::from_millis(500))
    };
    match role.as_str() {
        "spool" => {
            let telemetry = builder().build().unwrap();
            let (layer, guard) = telemetry.split();
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
                tracing::info!(event = "command.started");
            });
            let report = guard.shutdown();
            println!("spooled={}", report.remaining());
        }
        "deny" => {
            let telemetry = closedloop_telemetry::builder("1.0.0").build().unwrap();
            telemetry.handle().set_consent(Consent::Denied).unwrap();
            println!("consent=denied");
        }
        "start" => {
            let telemetry = builder().build().unwrap();
            let handle = telemetry.handle();
            let consent = handle.consent();
            println!("consent={}", consent.as_str());
            println!("compute_target_id={}", handle.compute_target_id());
            println!("orphans={}", handle.stats().orphan_spools.len());
            drop(telemetry);
        }
        other => panic!("unknown role {other}"),
    }
}

/// A machine of its own: home, cache and data directories, and the binaries of the apps.
struct Machine {
    root: TempDir,
}

impl Machine {
    fn new() -> Self {
        let root = TempDir::new("app-ns");
        for sub in ["home", "cache", "data", "bin"] {
            std::fs::create_dir_all(root.path().join(sub)).unwrap();
        }
        Machine { root }
    }

    fn cache(&self) -> PathBuf {
        self.root.path().join("cache")
    }

    fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// This test binary copied as `name`: another app (its default name is its file's name).
    fn install(&self, name: &str) -> PathBuf {
        let exe = self.root.path().join("bin").join(name);
        let me = std::env::current_exe().unwrap();
        if std::fs::hard_link(&me, &exe).is_err() {
            std::fs::copy(&me, &exe).unwrap();
        }
        exe
    }

    /// Runs `exe`'s child test in `role` with this machine's directories; returns its output.
    fn run(&self, exe: &Path, role: &str, server: &TestServer, key: &str) -> String {
        let mut cmd = Command::new(exe);
        for (k, _) in std::env::vars() {
            if k.starts_with("CL_") || k.starts_with("DD_") || k == "DO_NOT_TRACK" {
                cmd.env_remove(k);
            }
        }
        let out = cmd
            .args([
                "--exact",
                "app_namespace::app",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("HOME", self.root.path().join("home"))
            .env("XDG_CACHE_HOME", self.cache())
            .env("XDG_DATA_HOME", self.data())
            .env(ROLE, role)
            .env(HOST, server.base())
            .env(KEY, OsStr::new(key))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{role}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

/// The value of `key=` in a child's output (the harness may print on the same line).
fn value<'a>(out: &'a str, key: &str) -> &'a str {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Sets the modification time of every file under `dir` to `age` ago.
fn age_files(dir: &Path, age: Duration) {
    let when = SystemTime::now() - age;
    for path in files(dir) {
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(when).unwrap();
    }
}

/// The default name of this test binary's app: its file name, lowercased (cargo names test
/// binaries `<name>-<hash>`, which needs no other change).
fn my_name() -> String {
    let exe = std::env::current_exe().unwrap();
    exe.file_stem().unwrap().to_str().unwrap().to_lowercase()
}

#[test]
fn another_apps_expired_spool_is_never_deleted() {
    let machine = Machine::new();
    let down = TestServer::always(503);
    let other = machine.install("other-app");
    let out = machine.run(&other, "spool", &down, "phc_other");
    assert_eq!(value(&out, "spooled"), "1");
    let theirs = files(&machine.cache());
    assert!(
        theirs
            .iter()
            .any(|p| p.extension() == Some(OsStr::new("seg"))),
        "the other app spooled its event: {theirs:?}"
    );
    // Eight days old: past every expiry (PostHog's is 7 days).
    age_files(&machine.cache(), Duration::from_secs(8 * 24 * 3600));

    // This app starts with another PostHog project, with the default directories.
    let up = TestServer::start(|_, _| Reply::ok());
    let me = std::env::current_exe().unwrap();
    let out = machine.run(&me, "start", &up, "phc_mine");
    for path in &theirs {
        assert!(
            path.exists(),
            "another app's spool file was deleted: {}",
            path.display()
        );
    }
    assert_eq!(value(&out, "orphans"), "0", "not this app's orphan");
    // Each app's spool is under its own name.
    let apps = machine.cache().join("closedloop-telemetry").join("apps");
    for path in &theirs {
        assert!(
            path.starts_with(apps.join("other-app")),
            "{}",
            path.display()
        );
    }
    assert!(
        apps.join(my_name()).is_dir(),
        "{:?}",
        files(&machine.cache())
    );
}

#[test]
fn each_app_keeps_its_own_consent() {
    let machine = Machine::new();
    let server = TestServer::start(|_, _| Reply::ok());
    let other = machine.install("other-app");
    machine.run(&other, "deny", &server, "phc_other");

    let me = std::env::current_exe().unwrap();
    let out = machine.run(&me, "start", &server, "phc_mine");
    assert_eq!(
        value(&out, "consent"),
        "granted",
        "another app's denial is not this app's choice"
    );
    let data = machine.data().join("closedloop-telemetry").join("apps");
    assert!(data.join("other-app").join("consent").is_file());
    assert!(data.join(my_name()).join("compute-target-id").is_file());
}

#[test]
fn what_a_version_without_namespaces_left_is_honoured_or_left_alone() {
    let machine = Machine::new();
    let shared_data = machine.data().join("closedloop-telemetry");
    std::fs::create_dir_all(&shared_data).unwrap();
    std::fs::write(shared_data.join("compute-target-id"), "ct-legacy").unwrap();
    std::fs::write(shared_data.join("consent"), "denied").unwrap();
    // A PostHog spool in the shared location, long expired: not this app's to delete.
    let legacy_spool = machine
        .cache()
        .join("closedloop-telemetry")
        .join("0badf00d")
        .join("posthog");
    std::fs::create_dir_all(&legacy_spool).unwrap();
    std::fs::write(legacy_spool.join("000000000001.seg"), b"old").unwrap();
    age_files(&machine.cache(), Duration::from_secs(30 * 24 * 3600));

    let server = TestServer::start(|_, _| Reply::ok());
    let me = std::env::current_exe().unwrap();
    let out = machine.run(&me, "start", &server, "phc_mine");
    assert!(
        legacy_spool.join("000000000001.seg").exists(),
        "a spool in the shared pre-namespace location was deleted"
    );
    assert_eq!(value(&out, "compute_target_id"), "ct-legacy");
    assert_eq!(
        value(&out, "consent"),
        "denied",
        "a denial stored by a version without namespaces still holds"
    );
    assert!(server.requests().is_empty());
}
