//! `verify`: the seed's runbook, automated. A probe `connection.established` goes through the
//! real pipeline (layer → relay exporter → HTTP) and its arrival is confirmed within 60 s.
//!
//! With `CL_RELAY_URL` set, the probe goes to that relay and "arrived" means the relay accepted
//! it (a 2xx); whether it then shows in Datadog is for the runbook's query, which the report
//! prints. With no relay configured, a local collector is started on loopback and the probe
//! is checked there field by field (`trace.schemaVersion == "1"`, non-empty
//! `trace.computeTargetId`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;

use crate::collector::{Collector, Stream};
use crate::config::EnvConfig;
use crate::StreamKind;

/// How long the probe may take to arrive (the runbook's bound).
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// A successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Where the probe went.
    pub destination: String,
    /// The computeTargetId the probe carried.
    pub compute_target_id: String,
    /// Emission to acceptance (relay) or to arrival (local collector).
    pub latency: Duration,
    /// Whether the probe's body was inspected (local collector) or only its acceptance seen.
    pub inspected: bool,
}

/// Why verification failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Telemetry could not start.
    #[error(transparent)]
    Init(#[from] crate::InitError),
    /// The local collector could not start.
    #[error("cannot start the local collector: {0}")]
    Collector(std::io::Error),
    /// Telemetry is disabled by the environment.
    #[error("telemetry is disabled (DO_NOT_TRACK / CL_TELEMETRY_DISABLED); nothing to verify")]
    Disabled,
    /// The probe was refused or never acknowledged.
    #[error("the probe did not arrive within {0:?}: {1}")]
    NotDelivered(Duration, String),
    /// The probe arrived but its envelope is wrong.
    #[error("the probe arrived but is malformed: {0}")]
    Malformed(String),
}

/// Runs the verification with the process environment.
pub fn run() -> Result<VerifyReport, VerifyError> {
    let env = EnvConfig::from_env().map_err(crate::InitError::from)?;
    run_with(env, VERIFY_TIMEOUT)
}

/// Runs the verification with a given configuration (tests pass their own).
pub fn run_with(mut env: EnvConfig, timeout: Duration) -> Result<VerifyReport, VerifyError> {
    if env.disabled {
        return Err(VerifyError::Disabled);
    }
    // Only the diagnostics stream is verified; never send a probe to PostHog.
    env.posthog = None;
    env.datadog = None;
    let collector = match &env.relay {
        Some(_) => None,
        None => {
            let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
            Some(Collector::start(addr).map_err(VerifyError::Collector)?)
        }
    };
    let mut builder = crate::builder(env!("CARGO_PKG_VERSION")).merge_env(env.clone());
    if let Some(c) = &collector {
        builder = builder.relay(c.relay_url(), None);
    }
    let telemetry = builder.build()?;
    let handle = telemetry.handle();
    let destination = match (&collector, &env.relay) {
        (Some(c), _) => format!("local collector {}", c.relay_url()),
        (None, Some(r)) => closedloop_telemetry_exporters::redact_url(&r.url),
        (None, None) => unreachable!("a collector is started when no relay is configured"),
    };
    let (layer, guard) = telemetry.split();
    let emitted = Instant::now();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!(target: "closedloop_verify", event = "connection.established", probe = true);
    });

    // Wait on the default cadence (no flush), as a real event would travel.
    let deadline = emitted + timeout;
    let latency = loop {
        let stats = handle.stats();
        let relay = stats.stream(StreamKind::Relay).map(|s| s.delivery.clone());
        if let Some(d) = &relay {
            if d.sent >= 1 {
                break emitted.elapsed();
            }
            if d.dropped.total() > 0 {
                let why = d.last_error.clone().unwrap_or_else(|| "dropped".into());
                drop(guard);
                return Err(VerifyError::NotDelivered(emitted.elapsed(), why));
            }
        }
        if Instant::now() >= deadline {
            let why = relay
                .and_then(|d| d.last_error)
                .unwrap_or_else(|| "no acknowledgement".into());
            drop(guard);
            return Err(VerifyError::NotDelivered(timeout, why));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(guard);

    if let Some(c) = &collector {
        let got = c.received_on(Stream::Relay);
        let probe = got
            .iter()
            .find(|r| r.name == "connection.established")
            .ok_or_else(|| VerifyError::Malformed("accepted but not recorded".into()))?;
        let trace = &probe.body["trace"];
        if trace["schemaVersion"] != "1" {
            return Err(VerifyError::Malformed(format!(
                "trace.schemaVersion is {}",
                trace["schemaVersion"]
            )));
        }
        if trace["computeTargetId"].as_str().is_none_or(str::is_empty) {
            return Err(VerifyError::Malformed(
                "trace.computeTargetId is empty".into(),
            ));
        }
    }
    Ok(VerifyReport {
        destination,
        compute_target_id: handle.compute_target_id().to_string(),
        latency,
        inspected: collector.is_some(),
    })
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "probe connection.established → {}", self.destination)?;
        if self.inspected {
            writeln!(
                f,
                "arrived in {} ms with trace.schemaVersion=\"1\" and trace.computeTargetId={}",
                self.latency.as_millis(),
                self.compute_target_id
            )?;
        } else {
            writeln!(
                f,
                "accepted by the relay in {} ms (trace.schemaVersion=\"1\", trace.computeTargetId={})",
                self.latency.as_millis(),
                self.compute_target_id
            )?;
            writeln!(
                f,
                "in Datadog, search: @trace.computeTargetId:{} @event:connection.established",
                self.compute_target_id
            )?;
        }
        write!(f, "verify: ok")
    }
}
