//! `verify`: the seed's runbook, automated. A probe `connection.established` goes through the
//! real pipeline (layer → relay exporter on its default cadence) and its acceptance is
//! confirmed within 60 s.
//!
//! The relay exporter hands its batches to `verify` over the channel transport, and `verify`
//! POSTs each one, unchanged, to `CL_RELAY_URL` (with `CL_RELAY_TOKEN`) or, with no relay
//! configured, to a local collector it starts on loopback. So it sees the exact request that
//! carried the probe and the answer to it: success means a 2xx to the request carrying the
//! probe's own id, never an older event's. The probe's `trace.schemaVersion` and
//! `trace.computeTargetId` are checked in that request; with the local collector they are
//! checked again in what the collector stored under the probe's id. Whether Datadog indexed the
//! message is not checked: the report prints the query for that last step.
//!
//! A local collector verifies only this machine's pipeline, nothing upstream: [`run`] therefore
//! needs `CL_RELAY_URL` and fails with [`VerifyError::NoRelay`] without it, [`run_local`] asks for
//! the local check (the CLI's `verify --local`), and a report of a local check says
//! "nothing upstream was verified".
//!
//! `verify` runs with its own temporary spool (removed when it ends), so nothing spooled by the
//! app is sent and nothing is left in the user's cache dir.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use closedloop_telemetry_exporters::__private::delivery::{
    deadline_after, parse_http_url, HttpTransport, Request, Transport,
};
use closedloop_telemetry_exporters::RelayConnection;
use serde_json::Value;
use tracing_subscriber::prelude::*;

use closedloop_telemetry::EnvOptions;
use closedloop_telemetry::{Consent, Destination};
use closedloop_telemetry_collector::Collector;

/// How long the probe may take to arrive (the runbook's bound).
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one POST of a batch may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Where the probe went (credentials in the URL are not shown).
    pub destination: String,
    /// The computeTargetId the probe carried.
    pub compute_target_id: String,
    /// The probe's message id (the relay message's `id`).
    pub probe_id: String,
    /// The 2xx status the destination answered to the request carrying the probe.
    pub status: u16,
    /// Emission to acceptance.
    pub latency: Duration,
    /// Whether the probe went to a local collector (and its stored copy was inspected too):
    /// then only this machine's pipeline was verified, nothing upstream.
    pub inspected: bool,
}

/// Why verification failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Telemetry could not start.
    #[error(transparent)]
    Init(#[from] closedloop_telemetry::InitError),
    /// The local collector could not start.
    #[error("cannot start the local collector: {0}")]
    Collector(std::io::Error),
    /// No relay is configured (`CL_RELAY_URL`), so there is nothing upstream to verify; use
    /// [`run_local`] to check this machine's pipeline against a local collector.
    #[error(
        "nothing upstream was verified: CL_RELAY_URL is not set; set it to verify the relay, \
         or pass --local to check only this machine's pipeline, against a local collector"
    )]
    NoRelay,
    /// Telemetry is disabled by the environment.
    #[error("telemetry is disabled (DO_NOT_TRACK / CL_TELEMETRY_DISABLED); nothing to verify")]
    Disabled,
    /// The user's stored consent choice is Denied: no probe is sent.
    #[error("telemetry consent is denied on this machine; no probe is sent")]
    ConsentDenied,
    /// The probe was refused or never acknowledged.
    #[error("the probe did not arrive within {0:?}: {1}")]
    NotDelivered(Duration, String),
    /// The probe arrived but its envelope is wrong.
    #[error("the probe arrived but is malformed: {0}")]
    Malformed(String),
}

/// Verifies delivery to the relay the process environment configures (`CL_RELAY_URL`, with
/// `CL_RELAY_TOKEN`). Without one it fails with [`VerifyError::NoRelay`]: there is nothing
/// upstream to verify.
pub fn run() -> Result<VerifyReport, VerifyError> {
    let env = EnvOptions::from_env().map_err(closedloop_telemetry::InitError::from)?;
    if env.relay.is_none() && !env.disabled {
        return Err(VerifyError::NoRelay);
    }
    run_with(env, VERIFY_TIMEOUT)
}

/// Verifies this machine's pipeline only: the probe goes to a local collector this call starts,
/// even when `CL_RELAY_URL` is set. The report says that nothing upstream was verified.
pub fn run_local() -> Result<VerifyReport, VerifyError> {
    let mut env = EnvOptions::from_env().map_err(closedloop_telemetry::InitError::from)?;
    env.relay = None;
    run_with(env, VERIFY_TIMEOUT)
}

/// A directory under the system temp dir, removed on drop.
struct TempSpool(PathBuf);

impl TempSpool {
    fn new() -> Self {
        TempSpool(std::env::temp_dir().join(format!(
            "closedloop-telemetry-verify-{}",
            uuid::Uuid::new_v4().simple()
        )))
    }
}

impl Drop for TempSpool {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the forwarder saw.
#[derive(Debug, Default)]
struct Seen {
    /// The status and the probe message of the first 2xx carrying a probe.
    accepted: Option<(u16, Value)>,
    /// A 4xx/5xx answer: the destination refused the probe's request.
    refused: Option<String>,
    /// The last connection error or timeout (retried until the deadline).
    last_error: Option<String>,
}

/// Takes the relay exporter's batches off the channel and POSTs them to the destination.
struct Forwarder {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Forwarder {
    fn start(
        conn: RelayConnection,
        url: &str,
        token: Option<&str>,
    ) -> Result<Self, closedloop_telemetry::InitError> {
        let url = parse_http_url("CL_RELAY_URL", url)?;
        let mut headers = vec![("content-type", "application/json".to_string())];
        if let Some(t) = token.filter(|t| !t.trim().is_empty()) {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        let transport = HttpTransport::new(url, &headers, REQUEST_TIMEOUT)?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("closedloop-telemetry-verify".into())
            .spawn(move || forward(conn, transport, s, st))
            .map_err(closedloop_telemetry_exporters::BuildError::from)?;
        Ok(Forwarder {
            seen,
            stop,
            thread: Some(thread),
        })
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn forward(
    conn: RelayConnection,
    transport: HttpTransport,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let record = |f: &dyn Fn(&mut Seen)| f(&mut seen.lock().unwrap_or_else(|p| p.into_inner()));
    while !stop.load(Ordering::Acquire) {
        let Some(batch) = conn.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        let request = Request {
            body: batch.body().to_vec(),
            headers: Vec::new(),
            items: batch.items(),
        };
        // The timer is made inside the runtime (it needs its time driver).
        let answer = rt.block_on(async {
            tokio::time::timeout(REQUEST_TIMEOUT, transport.send(request)).await
        });
        match answer {
            Ok(Ok(resp)) if (200..300).contains(&resp.status) => {
                let probe = serde_json::from_slice::<Value>(batch.body())
                    .ok()
                    .and_then(|body| {
                        body.as_array()?
                            .iter()
                            .find(|m| m["event"] == "connection.established")
                            .cloned()
                    });
                if let Some(probe) = probe {
                    record(&|s| {
                        s.accepted.get_or_insert((resp.status, probe.clone()));
                    });
                }
                batch.ack();
            }
            Ok(Ok(resp)) => {
                let why = format!("the destination answered {}: {}", resp.status, resp.reason);
                record(&|s| s.refused = Some(why.clone()));
                batch.fail(why);
            }
            Ok(Err(e)) => {
                let why = e.to_string();
                record(&|s| s.last_error = Some(why.clone()));
                batch.fail(why);
            }
            Err(_) => {
                record(&|s| s.last_error = Some("timed out".into()));
                batch.fail("timed out");
            }
        }
    }
}

/// Checks the probe's envelope: `trace.schemaVersion == "1"`, a non-empty
/// `trace.computeTargetId`. `where_` names the copy checked.
fn check_envelope(message: &Value, where_: &str) -> Result<(), VerifyError> {
    let trace = &message["trace"];
    if trace["schemaVersion"] != "1" {
        return Err(VerifyError::Malformed(format!(
            "{where_}: trace.schemaVersion is {}",
            trace["schemaVersion"]
        )));
    }
    if trace["computeTargetId"].as_str().is_none_or(str::is_empty) {
        return Err(VerifyError::Malformed(format!(
            "{where_}: trace.computeTargetId is empty"
        )));
    }
    Ok(())
}

/// Runs the verification with a given configuration (tests pass their own): to `env`'s relay,
/// or, with none, to a local collector it starts (then nothing upstream is verified, and the
/// report says so).
pub fn run_with(mut env: EnvOptions, timeout: Duration) -> Result<VerifyReport, VerifyError> {
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
    let (url, token) = match (&collector, env.relay.take()) {
        (Some(c), _) => (c.relay_url(), None),
        (None, Some(r)) => (r.url, r.token),
        (None, None) => unreachable!("a collector is started when no relay is configured"),
    };
    let destination = match &collector {
        Some(_) => format!("local collector {url}"),
        None => closedloop_telemetry_exporters::__private::redact_url(&url),
    };
    // Our own spool: nothing the app spooled is sent, nothing is left in its cache dir.
    let spool = TempSpool::new();
    env.spool_dir = Some(spool.0.clone());
    let conn = RelayConnection::new(4);
    let forwarder = Forwarder::start(conn.clone(), &url, token.as_deref())?;
    let telemetry = closedloop_telemetry::builder(env!("CARGO_PKG_VERSION"))
        .merge_env(env)
        .relay_connection(conn)
        // A refused probe must not hold the report back for the default 5 s.
        .shutdown_timeout(Duration::from_secs(2))
        // A check, not the app: no panic hook, no session marker in the app's data directory,
        // and no report of the app's own crashes from here.
        .capture_panics(false)
        .build()?;
    let handle = telemetry.handle();
    if handle.consent() == Consent::Denied {
        return Err(VerifyError::ConsentDenied);
    }
    let (layer, guard) = telemetry.split();
    let emitted = Instant::now();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!(target: "closedloop_verify", event = "connection.established", probe = true);
    });

    // Wait on the default cadence (no flush), as a real event would travel.
    let deadline = deadline_after(emitted, timeout);
    let (status, probe, latency) = loop {
        {
            let seen = forwarder.seen();
            if let Some((status, probe)) = &seen.accepted {
                break (*status, probe.clone(), emitted.elapsed());
            }
            if let Some(why) = &seen.refused {
                return Err(VerifyError::NotDelivered(emitted.elapsed(), why.clone()));
            }
        }
        let relay = handle
            .stats()
            .stream(Destination::Relay)
            .map(|s| s.delivery.clone());
        if let Some(d) = relay.filter(|d| d.dropped.total() > 0) {
            let why = d.last_error.unwrap_or_else(|| "dropped".into());
            return Err(VerifyError::NotDelivered(emitted.elapsed(), why));
        }
        if Instant::now() >= deadline {
            let why = forwarder
                .seen()
                .last_error
                .clone()
                .unwrap_or_else(|| "no acknowledgement".into());
            return Err(VerifyError::NotDelivered(timeout, why));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(guard);
    drop(forwarder);

    let probe_id = probe["id"].as_str().unwrap_or_default().to_string();
    if probe_id.is_empty() {
        return Err(VerifyError::Malformed("the probe message has no id".into()));
    }
    check_envelope(&probe, "in the request sent")?;
    if let Some(c) = &collector {
        let stored = c
            .received_on(Destination::Relay)
            .into_iter()
            .find(|r| r.id.as_deref() == Some(probe_id.as_str()))
            .ok_or_else(|| {
                VerifyError::Malformed(format!(
                    "accepted, but the collector stored no message with id {probe_id}"
                ))
            })?;
        check_envelope(&stored.body, "in the collector")?;
    }
    drop(spool);
    Ok(VerifyReport {
        destination,
        compute_target_id: probe["trace"]["computeTargetId"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        probe_id,
        status,
        latency,
        inspected: collector.is_some(),
    })
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "probe connection.established (id {}) → {}",
            self.probe_id, self.destination
        )?;
        writeln!(
            f,
            "accepted: the destination answered {} to the request carrying the probe's id, {} ms after it was emitted",
            self.status,
            self.latency.as_millis()
        )?;
        let where_ = if self.inspected {
            "in the request sent and in the collector's stored copy"
        } else {
            "in the request sent"
        };
        writeln!(
            f,
            "checked {where_}: trace.schemaVersion=\"1\" and trace.computeTargetId={}",
            self.compute_target_id
        )?;
        if self.inspected {
            writeln!(
                f,
                "nothing upstream was verified: the probe went to a local collector started for this check, not to a relay (CL_RELAY_URL)"
            )?;
        } else {
            writeln!(
                f,
                "not checked: that Datadog indexed it; in Datadog, search: @trace.computeTargetId:{} @event:connection.established (message id {})",
                self.compute_target_id, self.probe_id
            )?;
        }
        write!(f, "verify: ok")
    }
}
