//! Consent withdrawal under load: once `set_consent(Denied)` returns, no request carrying an
//! event leaves the process, even though app threads were emitting right up to the call.
//! Through the public builder with its default batching and retry policy.

use closedloop_telemetry_test_support as support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use closedloop_telemetry::Consent;
use closedloop_telemetry::TelemetryHandle;
use support::accounting::assert_accounting;
use support::server::{Reply, TestServer};
use tracing_subscriber::prelude::*;

const THREADS: usize = 8;
const DEADLINE: Duration = Duration::from_secs(30);

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cl-race-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A field value that, formatted once armed, parks its thread inside the layer (after the
/// consent gate) until released: the app thread that "passed the gate a moment earlier".
struct Held {
    armed: AtomicBool,
    entered: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.armed.swap(false, Ordering::AcqRel) {
            let _ = self.entered.lock().unwrap().send(());
            let _ = self.release.lock().unwrap().recv();
        }
        f.write_str("held")
    }
}

fn purged(handle: &TelemetryHandle) -> u64 {
    handle
        .stats()
        .streams
        .iter()
        .map(|s| s.delivery.dropped.purged)
        .sum()
}

fn run_once(round: usize) {
    // Every answer is a little slow, so a request is often on the wire when Denied comes.
    let server = TestServer::start(|_, _| Reply::ok().delay(Duration::from_millis(5)));
    let dir = temp_dir(&format!("r{round}"));
    let telemetry = closedloop_telemetry::builder("1.0.0")
        .posthog("phc_test", server.base())
        .relay(server.url("/relay"), None)
        .compute_target_id("ct-race")
        .data_dir(&dir)
        .spool_dir(dir.join("spool"))
        .build()
        .unwrap();
    let handle = telemetry.handle();
    let (layer, guard) = telemetry.split();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let stop = Arc::new(AtomicBool::new(false));
    let emitted = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (dispatch, stop, emitted) = (dispatch.clone(), stop.clone(), emitted.clone());
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let mut n = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        tracing::info!(event = "command.started");
                        tracing::info!(event = "job.completed", exit_code = 0);
                        emitted.fetch_add(2, Ordering::Relaxed);
                        // An app's threads do other work between events: a pause now and
                        // then leaves the 2-core CI machine's background-priority telemetry
                        // workers some CPU, so traffic flows before the denial. The threads
                        // still emit right up to the call.
                        n = n.wrapping_add(1);
                        if n % 50 == 0 {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    }
                })
            })
        })
        .collect();

    // Traffic flows (PostHog batches of 20 go at once) before consent is withdrawn.
    assert!(
        server.wait_for(3, DEADLINE).len() >= 3,
        "no traffic before Denied"
    );
    // One more thread passes the gate and is held inside the layer, mid-record.
    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let held = Arc::new(Held {
        armed: AtomicBool::new(true),
        entered: Mutex::new(entered_tx),
        release: Mutex::new(release_rx),
    });
    let straggler = {
        let (dispatch, held) = (dispatch.clone(), held.clone());
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                tracing::info!(event = "command.started", note = %held);
            })
        })
    };
    entered
        .recv_timeout(DEADLINE)
        .expect("the layer formats the held field");

    handle.set_consent(Consent::Denied).unwrap();
    let at_return = server.requests().len();
    let purged_at_return = purged(&handle);
    // The held thread finishes its record now, after the call returned.
    release.send(()).unwrap();
    straggler.join().unwrap();

    // The threads keep emitting for a while after the call, then stop.
    let after = emitted.load(Ordering::Relaxed);
    while emitted.load(Ordering::Relaxed) < after + 10_000 {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }

    // Wait on the pipeline, not a clock: the flush pushes the hand-off queue through and
    // returns once every engine is idle; shutdown stops the workers (nothing can send later).
    let report = handle.flush(DEADLINE);
    assert!(report.is_complete(), "{report}");
    assert_accounting(handle.stats());
    let report = guard.shutdown();
    assert_eq!(report.remaining(), 0, "{report}");
    assert_accounting(handle.stats());
    let stats = handle.stats();
    for s in &stats.streams {
        assert_eq!(s.delivery.queued, 0, "{:?}", s.kind);
    }
    assert!(
        purged(&handle) > purged_at_return,
        "the held record reached the engines after the call and was dropped there as purged"
    );
    assert_eq!(
        server.requests().len(),
        at_return,
        "round {round}: a request arrived after set_consent(Denied) returned"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nothing_leaves_after_deny_returns_while_eight_threads_emit() {
    for round in 0..5 {
        run_once(round);
    }
}

#[test]
fn a_grant_after_a_denied_start_reopens_the_engine_gates() {
    let server = TestServer::start(|_, _| Reply::ok());
    let dir = temp_dir("grant");
    let telemetry = closedloop_telemetry::builder("1.0.0")
        .posthog("phc_test", server.base())
        .relay(server.url("/relay"), None)
        .compute_target_id("ct-race")
        .data_dir(&dir)
        .spool_dir(dir.join("spool"))
        .default_consent(Consent::Denied)
        .build()
        .unwrap();
    let handle = telemetry.handle();
    assert!(!handle.is_upstream_enabled());
    handle.set_consent(Consent::Granted).unwrap();
    let (layer, guard) = telemetry.split();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!(event = "command.started");
    });
    assert!(handle.flush(DEADLINE).is_complete());
    assert_eq!(
        server.wait_for(2, DEADLINE).len(),
        2,
        "both streams deliver"
    );
    assert_eq!(purged(&handle), 0);
    assert_accounting(handle.stats());
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two threads, one granting and one denying, over and over: once both are done, what
/// `consent()` says is what happens to the next event (delivered when Granted, nothing sent
/// when Denied), and what the stored file says.
#[test]
fn concurrent_grant_and_deny_leave_the_choice_and_the_gates_agreeing() {
    let server = TestServer::start(|_, _| Reply::ok());
    let dir = temp_dir("flip");
    let telemetry = closedloop_telemetry::builder("1.0.0")
        .posthog("phc_test", server.base())
        .compute_target_id("ct-race")
        .data_dir(&dir)
        .spool_dir(dir.join("spool"))
        .posthog_flush_interval(Duration::ZERO)
        .build()
        .unwrap();
    let handle = telemetry.handle();
    let (layer, guard) = telemetry.split();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    for round in 0..20 {
        let flips: Vec<_> = [Consent::Denied, Consent::Granted]
            .into_iter()
            .map(|choice| {
                let handle = handle.clone();
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        let _ = handle.set_consent(choice);
                    }
                })
            })
            .collect();
        for t in flips {
            t.join().unwrap();
        }
        let before = server.requests().len();
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!(event = "command.started", round);
        });
        let report = handle.flush(DEADLINE);
        let choice = handle.consent();
        let stored = std::fs::read_to_string(dir.join("consent")).unwrap_or_default();
        match choice {
            Consent::Granted => {
                assert!(report.is_complete(), "round {round}: {report}");
                assert_eq!(
                    server.requests().len(),
                    before + 1,
                    "round {round}: consent() says Granted but the event was not sent"
                );
                assert!(handle.is_upstream_enabled(), "round {round}");
            }
            Consent::Denied => {
                assert_eq!(
                    server.requests().len(),
                    before,
                    "round {round}: consent() says Denied but the event was sent"
                );
                assert!(!handle.is_upstream_enabled(), "round {round}");
            }
        }
        assert_eq!(
            stored.trim(),
            match choice {
                Consent::Granted => "granted",
                Consent::Denied => "denied",
            },
            "round {round}: the stored choice"
        );
    }
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}
