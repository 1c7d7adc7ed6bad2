//! Verbose tails are read on the app thread only when a stream sends them. `log_tail` and
//! `stderr_tail` go to the diagnostics stream (relay or Datadog) and never to PostHog, so with
//! verbose on and PostHog alone the layer does not even format a tail; with a relay stream it
//! formats each tail once and the relay receives it. Through the public builder.

use closedloop_telemetry_test_support as support;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::server::TestServer;
use tracing::{info, Dispatch};
use tracing_subscriber::prelude::*;

/// A tail that counts how often it is formatted.
struct Counted(&'static AtomicUsize);

impl fmt::Debug for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fetch_add(1, Ordering::SeqCst);
        f.write_str("npm ERR! code E401")
    }
}

#[test]
fn verbose_with_posthog_alone_reads_no_tail() {
    static READS: AtomicUsize = AtomicUsize::new(0);
    let receiver = TestServer::counting();
    let (layer, guard, _dir) =
        support::facade::posthog("tails", receiver.base(), |b| b.verbose(true));
    let handle = guard.handle().clone();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        info!(
            event = "command.completed",
            exit_code = 1,
            log_tail = ?Counted(&READS),
            stderr_tail = ?Counted(&READS)
        );
    });
    handle.flush(Duration::from_secs(30));
    // The event itself went out: only the tails were left unread.
    assert_eq!(handle.stats().streams[0].delivery.sent, 1);
    assert_eq!(READS.load(Ordering::SeqCst), 0, "a tail was formatted");
    assert!(guard.shutdown().is_complete());
}

#[cfg(feature = "testing")]
#[test]
fn verbose_with_a_relay_stream_reads_each_tail_once_and_sends_it() {
    static READS: AtomicUsize = AtomicUsize::new(0);
    let got = closedloop_telemetry::testing::capture_with(
        |b| b.verbose(true),
        || info!(event = "command.completed", exit_code = 1, log_tail = ?Counted(&READS)),
    );
    assert_eq!(READS.load(Ordering::SeqCst), 1);
    let msg = got.relay_event("command.completed").expect("relay got it");
    assert_eq!(msg["diagnostics"]["logTail"], "npm ERR! code E401");
}
