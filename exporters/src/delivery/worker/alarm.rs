//! The worker's one timer: it sleeps until the next thing it must do on its own (send a
//! partial batch, fsync the spool, answer a flush by its deadline).
//!
//! On Linux it is a `timerfd` the runtime's I/O driver watches, which wakes the thread exactly
//! at the deadline and never before. tokio's own timer wheel wakes early for a deadline that
//! lies beyond a boundary of its coarser levels (every 4.096 s for one up to 4.2 minutes
//! ahead): it then only moves the timer to a finer level and sleeps again. At a steady event a
//! second the spool's sync timer (3 s ahead) crossed such a boundary every few seconds, about
//! 0.17 wake-ups a second that did nothing (`cargo bench --bench desktop`). Elsewhere, or if the
//! `timerfd` cannot be made, it is tokio's timer.

use std::time::Instant;

/// See the [module docs](self). Make it inside the worker's runtime.
pub(super) struct Alarm {
    #[cfg(target_os = "linux")]
    fd: Option<timerfd::TimerFd>,
}

impl Alarm {
    /// tokio's timer only (the worker makes its own once its runtime runs).
    pub(super) fn tokio() -> Self {
        Alarm {
            #[cfg(target_os = "linux")]
            fd: None,
        }
    }

    pub(super) fn new() -> Self {
        Alarm {
            #[cfg(target_os = "linux")]
            fd: timerfd::TimerFd::new().ok(),
        }
    }

    /// Completes at `at`; never with `None`.
    pub(super) async fn until(&self, at: Option<Instant>) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            // A timer left armed by an earlier wait is re-armed or disarmed here, before the
            // thread parks again, so it never wakes it for a deadline no one waits for.
            if let Ok(()) = fd.sleep_until(at).await {
                return;
            }
            // Not expected; tokio's timer still works.
        }
        match at {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(target_os = "linux")]
mod timerfd {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    pub(super) struct TimerFd(AsyncFd<OwnedFd>);

    impl TimerFd {
        pub(super) fn new() -> io::Result<Self> {
            // SAFETY: no pointers are passed; the descriptor returned is owned from here on.
            let fd = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` was just created and nothing else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: an `OwnedFd` keeps its descriptor open, and the same, until it is dropped
            // with the `AsyncFd` that owns it. We are inside the worker's runtime (its reactor).
            let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
            fd.map(TimerFd).map_err(io::Error::from)
        }

        /// Arms the timer for `at` (disarms it for `None`) and waits for it.
        pub(super) async fn sleep_until(&self, at: Option<Instant>) -> io::Result<()> {
            self.arm(at)?;
            if at.is_none() {
                return std::future::pending().await;
            }
            loop {
                let mut guard = self.0.readable().await?;
                let mut expirations = [0u8; 8];
                // SAFETY: reads at most 8 bytes into an 8-byte buffer that outlives the call.
                let n = unsafe {
                    libc::read(
                        self.0.as_raw_fd(),
                        expirations.as_mut_ptr().cast(),
                        expirations.len(),
                    )
                };
                if n == 8 {
                    return Ok(());
                }
                let err = io::Error::last_os_error();
                if n >= 0 || err.kind() != io::ErrorKind::WouldBlock {
                    return Err(err);
                }
                // Readiness from an expiry that re-arming has since cleared.
                guard.clear_ready();
            }
        }

        /// Sets the timer to fire once at `at` (relative to now; a deadline already passed
        /// fires at once), or disarms it.
        fn arm(&self, at: Option<Instant>) -> io::Result<()> {
            let left = at.map_or(Duration::ZERO, |at| {
                at.saturating_duration_since(Instant::now())
                    .max(Duration::from_nanos(1))
            });
            let value = libc::timespec {
                // Clamped far beyond any deadline the worker sets (68 years).
                tv_sec: left.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: left.subsec_nanos() as _,
            };
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: value,
            };
            // SAFETY: `spec` is valid for the call; a null old-value pointer is allowed.
            let rc = unsafe {
                libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut())
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn it_completes_at_its_deadline_never_before_and_a_dropped_wait_does_not_end_the_next() {
        runtime().block_on(async {
            let alarm = Alarm::new();
            #[cfg(target_os = "linux")]
            assert!(alarm.fd.is_some(), "a timerfd on Linux");
            let at = Instant::now() + Duration::from_millis(20);
            alarm.until(Some(at)).await;
            assert!(Instant::now() >= at);

            // A wait given up (its timer still armed) does not cut a later, longer one short.
            let armed = Instant::now() + Duration::from_millis(30);
            let given_up =
                tokio::time::timeout(Duration::from_millis(1), alarm.until(Some(armed))).await;
            assert!(given_up.is_err());
            let later = Instant::now() + Duration::from_millis(60);
            alarm.until(Some(later)).await;
            assert!(Instant::now() >= later);

            // A deadline already passed completes at once; `None` never does.
            alarm.until(Some(Instant::now())).await;
            let none = tokio::time::timeout(Duration::from_millis(10), alarm.until(None)).await;
            assert!(none.is_err());
        });
    }
}
