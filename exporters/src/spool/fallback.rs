//! Opening with fallbacks: the shared directory, else a per-process subdirectory, else memory.

use std::path::Path;

use super::adopt::adopt_orphans;
use super::error::SpoolError;
use super::options::SpoolOptions;
use super::spool::Spool;

/// Which spool [`Spool::open_or_fallback`] got, and why it is not the first choice.
#[derive(Debug)]
pub enum SpoolHandle {
    /// The requested directory.
    Primary(Spool),
    /// The requested directory failed (usually: another process holds it); this process spools
    /// in its own subdirectory `dir/pid-<pid>` instead.
    PerProcess {
        /// The spool in the subdirectory.
        spool: Spool,
        /// Why the requested directory was not used.
        primary_error: SpoolError,
    },
    /// No directory worked, or the requested one was refused as not private: the engine keeps
    /// items in memory only.
    MemoryOnly {
        /// Why the requested directory was not used.
        primary_error: SpoolError,
        /// Why the per-process subdirectory was not used either.
        fallback_error: SpoolError,
    },
}

impl SpoolHandle {
    /// The spool, unless memory only.
    pub fn spool_mut(&mut self) -> Option<&mut Spool> {
        match self {
            SpoolHandle::Primary(spool) | SpoolHandle::PerProcess { spool, .. } => Some(spool),
            SpoolHandle::MemoryOnly { .. } => None,
        }
    }

    /// The spool, unless memory only.
    pub fn into_spool(self) -> Option<Spool> {
        match self {
            SpoolHandle::Primary(spool) | SpoolHandle::PerProcess { spool, .. } => Some(spool),
            SpoolHandle::MemoryOnly { .. } => None,
        }
    }

    /// Whether no spool could be opened.
    pub fn is_memory_only(&self) -> bool {
        matches!(self, SpoolHandle::MemoryOnly { .. })
    }
}

impl Spool {
    /// Opens `dir`; if that fails for any reason, opens `dir/pid-<pid>` (a directory no other
    /// live process can be using); if that fails too, reports memory only with both reasons.
    /// A directory refused as not private ([`SpoolError::Refused`]) goes straight to memory
    /// only (both reasons name it), with one warning. Never fails and never blocks on a lock.
    ///
    /// With `dir` opened, it adopts every `dir/pid-*` subdirectory no live process holds (a
    /// per-process spool left by an earlier process): their unacknowledged records are appended
    /// here with the same ids, times and bytes (damaged ones skipped and counted, the cap
    /// applies as usual), the spool is fsynced, and only then is the subdirectory removed. A
    /// crash in between adopts the same records again later (duplicates, never loss). They are
    /// part of [`Recovery::items_to_replay`](super::stats::Recovery::items_to_replay) and counted in
    /// [`SpoolStats::adopted_items`](super::SpoolStats::adopted_items) and
    /// [`adopted_dirs`](super::SpoolStats::adopted_dirs). A subdirectory still locked by a live
    /// process is left alone. This reads every adopted record once: call it off the app thread.
    pub fn open_or_fallback(dir: impl AsRef<Path>, opts: SpoolOptions) -> SpoolHandle {
        let dir = dir.as_ref();
        let primary_error = match Spool::open(dir, opts.clone()) {
            Ok(mut spool) => {
                adopt_orphans(&mut spool);
                return SpoolHandle::Primary(spool);
            }
            Err(e) => e,
        };
        if let SpoolError::Refused { dir, reason } = &primary_error {
            // A per-process directory inside it would be no safer: memory only.
            tracing::warn!(
                error = %primary_error,
                "spool: directory not private to this user, keeping items in memory only"
            );
            let fallback_error = SpoolError::Refused {
                dir: dir.clone(),
                reason: reason.clone(),
            };
            return SpoolHandle::MemoryOnly {
                primary_error,
                fallback_error,
            };
        }
        let own = dir.join(format!("pid-{}", std::process::id()));
        match open_own(&own, opts) {
            Ok(spool) => {
                tracing::warn!(
                    error = %primary_error,
                    fallback = %own.display(),
                    "spool: using a per-process directory"
                );
                SpoolHandle::PerProcess {
                    spool,
                    primary_error,
                }
            }
            Err(fallback_error) => {
                tracing::warn!(
                    error = %primary_error,
                    fallback_error = %fallback_error,
                    "spool: no usable directory, keeping items in memory only"
                );
                SpoolHandle::MemoryOnly {
                    primary_error,
                    fallback_error,
                }
            }
        }
    }
}

/// How many times [`open_own`] tries a per-process directory another process holds.
const OWN_TRIES: usize = 50;

/// Opens this process's own `dir/pid-<pid>` spool. No other live process uses that name, but
/// one adopting orphans in `dir` may have locked it in the moment between its creation here
/// and its lock (it then finds it empty and removes it, perhaps under us): that is brief, so
/// it is tried again (sleeping 5 ms between tries, at most [`OWN_TRIES`] times; this runs on the
/// pipeline's background, never on the app's thread).
fn open_own(own: &Path, opts: SpoolOptions) -> Result<Spool, SpoolError> {
    let mut tries = 1;
    loop {
        match Spool::open(own, opts.clone()) {
            // Locked by the adopter, or its directory removed under us (`Unusable`, `Io`).
            Err(SpoolError::Locked { .. } | SpoolError::Unusable { .. } | SpoolError::Io(_))
                if tries < OWN_TRIES =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}
