//! A full disk under the spool, on a real file system: a 256 KiB tmpfs holding a 250 KB file.
//! Events the spool cannot store stay in memory and are delivered from there, the run warns
//! once per stream, and the accounting holds. Needs root to mount (as in CI); skips otherwise.

use closedloop_telemetry_test_support as support;

use std::time::Duration;

use support::accounting::assert_accounting;
use support::logs::captured_logs;
use support::process::TempDir;
use support::server::{Reply, TestServer};
use support::tmpfs::Tmpfs;
use tracing::{info, Dispatch};
use tracing_subscriber::prelude::*;

const WAIT: Duration = Duration::from_secs(10);
const JOBS: usize = 150;

#[test]
fn a_full_disk_under_the_spool_loses_nothing_and_warns_once() {
    let Some(fs) = Tmpfs::mount(
        "a_full_disk_under_the_spool_loses_nothing_and_warns_once",
        "256k",
    ) else {
        return;
    };
    fs.fill(250_000);
    let logs = captured_logs();
    let data = TempDir::new("full-disk-data");
    let server = TestServer::start(|_, _| Reply::ok());
    // Default policy: only the destinations, the spool and the data dir are set.
    let telemetry = closedloop_telemetry::builder("1.0.0")
        .posthog("phc_test", server.base())
        .relay(server.url("/relay"), None)
        .compute_target_id("ct-full-disk")
        .spool_dir(fs.path().join("spool"))
        .data_dir(data.path())
        // 150 of each name at once: the spool is tested, not volume control.
        .rate_limit(None)
        .build()
        .unwrap();
    let handle = telemetry.handle().clone();
    let (layer, guard) = telemetry.split();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        for n in 0..JOBS {
            let job = format!("job-{n:04}-{}", "x".repeat(200));
            let _j = tracing::info_span!("job", job_id = job.as_str()).entered();
            info!(event = "job.started");
            info!(event = "approval.requested");
        }
    });
    let report = handle.flush(WAIT);
    assert!(report.is_complete(), "{report}");
    let stats = handle.stats();

    // Every routed event arrived: none was lost with the spool.
    let posthog: usize = server
        .requests()
        .iter()
        .filter(|r| r.path != "/relay")
        .map(|r| r.json()["batch"].as_array().map_or(0, Vec::len))
        .sum();
    let relay: usize = server
        .requests()
        .iter()
        .filter(|r| r.path == "/relay")
        .map(|r| r.json().as_array().map_or(0, Vec::len))
        .sum();
    let (routed_posthog, routed_relay) = stats.routed();
    assert!(routed_posthog > 0 && routed_relay > 0, "{stats:?}");
    assert_eq!(posthog as u64, routed_posthog, "{stats:?}");
    assert_eq!(relay as u64, routed_relay, "{stats:?}");
    for s in &stats.streams {
        assert_eq!(s.delivery.dropped.total(), 0, "{s:?}");
        assert_eq!(s.delivery.sent, s.routed, "{s:?}");
    }

    // The spool really failed (the disk was full), and each failing stream warned once.
    let failing: Vec<_> = stats
        .streams
        .iter()
        .filter(|s| s.delivery.spool.is_some_and(|sp| sp.write_failed_items > 0))
        .collect();
    assert!(!failing.is_empty(), "no spool write failed: {stats:?}");
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    for s in &failing {
        // The spool directory ends in the stream's name.
        let dir_end = format!("/{}", s.kind.as_str());
        let warnings: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("spool") && l.contains(&dir_end))
            .collect();
        assert_eq!(warnings.len(), 1, "one warning for {:?}:\n{text}", s.kind);
        assert!(
            warnings[0].contains("spool failed to store events")
                && warnings[0].contains("os error 28"),
            "{}",
            warnings[0]
        );
    }
    assert_accounting(&stats);

    let report = guard.shutdown();
    assert_eq!(report.remaining(), 0, "{report}");
    assert_accounting(handle.stats());
}

#[test]
fn a_spool_on_a_full_disk_hands_back_every_item_it_could_not_write() {
    use closedloop_telemetry_exporters::__private::spool::{Spool, SpoolItem};
    use closedloop_telemetry_exporters::SpoolOptions;
    let Some(fs) = Tmpfs::mount(
        "a_spool_on_a_full_disk_hands_back_every_item_it_could_not_write",
        "256k",
    ) else {
        return;
    };
    fs.fill(250_000);
    let mut spool = Spool::open(fs.path().join("spool"), SpoolOptions::default()).unwrap();
    let items: Vec<SpoolItem> = (0..40u8)
        .map(|n| SpoolItem::new(uuid::Uuid::now_v7(), 1_700_000_000_000, vec![n; 1000]))
        .collect();
    let mut back = Vec::new();
    for it in &items {
        if spool.append(it).is_err() {
            back.extend(spool.take_unstored());
            back.push(it.clone());
        }
    }
    assert!(spool.sync().is_err(), "the disk is full");
    back.extend(spool.take_unstored());
    // Whatever was stored is readable; everything else was handed back: nothing lost, in order.
    let stored: Vec<SpoolItem> = spool
        .read_batch(1000, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, it)| it)
        .collect();
    assert!(!back.is_empty());
    assert_eq!([stored, back.clone()].concat(), items);
    let stats = spool.stats();
    assert_eq!(stats.pending_items as usize, items.len() - back.len());
    assert!(
        stats.write_failed_items > 0 && stats.io_errors > 0,
        "{stats:?}"
    );
    // ENOSPC.
    assert!(
        spool
            .last_write_error()
            .is_some_and(|e| e.contains("os error 28")),
        "{:?}",
        spool.last_write_error()
    );
}
