//! [`Command`]: what the engine handle tells its worker. Shared by both; imports neither.
//! Each travels with the index of its destination in the pipeline.

use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

/// What a destination's handle asks of its worker, through the pipeline's background (events
/// never travel here: they wait in the pipeline's one queue).
#[derive(Debug)]
pub(crate) enum Command {
    /// Deliver everything queued now, including what the pipeline's queue held when asked
    /// (`ticket`: its count of entries then), then reply with what remains (by the deadline).
    Flush {
        deadline: Instant,
        ticket: u64,
        reply: SyncSender<u64>,
    },
    /// Like flush, then drop what remains, reply with that count and stop.
    Shutdown {
        deadline: Instant,
        reply: SyncSender<u64>,
    },
    /// Stop waiting for a backoff timer and try now (e.g. the relay connection is back).
    Wake,
    /// Consent was denied: drop everything queued (counted as `purged`), abandon any backoff
    /// and reply with the count once no request is on the wire. The worker keeps running;
    /// events handed over while the gate is closed are dropped as `purged`.
    Purge { reply: SyncSender<u64> },
    /// A detached spool of one item was written beside the destination's spool (an
    /// `app.panicked` event, `Delivery::write_crash`): adopt it into the spool now, so this
    /// process delivers it while it lives.
    Adopt { dir: PathBuf },
}
