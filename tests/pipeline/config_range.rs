//! No configuration value panics: every duration and size setting of the public builders is
//! either accepted or refused with a `BuildError` naming it, and flush / shutdown accept any
//! timeout, `Duration::MAX` included (see docs/RELIABILITY.md, "Configuration ranges").

use closedloop_telemetry_test_support as support;

use std::path::PathBuf;
use std::time::Duration;

use closedloop_telemetry::InitError;
use closedloop_telemetry_exporters::DatadogExporterBuilder;
use closedloop_telemetry_exporters::RelayExporterBuilder;
use closedloop_telemetry_exporters::{BuildError, PostHogExporterBuilder};
use closedloop_telemetry_exporters::{DeliveryOptions, RetryPolicy};
use proptest::prelude::*;
use support::server::{Reply, TestServer};
use tracing_subscriber::prelude::*;

/// A unique scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        Scratch(std::env::temp_dir().join(format!("cl-config-range-{}", uuid::Uuid::new_v4())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The facade with both streams on `server` and its own data and spool dirs.
fn facade(server: &TestServer, dir: &Scratch) -> closedloop_telemetry::TelemetryBuilder {
    closedloop_telemetry::builder("1.0.0")
        .posthog("phc_range", server.base())
        .relay(server.url("/relay"), None)
        .compute_target_id("ct-range")
        .data_dir(dir.0.join("data"))
        .spool_dir(dir.0.join("spool"))
}

/// The setting a build error names.
fn setting_of(err: &BuildError) -> &'static str {
    match err {
        BuildError::InvalidValue { setting, .. } => setting,
        other => panic!("expected InvalidValue, got {other}"),
    }
}

fn facade_setting(result: Result<closedloop_telemetry::Telemetry, InitError>) -> &'static str {
    match result {
        Err(InitError::Exporter(e)) => setting_of(&e),
        Err(other) => panic!("expected a BuildError, got {other}"),
        Ok(_) => panic!("an out-of-range value was accepted"),
    }
}

#[test]
fn out_of_range_durations_are_build_errors_naming_the_setting() {
    let server = TestServer::start(|_, _| Reply::ok());
    let dir = Scratch::new();
    let cases: Vec<(&str, closedloop_telemetry::TelemetryBuilder)> = vec![
        (
            "shutdown_timeout",
            facade(&server, &dir).shutdown_timeout(Duration::MAX),
        ),
        (
            "posthog_flush_interval",
            facade(&server, &dir).posthog_flush_interval(Duration::from_secs(31)),
        ),
        (
            "relay_max_delay",
            facade(&server, &dir).relay_max_delay(Duration::MAX),
        ),
        (
            "activity_capacity",
            facade(&server, &dir).activity_capacity(usize::MAX),
        ),
        // Checked even when no stream runs.
        (
            "shutdown_timeout",
            closedloop_telemetry::builder("1.0.0")
                .disabled(true)
                .data_dir(dir.0.join("data"))
                .shutdown_timeout(Duration::MAX),
        ),
    ];
    for (want, builder) in cases {
        assert_eq!(facade_setting(builder.build()), want);
    }

    let posthog = || PostHogExporterBuilder::default().api_key("phc_range");
    let err = |r: Result<_, BuildError>| setting_of(&r.unwrap_err());
    assert_eq!(
        err(posthog().flush_interval(Duration::from_secs(31)).build()),
        "flush_interval"
    );
    let options = DeliveryOptions::builder;
    let timeout = options().with_timeout(Duration::MAX).build();
    assert_eq!(err(posthog().delivery(timeout).build()), "timeout");
    let shutdown = options().with_shutdown_timeout(Duration::MAX).build();
    assert_eq!(
        err(posthog().delivery(shutdown.clone()).build()),
        "shutdown_timeout"
    );
    let relay = || RelayExporterBuilder::default().url(server.url("/relay"));
    assert_eq!(err(relay().max_delay(Duration::MAX).build()), "max_delay");
    let retry = RetryPolicy {
        max_backoff: Duration::MAX,
        ..RetryPolicy::default()
    };
    assert_eq!(
        err(relay()
            .delivery(options().with_retry_policy(retry).build())
            .build()),
        "retry_policy.max_backoff"
    );
    let datadog = DatadogExporterBuilder::default()
        .api_key("dd-range")
        .logs_url(server.url("/api/v2/logs"));
    assert_eq!(err(datadog.delivery(shutdown).build()), "shutdown_timeout");
}

#[test]
fn flush_and_shutdown_with_duration_max_do_not_panic() {
    let server = TestServer::start(|_, _| Reply::ok());
    let dir = Scratch::new();
    let telemetry = facade(&server, &dir).build().unwrap();
    let handle = telemetry.handle();
    let (layer, guard) = telemetry.split();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!(event = "connection.established");
    });
    let report = handle.flush(Duration::MAX);
    assert!(report.is_complete(), "{report}");
    assert_eq!(handle.stats().routed(), (1, 1));
    // The guard's Drop shuts down with the configured timeout; shutting down first with the
    // longest one must not panic either.
    assert!(guard.shutdown().is_complete());

    // The exporters on their own: flush and shutdown with Duration::MAX.
    let exporter = RelayExporterBuilder::default()
        .url(server.url("/relay"))
        .build()
        .unwrap();
    assert!(exporter.flush(Duration::MAX).is_complete());
    assert!(exporter
        .shutdown_with_report(Duration::MAX)
        .unwrap()
        .is_complete());
}

/// Any duration: small ones, around the limits, and huge ones up to `Duration::MAX`.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..120_000).prop_map(Duration::from_millis),
        (0u64..=u64::MAX, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        Just(Duration::MAX),
        Just(Duration::ZERO),
    ]
}

/// Any size, small or huge.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..64, Just(usize::MAX), any::<usize>()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Every builder returns Ok or a BuildError for any durations and sizes; what builds also
    /// flushes and shuts down with `Duration::MAX` without a panic.
    #[test]
    fn builders_never_panic(
        flush in duration(),
        delay in duration(),
        timeout in duration(),
        shutdown in duration(),
        base in duration(),
        backoff in duration(),
        batch in size(),
        queue in size(),
        activity in size(),
    ) {
        let retry = RetryPolicy { base, max_backoff: backoff, ..RetryPolicy::default() };
        let options = DeliveryOptions::builder()
            .with_timeout(timeout)
            .with_shutdown_timeout(shutdown);
        let ph = PostHogExporterBuilder::default()
            .api_key("phc_prop")
            .host("http://127.0.0.1:9")
            .flush_interval(flush)
            .batch_size(batch)
            .delivery(options.clone().with_queue_capacity(queue).with_retry_policy(retry).build())
            .build();
        if let Ok(e) = ph {
            e.flush(Duration::MAX);
            let _ = e.shutdown_with_report(Duration::MAX);
        }
        let relay = RelayExporterBuilder::default()
            .url("http://127.0.0.1:9/relay")
            .max_delay(delay)
            .delivery(options.clone().with_queue_capacity(queue).with_retry_policy(retry).build())
            .build();
        if let Ok(e) = relay {
            e.flush(Duration::MAX);
            let _ = e.shutdown_with_report(Duration::MAX);
        }
        let dd = DatadogExporterBuilder::default()
            .api_key("dd-prop")
            .logs_url("http://127.0.0.1:9/api/v2/logs")
            .max_delay(delay)
            .delivery(options.build())
            .build();
        if let Ok(e) = dd {
            e.flush(Duration::MAX);
            let _ = e.shutdown_with_report(Duration::MAX);
        }
        let dir = Scratch::new();
        let facade = closedloop_telemetry::builder("1.0.0")
            .posthog("phc_prop", "http://127.0.0.1:9")
            .relay("http://127.0.0.1:9/relay", None)
            .compute_target_id("ct-prop")
            .data_dir(dir.0.join("data"))
            .spool_dir(dir.0.join("spool"))
            .posthog_flush_interval(flush)
            .relay_max_delay(delay)
            .shutdown_timeout(shutdown)
            .activity_capacity(activity)
            .build();
        if let Ok(t) = facade {
            t.handle().flush(Duration::MAX);
            // Dropping the guard shuts down within the (accepted) shutdown timeout.
            drop(t);
        }
    }
}
