//! One example per pattern; the realistic corpus is in the root `tests/redaction.rs`.

use super::*;

fn r(text: &str) -> String {
    Redactor::shared().redact(text).into_owned()
}

#[test]
fn each_kind_has_an_example() {
    let cases = [
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\nok",
            "[REDACTED:private-key]\nok",
        ),
        (
            "> Authorization: Basic dXNlcjpwYXNz\r\n> Accept: */*",
            "> Authorization: [REDACTED:authorization]\r\n> Accept: */*",
        ),
        (
            r#"{"Cookie": "sid=abc; theme=dark", "x": 1}"#,
            r#"{"Cookie": "[REDACTED:cookie]", "x": 1}"#,
        ),
        (
            "git clone https://bob:pa55@example.com/r.git",
            "git clone https://bob:[REDACTED:url-password]@example.com/r.git",
        ),
        (
            "post https://hooks.slack.com/services/T000/B000/XXXX done",
            "post https://hooks.slack.com/[REDACTED:slack-webhook] done",
        ),
        (
            "using ghp_0123456789abcdefghijABCDEFGHIJ012345 ok",
            "using [REDACTED:github-token] ok",
        ),
        ("xoxb-1234567890-abcdefghij", "[REDACTED:slack-token]"),
        (
            "key sk_live_0123456789abcdef.",
            "key [REDACTED:stripe-key].",
        ),
        (
            "phc_0123456789abcdefghijABCDEFGHIJ",
            "[REDACTED:posthog-key]",
        ),
        (
            "OPENAI sk-proj-0123456789abcdefghijKLMN",
            "OPENAI [REDACTED:openai-key]",
        ),
        (
            "id AKIAIOSFODNN7EXAMPLE,",
            "id [REDACTED:aws-access-key-id],",
        ),
        (
            "t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl end",
            "t=[REDACTED:jwt] end",
        ),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = [REDACTED:aws-secret-key]",
        ),
        (
            "DD_API_KEY=0123456789abcdef0123456789abcdef",
            "DD_API_KEY=[REDACTED:datadog-key]",
        ),
        (
            "retry with bearer abc123def456",
            "retry with bearer [REDACTED:bearer]",
        ),
        (
            "sent Basic dXNlcjpwYXNz",
            "sent Basic [REDACTED:basic-auth]",
        ),
        (
            "db_password=hunter2 host=db",
            "db_password=[REDACTED:secret] host=db",
        ),
        (
            "Server=db;Uid=sa;Pwd=S3cret!;",
            "Server=db;Uid=sa;Pwd=[REDACTED:secret];",
        ),
        ("mail jane.doe@example.com now", "mail [REDACTED:email] now"),
    ];
    for (input, want) in cases {
        assert_eq!(r(input), want, "input: {input}");
    }
}

#[test]
fn look_alikes_are_left_alone() {
    for clean in [
        "Basic usage: cargo run",
        "the bearer instrument",
        "max_tokens=256 prompt_tokens: 12",
        "PWD=/home/me OLDPWD=/tmp",
        "git@github.com: Permission denied (publickey).",
        "password: null",
        "token=*** secret=[REDACTED]",
        "commit 3f2a9c1e0b7d4a6f8e9d0c1b2a3f4e5d6c7b8a9f",
        "uuid 123e4567-e89b-12d3-a456-426614174000 v1.2.3-rc.1",
        "task-runner-0123456789-abcdefghij started",
    ] {
        assert_eq!(r(clean), clean);
    }
}

#[test]
fn redaction_is_idempotent() {
    let once = r("Authorization: Bearer abc123def456 password=hunter2 bob@example.com");
    assert_eq!(r(&once), once);
}

#[test]
fn tail_starting_inside_a_token_or_key_is_redacted() {
    let red = Redactor::shared();
    assert_eq!(
        red.redact_tail("9abcdefGHIJ012345 rest of line\nnext"),
        "[REDACTED:fragment] rest of line\nnext"
    );
    assert_eq!(
        red.redact_tail("MIIEow\nAbCd==\n-----END PRIVATE KEY-----\nafter"),
        "[REDACTED:private-key]\nafter"
    );
    // Ordinary first words stay.
    assert_eq!(red.redact_tail("Compiling foo v1.0"), "Compiling foo v1.0");
    assert_eq!(red.redact_tail("abc1234 fix"), "abc1234 fix");
}

#[test]
fn tail_keeps_the_bound_when_markers_are_longer_than_secrets() {
    let tail = "pw=a ".repeat(TAIL_MAX_BYTES / 5);
    let out = Redactor::shared().redact_tail(&tail);
    assert!(out.len() <= TAIL_MAX_BYTES);
    assert!(out.ends_with("pw=a "), "pw is not a key, kept: {out:.40}");
    let tail = "password=a ".repeat(TAIL_MAX_BYTES / 11);
    let out = Redactor::shared().redact_tail(&tail);
    assert!(out.len() <= TAIL_MAX_BYTES && out.ends_with("password=[REDACTED:secret] "));
}
