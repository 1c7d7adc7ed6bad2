//! OTLP through the facade (`docs/schema/otlp-logs.v1.md`): beside the relay, the same events
//! reach the local collector's `/v1/logs`, protobuf and gzip by default; `CL_OTLP_*` configure
//! it and the standard `OTEL_EXPORTER_OTLP_*` variables never do.

use std::time::Duration;

use closedloop_telemetry::exporters::{Compression, Protocol};
use closedloop_telemetry::Destination;
use closedloop_telemetry::EnvOptions;
use closedloop_telemetry_collector::Collector;
use tracing_subscriber::prelude::*;

#[test]
fn the_example_session_reaches_otlp_beside_the_relay() {
    let collector = Collector::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("closedloop-otlp-{}", uuid::Uuid::new_v4()));
    let telemetry = closedloop_telemetry::builder("2.0.0")
        .data_dir(dir.join("data"))
        .spool_dir(dir.join("spool"))
        .posthog("phc_otlp", collector.posthog_host())
        .relay(collector.relay_url(), None)
        .otlp(collector.otlp_endpoint())
        .shutdown_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let handle = telemetry.handle();
    let (layer, guard) = telemetry.split();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        closedloop_telemetry_collector::demo::play(handle.gateway())
    });
    assert!(guard.shutdown().is_complete());
    let stats = handle.stats();
    let (_, relay) = stats.routed();
    let otlp = stats.routed_otlp().expect("OTLP runs");
    assert!(otlp > 0);
    assert_eq!(otlp, relay, "the relay's events, no more and no fewer");
    let got = collector.received_on(Destination::Otlp);
    assert_eq!(got.len() as u64, otlp);
    let names = |d| {
        let mut n: Vec<String> = collector
            .received_on(d)
            .into_iter()
            .map(|r| r.name)
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(Destination::Otlp),
        names(Destination::Relay),
        "the relay's events"
    );
    assert_eq!(
        collector.unique_ids(Destination::Otlp).len() as u64,
        otlp,
        "one id per event"
    );
    let record = &got[0].body;
    assert!(record["eventName"].is_string(), "{record}");
    assert_eq!(
        stats
            .stream(Destination::Otlp)
            .unwrap()
            .delivery
            .dropped
            .total(),
        0
    );
    assert!(
        collector.rejected().is_empty(),
        "{:?}",
        collector.rejected()
    );
    collector.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cl_otlp_variables_configure_it_and_otel_ones_never_do() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        EnvOptions::from_lookup(move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    };
    let otel_only = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "http://127.0.0.1:4318/v1/logs",
        ),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=x"),
    ])
    .unwrap();
    assert_eq!(
        otel_only.otlp, None,
        "an app's tracing endpoint never receives user telemetry"
    );

    let cfg = env(&[
        ("CL_OTLP_ENDPOINT", "https://otel.example:4318"),
        ("CL_OTLP_HEADERS", "api-key=s%3Dcret,x-tenant=acme"),
        ("CL_OTLP_PROTOCOL", "http/json"),
        ("CL_OTLP_COMPRESSION", "none"),
    ])
    .unwrap()
    .otlp
    .expect("on");
    assert_eq!(cfg.endpoint, "https://otel.example:4318");
    assert_eq!(
        cfg.headers[0],
        ("api-key".to_string(), "s=cret".to_string())
    );
    assert_eq!(cfg.protocol, Protocol::HttpJson);
    assert_eq!(cfg.compression, Compression::None);
    assert!(
        !format!("{cfg:?}").contains("cret"),
        "header values never in Debug"
    );

    for (var, value) in [
        ("CL_OTLP_PROTOCOL", "grpc"),
        ("CL_OTLP_COMPRESSION", "zstd"),
        ("CL_OTLP_HEADERS", "novalue"),
        ("CL_OTLP_ENDPOINT", "not a url"),
    ] {
        let err = EnvOptions::from_lookup(|k| match k {
            "CL_OTLP_ENDPOINT" if var != "CL_OTLP_ENDPOINT" => Some("http://127.0.0.1:4318".into()),
            k if k == var => Some(value.into()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(err.var, var, "{value}");
    }
}

#[test]
fn the_local_collector_takes_otlp_json_uncompressed_and_refuses_what_is_not_otlp() {
    use closedloop_telemetry::exporters::OtlpExporterBuilder;
    use std::io::{Read, Write};

    let collector = Collector::start("127.0.0.1:0".parse().unwrap()).unwrap();
    // The exporter alone, under the app's own SdkLoggerProvider, as OTLP/JSON uncompressed.
    let exporter = OtlpExporterBuilder::default()
        .endpoint(collector.otlp_endpoint())
        .protocol(Protocol::HttpJson)
        .compression(Compression::None)
        .build()
        .unwrap();
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    use opentelemetry::logs::LoggerProvider as _;
    let layer = closedloop_telemetry_layers::TelemetryLayer::builder(provider.logger("app"))
        .compute_target_id("ct-json")
        .build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::error!(event = "job.failed", exit_code = 2);
        tracing::info!(event = "command.started");
    });
    assert!(exporter.flush(Duration::from_secs(10)).is_complete());
    let got = collector.received_on(Destination::Otlp);
    let names: Vec<&str> = got.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["job.failed", "command.started"]);
    assert_eq!(got[0].body["severityNumber"], 17);
    assert!(collector.rejected().is_empty());

    let post = |content_type: &str, body: &[u8]| {
        let mut s = std::net::TcpStream::connect(collector.addr()).unwrap();
        let head = format!(
            "POST /v1/logs HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            collector.addr(),
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(post("text/plain", b"hello").starts_with("HTTP/1.1 415"));
    assert!(post("application/x-protobuf", b"\xff\xff\xff").starts_with("HTTP/1.1 400"));
    assert!(
        post("application/json", b"{}").starts_with("HTTP/1.1 400"),
        "no record"
    );
    collector.shutdown();
}
