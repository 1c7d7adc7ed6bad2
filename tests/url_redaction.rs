// A binary of its own: it installs the process-global subscriber (TRACE) and reads all it logs.
//! Credentials in destination URLs (userinfo, query and fragment values, e.g. a `DD_LOGS_URL`
//! carrying `?dd-api-key=`) never appear in a `Debug`, a `Display` or a log line: settings,
//! builders, exporters, the HTTP transport, build errors and the engine's logs.

use closedloop_telemetry_test_support as support;

use std::time::{Duration, Instant};

use closedloop_telemetry::EnvOptions;
use closedloop_telemetry_exporters::__private::delivery::HttpTransport;
use closedloop_telemetry_exporters::__private::redact_url;
use closedloop_telemetry_exporters::__private::StreamExporterExt;
use closedloop_telemetry_exporters::DatadogExporterBuilder;
use closedloop_telemetry_exporters::PostHogExporterBuilder;
use closedloop_telemetry_exporters::RelayExporterBuilder;
use support::logs::Captured;

/// Every secret below contains this word; no output may.
const SECRET: &str = "SECRET";

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows a credential: {text}");
}

#[test]
fn settings_and_builders_debug_redacts_urls() {
    let env = EnvOptions::from_lookup(|k| {
        Some(match k {
            "CL_POSTHOG_API_KEY" => "phc_x".into(),
            "CL_POSTHOG_HOST" => "https://ph:SECRET1@ph.example".into(),
            "CL_RELAY_URL" => "https://user:SECRET2@relay.example/in?token=SECRET3".into(),
            "DD_API_KEY" => "dd-key".into(),
            "DD_LOGS_URL" => "https://intake.example/api/v2/logs?dd-api-key=SECRET4".into(),
            _ => return None,
        })
    })
    .unwrap();
    let dbg = format!("{env:?}");
    assert_clean("EnvOptions", &dbg);
    assert!(dbg.contains("relay.example/in?token=[REDACTED]"), "{dbg}");
    assert!(dbg.contains("dd-api-key=[REDACTED]"), "{dbg}");

    let builder = closedloop_telemetry::builder("1.0.0").merge_env(env);
    assert_clean("TelemetryBuilder", &format!("{builder:?}"));

    let ph = PostHogExporterBuilder::default().host("https://u:SECRET@ph.example");
    assert_clean("PostHogExporterBuilder", &format!("{ph:?}"));
    let relay = RelayExporterBuilder::default().url("https://u:SECRET@relay.example/?k=SECRET");
    assert_clean("RelayExporterBuilder", &format!("{relay:?}"));
    let dd = DatadogExporterBuilder::default()
        .api_key("k")
        .logs_url("https://intake.example/api/v2/logs?dd-api-key=SECRET");
    assert_clean("DatadogExporterBuilder", &format!("{dd:?}"));
}

#[test]
fn build_errors_redact_the_url() {
    let errors = [
        PostHogExporterBuilder::default()
            .api_key("phc_x")
            .host("https://u:SECRET@ph.example/?k=SECRET")
            .build()
            .unwrap_err(),
        RelayExporterBuilder::default()
            .url("ftp://u:SECRET@relay.example/?k=SECRET")
            .build()
            .unwrap_err(),
        DatadogExporterBuilder::default()
            .api_key("k")
            .logs_url("not a url ?dd-api-key=SECRET")
            .build()
            .unwrap_err(),
    ];
    for e in errors {
        assert_clean("BuildError Display", &e.to_string());
        assert_clean("BuildError Debug", &format!("{e:?}"));
    }
    // Through the facade, too.
    let e = closedloop_telemetry::builder("1.0.0")
        .relay("ftp://u:SECRET@relay.example/in", None)
        .compute_target_id("ct")
        .build()
        .unwrap_err();
    assert_clean("InitError Display", &e.to_string());
    assert_clean("InitError Debug", &format!("{e:?}"));
}

#[test]
fn exporters_transport_and_logs_redact_urls() {
    // Everything the library logs in this process (worker threads included) lands here.
    let logs = Captured::default();
    let writer = logs.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();

    // Port 1 on loopback refuses connections: the engines fail, log and record last_error.
    let relay = RelayExporterBuilder::default()
        .url("http://user:SECRET@127.0.0.1:1/relay?token=SECRET#k=SECRET")
        .allow_custom_events(true)
        .build()
        .unwrap();
    let dd = DatadogExporterBuilder::default()
        .api_key("k")
        .logs_url("http://127.0.0.1:1/api/v2/logs?dd-api-key=SECRET")
        .allow_custom_events(true)
        .build()
        .unwrap();
    let ph = PostHogExporterBuilder::default()
        .api_key("phc_x")
        .host("http://u:SECRET@127.0.0.1:1")
        .build()
        .unwrap();
    assert_clean("RelayExporter", &format!("{relay:?}"));
    assert_clean("DatadogExporter", &format!("{dd:?}"));
    assert_clean("PostHogExporter", &format!("{ph:?}"));
    let transport = HttpTransport::new(
        url::Url::parse("https://u:SECRET@intake.example/?dd-api-key=SECRET").unwrap(),
        &[],
        Duration::from_secs(1),
    )
    .unwrap();
    assert_clean("HttpTransport", &format!("{transport:?}"));

    // One event each, then wait on the counters until each engine has failed once.
    let _ = relay.delivery().submit(vec![support::tagged::event(1)]);
    let _ = dd.delivery().submit(vec![support::tagged::event(2)]);
    let deadline = Instant::now() + Duration::from_secs(20);
    for d in [relay.delivery(), dd.delivery()] {
        let _ = d.flush(Duration::from_secs(1));
        while d.stats().last_error.is_none() && Instant::now() < deadline {
            let _ = d.flush(Duration::from_millis(200));
        }
        let stats = d.stats();
        assert!(stats.last_error.is_some(), "{stats:?}");
        assert_clean("last_error", &format!("{stats:?}"));
    }
    for d in [relay.delivery(), dd.delivery(), ph.delivery()] {
        let _ = d.shutdown(Duration::from_millis(200));
    }
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert_clean("log output", &logs);
}

#[test]
fn the_helper_keeps_the_destination_readable() {
    assert_eq!(
        redact_url("https://user:pw@relay.example:8443/in?token=t"),
        "https://[REDACTED]@relay.example:8443/in?token=[REDACTED]"
    );
}
