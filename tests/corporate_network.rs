// A binary of its own: a process-global subscriber, and HTTPS_PROXY / SSL_CERT_FILE set.
//! Behind a corporate TLS-inspecting proxy (docs/RELIABILITY.md, "Corporate networks").
//!
//! `HTTPS_PROXY` names a loopback CONNECT proxy that terminates TLS with a certificate from a
//! private test CA and forwards the plain requests to the local collector. The destinations
//! are `https://` names that only the proxy resolves (`*.corp.test`). With the CA given the
//! way IT installs it on Linux (`SSL_CERT_FILE`), every event of the example's session
//! arrives; without it, every event is kept (queued and spooled, none dropped) and the stream's
//! `last_error` names the host and the TLS reason, which is also logged once per stream.
//!
//! Linux and the BSDs only: `SSL_CERT_FILE` is how their trust store is given; Windows and
//! macOS verify with the system's own store, which a test cannot change.
#![cfg(all(unix, not(target_vendor = "apple"), not(closedloop_no_tls)))]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use closedloop_telemetry_collector::{Collector, Destination};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tracing_subscriber::prelude::*;

/// The environment is the process's: one scenario at a time.
static ENV: Mutex<()> = Mutex::new(());

const POSTHOG_HOST: &str = "posthog.corp.test";
const RELAY_HOST: &str = "relay.corp.test";

/// The app's own log (everything our background thread logs), captured for the assertions.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn app_log() -> &'static Log {
    static LOG: std::sync::OnceLock<Log> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = Log::default();
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .init();
        log
    })
}

/// A private CA, and a server certificate it signed for both names.
struct TestPki {
    ca_pem: String,
    server: rustls::ServerConfig,
}

fn test_pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Corp TLS Inspection Test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![POSTHOG_HOST.into(), RELAY_HOST.into()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        server,
    }
}

/// A CONNECT proxy on loopback that terminates TLS with `server` and forwards the plain bytes
/// to `upstream`; records the target of every request it sees. Runs until the test process ends.
fn start_proxy(
    server: rustls::ServerConfig,
    upstream: SocketAddr,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let targets = seen.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let targets = targets.clone();
                tokio::spawn(async move {
                    let _ = tunnel(client, acceptor, upstream, targets).await;
                });
            }
        });
    });
    (addr, seen)
}

async fn tunnel(
    client: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    upstream: SocketAddr,
    targets: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let mut client = BufReader::new(client);
    let mut line = String::new();
    client.read_line(&mut line).await?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next(), parts.next());
    // Every request the proxy sees is recorded (a plain `POST http://...` too).
    targets
        .lock()
        .unwrap()
        .push(target.unwrap_or_default().to_string());
    let (Some("CONNECT"), Some(_)) = (method, target) else {
        let mut client = client.into_inner();
        client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    loop {
        let mut header = String::new();
        if client.read_line(&mut header).await? == 0 || header == "\r\n" {
            break;
        }
    }
    let mut client = client.into_inner();
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    let mut tls = acceptor.accept(client).await?;
    let mut plain = TcpStream::connect(upstream).await?;
    tokio::io::copy_bidirectional(&mut tls, &mut plain).await?;
    Ok(())
}

/// `http://127.0.0.1:<port>/path` as `https://<host>/path`.
fn behind(host: &str, url: &str) -> String {
    let path = url.splitn(4, '/').nth(3).unwrap_or_default();
    format!("https://{host}/{path}")
}

struct Run {
    stats: closedloop_telemetry::TelemetryStats,
    connects: Vec<String>,
    collector: Collector,
}

/// How a scenario sets up the network: the proxy variables (`{proxy}` stands for the
/// proxy's address) and whether the test CA is given as `SSL_CERT_FILE`.
struct Network {
    proxy_vars: &'static [(&'static str, &'static str)],
    ca: bool,
    /// The streams' hosts: the `*.corp.test` names (`https://`), or else the collector's own
    /// loopback address (plain HTTP).
    corp_names: bool,
}

const HTTPS_PROXY: &[(&str, &str)] = &[("HTTPS_PROXY", "http://{proxy}")];

/// Plays the example's session with both streams configured as `net` says, and a shutdown
/// deadline of `shutdown`.
fn play(tag: &str, net: Network, shutdown: Duration) -> Run {
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    app_log();
    let pki = test_pki();
    let collector = Collector::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let (proxy, seen) = start_proxy(pki.server, collector.addr());
    let dir = std::env::temp_dir().join(format!("closedloop-corp-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("corp-ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();

    const VARS: [&str; 8] = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ];
    for name in VARS {
        std::env::remove_var(name);
    }
    for (name, value) in net.proxy_vars {
        std::env::set_var(name, value.replace("{proxy}", &proxy.to_string()));
    }
    std::env::remove_var("SSL_CERT_DIR");
    if net.ca {
        std::env::set_var("SSL_CERT_FILE", &ca_file);
    } else {
        std::env::remove_var("SSL_CERT_FILE");
    }
    let (posthog, relay) = if net.corp_names {
        (
            behind(POSTHOG_HOST, &collector.posthog_host()),
            behind(RELAY_HOST, &collector.relay_url()),
        )
    } else {
        (collector.posthog_host(), collector.relay_url())
    };
    let telemetry = closedloop_telemetry::builder("1.0.0")
        .data_dir(dir.join("data"))
        .spool_dir(dir.join("spool"))
        .posthog("phc_corp", posthog)
        .relay(relay, None)
        .shutdown_timeout(shutdown)
        .build()
        .expect("the facade builds");
    for name in VARS.iter().chain(&["SSL_CERT_FILE"]) {
        std::env::remove_var(name);
    }

    let handle = telemetry.handle();
    let (layer, guard) = telemetry.split();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        closedloop_telemetry_collector::demo::play(handle.gateway())
    });
    guard.shutdown();
    let stats = handle.stats();
    let connects = seen.lock().unwrap().clone();
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        stats,
        connects,
        collector,
    }
}

/// Every event routed was delivered, and the collector has each one.
fn assert_all_delivered(run: &Run) {
    let (posthog, relay) = run.stats.routed();
    assert!(
        posthog > 0 && relay > 0,
        "the session emits on both streams"
    );
    assert_eq!(
        run.collector.received_on(Destination::PostHog).len() as u64,
        posthog
    );
    assert_eq!(
        run.collector.received_on(Destination::Relay).len() as u64,
        relay
    );
    for s in &run.stats.streams {
        assert_eq!(s.delivery.sent, s.routed, "{:?}: {:?}", s.kind, s.delivery);
        assert_eq!(s.delivery.dropped.total(), 0, "{:?}", s.kind);
    }
}

#[test]
fn a_tls_inspecting_proxy_with_the_ca_in_ssl_cert_file_delivers_every_event() {
    let net = Network {
        proxy_vars: HTTPS_PROXY,
        ca: true,
        corp_names: true,
    };
    let run = play("trusted", net, Duration::from_secs(20));
    assert_all_delivered(&run);
    // Both names went through the proxy (the test resolves neither).
    for host in [POSTHOG_HOST, RELAY_HOST] {
        let target = format!("{host}:443");
        assert!(
            run.connects.contains(&target),
            "{target} in {:?}",
            run.connects
        );
    }
    run.collector.shutdown();
}

#[test]
fn without_the_ca_every_event_is_kept_and_the_tls_reason_is_reported_and_logged_once() {
    // The proxy wants credentials of its own: they never appear in an error or a log line.
    let net = Network {
        proxy_vars: &[("HTTPS_PROXY", "http://corpuser:proxy-secret@{proxy}")],
        ca: false,
        corp_names: true,
    };
    let run = play("untrusted", net, Duration::from_secs(3));
    assert!(
        run.collector.received().is_empty(),
        "nothing passes a refused handshake"
    );
    assert!(!run.connects.is_empty(), "the proxy was used");
    for s in &run.stats.streams {
        assert!(s.routed > 0, "{:?}", s.kind);
        assert_eq!(s.delivery.sent, 0, "{:?}", s.kind);
        assert_eq!(
            s.delivery.dropped.total(),
            0,
            "{:?} kept, not dropped",
            s.kind
        );
        // Still queued: in the spool for the next start.
        assert_eq!(
            s.delivery.queued, s.routed,
            "{:?}: {:?}",
            s.kind, s.delivery
        );
        assert_eq!(
            s.delivery.spooled, s.routed,
            "{:?}: {:?}",
            s.kind, s.delivery
        );
        let error = s.delivery.last_error.as_deref().unwrap_or_default();
        let host = match s.kind {
            Destination::PostHog => POSTHOG_HOST,
            _ => RELAY_HOST,
        };
        assert!(error.starts_with("TLS: "), "{:?}: {error}", s.kind);
        assert!(error.contains(host), "{:?}: {error}", s.kind);
        assert!(error.contains("UnknownIssuer"), "{:?}: {error}", s.kind);
        assert!(!error.contains("phc_corp"), "never a key: {error}");
        assert!(
            !error.contains("proxy-secret"),
            "never the proxy's password: {error}"
        );
    }
    let log = String::from_utf8_lossy(&app_log().0.lock().unwrap()).into_owned();
    for host in [POSTHOG_HOST, RELAY_HOST] {
        let lines = log
            .lines()
            .filter(|l| l.contains("TLS handshake failed") && l.contains(host))
            .count();
        assert_eq!(lines, 1, "logged once for {host}:\n{log}");
    }
    assert!(!log.contains("phc_corp"), "never a key:\n{log}");
    assert!(
        !log.contains("proxy-secret"),
        "never the proxy's password:\n{log}"
    );
    run.collector.shutdown();
}

#[test]
fn lower_case_https_proxy_is_honoured_too() {
    let net = Network {
        proxy_vars: &[("https_proxy", "http://{proxy}")],
        ca: true,
        corp_names: true,
    };
    let run = play("lower", net, Duration::from_secs(20));
    assert_all_delivered(&run);
    assert!(!run.connects.is_empty(), "the proxy was used");
    run.collector.shutdown();
}

#[test]
fn a_name_in_no_proxy_is_reached_directly() {
    // The relay's name is exempt: the client then resolves it itself, which fails (`.test`
    // never resolves), so its events are kept; PostHog still goes through the proxy.
    let net = Network {
        proxy_vars: &[
            ("HTTPS_PROXY", "http://{proxy}"),
            ("NO_PROXY", "relay.corp.test"),
        ],
        ca: true,
        corp_names: true,
    };
    let run = play("no-proxy", net, Duration::from_secs(3));
    assert!(
        run.connects.iter().all(|c| c.starts_with(POSTHOG_HOST)),
        "{:?}",
        run.connects
    );
    let posthog = run.stats.stream(Destination::PostHog).unwrap();
    assert_eq!(posthog.delivery.sent, posthog.routed);
    let relay = run.stats.stream(Destination::Relay).unwrap();
    assert_eq!(relay.delivery.sent, 0);
    assert_eq!(relay.delivery.dropped.total(), 0, "kept, not dropped");
    let error = relay.delivery.last_error.as_deref().unwrap_or_default();
    assert!(error.starts_with("connection: "), "{error}");
    run.collector.shutdown();
}

#[test]
fn loopback_destinations_never_use_the_proxy() {
    // Every proxy variable points at the proxy; the collector's own 127.0.0.1 URLs are still
    // reached directly.
    let net = Network {
        proxy_vars: &[
            ("HTTPS_PROXY", "http://{proxy}"),
            ("HTTP_PROXY", "http://{proxy}"),
            ("ALL_PROXY", "http://{proxy}"),
        ],
        ca: false,
        corp_names: false,
    };
    let run = play("loopback", net, Duration::from_secs(20));
    assert_all_delivered(&run);
    assert!(run.connects.is_empty(), "{:?}", run.connects);
    run.collector.shutdown();
}
