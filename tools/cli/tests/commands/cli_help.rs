//! The command-line tool (clap): `--help` for every subcommand, clear usage errors (exit 2).

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_closedloop-telemetry"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["collect", "verify", "schema", "audit"] {
        for flag in ["--help", "-h"] {
            let out = run(&[sub, flag]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{sub} {flag}: {stdout}");
            assert!(
                stdout.contains(&format!("usage: closedloop-telemetry {sub}")),
                "{sub} {flag}: {stdout}"
            );
        }
    }
    let out = run(&["help", "collect"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--max-seconds"));
    let out = run(&["help", "verify"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--local"));
}

#[test]
fn usage_errors_say_what_is_wrong_and_exit_2() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["schema", "nope"],
            "possible values: relay, datadog, posthog",
        ),
        (&["collect", "--max-seconds", "soon"], "--max-seconds"),
        (
            &["collect", "--frobnicate"],
            "unexpected argument '--frobnicate'",
        ),
        (&["audit", "--ndjson"], "a value is required for '--ndjson"),
    ];
    for (args, wanted) in cases {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(wanted), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
