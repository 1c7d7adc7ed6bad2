//! A small tmpfs mounted for one test (a real file system that fills up), unmounted on drop.
//! Mounting needs root (as in CI); where it fails the test prints why and skips.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a given size on a fresh temporary directory.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `"256k"`), or prints why not and returns `None`.
    pub fn mount(test: &str, size: &str) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("cl-tmpfs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir)),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                let _ = std::fs::remove_dir(&dir);
                println!("SKIPPED {test}: cannot mount a tmpfs here (needs root): {why}");
                None
            }
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file of `bytes` zeros, to leave the file system nearly full.
    pub fn fill(&self, bytes: usize) {
        std::fs::write(self.0.join("filler"), vec![0u8; bytes]).unwrap();
    }

    /// Bytes still free on the file system.
    pub fn free_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.0)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
