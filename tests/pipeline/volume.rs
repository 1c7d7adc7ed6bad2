//! Volume control through the public builder (issue 22): the default rate limit (10 events/s,
//! burst 100, per name and destination), its one `telemetry.rate_limited` report on the
//! diagnostics destinations, `CL_TELEMETRY_RATE_LIMIT=off`, and sampling with its rate on the
//! wire. Each test runs PostHog and the relay against one loopback receiver.

use closedloop_telemetry_test_support as support;

use std::time::{Duration, Instant};

use closedloop_telemetry::{Destination, EnvOptions, TelemetryBuilder, TelemetryStats};
use serde_json::Value;
use support::accounting::assert_accounting;
use support::process::TempDir;
use support::server::{Reply, TestServer};
use tracing::{info, Dispatch};
use tracing_subscriber::prelude::*;

const STORM: u64 = 10_000;

/// The facade with PostHog (`/batch/`) and the relay (`/relay`) on `server`; `tweak` sets the
/// rest. Nothing else is changed from the defaults.
fn builder(
    server: &TestServer,
    dir: &TempDir,
    tweak: impl FnOnce(TelemetryBuilder) -> TelemetryBuilder,
) -> TelemetryBuilder {
    tweak(
        closedloop_telemetry::builder("1.0.0")
            .posthog("phc_volume", server.base())
            .relay(server.url("/relay"), None)
            .compute_target_id("ct-volume")
            .spool_dir(dir.path().join("spool"))
            .data_dir(dir.path().join("data")),
    )
}

/// Every PostHog event and every relay message the server received.
fn arrivals(server: &TestServer) -> (Vec<Value>, Vec<Value>) {
    let (mut posthog, mut relay) = (Vec::new(), Vec::new());
    for r in server.requests() {
        let body = r.json();
        if r.path.starts_with("/relay") {
            relay.extend(body.as_array().cloned().unwrap_or_default());
        } else if let Some(batch) = body.get("batch").and_then(Value::as_array) {
            posthog.extend(batch.iter().cloned());
        }
    }
    (posthog, relay)
}

fn named<'a>(events: &'a [Value], key: &str, name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e[key] == name).collect()
}

fn stream(
    stats: &TelemetryStats,
    d: Destination,
) -> &closedloop_telemetry::exporters::DeliveryStatsSnapshot {
    &stats.stream(d).expect("the stream runs").delivery
}

/// Emits `n` events named `name` back to back; returns how long it took.
fn emit(dispatch: &Dispatch, name: &str, n: u64) -> Duration {
    let start = Instant::now();
    tracing::dispatcher::with_default(dispatch, || {
        for i in 0..n {
            info!(event = name, elapsed_ms = i);
        }
    });
    start.elapsed()
}

#[test]
fn a_storm_reaches_each_destination_as_its_burst_and_rate_and_is_reported_once() {
    let server = TestServer::start(|_, _| Reply::ok());
    let dir = TempDir::new("volume-storm");
    let telemetry = builder(&server, &dir, |b| b).build().unwrap();
    let handle = telemetry.handle().clone();
    let (layer, guard) = telemetry.split();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    let took = emit(&dispatch, "connection.degraded", STORM);
    // A process that lives this long still says what it dropped: the report goes with the
    // shutdown's flush.
    let report = guard.shutdown();
    assert!(report.is_complete(), "{report}");
    // The bucket refills at 10/s over the emitting time (event clock), on top of its burst.
    let most = 100 + 10 * (took.as_secs() + 1);
    let (posthog, relay) = arrivals(&server);
    let stats = handle.stats();
    for (d, arrived) in [
        (
            Destination::PostHog,
            named(&posthog, "event", "desktop_connection_degraded").len() as u64,
        ),
        (
            Destination::Relay,
            named(&relay, "event", "connection.degraded").len() as u64,
        ),
    ] {
        let s = stream(&stats, d);
        assert!(
            (100..=most).contains(&arrived),
            "{d:?}: {arrived} arrived in {took:?}; at most {most}"
        );
        assert_eq!(s.dropped.rate_limited, STORM - arrived, "{d:?}: {s:?}");
        assert_eq!(
            s.rate_limited_by_name.get("connection.degraded"),
            Some(&(STORM - arrived)),
            "{d:?}"
        );
        assert_eq!(s.dropped.total(), s.dropped.rate_limited, "{d:?}: {s:?}");
        assert_accounting(s);
    }
    // Exactly one report, on the relay only, counting every event the relay's limit refused.
    let reports = named(&relay, "event", "telemetry.rate_limited");
    assert_eq!(reports.len(), 1, "{reports:?}");
    let extra = &reports[0]["diagnostics"]["extra"];
    let limited = stream(&stats, Destination::Relay).dropped.rate_limited;
    assert_eq!(extra["dropped"]["connection.degraded"], limited, "{extra}");
    assert_eq!(extra["dropped"].as_object().unwrap().len(), 1, "{extra}");
    assert!(
        extra["window_s"].as_u64().is_some_and(|w| w >= 1),
        "{extra}"
    );
    assert_eq!(reports[0]["trace"]["computeTargetId"], "ct-volume");
    assert!(
        posthog
            .iter()
            .all(|e| !e["event"].as_str().unwrap_or("").contains("rate_limited")),
        "PostHog gets nothing new"
    );
    // The local activity log says it too, per destination, with the counts by name.
    let entries = handle.activity().snapshot();
    for stream in ["posthog", "relay"] {
        assert!(
            entries
                .iter()
                .any(|e| e.summary.contains("telemetry.rate_limited")
                    && e.summary.contains(stream)
                    && e.body.contains("connection.degraded")),
            "no activity entry for {stream}: {entries:?}"
        );
    }
}

#[test]
fn a_steady_five_per_second_of_one_name_loses_nothing() {
    let server = TestServer::start(|_, _| Reply::ok());
    let dir = TempDir::new("volume-steady");
    let telemetry = builder(&server, &dir, |b| b).build().unwrap();
    let handle = telemetry.handle().clone();
    let (layer, guard) = telemetry.split();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    // 150 events at 5/s: more than the burst of 100, so only the refill lets them all through.
    const N: u64 = 150;
    let start = Instant::now();
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..N {
            let at = start + Duration::from_millis(200 * i);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            info!(event = "connection.degraded", elapsed_ms = i);
        }
    });
    assert!(guard.shutdown().is_complete());
    let (posthog, relay) = arrivals(&server);
    assert_eq!(
        named(&posthog, "event", "desktop_connection_degraded").len() as u64,
        N
    );
    assert_eq!(
        named(&relay, "event", "connection.degraded").len() as u64,
        N
    );
    assert!(named(&relay, "event", "telemetry.rate_limited").is_empty());
    let stats = handle.stats();
    for d in [Destination::PostHog, Destination::Relay] {
        assert_eq!(stream(&stats, d).dropped.total(), 0, "{d:?}");
    }
}

#[test]
fn cl_telemetry_rate_limit_off_sends_the_whole_storm() {
    let server = TestServer::start(|_, _| Reply::ok());
    let dir = TempDir::new("volume-off");
    // The variable's value as the environment gives it (this binary's tests share one process
    // environment, so it is read through `EnvOptions::from_lookup`, as `from_env()` reads it).
    let env = EnvOptions::from_lookup(|k| (k == "CL_TELEMETRY_RATE_LIMIT").then(|| "off".into()))
        .unwrap();
    let telemetry = builder(&server, &dir, |b| b.merge_env(env))
        .build()
        .unwrap();
    let handle = telemetry.handle().clone();
    let (layer, guard) = telemetry.split();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    emit(&dispatch, "connection.degraded", STORM);
    assert!(guard.shutdown().is_complete());
    let (posthog, relay) = arrivals(&server);
    assert_eq!(
        named(&posthog, "event", "desktop_connection_degraded").len() as u64,
        STORM
    );
    assert_eq!(
        named(&relay, "event", "connection.degraded").len() as u64,
        STORM
    );
    assert!(named(&relay, "event", "telemetry.rate_limited").is_empty());
    let stats = handle.stats();
    assert_eq!(stream(&stats, Destination::Relay).dropped.rate_limited, 0);
    // A bad value is refused with the variable's name.
    let err = EnvOptions::from_lookup(|k| {
        (k == "CL_TELEMETRY_RATE_LIMIT").then(|| "ten per second".into())
    })
    .unwrap_err();
    assert_eq!(err.var, "CL_TELEMETRY_RATE_LIMIT");
    // Its text form sets the default limit: 2/s with a burst of 5.
    let env =
        EnvOptions::from_lookup(|k| (k == "CL_TELEMETRY_RATE_LIMIT").then(|| "2/s,burst=5".into()))
            .unwrap();
    assert_eq!(
        env.rate_limit,
        Some(Some(closedloop_telemetry::RateLimit::new(2.0, 5)))
    );
}

#[test]
fn a_limit_for_one_name_on_one_destination_leaves_the_others_alone() {
    let server = TestServer::start(|_, _| Reply::ok());
    let dir = TempDir::new("volume-per-name");
    let telemetry = builder(&server, &dir, |b| {
        b.rate_limit_for(Destination::Relay, "connection.degraded", None)
            .rate_limit_for(
                Destination::PostHog,
                "connection.degraded",
                closedloop_telemetry::RateLimit::new(0.0, 3),
            )
    })
    .build()
    .unwrap();
    let (layer, guard) = telemetry.split();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    emit(&dispatch, "connection.degraded", 500);
    assert!(guard.shutdown().is_complete());
    let (posthog, relay) = arrivals(&server);
    assert_eq!(
        named(&posthog, "event", "desktop_connection_degraded").len(),
        3
    );
    assert_eq!(named(&relay, "event", "connection.degraded").len(), 500);
    assert!(named(&relay, "event", "telemetry.rate_limited").is_empty());
}

#[test]
fn sampled_events_carry_their_rate_and_the_rest_are_counted() {
    let server = TestServer::start(|_, _| Reply::ok());
    let dir = TempDir::new("volume-sample");
    const N: u64 = 2000;
    let telemetry = builder(&server, &dir, |b| {
        b.rate_limit(None).sample_rate("connection.degraded", 0.25)
    })
    .build()
    .unwrap();
    let handle = telemetry.handle().clone();
    let (layer, guard) = telemetry.split();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    emit(&dispatch, "connection.degraded", N);
    emit(&dispatch, "connection.lost", 10);
    assert!(guard.shutdown().is_complete());
    let (posthog, relay) = arrivals(&server);
    let stats = handle.stats();
    let kept_relay = named(&relay, "event", "connection.degraded");
    let kept_posthog = named(&posthog, "event", "desktop_connection_degraded");
    for (d, kept) in [
        (Destination::Relay, kept_relay.len() as u64),
        (Destination::PostHog, kept_posthog.len() as u64),
    ] {
        let s = stream(&stats, d);
        // About a quarter kept (the decision is a hash of each event's random id).
        assert!((300..=700).contains(&kept), "{d:?}: kept {kept} of {N}");
        assert_eq!(s.dropped.sampled_out, N - kept, "{d:?}: {s:?}");
        assert_eq!(
            s.sampled_out_by_name.get("connection.degraded"),
            Some(&(N - kept))
        );
        assert_accounting(s);
    }
    assert!(
        kept_relay.iter().all(|m| m["sampleRate"] == 0.25),
        "{:?}",
        kept_relay[0]
    );
    assert!(kept_posthog
        .iter()
        .all(|e| e["properties"]["sample_rate"] == 0.25));
    // Names without a sample rate are all kept and carry none.
    let lost = named(&relay, "event", "connection.lost");
    assert_eq!(lost.len(), 10);
    assert!(lost.iter().all(|m| m.get("sampleRate").is_none()));
}

#[test]
fn a_sample_rate_outside_zero_to_one_is_refused_by_build() {
    let err = closedloop_telemetry::builder("1.0.0")
        .sample_rate("connection.degraded", 1.5)
        .build()
        .expect_err("refused");
    assert!(err.to_string().contains("sample_rate"), "{err}");
}
