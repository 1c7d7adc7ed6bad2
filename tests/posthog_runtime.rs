//! The exporter works whatever the host does: a plain thread with no tokio runtime, or inside
//! a multi-thread runtime; under the SDK's batch processor or its simple processor.

mod posthog_common;
mod support;

use posthog_common::*;

/// Emits 5 events through `processor`, flushes, and checks they all arrived once.
fn deliver_five(processor: Processor) {
    let server = server_ok();
    let h = Harness::with(builder(&server.base()), processor, false);
    h.emit_n(5);
    let report = h.flush(WAIT);
    assert!(report.is_complete(), "{processor:?}: {report:?}");
    let ids: Vec<String> = server.requests().iter().flat_map(uuids).collect();
    assert_eq!(unique(ids).len(), 5, "{processor:?}");
    assert_eq!(report.stats.sent, 5);
    // Shutting the provider down shuts the exporter down through the SDK.
    assert!(h.provider.shutdown().is_ok());
    assert!(h.exporter.delivery().is_shutdown());
}

#[test]
fn plain_thread_without_runtime_batch_processor() {
    std::thread::spawn(|| deliver_five(Processor::Batch))
        .join()
        .unwrap();
}

#[test]
fn plain_thread_without_runtime_simple_processor() {
    std::thread::spawn(|| deliver_five(Processor::Simple))
        .join()
        .unwrap();
}

fn inside_multi_thread_runtime(processor: Processor) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // Emit, export and flush from a runtime worker thread, where a runtime is current.
        tokio::spawn(async move {
            assert!(tokio::runtime::Handle::try_current().is_ok());
            deliver_five(processor);
        })
        .await
        .unwrap();
    });
}

#[test]
fn inside_multi_thread_runtime_batch_processor() {
    inside_multi_thread_runtime(Processor::Batch);
}

#[test]
fn inside_multi_thread_runtime_simple_processor() {
    inside_multi_thread_runtime(Processor::Simple);
}

#[test]
fn inside_current_thread_runtime_simple_processor() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { deliver_five(Processor::Simple) });
}

#[test]
fn dropping_the_provider_shuts_down_and_delivers() {
    let server = server_ok();
    let h = Harness::new(builder(&server.base()));
    h.emit_n(2);
    let exporter = h.exporter.clone();
    // No flush: the provider's drop shuts the exporter down, which delivers what is queued.
    drop(h);
    assert!(exporter.delivery().is_shutdown());
    assert_eq!(exporter.stats().sent, 2);
    assert_eq!(sizes(&server.requests()), vec![2]);
}

#[test]
fn dropping_every_handle_without_shutdown_still_delivers_in_the_background() {
    let server = server_ok();
    let exporter = builder(&server.base()).build().unwrap();
    exporter
        .delivery()
        .submit(vec![event("command.started"), event("command.started")])
        .unwrap();
    // The last handle goes without flush or shutdown: the worker sends within its deadline.
    drop(exporter);
    let reqs = server.wait_for(1, WAIT);
    assert_eq!(sizes(&reqs), vec![2]);
}

#[test]
fn a_full_hand_over_queue_refuses_the_excess_without_blocking() {
    let server = server_ok();
    let exporter = builder(&server.base()).queue_capacity(3).build().unwrap();
    let events = (0..10).map(|_| event("approval.requested")).collect();
    exporter.delivery().submit(events).unwrap();
    // Not for PostHog: ignored, not dropped.
    exporter
        .delivery()
        .submit(vec![event("job.completed")])
        .unwrap();
    let report = exporter.flush(WAIT);
    assert!(report.is_complete());
    let s = report.stats;
    assert_eq!((s.sent, s.dropped.queue_full, s.ignored), (3, 7, 1));
    assert_eq!(sizes(&server.requests()), vec![3]);
}
