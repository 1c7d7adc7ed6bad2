//! The command-line tool refuses bad arguments with a clear message and exit code 2, never a
//! panic: an out-of-range `--max-seconds` and arguments that are not UTF-8.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output};

fn run(args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_closedloop-telemetry"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn assert_refused(out: &Output, wanted: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(wanted), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_huge_max_seconds_is_refused_not_a_panic() {
    let out = run(&[
        OsStr::new("collect"),
        OsStr::new("--max-seconds"),
        OsStr::new("18446744073709551615"),
    ]);
    assert_refused(&out, "--max-seconds: 18446744073709551615 is more than");
}

#[test]
fn non_utf8_arguments_are_refused_not_a_panic() {
    for args in [
        vec![OsStr::from_bytes(b"coll\xffect")],
        vec![
            OsStr::new("collect"),
            OsStr::new("--token"),
            OsStr::from_bytes(b"\xfe\xff"),
        ],
    ] {
        let out = run(&args);
        assert_refused(&out, "is not valid UTF-8");
    }
}
