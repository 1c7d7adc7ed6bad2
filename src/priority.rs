//! Scheduling priority of the hand-off worker: below the app's threads, so that under CPU
//! pressure the app keeps its cores and telemetry falls behind (its queue then drops, counted)
//! instead of the app. With idle CPU the worker runs as soon as it is due either way.

/// The nice value the worker runs at on Linux (0 is the default, 19 the lowest priority).
pub(crate) const WORKER_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`WORKER_NICE`]. Linux only; elsewhere a no-op.
#[cfg(target_os = "linux")]
pub(crate) fn lower_current_thread() {
    // SAFETY: `setpriority` takes no pointers. On Linux the nice value is a per-thread
    // attribute and `PRIO_PROCESS` with `who = 0` applies to the calling thread only (see
    // setpriority(2), BUGS). Failure (e.g. a sandbox forbidding it) leaves the priority as is.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, WORKER_NICE) };
}

/// Lowers the calling thread's priority. Linux only; elsewhere a no-op.
#[cfg(not(target_os = "linux"))]
pub(crate) fn lower_current_thread() {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn lowers_only_the_calling_thread() {
        let nice = |tid: i32| {
            std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit_once(')')?.1.to_string();
                    rest.split_whitespace().nth(16)?.parse::<i32>().ok()
                })
        };
        let me = std::process::id() as i32;
        let before = nice(me);
        let worker = std::thread::spawn(move || {
            super::lower_current_thread();
            // SAFETY: gettid has no arguments.
            let tid = unsafe { libc::gettid() };
            nice(tid)
        })
        .join()
        .unwrap();
        assert_eq!(worker, Some(super::WORKER_NICE));
        assert_eq!(nice(me), before, "the main thread keeps its priority");
    }
}
