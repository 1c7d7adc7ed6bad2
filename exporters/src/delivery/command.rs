//! [`Command`]: what the engine handle tells its worker. Shared by both; imports neither.

use std::sync::mpsc::SyncSender;
use std::time::Instant;

use crate::decode::Event;

/// The worker's commands: one small enum drives each engine's worker.
#[derive(Debug)]
pub(crate) enum Command {
    /// Decoded events to map, queue and deliver.
    Events(Vec<Event>),
    /// Deliver everything queued now, then reply with what remains (by the deadline).
    Flush {
        deadline: Instant,
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
}
