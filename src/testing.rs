//! Test kit (feature `testing`): run app code under the real pipeline and assert on exactly what
//! each stream would receive.
//!
//! The kit starts a [`Collector`] on loopback, points PostHog and the relay at it, runs your
//! closure with our layer as the thread's subscriber, shuts down (flushing both streams) and
//! returns what arrived, validated the way the real services validate.
//!
//! ```
//! use closedloop_telemetry::testing::capture;
//!
//! let got = capture(|| {
//!     let _cmd = tracing::info_span!("command", command_id = "C1").entered();
//!     tracing::info!(event = "command.completed", exit_code = 0);
//! });
//! assert_eq!(got.posthog_names(), ["command_completed"]);
//! assert_eq!(got.relay_names(), ["command.completed"]);
//! let msg = got.relay_event("command.completed").unwrap();
//! assert_eq!(msg["trace"]["commandId"], "C1");
//! assert_eq!(msg["diagnostics"]["exitCode"], 0);
//! assert_eq!(got.posthog[0]["properties"]["command_id"], "C1");
//! ```

use std::net::SocketAddr;

use serde_json::Value;
use tracing_subscriber::prelude::*;

use crate::collector::{Collector, Destination};
use crate::{ActivityEntry, ShutdownReport, TelemetryBuilder};

/// The computeTargetId the kit uses unless the builder sets one.
pub const TEST_COMPUTE_TARGET_ID: &str = "ct-test-kit";

/// What the streams received during a [`capture`].
#[derive(Debug, Clone)]
pub struct Captured {
    /// PostHog events (the objects of each `/batch/` body's `batch`), in arrival order.
    pub posthog: Vec<Value>,
    /// Relay messages (`desktop.telemetry`), in arrival order.
    pub relay: Vec<Value>,
    /// The local activity log (never sent anywhere).
    pub activity: Vec<ActivityEntry>,
    /// The shutdown report (what could not be delivered).
    pub report: ShutdownReport,
}

impl Captured {
    /// PostHog event names in arrival order.
    pub fn posthog_names(&self) -> Vec<&str> {
        self.posthog
            .iter()
            .filter_map(|e| e["event"].as_str())
            .collect()
    }

    /// Relay event names in arrival order.
    pub fn relay_names(&self) -> Vec<&str> {
        self.relay
            .iter()
            .filter_map(|e| e["event"].as_str())
            .collect()
    }

    /// The first relay message with this event name.
    pub fn relay_event(&self, name: &str) -> Option<&Value> {
        self.relay.iter().find(|e| e["event"] == name)
    }

    /// The first PostHog event with this name.
    pub fn posthog_event(&self, name: &str) -> Option<&Value> {
        self.posthog.iter().find(|e| e["event"] == name)
    }
}

/// Runs `f` under the default pipeline (verbose off) and returns what each stream received.
pub fn capture(f: impl FnOnce()) -> Captured {
    capture_with(|b| b, f)
}

/// Like [`capture`], with the builder adjusted first (e.g. `|b| b.verbose(true)`).
///
/// # Panics
/// When the loopback collector or the pipeline cannot start: this is a test helper.
pub fn capture_with(
    configure: impl FnOnce(TelemetryBuilder) -> TelemetryBuilder,
    f: impl FnOnce(),
) -> Captured {
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let collector = Collector::start(addr).expect("start the loopback collector");
    // A spool and a data directory of its own, so captures never replay each other's (or the
    // app's) events and the machine's stored consent choice does not apply.
    let own = std::env::temp_dir().join(format!("closedloop-test-kit-{}", uuid::Uuid::new_v4()));
    let spool = own.join("spool");
    let builder = crate::builder("0.0.0-test")
        .compute_target_id(TEST_COMPUTE_TARGET_ID)
        .data_dir(own.join("data"))
        .spool_dir(&spool)
        .posthog("phc_test_kit", collector.posthog_host())
        .relay(collector.relay_url(), None);
    let telemetry = configure(builder)
        .build()
        .expect("the test pipeline starts");
    let handle = telemetry.handle();
    let (layer, guard) = telemetry.split();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    let report = guard.shutdown();
    let posthog = collector.received_on(Destination::PostHog);
    let relay = collector.received_on(Destination::Relay);
    collector.shutdown();
    let _ = std::fs::remove_dir_all(&own);
    Captured {
        posthog: posthog.into_iter().map(|r| r.body).collect(),
        relay: relay.into_iter().map(|r| r.body).collect(),
        activity: handle.activity().snapshot(),
        report,
    }
}
