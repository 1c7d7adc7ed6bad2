//! Test kit (feature `testing`): run app code under the real pipeline and assert on exactly what
//! each stream would receive, with no server.
//!
//! The kit configures PostHog (key `phc_test_kit`, host `http://test-kit.invalid`) and the
//! relay (`http://test-kit.invalid/relay`) as an app would, but their streams send through the
//! exporters' in-memory transport (`MemoryTransport`) instead of HTTP: the request bodies it
//! records are byte for byte the ones HTTP would carry (same wire formats, same framing, gzip
//! when [`DeliveryOptions`](crate::exporters::DeliveryOptions) asks for it), and every
//! request is answered `200`. [`capture`] runs your closure with our layer as the thread's
//! subscriber, shuts down (flushing both streams) and returns what each stream received, decoded
//! into JSON.
//!
//! Nothing here checks the bodies against the published wire schemas (`docs/schema/`) or the
//! way the real services would: that stays the job of the local collector (a tool, feature
//! `collector` today), which validates what it receives. Nothing is ever refused either, so a
//! body a service would reject still shows up in [`Captured`].
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

use std::sync::Arc;

use closedloop_telemetry_exporters::__private::delivery::{
    plain_body, MemoryTransport, Request, Transport,
};
use closedloop_telemetry_exporters::Destination;
use serde_json::Value;
use tracing_subscriber::prelude::*;

use crate::{ActivityEntry, DrainReport, TelemetryBuilder};

/// The computeTargetId the kit uses unless the builder sets one.
pub const TEST_COMPUTE_TARGET_ID: &str = "ct-test-kit";

/// The PostHog project key the kit configures.
const POSTHOG_KEY: &str = "phc_test_kit";
/// The PostHog host the kit configures (never contacted: `.invalid` cannot resolve).
const POSTHOG_HOST: &str = "http://test-kit.invalid";
/// The relay URL the kit configures (never contacted).
const RELAY_URL: &str = "http://test-kit.invalid/relay";

/// What the streams received during a [`capture`].
#[derive(Debug, Clone)]
pub struct Captured {
    /// PostHog events (the objects of each `/batch/` body's `batch`), in the order sent.
    pub posthog: Vec<Value>,
    /// Relay messages (`desktop.telemetry`), in the order sent.
    pub relay: Vec<Value>,
    /// The local activity log (never sent anywhere).
    pub activity: Vec<ActivityEntry>,
    /// The shutdown report (what could not be delivered).
    pub report: DrainReport,
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
/// The kit turns [`capture_panics`](TelemetryBuilder::capture_panics) off, so a test binary
/// gets no process-wide panic hook from it; `|b| b.capture_panics(true)` turns it back on.
///
/// A relay sent through the app's own connection
/// ([`relay_connection`](TelemetryBuilder::relay_connection)) is not HTTP: it keeps its
/// connection, and [`Captured::relay`] stays empty.
///
/// # Panics
/// When the pipeline cannot start, or a recorded body is not the JSON its wire format makes
/// (not valid gzip, not JSON, a PostHog body without a `batch` array, a relay body that is not
/// an array): this is a test helper.
pub fn capture_with(
    configure: impl FnOnce(TelemetryBuilder) -> TelemetryBuilder,
    f: impl FnOnce(),
) -> Captured {
    let posthog = MemoryTransport::new();
    let relay = MemoryTransport::new();
    let (to_posthog, to_relay) = (posthog.clone(), relay.clone());
    let (report, activity) = run(
        configure,
        move |to, configured| match to {
            Destination::PostHog => Arc::new(to_posthog.clone()),
            Destination::Relay => Arc::new(to_relay.clone()),
            _ => configured,
        },
        f,
    );
    Captured {
        posthog: posthog_events(&posthog.requests()),
        relay: relay_messages(&relay.requests()),
        activity,
        report,
    }
}

/// Runs `f` under the kit's pipeline, each HTTP destination over `transport(destination,
/// configured)`, and returns the shutdown report and the activity log.
fn run(
    configure: impl FnOnce(TelemetryBuilder) -> TelemetryBuilder,
    transport: impl Fn(Destination, Arc<dyn Transport>) -> Arc<dyn Transport> + Send + Sync + 'static,
    f: impl FnOnce(),
) -> (DrainReport, Vec<ActivityEntry>) {
    // A spool and a data directory of its own, so captures never replay each other's (or the
    // app's) events and the machine's stored consent choice does not apply.
    let own = std::env::temp_dir().join(format!("closedloop-test-kit-{}", uuid::Uuid::new_v4()));
    let spool = own.join("spool");
    let builder = crate::builder("0.0.0-test")
        .compute_target_id(TEST_COMPUTE_TARGET_ID)
        .data_dir(own.join("data"))
        .spool_dir(&spool)
        .posthog(POSTHOG_KEY, POSTHOG_HOST)
        .relay(RELAY_URL, None)
        // No process-wide panic hook and no session marker in the app's test binary, unless
        // `configure` asks for them.
        .capture_panics(false);
    let telemetry = configure(builder)
        .transport_hook(transport)
        .build()
        .expect("the test pipeline starts");
    let handle = telemetry.handle();
    let (layer, guard) = telemetry.split();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    let report = guard.shutdown();
    let _ = std::fs::remove_dir_all(&own);
    (report, handle.activity().snapshot())
}

/// The body of `request` parsed as JSON (inflated first when gzip).
fn json_body(request: &Request) -> Value {
    let body = plain_body(request).expect("a recorded gzip body inflates");
    serde_json::from_slice(&body).expect("a recorded body is JSON")
}

/// The events of PostHog `/batch/` bodies: each body's `batch` objects, in order.
fn posthog_events(requests: &[Request]) -> Vec<Value> {
    requests
        .iter()
        .flat_map(|r| match json_body(r) {
            Value::Object(mut body) => match body.remove("batch") {
                Some(Value::Array(events)) => events,
                _ => panic!("a PostHog body without a `batch` array"),
            },
            _ => panic!("a PostHog body that is not a JSON object"),
        })
        .collect()
}

/// The messages of relay bodies (each a JSON array of messages), in order.
fn relay_messages(requests: &[Request]) -> Vec<Value> {
    requests
        .iter()
        .flat_map(|r| match json_body(r) {
            Value::Array(messages) => messages,
            _ => panic!("a relay body that is not a JSON array"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use closedloop_telemetry_exporters::__private::delivery::{
        BoxFuture, Response, TransportError,
    };
    use closedloop_telemetry_exporters::DeliveryOptions;

    /// One request as it came off the socket: path, `content-encoding` header, raw body bytes
    /// (never inflated).
    #[derive(Debug, Clone)]
    struct Wire {
        path: String,
        content_encoding: Option<String>,
        body: Vec<u8>,
    }

    /// A bare HTTP/1.1 receiver on 127.0.0.1 that keeps every request's raw body and answers
    /// `200`; it stops accepting when dropped.
    struct RawServer {
        addr: SocketAddr,
        got: Arc<Mutex<Vec<Wire>>>,
        stop: Arc<AtomicBool>,
    }

    impl RawServer {
        fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap();
            let got = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let (g, s) = (got.clone(), stop.clone());
            std::thread::spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (g, s) = (g.clone(), s.clone());
                            std::thread::spawn(move || serve(conn, &g, &s));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            });
            RawServer { addr, got, stop }
        }

        fn base(&self) -> String {
            format!("http://{}", self.addr)
        }

        fn requests(&self) -> Vec<Wire> {
            self.got.lock().unwrap().clone()
        }
    }

    impl Drop for RawServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Serves the requests of one keep-alive connection.
    fn serve(conn: TcpStream, got: &Mutex<Vec<Wire>>, stop: &AtomicBool) {
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut writer = conn.try_clone().unwrap();
        let mut reader = BufReader::new(conn);
        let mut line = String::new();
        loop {
            // The request line, waiting while the connection is idle.
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    continue;
                }
                Err(_) => return,
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let (mut len, mut content_encoding) = (0usize, None);
            loop {
                line.clear();
                reader.read_line(&mut line).expect("read a header line");
                let header = line.trim_end();
                if header.is_empty() {
                    break;
                }
                let (name, value) = header.split_once(':').expect("a header");
                let value = value.trim().to_string();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => len = value.parse().expect("a content-length"),
                    "content-encoding" => content_encoding = Some(value),
                    "transfer-encoding" => panic!("a chunked body: {value}"),
                    _ => {}
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).expect("read the body");
            got.lock().unwrap().push(Wire {
                path,
                content_encoding,
                body,
            });
            let reply =
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
            if writer.write_all(reply).is_err() {
                return;
            }
        }
    }

    /// Hands each request to the in-memory transport and then to the destination's configured
    /// HTTP transport: the engine's request goes both ways unchanged.
    struct Tee {
        memory: MemoryTransport,
        http: Arc<dyn Transport>,
    }

    impl Transport for Tee {
        fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
            // The memory transport records as it is called; its answer (always 200) is unused.
            drop(self.memory.send(request.clone()));
            self.http.send(request)
        }
    }

    /// `(content-encoding, body)` of what memory recorded.
    fn recorded(memory: &MemoryTransport) -> Vec<(Option<String>, Vec<u8>)> {
        memory
            .requests()
            .into_iter()
            .map(|r| {
                let encoding = r
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-encoding"))
                    .map(|(_, v)| v.clone());
                (encoding, r.body)
            })
            .collect()
    }

    /// The kit's in-memory bodies are the bytes HTTP carries: every request the engine makes
    /// goes both to a `MemoryTransport` and to the HTTP transport the production code built
    /// for the destination (pointed at a raw loopback server), and the server's raw bodies and
    /// `content-encoding` headers equal what memory recorded, plain and gzip, for PostHog and
    /// the relay. The kit's decoding of the recorded bodies finds every event.
    #[test]
    fn memory_records_byte_for_byte_what_http_carries() {
        const EVENTS: usize = 12;
        for gzip in [false, true] {
            let server = RawServer::start();
            let base = server.base();
            let (posthog, relay) = (MemoryTransport::new(), MemoryTransport::new());
            let (to_posthog, to_relay) = (posthog.clone(), relay.clone());
            let (report, _) = run(
                |b| {
                    b.posthog(POSTHOG_KEY, base.as_str())
                        .relay(format!("{base}/relay"), Some("relay-token".into()))
                        .delivery(DeliveryOptions::builder().with_gzip(gzip).build())
                        // Small batches as events come, so both see several requests.
                        .posthog_flush_interval(Duration::ZERO)
                        .relay_max_delay(Duration::ZERO)
                },
                move |to, http| {
                    let memory = match to {
                        Destination::PostHog => to_posthog.clone(),
                        Destination::Relay => to_relay.clone(),
                        _ => return http,
                    };
                    Arc::new(Tee { memory, http })
                },
                || {
                    for i in 0..EVENTS {
                        let job = format!("J{i:02}");
                        tracing::info!(event = "command.completed", job_id = job, exit_code = 0);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                },
            );
            assert!(report.is_complete(), "gzip {gzip}: {report}");
            let wire = server.requests();
            let encoding = gzip.then(|| "gzip".to_string());
            for (path, memory) in [("/batch/", &posthog), ("/relay", &relay)] {
                let mut kept = recorded(memory);
                let mut carried: Vec<(Option<String>, Vec<u8>)> = wire
                    .iter()
                    .filter(|w| w.path == path)
                    .map(|w| (w.content_encoding.clone(), w.body.clone()))
                    .collect();
                assert!(!kept.is_empty(), "gzip {gzip}: nothing sent to {path}");
                assert!(
                    kept.iter().all(|(e, _)| *e == encoding),
                    "gzip {gzip}: {path} encodings"
                );
                // Requests may be in flight together: compare them as sets, not in order.
                kept.sort();
                carried.sort();
                assert!(
                    kept == carried,
                    "gzip {gzip}: {path}: {} recorded, {} on the wire, bodies differ",
                    kept.len(),
                    carried.len()
                );
            }
            assert_eq!(
                wire.len(),
                posthog.requests().len() + relay.requests().len()
            );
            let ids = |events: &[Value], key: &str, field: &str| -> Vec<String> {
                let mut ids: Vec<String> = events
                    .iter()
                    .filter_map(|e| e[key][field].as_str().map(str::to_string))
                    .collect();
                ids.sort_unstable();
                ids
            };
            let all: Vec<String> = (0..EVENTS).map(|i| format!("J{i:02}")).collect();
            let events = posthog_events(&posthog.requests());
            assert_eq!(ids(&events, "properties", "job_id"), all, "gzip {gzip}");
            let messages = relay_messages(&relay.requests());
            assert_eq!(ids(&messages, "trace", "jobId"), all, "gzip {gzip}");
        }
    }
}
