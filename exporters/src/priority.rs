//! Background priority for the library's worker threads (the pipeline's background and the delivery
//! workers, which also write the spool): below the app's threads, so that under CPU or disk
//! pressure the app keeps its resources and telemetry falls behind (its queues then drop,
//! counted) instead of the app. With idle resources a worker runs as soon as it is due either way.
//!
//! What [`lower_current_thread`] applies:
//!
//! | Platform | Applied to the calling thread |
//! | --- | --- |
//! | Linux | nice value raised by [`WORKER_NICE_INCREMENT`] (relative; per thread on Linux), and the `SCHED_BATCH` policy: a worker woken by the thread that hands it work never preempts that thread (it runs when that thread sleeps, at the next tick, or on an idle core), which saves a context switch on each side of every hand-over |
//! | Windows | background mode (`THREAD_MODE_BACKGROUND_BEGIN`: lowest CPU priority, low I/O and memory priority); where that is refused (Wine), `THREAD_PRIORITY_BELOW_NORMAL` |
//! | macOS | the `utility` QoS class (lower CPU and I/O priority; timers may be coalesced) |
//! | others | nothing |

/// How much nicer than the thread that starts it a worker runs on Linux (nice values go from
/// -20 to 19; the kernel clamps at 19). Relative, so an app that runs niced keeps the order.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // used on Linux only
pub(crate) const WORKER_NICE_INCREMENT: i32 = 10;

/// What [`lower_current_thread`] applied to the calling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[allow(dead_code)] // each platform constructs its own variants
pub(crate) enum Applied {
    /// Linux: the nice value was raised by [`WORKER_NICE_INCREMENT`] (and the policy is
    /// `SCHED_BATCH` unless the kernel refused it).
    Nice,
    /// Windows: background processing mode (lower CPU, I/O and memory priority).
    BackgroundMode,
    /// Windows: `THREAD_PRIORITY_BELOW_NORMAL` (where background mode is refused).
    BelowNormal,
    /// macOS: the `utility` QoS class.
    UtilityQos,
    /// Nothing: the platform call failed, or this platform has none.
    Unchanged,
}

/// Lowers the calling thread to background priority (see the module docs, `priority.rs`) and says
/// what was applied. Never fails: a refused call leaves the priority as it is.
#[cfg(target_os = "linux")]
pub(crate) fn lower_current_thread() -> Applied {
    // SAFETY: `__errno_location` returns this thread's errno slot; `nice` takes no pointers.
    // On Linux the nice value is a per-thread attribute and glibc's `nice` changes the calling
    // thread's only (see setpriority(2), BUGS). Lowering priority needs no privilege. `nice`
    // may legitimately return -1, so errno tells failure apart.
    let failed = unsafe {
        *libc::__errno_location() = 0;
        libc::nice(WORKER_NICE_INCREMENT) == -1 && *libc::__errno_location() != 0
    };
    // SAFETY: pid 0 is the calling thread; the parameter lives across the call. SCHED_BATCH
    // keeps the nice value just set and needs no privilege; a refusal changes nothing.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_BATCH, &param);
    }
    if failed {
        Applied::Unchanged
    } else {
        Applied::Nice
    }
}

#[cfg(windows)]
mod win {
    use std::ffi::c_void;

    pub(super) const THREAD_MODE_BACKGROUND_BEGIN: i32 = 0x0001_0000;
    pub(super) const THREAD_PRIORITY_BELOW_NORMAL: i32 = -1;

    #[link(name = "kernel32")]
    extern "system" {
        pub(super) fn GetCurrentThread() -> *mut c_void;
        pub(super) fn SetThreadPriority(thread: *mut c_void, priority: i32) -> i32;
        #[cfg(test)]
        pub(super) fn GetThreadPriority(thread: *mut c_void) -> i32;
    }
}

/// Lowers the calling thread to background priority (see the module docs, `priority.rs`) and says
/// what was applied. Never fails: a refused call leaves the priority as it is.
#[cfg(windows)]
pub(crate) fn lower_current_thread() -> Applied {
    // SAFETY: `GetCurrentThread` returns a pseudo-handle for the calling thread, valid for the
    // thread's life and needing no close; `SetThreadPriority` takes it and an integer.
    unsafe {
        let me = win::GetCurrentThread();
        if win::SetThreadPriority(me, win::THREAD_MODE_BACKGROUND_BEGIN) != 0 {
            Applied::BackgroundMode
        } else if win::SetThreadPriority(me, win::THREAD_PRIORITY_BELOW_NORMAL) != 0 {
            Applied::BelowNormal
        } else {
            Applied::Unchanged
        }
    }
}

/// Lowers the calling thread to background priority (see the module docs, `priority.rs`) and says
/// what was applied. Never fails: a refused call leaves the priority as it is.
#[cfg(target_vendor = "apple")]
pub(crate) fn lower_current_thread() -> Applied {
    // SAFETY: takes a QoS class and a relative priority (0: the class's default); it applies
    // to the calling thread only.
    let rc =
        unsafe { libc::pthread_set_qos_class_self_np(libc::qos_class_t::QOS_CLASS_UTILITY, 0) };
    if rc == 0 {
        Applied::UtilityQos
    } else {
        Applied::Unchanged
    }
}

/// Lowers the calling thread to background priority (see the module docs, `priority.rs`) and says
/// what was applied. Never fails: a refused call leaves the priority as it is.
#[cfg(not(any(target_os = "linux", windows, target_vendor = "apple")))]
pub(crate) fn lower_current_thread() -> Applied {
    Applied::Unchanged
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

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
        let (applied, worker, policy) = std::thread::spawn(move || {
            let applied = lower_current_thread();
            // SAFETY: gettid has no arguments; pid 0 is the calling thread.
            let (tid, policy) = unsafe { (libc::gettid(), libc::sched_getscheduler(0)) };
            (applied, nice(tid), policy)
        })
        .join()
        .unwrap();
        assert_eq!(applied, Applied::Nice);
        assert_eq!(
            policy,
            libc::SCHED_BATCH,
            "a woken worker does not preempt its waker"
        );
        // SAFETY: pid 0 is the calling thread.
        let own = unsafe { libc::sched_getscheduler(0) };
        assert_eq!(own, libc::SCHED_OTHER, "the main thread keeps its policy");
        let expected = (before + WORKER_NICE_INCREMENT).min(19);
        assert_eq!(worker, Some(expected));
        assert_eq!(nice(me), Some(before), "the main thread keeps its priority");
    }
}

#[cfg(all(test, windows))]
mod tests {
    use super::*;

    fn current_priority() -> i32 {
        // SAFETY: a pseudo-handle for the calling thread, read only.
        unsafe { win::GetThreadPriority(win::GetCurrentThread()) }
    }

    #[test]
    fn lowers_only_the_calling_thread() {
        let before = current_priority();
        let (applied, after) = std::thread::spawn(|| (lower_current_thread(), current_priority()))
            .join()
            .unwrap();
        match applied {
            Applied::BackgroundMode => {}
            Applied::BelowNormal => assert_eq!(after, win::THREAD_PRIORITY_BELOW_NORMAL),
            other => panic!("no background priority applied: {other:?}"),
        }
        assert_eq!(
            current_priority(),
            before,
            "the main thread keeps its priority"
        );
    }
}
