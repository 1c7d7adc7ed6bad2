//! The exporter works whatever the host does: a plain thread with no tokio runtime, or inside
//! a multi-thread runtime; under the SDK's batch processor, its simple processor or its
//! async-runtime batch processor; and `FlushThrough` makes the provider's `force_flush` deliver.

use crate::posthog_common::*;
use closedloop_telemetry_exporters::__private::StreamExporterExt;

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
fn async_runtime_batch_processor_on_a_multi_thread_runtime() {
    // The SDK's processor runs as a task on the app's runtime; the app calls flush and
    // shutdown (which block) from outside the runtime's workers, as `#[tokio::main]` code does.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _context = rt.enter();
    deliver_five(Processor::AsyncRuntimeBatch);
}

#[test]
fn provider_force_flush_alone_delivers_under_flush_through() {
    let server = server_ok();
    // Control: the stock batch processor's force_flush only fills the exporter's queue, where
    // a partial batch waits for the 30 s flush interval.
    let plain = Harness::with(builder(&server.base()), Processor::Batch, false);
    plain.emit_n(3);
    plain.provider.force_flush().unwrap();
    assert_eq!(plain.exporter.stats().sent, 0);
    assert!(server.requests().is_empty());
    // Wrapped: the provider's force_flush alone delivers.
    let h = Harness::with(builder(&server.base()), Processor::FlushThroughBatch, false);
    h.emit_n(5);
    h.provider.force_flush().unwrap();
    assert_eq!(h.exporter.stats().sent, 5);
    let ids: Vec<String> = server.requests().iter().flat_map(uuids).collect();
    assert_eq!(unique(ids).len(), 5);
    assert!(h.provider.shutdown().is_ok());
    assert!(h.exporter.delivery().is_shutdown());
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
    let exporter = builder(&server.base())
        .delivery(fast_delivery().with_queue_capacity(3).build())
        .build()
        .unwrap();
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
