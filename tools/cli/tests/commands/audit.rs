//! The audit view: a small NDJSON session through the configured pipeline in dry-run mode.
//! Real encoders and redaction, nothing sent (the configured URLs point at a loopback server
//! that must see no request).

use closedloop_telemetry_test_support as support;

use std::path::PathBuf;

use closedloop_telemetry::__private::consent;
use closedloop_telemetry::Consent;
use closedloop_telemetry::EnvOptions;
use closedloop_telemetry::{Destination, TelemetryBuilder};
use closedloop_telemetry_cli::audit::{self, ndjson};
use support::server::{Reply, TestServer};

const SESSION: &str = r#"
{"event":"command.started","command_id":"cmd-1","message":"starting npm test"}
{"event":"job.failed","level":"error","job_id":"job-2","exit_code":1,"elapsed_ms":9120,"log_tail":"npm ERR! token ghp_4f9ZkqLr8TnW2xYc7VbM1sPdQ0aHjE3uKoIy\nnpm ERR! POST https://admin:hunter2@staging.internal/api\n","tool":"npm","attempt":2}
{"event":"page.viewed","path":"/settings"}
{"activity":"request","summary":"POST /v1/run","body":"{\"cmd\":\"npm test\"}"}
{"event":"command.completed","command_id":"cmd-1","exit_code":0,"stdout_bytes":512}
"#;

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cl-audit-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn builder(server: &TestServer, tag: &str) -> TelemetryBuilder {
    closedloop_telemetry::builder("2.0.0")
        .posthog("phc_secret_project_key", server.base())
        .relay(server.url("/relay"), Some("relay-token".into()))
        .compute_target_id("ct-audit")
        .data_dir(temp_dir(tag))
}

/// The audit builds no exporter and starts no thread that could send later: when it has
/// returned, the server's count is final.
fn assert_no_request(server: &TestServer) {
    assert!(server.requests().is_empty(), "the audit made a request");
}

#[test]
fn verbose_audit_shows_redaction_unknown_events_and_local_only_entries() {
    let server = TestServer::start(|_, _| Reply::ok());
    let lines = ndjson::parse(SESSION).unwrap();
    let report = audit::run_ndjson(&builder(&server, "verbose").verbose(true), &lines);
    let text = report.to_string();

    let relay = report.stream(Destination::Relay).unwrap();
    assert_eq!(relay.items.len(), 3);
    let failed: serde_json::Value = serde_json::from_str(&relay.items[1]).unwrap();
    let tail = failed["diagnostics"]["logTail"].as_str().unwrap();
    assert!(tail.contains("[REDACTED:github-token]"), "{tail}");
    assert_eq!(failed["diagnostics"]["extra"]["tool"], "npm");
    assert_eq!(failed["diagnostics"]["extra"]["attempt"], 2);
    assert_eq!(failed["trace"]["jobId"], "job-2");
    assert!(
        text.contains("logTail redacted: secrets replaced before sending: [REDACTED:github-token]"),
        "{text}"
    );
    assert!(
        !text.contains("ghp_4f9Z") && !text.contains("hunter2"),
        "{text}"
    );
    assert!(!text.contains("phc_secret_project_key"), "{text}");

    let posthog = report.stream(Destination::PostHog).unwrap();
    assert_eq!(posthog.items.len(), 2);
    assert!(posthog
        .body
        .starts_with(r#"{"api_key":"<project api key>","batch":["#));

    assert!(text.contains("page.viewed -> nowhere"), "{text}");
    assert!(
        text.contains("unknown event: not in the catalogue"),
        "{text}"
    );
    assert_eq!(report.not_forwarded(), 1);
    assert!(
        text.contains("activity request: POST /v1/run -> nowhere"),
        "{text}"
    );
    assert!(text.contains("message dropped"), "{text}");
    assert_eq!(report.activity_entries, 1);
    assert_no_request(&server);
}

#[test]
fn without_verbose_the_tails_are_noted_as_dropped() {
    let server = TestServer::start(|_, _| Reply::ok());
    let lines = ndjson::parse(SESSION).unwrap();
    let report = audit::run_ndjson(&builder(&server, "quiet"), &lines);
    let text = report.to_string();
    assert!(
        text.contains("logTail dropped: verbose telemetry is off"),
        "{text}"
    );
    let relay = report.stream(Destination::Relay).unwrap();
    assert!(relay.items.iter().all(|i| !i.contains("logTail")));
    assert!(!text.contains("REDACTED"), "{text}");
    assert_no_request(&server);
}

#[test]
fn datadog_direct_and_disabled_configurations() {
    let server = TestServer::start(|_, _| Reply::ok());
    let lines = ndjson::parse(SESSION).unwrap();
    let dd = closedloop_telemetry::builder("2.0.0")
        .datadog("dd_secret_key", server.url("/api/v2/logs"))
        .compute_target_id("ct-audit")
        .data_dir(temp_dir("dd"));
    let report = audit::run_ndjson(&dd.verbose(true), &lines);
    assert_eq!(report.streams.len(), 1);
    let s = report.stream(Destination::Datadog).unwrap();
    assert_eq!(s.items.len(), 3);
    assert!(s.items[0].contains(r#""ddsource":"closedloop-desktop""#));
    assert!(s.body.starts_with('['));
    assert!(!report.to_string().contains("dd_secret_key"));

    let env = EnvOptions::from_lookup(|k| (k == "DO_NOT_TRACK").then(|| "1".into())).unwrap();
    let report = audit::run_ndjson(&builder(&server, "dnt").merge_env(env), &lines);
    assert!(report.streams.is_empty());
    assert!(report.to_string().contains("nothing would be sent"));

    let dir = temp_dir("denied");
    consent::store(&dir, Consent::Denied).unwrap();
    let report = audit::run_ndjson(&builder(&server, "x").data_dir(&dir), &lines);
    assert!(report.streams.is_empty());
    assert!(report.to_string().contains("consent is denied"));
    assert_no_request(&server);
}
