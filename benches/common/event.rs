//! The event every bench emits, the same in each: two nested spans with 5 context fields and
//! `info!(event = "command.completed", exit_code, elapsed_ms, stdout_bytes, log_tail = <2 KiB>)`.

use tracing::{info, info_span};

/// A 2 KiB subprocess tail (one line repeated), the `log_tail` of every event.
pub fn tail() -> String {
    "npm WARN deprecated package@1.0.0: use something else\n"
        .chars()
        .cycle()
        .take(2048)
        .collect()
}

/// Emits the event. One symbol to profile (`callgrind --toggle-collect=emit::event::emit`).
#[inline(never)]
pub fn emit(tail: &str) {
    info!(
        event = "command.completed",
        exit_code = 0,
        elapsed_ms = 1532_u64,
        stdout_bytes = 20_480_u64,
        log_tail = tail
    );
}

/// The event's two spans, outer and inner (not entered): 3 context fields on the outer
/// (`loop_id`, `loop_session_id`, `gateway_session_id`) and 2 on the inner (`command_id`,
/// `job_id`).
pub fn spans() -> (tracing::Span, tracing::Span) {
    let outer = info_span!(
        "loop",
        loop_id = "loop-4f1c",
        loop_session_id = "ls-77a0",
        gateway_session_id = "gw-19b2"
    );
    let inner = outer.in_scope(|| info_span!("command", command_id = "cmd-0042", job_id = "job-9"));
    (outer, inner)
}
