//! Scheduling priority of the hand-off worker: below the app's threads, so that under CPU
//! pressure the app keeps its cores and telemetry falls behind (its queue then drops, counted)
//! instead of the app. With idle CPU the worker runs as soon as it is due either way.

/// How much nicer than the thread that starts it the worker runs on Linux (nice values go from
/// -20 to 19; the kernel clamps at 19). Relative, so an app that runs niced keeps the order.
pub(crate) const WORKER_NICE_INCREMENT: i32 = 10;

/// Lowers the calling thread's priority by [`WORKER_NICE_INCREMENT`]. Linux only; elsewhere a
/// no-op.
#[cfg(target_os = "linux")]
pub(crate) fn lower_current_thread() {
    // SAFETY: `nice` takes no pointers. On Linux the nice value is a per-thread attribute and
    // glibc's `nice` changes the calling thread's only (see setpriority(2), BUGS). Lowering
    // priority needs no privilege; a failure leaves the priority as it is.
    let _ = unsafe { libc::nice(WORKER_NICE_INCREMENT) };
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
        let before = nice(me).unwrap();
        let worker = std::thread::spawn(move || {
            super::lower_current_thread();
            // SAFETY: gettid has no arguments.
            let tid = unsafe { libc::gettid() };
            nice(tid)
        })
        .join()
        .unwrap();
        let expected = (before + super::WORKER_NICE_INCREMENT).min(19);
        assert_eq!(worker, Some(expected));
        assert_eq!(nice(me), Some(before), "the main thread keeps its priority");
    }
}
