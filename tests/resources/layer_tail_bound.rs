//! A verbose tail passed as `%` or `?` is formatted in bounded memory, like every other
//! `Debug` / `Display` value: a huge value never becomes a huge string on the app thread, and
//! the tail still keeps the end of the text. Through the public builder, default policy.
#![cfg(feature = "testing")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt;

use closedloop_telemetry::testing::capture_with;

/// Records the largest single allocation made on a thread while it is watching.
struct Watch;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: allocations during thread teardown must not panic.
    let _ = WATCHING.try_with(|w| {
        if w.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Watch = Watch;

/// 64 MiB of output, written in 64 KiB pieces, ending in a recognisable line.
struct HugeOutput(String);

impl HugeOutput {
    fn new() -> Self {
        HugeOutput("building...\n".repeat(65_536 / 12))
    }
}

impl fmt::Display for HugeOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for _ in 0..1024 {
            f.write_str(&self.0)?;
        }
        f.write_str("error: the last line\n")
    }
}

impl fmt::Debug for HugeOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[test]
fn a_huge_display_tail_is_formatted_in_bounded_memory_and_keeps_its_end() {
    let huge = HugeOutput::new();
    let mut largest = [0usize; 2];
    let got = capture_with(
        |b| b.verbose(true),
        || {
            for (i, slot) in largest.iter_mut().enumerate() {
                WATCHING.with(|w| w.set(true));
                LARGEST.with(|l| l.set(0));
                if i == 0 {
                    tracing::info!(event = "job.failed", job_id = "display", log_tail = %huge);
                } else {
                    tracing::info!(event = "job.failed", job_id = "debug", stderr_tail = ?huge);
                }
                WATCHING.with(|w| w.set(false));
                *slot = LARGEST.with(Cell::get);
            }
        },
    );
    for (i, size) in largest.iter().enumerate() {
        assert!(
            *size <= 64 * 1024,
            "emit {i} made a {size}-byte allocation on the app thread"
        );
    }
    for (job, key) in [("display", "logTail"), ("debug", "stderrTail")] {
        let msg = got
            .relay
            .iter()
            .find(|m| m["trace"]["jobId"] == job)
            .unwrap_or_else(|| panic!("{job} arrived: {:#?}", got.relay));
        let tail = msg["diagnostics"][key].as_str().expect("tail sent");
        assert!(tail.len() <= 4096, "{} bytes", tail.len());
        assert!(tail.len() > 4000, "{} bytes", tail.len());
        assert!(tail.ends_with("error: the last line\n"), "{tail}");
    }
}
