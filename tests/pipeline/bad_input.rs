//! The bad-input suite, through the facade (`closedloop_telemetry::builder`) with PostHog and
//! the relay on a loopback server: unknown names, huge strings, control characters, odd
//! `Debug` values, wrong types, deep JSON, empty names and 16 threads at once. Each case has
//! a defined outcome, asserted here; none may panic.

use closedloop_telemetry_test_support as support;

use std::collections::HashSet;
use std::time::Duration;

use closedloop_telemetry::{Destination, TelemetryGuard, TelemetryHandle};
use support::process::status_kib;
use support::server::{Reply, Request, TestServer};
use tracing::{info, Dispatch};
use tracing_subscriber::prelude::*;

const WAIT: Duration = Duration::from_secs(8);

struct Rig {
    server: TestServer,
    handle: TelemetryHandle,
    dispatch: Dispatch,
    _guard: TelemetryGuard,
    dir: std::path::PathBuf,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rig() -> Rig {
    let server = TestServer::start(|_, _| Reply::ok());
    let dir = std::env::temp_dir().join(format!("cl-bad-input-{}", uuid::Uuid::new_v4()));
    let telemetry = closedloop_telemetry::builder("1.0.0")
        .posthog("phc_test", server.base())
        .relay(server.url("/relay"), None)
        .compute_target_id("ct-bad")
        .spool_dir(&dir)
        .data_dir(dir.join("data"))
        .relay_max_delay(Duration::from_millis(20))
        .posthog_flush_interval(Duration::from_millis(20))
        // Bursts of one name (sixteen threads): delivery, not volume control, is tested here.
        .rate_limit(None)
        .build()
        .unwrap();
    let handle = telemetry.handle().clone();
    let (layer, guard) = telemetry.split();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    Rig {
        server,
        handle,
        dispatch,
        _guard: guard,
        dir,
    }
}

impl Rig {
    fn emit(&self, f: impl FnOnce()) {
        tracing::dispatcher::with_default(&self.dispatch, f);
    }

    /// Flushes, then checks the accounting of every stream: everything routed was sent or
    /// dropped with a reason, nothing is left queued.
    fn settle(&self) -> closedloop_telemetry::TelemetryStats {
        let report = self.handle.flush(WAIT);
        assert!(report.is_complete(), "{report}");
        let stats = self.handle.stats();
        for s in &stats.streams {
            let d = &s.delivery;
            assert_eq!(d.queued, 0, "{s:?}");
            assert_eq!(d.sent + d.dropped.total(), s.routed, "{s:?}");
        }
        stats
    }

    fn relay_messages(&self) -> Vec<serde_json::Value> {
        self.server
            .requests()
            .iter()
            .filter(|r| r.path == "/relay")
            .flat_map(|r: &Request| r.json().as_array().cloned().unwrap_or_default())
            .collect()
    }

    fn posthog_events(&self) -> Vec<serde_json::Value> {
        self.server
            .requests()
            .iter()
            .filter(|r| r.path != "/relay")
            .flat_map(|r| r.json()["batch"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

#[test]
fn ten_thousand_unknown_event_names_are_counted_not_sent() {
    let rig = rig();
    let before = status_kib("VmRSS:");
    rig.emit(|| {
        for i in 0..10_000 {
            let name = format!("unknown.event_{i}");
            info!(event = name.as_str(), n = i);
        }
    });
    let grown_mib = status_kib("VmRSS:").saturating_sub(before) / 1024;
    assert!(grown_mib < 100, "RSS grew by {grown_mib} MiB");
    let stats = rig.settle();
    assert_eq!(stats.layer.unknown_name, 10_000);
    assert_eq!(stats.layer.emitted, 0);
    assert!(rig.server.requests().is_empty(), "nothing sent");
}

#[test]
fn one_mib_strings_in_every_field_are_truncated_and_delivered() {
    let rig = rig();
    let big = "x".repeat(1 << 20);
    rig.emit(|| {
        let _l = tracing::info_span!("loop", loop_id = big.as_str()).entered();
        let _j = tracing::info_span!("job", job_id = big.as_str()).entered();
        info!(
            event = "job.failed",
            error = big.as_str(),
            log_tail = big.as_str(),
            stderr_tail = big.as_str(),
            exit_code = 1,
            extra.note = big.as_str(),
        );
        let _c = tracing::info_span!("command", command_id = big.as_str()).entered();
        info!(
            event = "command.completed",
            exit_code = 0,
            reason = big.as_str()
        );
    });
    let stats = rig.settle();
    assert!(stats.layer.truncated_fields > 0, "{:?}", stats.layer);
    let delivered = rig.relay_messages().len() + rig.posthog_events().len();
    let dropped: u64 = stats
        .streams
        .iter()
        .map(|s| s.delivery.dropped.total())
        .sum();
    let routed: u64 = stats.streams.iter().map(|s| s.routed).sum();
    // job.failed goes to the relay, command.completed to both streams.
    assert_eq!(routed, 3);
    assert_eq!(
        delivered as u64 + dropped,
        routed,
        "each delivered or counted"
    );
    eprintln!("1 MiB fields: delivered {delivered}, dropped {dropped}");
    for r in rig.server.requests() {
        assert!(
            r.body.len() < 1 << 20,
            "bodies stay bounded: {}",
            r.body.len()
        );
    }
}

struct Odd;

impl std::fmt::Debug for Odd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Odd {{ \"quote\\\" \u{0}\u{7}\u{1b}[31m\r\n\u{feff}\u{10ffff} }}"
        )
    }
}

#[test]
fn control_characters_and_odd_debug_values_arrive_as_valid_json() {
    let rig = rig();
    let nasty = "a\u{0}b\u{1b}[31mc\r\nd\u{7f}\u{202e}e\"\\";
    rig.emit(|| {
        let _j = tracing::info_span!("job", job_id = nasty).entered();
        info!(event = "job.completed", exit_code = 0, extra.odd = ?Odd, extra.nasty = nasty);
    });
    rig.settle();
    let msgs = rig.relay_messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        msgs[0]["trace"]["jobId"], nasty,
        "kept exactly, escaped on the wire"
    );
}

#[test]
fn wrong_types_are_moved_to_extra_and_delivered() {
    let rig = rig();
    rig.emit(|| {
        info!(
            event = "job.completed",
            exit_code = "zero",
            elapsed_ms = -5.5,
            job_id = 42
        );
    });
    let stats = rig.settle();
    assert!(stats.layer.retyped_fields >= 1, "{:?}", stats.layer);
    let msgs = rig.relay_messages();
    assert_eq!(msgs.len(), 1, "the event still goes");
}

#[test]
fn deeply_nested_extra_json_neither_overflows_nor_is_lost() {
    let rig = rig();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_obj = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    rig.emit(|| {
        info!(
            event = "job.started",
            spawn_meta = deep.as_str(),
            extra.deep = deep_obj.as_str()
        );
    });
    let stats = rig.settle();
    let msgs = rig.relay_messages();
    let delivered = msgs.len() as u64;
    let dropped: u64 = stats
        .streams
        .iter()
        .map(|s| s.delivery.dropped.total())
        .sum();
    assert_eq!(
        delivered + dropped,
        1,
        "delivered or counted, never a crash"
    );
    // Not a JSON object (and past serde_json's depth limit): kept as a string in `extra`,
    // bounded in length, never parsed recursively.
    assert_eq!(msgs.len(), 1);
    let d = &msgs[0]["diagnostics"];
    assert!(d.get("spawnMeta").is_none());
    for key in ["spawn_meta", "deep"] {
        let v = d["extra"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} kept as a string"));
        assert!(v.starts_with("[[[") || v.starts_with("{\"a\":"), "{key}");
    }
}

#[test]
fn empty_and_whitespace_event_names_are_counted_and_not_sent() {
    let rig = rig();
    rig.emit(|| {
        info!(event = "");
        info!(event = "   ");
        info!(event = "\t\n");
        info!(event = 7);
    });
    let stats = rig.settle();
    assert_eq!(stats.layer.invalid_name, 4, "{:?}", stats.layer);
    assert_eq!(stats.layer.emitted, 0);
    assert!(rig.server.requests().is_empty());
}

#[test]
fn sixteen_threads_emitting_at_once_are_all_delivered() {
    let rig = rig();
    std::thread::scope(|s| {
        for t in 0..16 {
            let dispatch = rig.dispatch.clone();
            s.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..100 {
                        let job = format!("t{t}-{i}");
                        let _j = tracing::info_span!("job", job_id = job.as_str()).entered();
                        info!(event = "job.completed", exit_code = 0);
                    }
                });
            });
        }
    });
    let stats = rig.settle();
    let ids: HashSet<String> = rig
        .relay_messages()
        .iter()
        .map(|m| m["trace"]["jobId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1600);
    let relay = stats.stream(Destination::Relay).unwrap();
    assert_eq!(
        (relay.delivery.sent, relay.delivery.dropped.total()),
        (1600, 0)
    );
}
