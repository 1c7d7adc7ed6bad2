//! The relay exporter end to end against a loopback server: wire shape, auth, cadence,
//! splitting, retries with stable ids, 401 handling, redaction, and the channel transport.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::support::server::{Reply, TestServer};
use closedloop_telemetry_exporters::StreamExporter;
use closedloop_telemetry_exporters::{DeliveryOptions, RetryPolicy};
use closedloop_telemetry_exporters::{RelayConnection, RelayExporterBuilder};
use closedloop_telemetry_layers::TelemetryLayer;
use opentelemetry::logs::LoggerProvider;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use tracing::{info, Dispatch};
use tracing_subscriber::prelude::*;

const WAIT: Duration = Duration::from_secs(5);

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(60),
        max_attempts: 10,
    }
}

struct Harness {
    exporter: StreamExporter,
    _provider: SdkLoggerProvider,
    dispatch: Dispatch,
}

impl Harness {
    fn new(builder: RelayExporterBuilder, verbose: bool) -> Self {
        Self::with_options(builder, verbose, DeliveryOptions::builder())
    }

    /// With the rate limiter off.
    fn unlimited(builder: RelayExporterBuilder, verbose: bool) -> Self {
        Self::with_options(
            builder,
            verbose,
            DeliveryOptions::builder().with_rate_limit(None),
        )
    }

    fn with_options(
        builder: RelayExporterBuilder,
        verbose: bool,
        options: closedloop_telemetry_exporters::DeliveryOptionsBuilder,
    ) -> Self {
        let exporter = builder
            .verbose(verbose)
            .delivery(options.with_retry_policy(fast_retry()).build())
            .build()
            .unwrap();
        let provider = SdkLoggerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = TelemetryLayer::builder(provider.logger("app"))
            .compute_target_id("ct-relay")
            .release_version("4.0.0")
            .verbose(verbose)
            .build();
        Harness {
            exporter,
            _provider: provider,
            dispatch: Dispatch::new(tracing_subscriber::registry().with(layer)),
        }
    }

    fn emit(&self, f: impl FnOnce()) {
        tracing::dispatcher::with_default(&self.dispatch, f);
    }
}

fn http(server: &TestServer) -> RelayExporterBuilder {
    RelayExporterBuilder::default().url(server.url("/relay"))
}

fn messages(req: &crate::support::server::Request) -> Vec<serde_json::Value> {
    req.json().as_array().expect("a JSON array").clone()
}

#[test]
fn messages_follow_the_wire_contract() {
    let server = TestServer::start(|_, _| Reply::ok());
    let h = Harness::new(http(&server).token(Some("tok-123".into())), false);
    h.emit(|| {
        let _l = tracing::info_span!("loop", loop_id = "L1", loop_session_id = "LS1").entered();
        let _j = tracing::info_span!("job", job_id = "J1").entered();
        info!(
            event = "job.completed",
            exit_code = 0,
            elapsed_ms = 1532_u64,
            log_tail = "tail"
        );
        info!(event = "approval.requested"); // PostHog-only: not for the relay
    });
    h.exporter.flush(WAIT);
    let reqs = server.wait_for(1, WAIT);
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/relay");
    assert_eq!(req.header("authorization"), Some("Bearer tok-123"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let msgs = messages(req);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m["type"], "desktop.telemetry");
    assert_eq!(m["event"], "job.completed");
    assert_eq!(m["trace"]["schemaVersion"], "1");
    assert_eq!(m["trace"]["computeTargetId"], "ct-relay");
    assert_eq!(m["trace"]["loopId"], "L1");
    assert_eq!(m["trace"]["jobId"], "J1");
    assert_eq!(m["trace"]["loopSessionId"], "LS1");
    assert!(m["trace"]["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        m["diagnostics"],
        serde_json::json!({"exitCode": 0, "elapsedMs": 1532})
    );
    assert!(uuid::Uuid::parse_str(m["id"].as_str().unwrap()).is_ok());
    assert!(
        m["trace"].get("gatewaySessionId").is_none(),
        "absent, never null"
    );
}

#[test]
fn no_token_means_no_authorization_header() {
    let server = TestServer::start(|_, _| Reply::ok());
    let h = Harness::new(http(&server), false);
    h.emit(|| info!(event = "connection.established"));
    h.exporter.flush(WAIT);
    let reqs = server.wait_for(1, WAIT);
    assert_eq!(reqs[0].header("authorization"), None);
}

#[test]
fn cadence_an_event_goes_out_within_the_batch_delay() {
    let server = TestServer::start(|_, _| Reply::ok());
    let delay = Duration::from_millis(300);
    let h = Harness::new(http(&server).max_delay(delay), false);
    let emitted = Instant::now();
    h.emit(|| info!(event = "connection.established"));
    let reqs = server.wait_for(1, WAIT);
    let latency = reqs[0].at.duration_since(emitted);
    println!("relay cadence: emitted → arrived in {latency:?} (max_delay {delay:?})");
    assert!(
        latency >= delay / 2,
        "a lone event waits for the batch delay: {latency:?}"
    );
    assert!(latency < delay + Duration::from_secs(2), "{latency:?}");
}

#[test]
fn default_cadence_is_two_seconds() {
    assert_eq!(
        closedloop_telemetry_exporters::__private::relay::wire::DEFAULT_MAX_DELAY,
        Duration::from_secs(2)
    );
}

/// A relay exporter on its own has the default rate limit too: a storm of one name reaches the
/// relay as its burst, and one `telemetry.rate_limited` says how many were refused.
#[test]
fn a_storm_is_limited_and_reported_once_by_a_stream_exporter() {
    let server = TestServer::start(|_, _| Reply::ok());
    let h = Harness::new(http(&server).max_delay(Duration::from_secs(30)), false);
    h.emit(|| {
        for i in 0..1000 {
            info!(event = "connection.degraded", depth = i);
        }
    });
    assert!(h.exporter.flush(WAIT).is_complete());
    let all: Vec<serde_json::Value> = server.requests().iter().flat_map(messages).collect();
    let degraded = all
        .iter()
        .filter(|m| m["event"] == "connection.degraded")
        .count() as u64;
    let reports: Vec<_> = all
        .iter()
        .filter(|m| m["event"] == "telemetry.rate_limited")
        .collect();
    let stats = h.exporter.flush(WAIT).stats;
    assert!((100..200).contains(&degraded), "{degraded}");
    assert_eq!(stats.dropped.rate_limited, 1000 - degraded);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(
        reports[0]["diagnostics"]["extra"]["dropped"]["connection.degraded"],
        1000 - degraded
    );
    assert_eq!(reports[0]["trace"]["computeTargetId"], "ct-relay");
}

/// Without a flush, the report goes out on its own timer (a minute, here shortened 60 times by
/// the test-only clock divisor) while events are being limited; a later storm is reported in
/// a report of its own, and no refused event is reported twice.
#[test]
fn the_report_goes_out_on_its_own_each_interval_and_counts_each_event_once() {
    let server = TestServer::start(|_, _| Reply::ok());
    let h = Harness::with_options(
        http(&server),
        false,
        DeliveryOptions::builder().with_test_clock_divisor(60),
    );
    let storm = |n: u64| {
        h.emit(|| {
            for i in 0..n {
                info!(event = "connection.degraded", depth = i);
            }
        })
    };
    let reports = |server: &TestServer| -> Vec<serde_json::Value> {
        server
            .requests()
            .iter()
            .flat_map(messages)
            .filter(|m| m["event"] == "telemetry.rate_limited")
            .collect()
    };
    storm(1000);
    let deadline = std::time::Instant::now() + WAIT;
    while reports(&server).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = reports(&server);
    assert_eq!(first.len(), 1, "a report without a flush: {first:?}");
    let first_count = first[0]["diagnostics"]["extra"]["dropped"]["connection.degraded"]
        .as_u64()
        .unwrap();
    storm(1000);
    assert!(h.exporter.flush(WAIT).is_complete());
    let all = reports(&server);
    assert_eq!(all.len(), 2, "{all:?}");
    let reported: u64 = all
        .iter()
        .map(|r| {
            r["diagnostics"]["extra"]["dropped"]["connection.degraded"]
                .as_u64()
                .unwrap()
        })
        .sum();
    let stats = h.exporter.flush(WAIT).stats;
    assert_eq!(reported, stats.dropped.rate_limited, "{all:?}");
    assert!(
        first_count >= 800 && reported - first_count >= 900,
        "{all:?}"
    );
}

#[test]
fn batches_split_at_100_messages() {
    let server = TestServer::start(|_, _| Reply::ok());
    // 250 of one name at once: batching is tested, not volume control.
    let h = Harness::unlimited(http(&server).max_delay(Duration::from_secs(30)), false);
    h.emit(|| {
        for i in 0..250 {
            info!(event = "queue.stats_changed", depth = i);
        }
    });
    h.exporter.flush(WAIT);
    let reqs = server.wait_for(3, WAIT);
    let sizes: Vec<_> = reqs.iter().map(|r| messages(r).len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
}

#[test]
fn retries_keep_the_same_ids() {
    let server = TestServer::sequence(vec![Reply::status(503), Reply::status(502), Reply::ok()]);
    let h = Harness::new(http(&server), false);
    h.emit(|| {
        for _ in 0..5 {
            info!(event = "job.started");
        }
    });
    let report = h.exporter.flush(WAIT);
    assert!(report.is_complete());
    let reqs = server.wait_for(3, WAIT);
    let ids: Vec<Vec<String>> = reqs
        .iter()
        .map(|r| {
            messages(r)
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2]);
    assert_eq!(ids[0].iter().collect::<HashSet<_>>().len(), 5);
    assert_eq!(report.stats.sent, 5);
    assert_eq!(report.stats.retried, 2);
}

#[test]
fn a_401_is_dropped_counted_explained_and_not_retried() {
    let server = TestServer::always(401);
    let h = Harness::new(http(&server).token(Some("bad-token".into())), false);
    h.emit(|| {
        info!(event = "job.started");
        info!(event = "job.completed");
    });
    let report = h.exporter.flush(WAIT);
    assert!(report.is_complete());
    // The batch was dropped and nothing is queued or waiting for a retry: no later request can
    // come, so the count is final without waiting.
    assert_eq!(
        (report.stats.queued, report.stats.retried),
        (0, 0),
        "{report:?}"
    );
    assert_eq!(server.requests().len(), 1, "no retry of a 401");
    assert_eq!(report.stats.dropped.rejected, 2);
    let err = report.stats.last_error.unwrap();
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains("bad-token"), "{err}");
}

#[test]
fn verbose_tails_are_redacted_and_bounded() {
    let server = TestServer::start(|_, _| Reply::ok());
    let h = Harness::new(http(&server), true);
    let tail = format!(
        "{}\nnpm ERR! token ghp_4f9ZkqLr8TnW2xYc7VbM1sPdQ0aHjE3uKoIy for dev@example.com\n",
        "ok ✓ ".repeat(2000)
    );
    h.emit(|| info!(event = "job.failed", log_tail = tail.as_str()));
    h.exporter.flush(WAIT);
    let reqs = server.wait_for(1, WAIT);
    let m = &messages(&reqs[0])[0];
    let sent = m["diagnostics"]["logTail"].as_str().unwrap();
    assert!(sent.len() <= 4096);
    assert!(!sent.contains("ghp_4f9Zk"), "{sent}");
    assert!(!sent.contains("dev@example.com"), "{sent}");
    assert!(sent.contains("npm ERR! token"));
}

#[test]
fn tails_are_not_sent_when_verbose_is_off() {
    let server = TestServer::start(|_, _| Reply::ok());
    let h = Harness::new(http(&server), false);
    h.emit(|| {
        info!(
            event = "job.failed",
            exit_code = 1,
            log_tail = "secret output"
        )
    });
    h.exporter.flush(WAIT);
    let reqs = server.wait_for(1, WAIT);
    let m = &messages(&reqs[0])[0];
    assert_eq!(m["diagnostics"], serde_json::json!({"exitCode": 1}));
}

#[test]
fn custom_events_need_both_switches() {
    let server = TestServer::start(|_, _| Reply::ok());
    let exporter = http(&server).allow_custom_events(true).build().unwrap();
    let provider = SdkLoggerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = TelemetryLayer::builder(provider.logger("app"))
        .compute_target_id("ct")
        .allow_custom_events(true)
        .build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info!(event = "plugin.loaded", plugin = "git");
    });
    exporter.flush(WAIT);
    let reqs = server.wait_for(1, WAIT);
    let m = &messages(&reqs[0])[0];
    assert_eq!(m["event"], "plugin.loaded");
    assert_eq!(m["diagnostics"]["extra"]["plugin"], "git");
}

#[test]
fn channel_transport_acks_failures_and_pause_resume() {
    let conn = RelayConnection::new(4);
    let h = Harness::new(RelayExporterBuilder::default().channel(conn.clone()), false);
    h.emit(|| info!(event = "connection.established"));
    // First batch: the app fails it; it comes back with the same id.
    let exporter = h.exporter.clone();
    let flusher = std::thread::spawn(move || exporter.flush(WAIT));
    let first = conn.recv_timeout(WAIT).expect("a batch");
    let body: serde_json::Value = serde_json::from_slice(first.body()).unwrap();
    let id = body[0]["id"].clone();
    first.fail("socket closed");
    let second = conn.recv_timeout(WAIT).expect("the batch again");
    let body2: serde_json::Value = serde_json::from_slice(second.body()).unwrap();
    assert_eq!(body2[0]["id"], id);
    second.ack();
    let report = flusher.join().unwrap();
    assert!(report.is_complete());
    assert_eq!(report.stats.sent, 1);

    // Connection lost: nothing is handed over; resumed: delivery restarts at once.
    conn.set_connected(false);
    h.emit(|| info!(event = "connection.lost"));
    let exporter = h.exporter.clone();
    let flusher = std::thread::spawn(move || exporter.flush(Duration::from_millis(300)));
    assert!(conn.recv_timeout(Duration::from_millis(200)).is_none());
    let report = flusher.join().unwrap();
    assert_eq!(report.remaining, 1, "kept while the connection is down");
    conn.set_connected(true);
    let batch = conn
        .recv_timeout(WAIT)
        .expect("resumed without waiting for a backoff");
    assert_eq!(batch.items(), 1);
    batch.ack();
}

#[test]
fn a_dead_relay_does_not_hold_shutdown() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let exporter = RelayExporterBuilder::default()
        .url(format!("http://{addr}/relay"))
        .build()
        .unwrap();
    let provider = SdkLoggerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = TelemetryLayer::builder(provider.logger("app"))
        .compute_target_id("ct")
        .build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info!(event = "connection.lost");
    });
    let started = Instant::now();
    let report = exporter
        .shutdown_with_report(Duration::from_millis(500))
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.remaining, 1);
}
