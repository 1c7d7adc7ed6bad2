//! A burst of events emitted back to back, then quiet, is delivered in full by the default
//! pipeline (issue 14, item 3): what the pipeline's queue cannot hold as records overflows in a
//! compact form, and the spool takes what the background hands each destination.

use closedloop_telemetry_test_support as support;

use std::time::Duration;

use support::server::TestServer;
use tracing::{info, info_span, Dispatch};
use tracing_subscriber::prelude::*;

/// Far more than the pipeline queue's 4,096 records.
const BURST: u64 = 50_000;

#[test]
fn a_burst_emitted_back_to_back_is_delivered_in_full() {
    let receiver = TestServer::counting();
    let (layer, guard, _dir) = support::facade::posthog("burst", receiver.base(), |b| {
        // The pipeline's capacity is measured, not volume control.
        b.rate_limit(None)
    });
    let handle = guard.handle().clone();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        let span = info_span!("loop", loop_id = "loop-4f1c", loop_session_id = "ls-77a0");
        let _entered = span.enter();
        for n in 0..BURST {
            info!(
                event = "command.completed",
                exit_code = 0,
                elapsed_ms = n,
                stdout_bytes = 20_480_u64
            );
        }
    });
    let report = handle.flush(Duration::from_secs(300));
    let stats = handle.stats();
    let posthog = &stats.streams[0].delivery;
    assert_eq!(posthog.dropped.total(), 0, "dropped: {:?}", posthog.dropped);
    assert_eq!(posthog.sent, BURST, "flush: {report:?}");
    assert!(guard.shutdown().is_complete());
}
