//! The redaction corpus (`exporters/tests/fixtures/redaction_corpus.txt`): realistic log lines with secrets
//! embedded in them. For each line every secret must vanish, the text around it must stay, and
//! the result must stay valid UTF-8; clean lines must come back unchanged. Property tests check
//! that redaction never panics and that tails keep their 4096-byte bound on arbitrary input.

use std::borrow::Cow;

use closedloop_telemetry_exporters::__private::datadog::wire::datadog_item;
use closedloop_telemetry_exporters::__private::decode::Event;
use closedloop_telemetry_exporters::__private::posthog::wire::encode_event;
use closedloop_telemetry_exporters::__private::redact::Redactor;
use closedloop_telemetry_exporters::__private::relay::wire::relay_item;
use closedloop_telemetry_layers::__private::catalogue::lookup;
use closedloop_telemetry_layers::__private::envelope::{
    format_timestamp, Diagnostics, TraceEnvelope,
};
use closedloop_telemetry_layers::__private::truncate::TAIL_MAX_BYTES;
use proptest::prelude::*;
use serde_json::{json, Value};

const CORPUS: &str = include_str!("../fixtures/redaction_corpus.txt");

#[derive(Debug, Default)]
struct Case {
    name: String,
    input: String,
    gone: Vec<String>,
    kept: Vec<String>,
}

impl Case {
    fn is_clean(&self) -> bool {
        self.gone.is_empty()
    }
}

/// Parses the corpus format described at the top of the fixture.
fn corpus() -> Vec<Case> {
    #[derive(PartialEq)]
    enum Section {
        Outside,
        Input,
        Gone,
        Kept,
    }
    let mut cases: Vec<Case> = Vec::new();
    let mut section = Section::Outside;
    let mut input: Vec<&str> = Vec::new();
    let finish = |cases: &mut Vec<Case>, input: &mut Vec<&str>| {
        if let Some(case) = cases.last_mut() {
            if case.input.is_empty() {
                case.input = input.join("\n");
            }
        }
        input.clear();
    };
    for line in CORPUS.lines() {
        if let Some(name) = line.strip_prefix("=== ") {
            finish(&mut cases, &mut input);
            cases.push(Case {
                name: name.to_string(),
                ..Case::default()
            });
            section = Section::Input;
        } else if line == "--- gone" || line == "--- kept" {
            finish(&mut cases, &mut input);
            section = if line == "--- gone" {
                Section::Gone
            } else {
                Section::Kept
            };
        } else if section == Section::Outside
            || (line.starts_with('#') && section != Section::Input)
        {
            continue;
        } else if line.is_empty() && section != Section::Input {
            section = Section::Outside;
        } else {
            let case = cases.last_mut().expect("a case header comes first");
            match section {
                Section::Input => input.push(line),
                Section::Gone => case.gone.push(line.to_string()),
                Section::Kept => case.kept.push(line.to_string()),
                Section::Outside => unreachable!(),
            }
        }
    }
    finish(&mut cases, &mut input);
    for case in &mut cases {
        case.input = case.input.trim_end_matches('\n').to_string();
    }
    cases
}

#[test]
fn corpus_is_large_and_well_formed() {
    let cases = corpus();
    let secret_cases = cases.iter().filter(|c| !c.is_clean()).count();
    let secrets: usize = cases.iter().map(|c| c.gone.len()).sum();
    assert!(secret_cases >= 40, "{secret_cases} cases with secrets");
    assert!(cases.len() - secret_cases >= 10, "clean cases");
    assert!(secrets >= 60, "{secrets} secrets");
    for case in &cases {
        assert!(!case.input.is_empty(), "{}: no input", case.name);
        for s in case.gone.iter().chain(&case.kept) {
            assert!(
                case.input.contains(s.as_str()),
                "{}: {s:?} is not in the input",
                case.name
            );
        }
    }
}

#[test]
fn every_secret_is_gone_and_its_surroundings_stay() {
    let redactor = Redactor::shared();
    let mut failures = Vec::new();
    for case in corpus().iter().filter(|c| !c.is_clean()) {
        let out = redactor.redact(&case.input);
        assert!(
            matches!(out, Cow::Owned(_)),
            "{}: nothing redacted",
            case.name
        );
        for secret in &case.gone {
            if out.contains(secret.as_str()) {
                failures.push(format!(
                    "{}: secret {secret:?} survived in\n{out}",
                    case.name
                ));
            }
        }
        for kept in &case.kept {
            if !out.contains(kept.as_str()) {
                failures.push(format!("{}: {kept:?} was lost from\n{out}", case.name));
            }
        }
        assert!(out.contains("[REDACTED:"), "{}", case.name);
        // Valid UTF-8 and every non-ASCII character outside the secrets survives.
        assert!(std::str::from_utf8(out.as_bytes()).is_ok());
        assert_eq!(
            redactor.redact(&out),
            out,
            "{}: redacting twice changes it",
            case.name
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn clean_lines_are_returned_unchanged_and_borrowed() {
    let redactor = Redactor::shared();
    for case in corpus().iter().filter(|c| c.is_clean()) {
        let out = redactor.redact(&case.input);
        assert_eq!(out, case.input, "{}", case.name);
        assert!(matches!(out, Cow::Borrowed(_)), "{}", case.name);
    }
}

/// A `command.completed` (sent to PostHog and the relay / Datadog) carrying `text` in every
/// free-text field, as the decoder produces it with verbose telemetry off (no tails).
fn event_with_free_text(text: &str) -> Event {
    let time = std::time::SystemTime::now();
    Event {
        name: "command.completed".into(),
        entry: lookup("command.completed"),
        time,
        severity: None,
        trace: TraceEnvelope::new(format_timestamp(time), "ct-corpus".into()),
        diagnostics: Diagnostics {
            exit_signal: Some(text.into()),
            abort_reason: Some(text.into()),
            error_stack: Some(text.into()),
            spawn_meta: json!({"argv": ["run", text], "env": {"OUTPUT": text}})
                .as_object()
                .cloned(),
            token_usage: json!({"input": 3, "note": text}).as_object().cloned(),
            extra: json!({"output": text, "nested": {"lines": [text]}})
                .as_object()
                .cloned()
                .unwrap(),
            ..Default::default()
        },
        release_version: Some("1.0.0".into()),
        sample_rate: None,
    }
}

/// Every string value in a JSON document (keys excluded), depth first.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(m) => m.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The corpus through the wire encoders of both streams (PostHog; relay and Datadog), in every
/// free-text field, with verbose off: every secret is gone from every field, and the text
/// around it stays in each of them.
#[test]
fn every_secret_is_gone_from_every_free_text_field_on_both_streams() {
    let mut failures = Vec::new();
    let id = uuid::Uuid::now_v7();
    for case in corpus().iter().filter(|c| !c.is_clean()) {
        let e = event_with_free_text(&case.input);
        let wires = [
            (
                "posthog",
                encode_event(&e, id).expect("valid PostHog event"),
            ),
            ("relay", relay_item(&e, id)),
            ("datadog", datadog_item(&e, id, "host-1").bytes),
        ];
        for (stream, bytes) in wires {
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            let fields = match stream {
                "posthog" => &v["properties"],
                _ => &v["diagnostics"],
            };
            let mut all = Vec::new();
            strings(fields, &mut all);
            // 5 plain fields (exit signal, abort reason, stack, token note, extra output), 2 in
            // spawnMeta and 1 nested in extra.
            let carrying = all.iter().filter(|s| s.contains("[REDACTED:")).count();
            if carrying < 8 {
                failures.push(format!(
                    "{stream} {}: {carrying} redacted fields",
                    case.name
                ));
            }
            for secret in &case.gone {
                if let Some(s) = all.iter().find(|s| s.contains(secret.as_str())) {
                    failures.push(format!("{stream} {}: {secret:?} in {s:?}", case.name));
                }
            }
            for kept in &case.kept {
                let with = all.iter().filter(|s| s.contains(kept.as_str())).count();
                if with < 8 {
                    failures.push(format!("{stream} {}: {kept:?} lost", case.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Multi-byte filler, so cuts land next to multi-byte characters.
fn filler(len: usize) -> String {
    let line = "café ✓ 日本語 — build step ok, 12.4 MiB/s\n";
    line.repeat(len / line.len() + 1)
}

#[test]
fn tails_ending_in_each_case_are_redacted_and_bounded() {
    let redactor = Redactor::shared();
    for case in corpus().iter().filter(|c| !c.is_clean()) {
        let tail = format!("{}{}", filler(TAIL_MAX_BYTES), case.input);
        let tail =
            closedloop_telemetry_layers::__private::truncate::keep_tail(&tail, TAIL_MAX_BYTES);
        let out = redactor.redact_tail(tail);
        assert!(out.len() <= TAIL_MAX_BYTES, "{}", case.name);
        for secret in &case.gone {
            assert!(!out.contains(secret.as_str()), "{}: {secret:?}", case.name);
        }
        for kept in &case.kept {
            assert!(out.contains(kept.as_str()), "{}: {kept:?} lost", case.name);
        }
    }
}

/// Secrets that look like random tokens: cut in half at the start of a tail, their second half
/// must not survive either (the `fragment` and cut-key rules of `redact_tail`).
#[test]
fn a_tail_starting_inside_a_secret_does_not_leak_its_second_half() {
    let redactor = Redactor::shared();
    let mut checked = 0;
    for case in corpus().iter().filter(|c| !c.is_clean()) {
        for secret in &case.gone {
            let at = case.input.find(secret.as_str()).unwrap();
            let mut cut = at + secret.len() / 2;
            while !case.input.is_char_boundary(cut) {
                cut += 1;
            }
            let second_half = &case.input[cut..at + secret.len()];
            let token_like = second_half.len() >= 12
                && second_half
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=_.~-".contains(&b))
                && second_half.bytes().any(|b| b.is_ascii_digit());
            if !token_like {
                continue;
            }
            let out = redactor.redact_tail(&case.input[cut..]);
            assert!(
                !out.contains(second_half),
                "{}: {second_half:?} in {out:?}",
                case.name
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} token-like secrets checked");
}

#[test]
fn a_tail_starting_inside_a_key_still_redacts_its_value() {
    let redactor = Redactor::shared();
    for (tail, value) in [
        ("ssword=letmein\nnext line", "letmein"),
        ("ken\": \"opensesame\"}\n", "opensesame"),
        ("thorization: Bearer abcdefgh\n> Accept: */*", "abcdefgh"),
        ("D=S3cr3tPass;Encrypt=True", "S3cr3tPass"),
    ] {
        let out = redactor.redact_tail(tail);
        assert!(!out.contains(value), "{out}");
    }
    let pem = "QyNTUxOQAAACDfakefakefake\n-----END OPENSSH PRIVATE KEY-----\nafter ✓";
    assert_eq!(redactor.redact_tail(pem), "[REDACTED:private-key]\nafter ✓");
}

/// Strings built from log-ish pieces, secrets and multi-byte characters, separated by spaces
/// (a token glued onto the letters of another one has no word boundary and is not a token).
fn loggy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("password=".to_string()),
        Just("Authorization: Bearer ".to_string()),
        Just("ghp_0aBcDeFgHiJkLmNoPqRsTuVwXyZ012345678".to_string()),
        Just("https://u:p@h.io".to_string()),
        Just("-----BEGIN RSA PRIVATE KEY-----".to_string()),
        Just("-----END RSA PRIVATE KEY-----".to_string()),
        Just("jane@example.com".to_string()),
        Just("eyJhbGciOi.eyJzdWIiOi.c2ln".to_string()),
        Just("\\\"token\\\": \\\"".to_string()),
        Just("Basic dXNlcjpwYXNz".to_string()),
        Just("café ✓ 日本語 ".to_string()),
        "[ -~]{0,12}",
        "\\PC{0,8}",
        Just("\n".to_string()),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn redact_never_panics_and_keeps_clean_text(text in any::<String>()) {
        let out = Redactor::shared().redact(&text);
        prop_assert!(std::str::from_utf8(out.as_bytes()).is_ok());
        if matches!(out, Cow::Borrowed(_)) {
            prop_assert_eq!(out.as_ref(), text.as_str());
        }
    }

    #[test]
    fn redact_tail_is_bounded_on_any_input(text in "\\PC{0,6000}") {
        let out = Redactor::shared().redact_tail(&text);
        prop_assert!(out.len() <= TAIL_MAX_BYTES);
    }

    #[test]
    fn redact_tail_is_bounded_on_secret_heavy_input(text in loggy(), repeat in 1usize..120) {
        let text = vec![text; repeat].join("\n");
        let out = Redactor::shared().redact_tail(&text);
        prop_assert!(out.len() <= TAIL_MAX_BYTES);
        let again = Redactor::shared().redact(&text);
        prop_assert!(!again.contains("ghp_0aBcDeFgHiJkLmNoPqRsTuVwXyZ012345678"));
        prop_assert!(!again.contains("jane@example.com"));
    }

    #[test]
    fn an_embedded_token_always_vanishes(
        before in "[ -~]{0,40}|\\PC{0,20}",
        after in "[ -~]{0,40}|\\PC{0,20}",
    ) {
        let secret = "ghp_ZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210";
        let text = format!("{before} {secret} {after}");
        let out = Redactor::shared().redact(&text);
        prop_assert!(!out.contains(secret), "{}", out);
        prop_assert!(out.ends_with(&after) || after.contains('@') || after.contains('='));
    }
}
