//! The command-line tool refuses bad arguments with a clear message and exit code 2, never a
//! panic: an out-of-range `--max-seconds` and arguments that are not UTF-8.

use std::ffi::{OsStr, OsString};
use std::process::{Command, Output};

/// `before`, a byte or code unit that is not valid text on this platform, then `after`.
#[cfg(unix)]
fn not_utf8(before: &str, after: &str) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    OsString::from_vec([before.as_bytes(), b"\xff", after.as_bytes()].concat())
}

/// `before`, a byte or code unit that is not valid text on this platform, then `after`.
#[cfg(windows)]
fn not_utf8(before: &str, after: &str) -> OsString {
    use std::os::windows::ffi::OsStringExt;
    let mut wide: Vec<u16> = before.encode_utf16().collect();
    wide.push(0xD800); // an unpaired surrogate
    wide.extend(after.encode_utf16());
    OsString::from_wide(&wide)
}

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
    let (command, token) = (not_utf8("coll", "ect"), not_utf8("", ""));
    for args in [
        vec![command.as_os_str()],
        vec![
            OsStr::new("collect"),
            OsStr::new("--token"),
            token.as_os_str(),
        ],
    ] {
        let out = run(&args);
        assert_refused(&out, "is not valid UTF-8");
    }
}
