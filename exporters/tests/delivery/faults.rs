//! The fault suite: the delivery engine (with and without its on-disk spool) against a
//! loopback server that misbehaves: 503/429 storms, resets, hangs, flapping, outages, a
//! graceful exit during an outage, SIGKILL mid-stream, an unusable spool directory, a tiny
//! cap and a flood. Every event is judged by its sequence number and its stable id.
//!
//! The last three scenarios run each real stream (PostHog, relay, Datadog) through its public
//! builder with the default retry policy; only the clocks are shortened, by the test-only
//! `DeliveryOptions::with_test_clock_divisor`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::accounting::assert_accounting;
use crate::support::logs::captured_logs;
use crate::support::process::{status_kib, KillOnDrop, TempDir};
use crate::support::server::{Reply, Request, TestServer};
use crate::support::tagged::{config, event, start, STREAM};
use closedloop_telemetry_exporters::__private::decode::Event;
use closedloop_telemetry_exporters::__private::delivery::Delivery;
use closedloop_telemetry_exporters::__private::StreamExporterExt;
use closedloop_telemetry_exporters::DatadogExporterBuilder;
use closedloop_telemetry_exporters::DeliveryOptions;
use closedloop_telemetry_exporters::PostHogExporterBuilder;
use closedloop_telemetry_exporters::RelayExporterBuilder;
use closedloop_telemetry_exporters::SpoolOptions;
use closedloop_telemetry_layers::__private::catalogue::lookup;
use closedloop_telemetry_layers::__private::envelope::{
    format_timestamp, Diagnostics, TraceEnvelope,
};

const WAIT: Duration = Duration::from_secs(8);

/// Emits `range` one event per submit (as an app would).
fn emit(d: &Delivery, range: std::ops::Range<usize>) {
    for n in range {
        d.submit(vec![event(n)]).unwrap();
    }
}

/// seq → every id it arrived with, over all 2xx-answered requests... and the others too
/// (the server records every request it read; callers pick).
fn arrivals(reqs: &[Request]) -> HashMap<usize, HashSet<String>> {
    let mut out: HashMap<usize, HashSet<String>> = HashMap::new();
    for r in reqs {
        let v = r.json();
        for item in v.as_array().into_iter().flatten() {
            let seq = item["seq"].as_str().unwrap().parse().unwrap();
            let id = item["id"].as_str().unwrap().to_string();
            out.entry(seq).or_default().insert(id);
        }
    }
    out
}

/// Asserts every seq in `0..n` arrived, each always with one and the same id.
fn assert_all_arrived_with_stable_ids(reqs: &[Request], n: usize) {
    let got = arrivals(reqs);
    let missing: Vec<usize> = (0..n).filter(|s| !got.contains_key(s)).collect();
    assert!(missing.is_empty(), "missing seqs: {missing:?}");
    for (seq, ids) in &got {
        assert_eq!(ids.len(), 1, "seq {seq} arrived with several ids: {ids:?}");
    }
}

/// A port nothing listens on (connections are refused).
fn dead_base() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

fn spool_at(dir: &Path) -> Option<SpoolOptions> {
    Some(SpoolOptions::new(dir))
}

#[test]
fn storms_of_503_and_429_deliver_everything_with_stable_ids() {
    let server = TestServer::start(|n, _| match n {
        0..=5 if n % 2 == 0 => Reply::status(503),
        0..=5 => Reply::status(429).header("retry-after", "0"),
        _ => Reply::ok(),
    });
    let d = start(&server.base(), config(None));
    emit(&d, 0..250);
    assert!(d.flush(WAIT).is_complete());
    assert_all_arrived_with_stable_ids(&server.requests(), 250);
    let s = d.stats();
    assert_eq!((s.sent, s.dropped.total()), (250, 0));
    assert!(s.retried >= 6, "{s:?}");
    assert_accounting(d.stats());
}

#[test]
fn a_503_storm_longer_than_the_attempt_limit_loses_nothing() {
    // 24 "unavailable" answers in a row against a limit of 3 attempts: an outage, not a bad
    // batch, so nothing is given up.
    let server = TestServer::start(|n, _| match n {
        0..=23 => Reply::status([503, 429, 502, 504][n % 4]),
        _ => Reply::ok(),
    });
    let mut cfg = config(None);
    cfg.retry.max_attempts = 3;
    cfg.retry.max_backoff = Duration::from_millis(40);
    let d = start(&server.base(), cfg);
    emit(&d, 0..100);
    assert!(d.flush(WAIT).is_complete());
    assert_all_arrived_with_stable_ids(&server.requests(), 100);
    let s = d.stats();
    assert_eq!((s.sent, s.dropped.total()), (100, 0), "{s:?}");
    assert!(s.retried >= 24, "{s:?}");
    assert_accounting(d.stats());
}

#[test]
fn a_500_storm_exhausts_the_batch_and_the_stream_moves_on() {
    // A batch the server always fails with 500 is given up after the attempt limit, counted,
    // and what comes after it is delivered.
    let server = TestServer::start(|n, _| {
        if n < 3 {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    });
    let mut cfg = config(None);
    cfg.retry.max_attempts = 3;
    let d = start(&server.base(), cfg);
    emit(&d, 0..10);
    assert!(d.flush(WAIT).is_complete());
    let first = d.stats();
    assert!(first.dropped.retries_exhausted > 0, "{first:?}");
    assert_eq!(
        first.sent + first.dropped.retries_exhausted,
        10,
        "{first:?}"
    );
    assert_eq!(first.dropped.total(), first.dropped.retries_exhausted);
    assert!(first.last_error.as_deref().unwrap_or("").contains("500"));
    emit(&d, 10..20);
    assert!(d.flush(WAIT).is_complete());
    assert_eq!(d.stats().sent, first.sent + 10);
    assert_accounting(d.stats());
}

#[test]
fn connection_resets_are_retried_until_delivered() {
    let server = TestServer::start(|n, _| if n < 4 { Reply::reset() } else { Reply::ok() });
    let d = start(&server.base(), config(None));
    emit(&d, 0..50);
    assert!(d.flush(WAIT).is_complete());
    let ok: Vec<Request> = server.requests().into_iter().skip(4).collect();
    assert_all_arrived_with_stable_ids(&ok, 50);
    assert_eq!(d.stats().dropped.total(), 0);
    assert_accounting(d.stats());
}

#[test]
fn a_hang_past_the_timeout_is_retried() {
    let server = TestServer::start(|n, _| {
        if n < 2 {
            Reply::ok().delay(Duration::from_secs(2))
        } else {
            Reply::ok()
        }
    });
    let d = start(&server.base(), config(None));
    emit(&d, 0..20);
    assert!(d.flush(WAIT).is_complete());
    assert_all_arrived_with_stable_ids(&server.requests(), 20);
    let s = d.stats();
    assert_eq!(s.sent, 20);
    assert_eq!(s.last_error.as_deref(), Some("request timed out"));
    assert_accounting(d.stats());
}

#[test]
fn a_flapping_server_loses_nothing() {
    // Up, down, up, down… per request.
    let server = TestServer::start(|n, _| {
        if n % 2 == 0 {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    });
    let d = start(&server.base(), config(None));
    for wave in 0..5 {
        emit(&d, wave * 60..(wave + 1) * 60);
        assert!(d.flush(WAIT).is_complete());
    }
    let reqs = server.requests();
    let ok: Vec<Request> = reqs.iter().skip(1).step_by(2).cloned().collect();
    assert_all_arrived_with_stable_ids(&ok, 300);
    assert_eq!(d.stats().dropped.total(), 0);
    assert_accounting(d.stats());
}

#[test]
fn an_outage_larger_than_memory_then_recovery_loses_nothing_with_a_spool() {
    let tmp = TempDir::new("outage");
    let up_at = Instant::now() + Duration::from_millis(1500);
    // Down (connections reset) until `up_at`, then up.
    let server = TestServer::start(move |_, _| {
        if Instant::now() < up_at {
            Reply::reset()
        } else {
            Reply::ok()
        }
    });
    let mut cfg = config(spool_at(tmp.path()));
    cfg.queue_capacity = 200; // memory alone would evict most of the outage
    let d = start(&server.base(), cfg);
    for chunk in 0..10 {
        emit(&d, chunk * 100..(chunk + 1) * 100);
        // A handshake: the worker has taken in (and spooled) everything before it.
        let _ = d.flush(Duration::from_millis(10));
    }
    assert!(d.flush(WAIT).is_complete());
    let ok: Vec<Request> = server
        .requests()
        .into_iter()
        .filter(|r| r.at >= up_at)
        .collect();
    assert_all_arrived_with_stable_ids(&ok, 1000);
    let s = d.stats();
    assert_eq!((s.sent, s.dropped.total()), (1000, 0), "{s:?}");
    assert_accounting(d.stats());
}

#[test]
fn graceful_exit_during_an_outage_spools_everything_and_the_next_start_sends_it() {
    let tmp = TempDir::new("graceful");
    let d = start(&dead_base(), config(spool_at(tmp.path())));
    emit(&d, 0..300);
    let report = d.shutdown(Duration::from_millis(500)).unwrap();
    assert_eq!(report.remaining, 300);
    assert_eq!(report.stats.spooled, 300);
    assert_eq!(report.stats.dropped.total(), 0, "{report:?}");
    assert_accounting(&report.stats);
    drop(d);

    let server = TestServer::always(200);
    let d = start(&server.base(), config(spool_at(tmp.path())));
    assert!(d.flush(WAIT).is_complete());
    assert_all_arrived_with_stable_ids(&server.requests(), 300);
    let s = d.stats();
    assert_eq!((s.sent, s.dropped.total()), (300, 0));
    let again = d.shutdown(WAIT).unwrap();
    assert_eq!((again.remaining, again.stats.spooled), (0, 0));
    assert_accounting(&again.stats);
}

#[test]
fn a_restart_resends_with_the_ids_of_the_first_attempt() {
    let tmp = TempDir::new("ids");
    // Every request times out: the items were seen by the server but never acknowledged.
    let hang = TestServer::start(|_, _| Reply::ok().delay(Duration::from_secs(3)));
    let d = start(&hang.base(), config(spool_at(tmp.path())));
    emit(&d, 0..30);
    let first = hang.wait_for(1, WAIT);
    let _ = d.shutdown(Duration::from_millis(200)).unwrap();
    drop(d);
    let before = arrivals(&first[..1]);
    assert!(!before.is_empty());

    let server = TestServer::always(200);
    let d = start(&server.base(), config(spool_at(tmp.path())));
    assert!(d.flush(WAIT).is_complete());
    let after = arrivals(&server.requests());
    assert_all_arrived_with_stable_ids(&server.requests(), 30);
    for (seq, ids) in before {
        assert_eq!(
            after[&seq], ids,
            "seq {seq} changed its id across the restart"
        );
    }
    assert_accounting(d.stats());
}

const CHILD_DIR: &str = "CL_FAULTS_CHILD_DIR";
const CHILD_URL: &str = "CL_FAULTS_CHILD_URL";

/// Not a test on its own: the body of the child process in
/// `sigkill_mid_stream_loses_at_most_the_last_sync_interval`.
#[test]
fn child_emits_until_killed() {
    let (Some(dir), Some(url)) = (std::env::var_os(CHILD_DIR), std::env::var(CHILD_URL).ok())
    else {
        return;
    };
    let d = start(&url, config(spool_at(Path::new(&dir))));
    let mut out = std::io::stdout();
    let mut n = 0;
    loop {
        emit(&d, n..n + 20);
        n += 20;
        let _ = writeln!(out, "EMITTED {n}");
        let _ = out.flush();
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigkill_mid_stream_loses_at_most_the_last_sync_interval() {
    let tmp = TempDir::new("sigkill");
    let url = dead_base();
    let mut child = KillOnDrop::spawn_test(
        "faults::child_emits_until_killed",
        &[
            (CHILD_DIR, tmp.path().as_os_str()),
            (CHILD_URL, url.as_ref()),
        ],
    );
    let progress: Arc<Mutex<Vec<(Instant, usize)>>> = Arc::default();
    let lines = BufReader::new(child.0.stdout.take().unwrap());
    let p = progress.clone();
    std::thread::spawn(move || {
        for line in lines.lines().map_while(Result::ok) {
            if let Some(n) = line.trim().strip_prefix("EMITTED ") {
                p.lock().unwrap().push((Instant::now(), n.parse().unwrap()));
            }
        }
    });
    // Let it run past several sync intervals, then kill it mid-stream.
    let deadline = Instant::now() + WAIT;
    let ran_long_enough = |p: &[(Instant, usize)]| {
        p.first()
            .is_some_and(|(at, _)| at.elapsed() > Duration::from_millis(1800))
    };
    while !ran_long_enough(&progress.lock().unwrap()) {
        assert!(Instant::now() < deadline, "child made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Kill it mid-stream: once it has emitted 100 more events (waiting on its progress, not a
    // fixed sleep).
    let mark = progress.lock().unwrap().last().map_or(0, |(_, n)| *n);
    while progress.lock().unwrap().last().map_or(0, |(_, n)| *n) < mark + 100 {
        assert!(Instant::now() < deadline, "child stopped emitting");
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed_at = Instant::now();
    child.0.kill().unwrap(); // SIGKILL: no destructor, no flush, no shutdown.
    child.0.wait().unwrap();
    // The kill window: the sync interval (500 ms) plus slack for the child's own scheduling.
    let window = Duration::from_millis(500 + 500);
    let safe = progress
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _)| *at + window <= killed_at)
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0);
    assert!(safe >= 20, "the child ran too briefly to judge");

    let server = TestServer::always(200);
    let d = start(&server.base(), config(spool_at(tmp.path())));
    assert!(d.flush(WAIT).is_complete());
    let got = arrivals(&server.requests());
    let emitted = progress.lock().unwrap().last().map_or(0, |(_, n)| *n);
    eprintln!(
        "sigkill: emitted {emitted}, safe (before the window) {safe}, delivered after restart {}",
        got.len()
    );
    let missing: Vec<usize> = (0..safe).filter(|s| !got.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "lost before the kill window: {missing:?}"
    );
    for (seq, ids) in &got {
        assert_eq!(ids.len(), 1, "seq {seq} has several ids");
    }
    assert_accounting(d.stats());
}

#[test]
fn an_unusable_spool_dir_falls_back_to_memory_with_one_warning_and_still_delivers() {
    let logs = captured_logs();
    let tmp = TempDir::new("unusable");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let server = TestServer::always(200);
    let d = start(&server.base(), config(spool_at(&file.join("spool"))));
    emit(&d, 0..40);
    assert!(d.flush(WAIT).is_complete());
    assert_all_arrived_with_stable_ids(&server.requests(), 40);
    let s = d.stats();
    assert_eq!(s.spool, None, "memory only");
    assert_eq!(s.sent, 40);
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    let mine: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("a-file") && l.contains("WARN"))
        .collect();
    assert_eq!(mine.len(), 1, "one warning naming the reason: {mine:?}");
    assert!(mine[0].contains("memory only"), "{}", mine[0]);
    assert_accounting(d.stats());
}

#[test]
fn a_tiny_cap_drops_the_oldest_counts_it_and_keeps_the_newest() {
    let tmp = TempDir::new("cap");
    let opts = SpoolOptions::default()
        .with_max_bytes(32 * 1024)
        .with_segment_bytes(4 * 1024);
    let spool = Some(SpoolOptions {
        dir: tmp.path().to_path_buf(),
        ..opts
    });
    let d = start(&dead_base(), config(spool.clone()));
    for chunk in 0..10 {
        emit(&d, chunk * 200..(chunk + 1) * 200);
        let _ = d.flush(Duration::from_millis(10));
    }
    let live = d.stats();
    assert!(live.dropped.spool_cap > 0, "{live:?}");
    let spool_stats = live.spool.expect("a spool");
    assert_eq!(spool_stats.dropped_by_cap, live.dropped.spool_cap);
    assert!(spool_stats.bytes_on_disk <= 32 * 1024);
    let cap_lost = d
        .shutdown(Duration::from_millis(300))
        .unwrap()
        .stats
        .dropped
        .spool_cap;
    drop(d);

    let server = TestServer::always(200);
    let d = start(&server.base(), config(spool));
    assert!(d.flush(WAIT).is_complete());
    let got: BTreeSet<usize> = arrivals(&server.requests()).into_keys().collect();
    assert!(got.contains(&1999), "the newest is kept");
    assert!(!got.contains(&0), "the oldest went");
    // Every event was either delivered after the restart or counted as lost to the cap.
    assert_eq!(got.len() as u64 + cap_lost, 2000, "got {}", got.len());
    assert_accounting(d.stats());
}

#[test]
fn a_flood_of_a_million_events_stays_bounded_and_counts_every_drop() {
    const N: u64 = 1_000_000;
    let d = start(&dead_base(), config(None));
    let before = status_kib("VmRSS:");
    let mut peak = before;
    let mut live_drops_seen = false;
    for n in 0..N as usize {
        // Never blocks: a full queue refuses and counts.
        d.submit(vec![event(n)]).unwrap();
        if n % 100_000 == 99_999 {
            peak = peak.max(status_kib("VmRSS:"));
            live_drops_seen |= d.stats().dropped.total() > 0;
        }
    }
    assert!(
        live_drops_seen,
        "drops visible in live stats during the flood"
    );
    let grown_mib = peak.saturating_sub(before) / 1024;
    eprintln!("flood: RSS before {before} KiB, peak {peak} KiB");
    assert!(grown_mib < 200, "RSS grew by {grown_mib} MiB");
    let report = d.shutdown(Duration::from_millis(300)).unwrap();
    let s = report.stats;
    assert_eq!(s.sent, 0);
    assert!(s.dropped.queue_full + s.dropped.evicted > 0, "{s:?}");
    // Every event is accounted for, by reason.
    assert_eq!(s.dropped.total() + s.queued, N, "{s:?}");
    assert_accounting(&s);
}

#[test]
fn a_damaged_spool_record_is_skipped_counted_and_the_rest_delivered() {
    let tmp = TempDir::new("damage");
    let d = start(&dead_base(), config(spool_at(tmp.path())));
    emit(&d, 0..100);
    assert_eq!(
        d.shutdown(Duration::from_millis(300))
            .unwrap()
            .stats
            .spooled,
        100
    );
    drop(d);
    // Flip one byte in the middle of the (only) segment file.
    let seg = std::fs::read_dir(tmp.path().join(STREAM))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();

    let server = TestServer::always(200);
    let d = start(&server.base(), config(spool_at(tmp.path())));
    assert!(d.flush(WAIT).is_complete());
    let got = arrivals(&server.requests());
    assert_eq!(got.len(), 99, "exactly the damaged record is missing");
    let spool = d.stats().spool.expect("a spool");
    assert_eq!(spool.corrupt_regions_skipped, 1);
    assert_accounting(d.stats());
}

/// The builders' clocks run this many times faster in the per-stream scenarios; the retry
/// rules (10 attempts, what is an outage) are the defaults.
const CLOCK_DIVISOR: u32 = 100;

/// A catalogue event (`name`) as the layer would decode it.
fn catalogue_event(name: &str) -> Event {
    let now = std::time::SystemTime::now();
    Event {
        name: name.into(),
        entry: lookup(name),
        time: now,
        severity: None,
        trace: TraceEnvelope::new(format_timestamp(now), "ct-faults".into()),
        diagnostics: Diagnostics::default(),
        release_version: Some("5.0.0".into()),
        sample_rate: None,
    }
}

/// The ids of every item in `reqs` (`field` names the id: `uuid` for PostHog, `id` else).
fn item_ids(reqs: &[Request], field: &str) -> Vec<String> {
    reqs.iter()
        .flat_map(|r| {
            let v = r.json();
            let items = v.get("batch").cloned().unwrap_or(v);
            items
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i[field].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn posthog_default_policy_rides_out_a_503_storm_longer_than_the_attempt_limit() {
    // 12 "unavailable" answers: more than the default 10 attempts, and an outage.
    let server = TestServer::start(|n, _| match n {
        0..=11 => Reply::status([503, 429, 502][n % 3]),
        _ => Reply::ok(),
    });
    let exporter = PostHogExporterBuilder::default()
        .api_key("phc_faults")
        .host(server.base())
        .delivery(
            DeliveryOptions::builder()
                .with_test_clock_divisor(CLOCK_DIVISOR)
                .build(),
        )
        .build()
        .unwrap();
    let events: Vec<Event> = (0..30)
        .map(|_| catalogue_event("command.completed"))
        .collect();
    exporter.delivery().submit(events).unwrap();
    assert!(exporter.flush(WAIT).is_complete());
    let s = exporter.stats();
    assert_eq!((s.sent, s.dropped.total()), (30, 0), "{s:?}");
    assert!(s.retried >= 12, "{s:?}");
    let reqs = server.requests();
    let ok = item_ids(&reqs[12..], "uuid");
    assert_eq!(ok.len(), 30, "each event delivered once");
    assert_eq!(ok.iter().collect::<HashSet<_>>().len(), 30);
    // Every retry carried ids the delivered requests carry: the same, stable ids.
    let all: HashSet<String> = item_ids(&reqs, "uuid").into_iter().collect();
    assert_eq!(all.len(), 30);
    assert_accounting(exporter.stats());
}

#[test]
fn relay_default_policy_retries_connection_resets_until_delivered() {
    let server = TestServer::start(|n, _| if n < 12 { Reply::reset() } else { Reply::ok() });
    let exporter = RelayExporterBuilder::default()
        .url(server.url("/v1/telemetry"))
        .delivery(
            DeliveryOptions::builder()
                .with_test_clock_divisor(CLOCK_DIVISOR)
                .build(),
        )
        .build()
        .unwrap();
    let events: Vec<Event> = (0..50).map(|_| catalogue_event("job.started")).collect();
    exporter.delivery().submit(events).unwrap();
    assert!(exporter.flush(WAIT).is_complete());
    let s = exporter.stats();
    assert_eq!((s.sent, s.dropped.total()), (50, 0), "{s:?}");
    assert!(s.retried >= 12, "{s:?}");
    let reqs = server.requests();
    let ok = item_ids(&reqs[12..], "id");
    assert_eq!(ok.len(), 50);
    let all: HashSet<String> = item_ids(&reqs, "id").into_iter().collect();
    assert_eq!(all.len(), 50, "the same ids on every attempt");
    assert_accounting(exporter.stats());
}

#[test]
fn datadog_default_policy_gives_a_500_batch_up_after_10_attempts_and_moves_on() {
    let server = TestServer::start(|n, _| {
        if n < 10 {
            Reply::status(500)
        } else {
            Reply::status(202)
        }
    });
    let exporter = DatadogExporterBuilder::default()
        .api_key("dd-faults-key")
        .logs_url(server.url("/api/v2/logs"))
        .delivery(
            DeliveryOptions::builder()
                .with_test_clock_divisor(CLOCK_DIVISOR)
                .build(),
        )
        .build()
        .unwrap();
    let first: Vec<Event> = (0..5).map(|_| catalogue_event("job.failed")).collect();
    exporter.delivery().submit(first).unwrap();
    assert!(exporter.flush(WAIT).is_complete());
    let s = exporter.stats();
    assert_eq!((s.sent, s.dropped.retries_exhausted), (0, 5), "{s:?}");
    assert_eq!(s.dropped.total(), 5, "{s:?}");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 10, "exactly the default 10 attempts");
    let ids: HashSet<String> = item_ids(&reqs, "id").into_iter().collect();
    assert_eq!(ids.len(), 5, "one batch, the same ids on every attempt");
    let second: Vec<Event> = (0..7).map(|_| catalogue_event("job.failed")).collect();
    exporter.delivery().submit(second).unwrap();
    assert!(exporter.flush(WAIT).is_complete());
    let s = exporter.stats();
    assert_eq!((s.sent, s.dropped.total()), (7, 5), "{s:?}");
    assert_accounting(s);
}
