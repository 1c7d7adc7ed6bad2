//! Process-level test helpers: temporary directories, child processes, `/proc` readings.

use std::path::{Path, PathBuf};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `cl-test-<tag>-<uuid>` under the system temp dir.
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("cl-test-{tag}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills the child if the test fails before it does (a no-op after a successful wait).
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl KillOnDrop {
    /// Runs this test binary's test `name` alone in a child process, with `envs` set, stdout
    /// piped (for the child's progress lines) and stderr discarded.
    pub fn spawn_test(name: &str, envs: &[(&str, &std::ffi::OsStr)]) -> Self {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", name, "--nocapture", "--test-threads", "1"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        KillOnDrop(cmd.spawn().unwrap())
    }
}

/// A `/proc/self/status` value in KiB (e.g. `"VmRSS:"`, `"VmHWM:"`); 0 when unavailable.
pub fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
