//! [`HttpTransport`]: POST over an async reqwest client (rustls), run on the engine's worker.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION, RETRY_AFTER};

/// Datadog's rate-limit header: seconds until the current rate-limit period resets.
const X_RATELIMIT_RESET: &str = "x-ratelimit-reset";
use reqwest::Url;

use closedloop_telemetry_layers::__private::truncate::keep_head;

use super::error::BuildError;
use super::transport::{BoxFuture, Request, Response, Transport, TransportError};

/// How much of a server's error body the transport keeps. The engine redacts this whole text
/// before cutting it to the much shorter length it logs, so a credential straddling this cut
/// is cut away entirely rather than leaving a prefix that no longer matches.
pub(crate) const REASON_MAX_BYTES: usize = 4096;

/// The most of a response body the transport reads. Past it the response is dropped, and with
/// it the connection, so a server streaming an endless body cannot hold the worker or its memory.
pub(crate) const RESPONSE_MAX_BYTES: usize = 64 * 1024;

/// POSTs each body to one URL with fixed headers.
///
/// Header values are marked sensitive and `Debug` prints only header names, so credentials
/// (`Authorization`, `DD-API-KEY`) never reach a log. The system proxy is used
/// (`HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY`, upper or lower case, and the Windows
/// and macOS proxy settings), except for loopback destinations, which are always reached
/// directly. Servers are verified against the operating system's trust store (see the
/// `tls` module, and `docs/RELIABILITY.md`, "Corporate networks"). Redirects are never followed: a 3xx is the answer (the
/// engine counts it as `rejected`), so neither the body nor a credential header ever reaches
/// another location. At most 64 KiB of a response body are read.
#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("url", &crate::url_redact::redact_url(self.url.as_str()))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Parses and checks an `http(s)` URL; `setting` names it in the error.
///
/// ```
/// use closedloop_telemetry_exporters::__private::delivery::parse_http_url;
/// assert!(parse_http_url("CL_RELAY_URL", "https://relay.example/ingest").is_ok());
/// let err = parse_http_url("CL_RELAY_URL", "relay.example").unwrap_err();
/// assert!(err.to_string().contains("CL_RELAY_URL"));
/// ```
pub fn parse_http_url(setting: &'static str, url: &str) -> Result<Url, BuildError> {
    let bad = |reason: String| BuildError::invalid_url(setting, url, reason);
    let parsed = Url::parse(url.trim()).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme must be http or https, not {:?}",
            parsed.scheme()
        )));
    }
    if !matches!(parsed.host_str(), Some(h) if !h.is_empty()) {
        return Err(bad("no host".into()));
    }
    Ok(parsed)
}

impl HttpTransport {
    /// A transport POSTing to `url` with `headers` on every request (besides the engine's
    /// per-request ones). `connect_timeout` bounds connection set-up; the engine bounds the
    /// whole request.
    pub fn new(
        url: Url,
        headers: &[(&'static str, String)],
        connect_timeout: Duration,
    ) -> Result<Self, BuildError> {
        Self::with_headers(url, headers, connect_timeout)
    }

    /// [`HttpTransport::new`] with header names known only at run time (OTLP's configured
    /// headers).
    pub(crate) fn with_headers<N: AsRef<str>>(
        url: Url,
        headers: &[(N, String)],
        connect_timeout: Duration,
    ) -> Result<Self, BuildError> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let name = name.as_ref();
            let mut v = HeaderValue::from_str(value).map_err(|e| BuildError::InvalidValue {
                setting: "header",
                reason: format!("{name}: not a valid header value: {e}"),
            })?;
            v.set_sensitive(true);
            // `from_bytes` lowercases and validates; `from_static` would panic on `DD-API-KEY`.
            let key =
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| BuildError::InvalidValue {
                    setting: "header",
                    reason: format!("{name:?} is not a valid header name: {e}"),
                })?;
            map.insert(key, v);
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("closedloop-telemetry/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60));
        if is_loopback(&url) {
            builder = builder.no_proxy();
        }
        #[cfg(not(closedloop_no_tls))]
        {
            let tls = super::tls::client_config().map_err(BuildError::HttpClient)?;
            builder = builder.tls_backend_preconfigured(tls);
        }
        let client = builder
            .build()
            .map_err(|e| BuildError::HttpClient(e.to_string()))?;
        Ok(HttpTransport {
            client,
            url,
            headers: map,
        })
    }

    /// The destination URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    async fn post(&self, request: Request) -> Result<Response, TransportError> {
        let mut req = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone());
        for (name, value) in request.headers {
            req = req.header(name, value);
        }
        let mut resp = req
            .body(request.body)
            .send()
            .await
            .map_err(|e| classify(&self.url, e))?;
        let status = resp.status().as_u16();
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        // Datadog's API says when its rate limit resets in `X-RateLimit-Reset` (seconds): a
        // 429 without `Retry-After` waits for that instead.
        let retry_after = header(RETRY_AFTER).or_else(|| match status {
            429 => header(HeaderName::from_static(X_RATELIMIT_RESET)),
            _ => None,
        });
        let location = header(LOCATION);
        // Success bodies are read (so the connection can be reused) but never parsed; no more
        // than RESPONSE_MAX_BYTES of any body is read.
        let mut body = Vec::new();
        while body.len() < RESPONSE_MAX_BYTES {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        // Dropping `resp` with its body unread closes the connection instead of pooling it.
        drop(resp);
        body.truncate(RESPONSE_MAX_BYTES);
        let reason = if (200..300).contains(&status) {
            String::new()
        } else if (300..400).contains(&status) {
            let target = location.as_deref().map_or_else(
                || "(none)".to_string(),
                |l| crate::url_redact::redact_url(l.trim()),
            );
            format!(
                "redirect to {target} not followed; set the destination URL to the final address"
            )
        } else {
            keep_head(&String::from_utf8_lossy(&body), REASON_MAX_BYTES).to_string()
        };
        Ok(Response {
            status,
            retry_after,
            reason,
            body,
        })
    }
}

fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn classify(url: &Url, e: reqwest::Error) -> TransportError {
    // A certificate the trust store does not accept: say which host and why (the host names
    // no secret; keys travel in headers or the body).
    if let Some(reason) = super::tls::tls_reason(&e) {
        let host = url.host_str().unwrap_or("(no host)");
        return TransportError::Tls(format!("handshake with {host} failed: {reason}"));
    }
    // A connect timeout (a destination that drops packets: offline behind a firewall or a
    // captive portal) is an unreachable destination, not a slow request: it reports both
    // `is_connect` and `is_timeout`, and must be retried like any connection failure.
    if e.is_timeout() && !e.is_connect() {
        TransportError::Timeout
    } else {
        // Never include the URL's query or credentials: reqwest's message names the URL, which
        // for our destinations carries no secret (keys travel in headers or the body).
        TransportError::Connection(e.without_url().to_string())
    }
}

impl Transport for HttpTransport {
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(self.post(request))
    }
}
