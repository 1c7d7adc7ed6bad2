//! [`Command`]: what the engine handle tells its worker. Shared by both; imports neither.
//! Each travels with the index of its destination in the pipeline.

use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

/// What a destination's handle asks of its worker, through the pipeline's background (events
/// never travel here: they wait in the pipeline's one queue).
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
    /// Small work the app's thread must not do itself (the facade's session-marker write),
    /// run on the background thread as it takes the command; dropped unrun once the pipeline
    /// has stopped.
    Run(Box<dyn FnOnce() + Send>),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Flush {
                deadline, ticket, ..
            } => f
                .debug_struct("Flush")
                .field("deadline", deadline)
                .field("ticket", ticket)
                .finish_non_exhaustive(),
            Command::Shutdown { deadline, .. } => f
                .debug_struct("Shutdown")
                .field("deadline", deadline)
                .finish_non_exhaustive(),
            Command::Wake => f.write_str("Wake"),
            Command::Purge { .. } => f.write_str("Purge"),
            Command::Adopt { dir } => f.debug_struct("Adopt").field("dir", dir).finish(),
            Command::Run(_) => f.write_str("Run"),
        }
    }
}
