//! HTTPS trust: the operating system's certificate store, and what a failed handshake means.
//!
//! Every [`HttpTransport`](super::HttpTransport) verifies servers with
//! [rustls-platform-verifier](https://docs.rs/rustls-platform-verifier): on Windows and macOS
//! the operating system verifies each chain (its trust store, enterprise policy, revocation);
//! on Linux and the BSDs the system bundle is loaded when the client is built, or, when
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` are set, only those. A private CA that IT installed (a
//! TLS-inspecting proxy's) is then trusted like any public one. A machine with no system
//! roots at all (a bare container) falls back to the bundled Mozilla roots, with a warning.
//! ring is the crypto provider; nothing is installed process-wide.
//!
//! A failed handshake (unknown issuer, expired, wrong name) becomes
//! [`TransportError::Tls`](super::TransportError::Tls) with the host and rustls's reason,
//! which the engine treats as an outage: events are kept and retried, the reason is the
//! stream's `last_error`, and it is logged once per destination. See `docs/RELIABILITY.md`,
//! "Corporate networks".

use std::error::Error as StdError;

/// The TLS client configuration of every transport: the platform verifier over ring, HTTP/2
/// and HTTP/1.1 offered by ALPN.
///
/// Building it reads the system bundle on Linux (about 5 ms in a release build for 290
/// certificates), so the transports of one process share it while `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` stay as they were when it was built.
#[cfg(not(closedloop_no_tls))]
pub(crate) fn client_config() -> Result<rustls::ClientConfig, String> {
    use std::ffi::OsString;
    use std::sync::Mutex;

    type Key = (Option<OsString>, Option<OsString>);
    static SHARED: Mutex<Option<(Key, rustls::ClientConfig)>> = Mutex::new(None);
    let key: Key = (
        std::env::var_os("SSL_CERT_FILE"),
        std::env::var_os("SSL_CERT_DIR"),
    );
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((k, config)) = shared.as_ref() {
        if *k == key {
            return Ok(config.clone());
        }
    }
    let config = build_client_config()?;
    *shared = Some((key, config.clone()));
    Ok(config)
}

#[cfg(not(closedloop_no_tls))]
fn build_client_config() -> Result<rustls::ClientConfig, String> {
    use std::sync::Arc;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> =
        match rustls_platform_verifier::Verifier::new(provider.clone()) {
            Ok(v) => Arc::new(v),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "no usable certificates in the system trust store: HTTPS trusts the bundled \
                     Mozilla roots only"
                );
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .map_err(|e| e.to_string())?
            }
        };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The TLS reason behind a failed request, if a TLS error is in its chain of causes: rustls's
/// own words (`invalid peer certificate: UnknownIssuer`, ...).
pub(crate) fn tls_reason(error: &(dyn StdError + 'static)) -> Option<String> {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(reason) = as_tls(e) {
            return Some(reason);
        }
        // An io::Error's `source()` skips the error it wraps: look inside it first.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(reason) = as_tls(inner) {
                return Some(reason);
            }
        }
        cause = e.source();
    }
    None
}

#[cfg(not(closedloop_no_tls))]
fn as_tls(e: &(dyn StdError + 'static)) -> Option<String> {
    e.downcast_ref::<rustls::Error>().map(|e| e.to_string())
}

#[cfg(closedloop_no_tls)]
fn as_tls(_: &(dyn StdError + 'static)) -> Option<String> {
    None
}

#[cfg(all(test, not(closedloop_no_tls)))]
mod tests {
    use super::*;

    #[test]
    fn a_rustls_error_wrapped_in_io_is_found_in_the_chain() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        assert_eq!(
            tls_reason(&io).as_deref(),
            Some("invalid peer certificate: UnknownIssuer")
        );
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(tls_reason(&plain), None);
    }

    #[test]
    fn the_client_config_offers_h2_and_http1() {
        let config = client_config().expect("a TLS configuration");
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
