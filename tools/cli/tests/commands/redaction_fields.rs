//! Secrets in free-text fields never leave the machine, in the default mode (verbose off):
//! `error_stack`, `abort_reason`, `exit_signal`, `spawn_meta`, `token_usage` and every string in
//! `extra` are redacted on both streams (PostHog, and the relay), and the audit shows it.
//! Through the public builder with its default policy.

use closedloop_telemetry_test_support as support;

use closedloop_telemetry::testing::capture;
use closedloop_telemetry::Destination;
use closedloop_telemetry_cli::audit::{self, ndjson};
use serde_json::Value;

const GITHUB_TOKEN: &str = "ghp_4f9ZkqLr8TnW2xYc7VbM1sPdQ0aHjE3uKoIy";
const SECRETS: &[&str] = &[
    GITHUB_TOKEN,
    "visible-in-stack",
    "hunter2-pw",
    "abc123def456",
    "s3cr3t-pass",
    "sk-proj-0123456789abcdefghijKLMN",
    "meta-pw-9",
];

fn emit() {
    tracing::error!(
        event = "command.timeout",
        command_id = "cmd-1",
        exit_code = 124,
        error_stack = "Error: 401 from https://api.example.com?token=visible-in-stack\n    at fetch (main.js:3)",
        abort_reason = "deadline hit while uploading with password=hunter2-pw",
        exit_signal = "SIGTERM",
        spawn_meta = r#"{"argv":["git","clone","https://deploy:s3cr3t-pass@git.example.com/r.git"],"env":{"DB_PASSWORD":"meta-pw-9"}}"#,
        token_usage = r#"{"input":1834,"note":"key sk-proj-0123456789abcdefghijKLMN"}"#,
        db_password = "hunter2-pw",
        note = %format_args!("curl -H 'Authorization: Bearer abc123def456' {GITHUB_TOKEN}"),
        tool = "npm",
    );
}

fn assert_clean(stream: &str, v: &Value) {
    let text = v.to_string();
    for s in SECRETS {
        assert!(!text.contains(s), "{stream} carries {s:?}: {text}");
    }
}

#[test]
fn free_text_secrets_are_redacted_on_both_streams_with_verbose_off() {
    let got = capture(emit);
    let relay = got.relay_event("command.timeout").expect("relay message");
    let posthog = got.posthog_event("command_failed").expect("PostHog event");
    assert_clean("relay", relay);
    assert_clean("posthog", posthog);

    let d = &relay["diagnostics"];
    assert_eq!(d["exitCode"], 124);
    assert_eq!(d["exitSignal"], "SIGTERM");
    assert!(d["errorStack"]
        .as_str()
        .unwrap()
        .starts_with("Error: 401 from https://api.example.com?token=[REDACTED:secret]"));
    assert_eq!(d["extra"]["db_password"], "[REDACTED:secret]");
    assert_eq!(d["extra"]["tool"], "npm");
    assert_eq!(d["spawnMeta"]["env"]["DB_PASSWORD"], "[REDACTED:secret]");
    assert_eq!(d["tokenUsage"]["input"], 1834);
    assert!(d.get("logTail").is_none(), "tails stay verbose-only");

    let p = &posthog["properties"];
    assert_eq!(
        p["abort_reason"],
        "deadline hit while uploading with password=[REDACTED:secret]"
    );
    assert_eq!(p["db_password"], "[REDACTED:secret]");
    assert_eq!(
        p["note"],
        "curl -H 'Authorization: [REDACTED:authorization]' [REDACTED:github-token]"
    );
    assert_eq!(p["token_usage"]["note"], "key [REDACTED:openai-key]");
    assert_eq!(p["tool"], "npm");
}

#[test]
fn the_audit_shows_free_text_redaction_with_verbose_off() {
    let line = serde_json::json!({
        "event": "command.timeout",
        "exit_code": 124,
        "error_stack": "Error at https://x.example?token=visible-in-stack",
        "db_password": "hunter2-pw",
        "tool": "npm",
    });
    let lines = ndjson::parse(&line.to_string()).unwrap();
    let dir = support::process::TempDir::new("audit-free-text");
    let builder = closedloop_telemetry::builder("2.0.0")
        .posthog("phc_audit_key", "http://127.0.0.1:9")
        .relay("http://127.0.0.1:9/relay", None)
        .compute_target_id("ct-audit")
        .data_dir(dir.path());
    let report = audit::run_ndjson(&builder, &lines);
    let text = report.to_string();
    for s in SECRETS {
        assert!(!text.contains(s), "{s:?} in the audit:\n{text}");
    }
    for kind in [Destination::PostHog, Destination::Relay] {
        let items = &report.stream(kind).expect("stream audited").items;
        assert!(items[0].contains("[REDACTED:secret]"), "{}", items[0]);
    }
    assert!(text.contains("redaction: free text"), "{text}");
    assert!(
        text.contains(
            "errorStack redacted: secrets replaced before sending, on every stream, verbose or not: [REDACTED:secret]"
        ),
        "{text}"
    );
    assert!(text.contains("db_password redacted:"), "{text}");
}
