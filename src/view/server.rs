//! The view's HTTP side: the security checks, the page, the JSON endpoints and the live stream.
//! Runs on the current-thread runtime of the view's own thread.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::conn::{http1, Slots, WriteDeadline, SEND_DEADLINE};
use super::state::{
    activity_json, initial_json, script_safe, sent_json, stats_json, History, Source,
};

/// The page, with `__NONCE__`, `__STATE__` and `__TOKEN__` placeholders.
const PAGE: &str = include_str!("page.html");
/// How often the live stream looks for news (and the sources tick).
const LIVE_TICK: Duration = Duration::from_secs(1);
/// A live stream with nothing new for this long ends; the page reconnects after
/// [`LIVE_RETRY_MS`] and resumes from its last event id. Streams end so that a headless
/// browser's virtual clock (`--virtual-time-budget`) is never held by an open request.
const LIVE_IDLE: Duration = Duration::from_secs(2);
/// The longest one live stream lasts.
const LIVE_MAX: Duration = Duration::from_secs(30);
/// The reconnect delay the live stream asks for.
const LIVE_RETRY_MS: u64 = 3000;
/// The most live streams open at once (more get 503): bounds the view's memory and work.
const LIVE_MAX_OPEN: usize = 16;

/// What request handlers share.
pub(super) struct ViewCtx {
    pub(super) source: Arc<dyn Source>,
    pub(super) history: Arc<History>,
    pub(super) token: String,
    pub(super) nonce: String,
    pub(super) live_opened: Arc<AtomicU64>,
    /// Live streams open now.
    pub(super) live_open: Arc<AtomicUsize>,
}

type Body = BoxBody<Bytes, Infallible>;

/// Serves connections (at most [`MAX_CONNECTIONS`](super::conn::MAX_CONNECTIONS) at once; one
/// over the bound is closed at once) until `stop` fires; ticks the source once a second
/// meanwhile.
pub(super) async fn accept_loop(
    listener: std::net::TcpListener,
    ctx: Arc<ViewCtx>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let slots = Slots::new();
    let http = http1();
    let mut tick = tokio::time::interval(LIVE_TICK);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {
                ctx.source.tick();
                ctx.history.sample(&ctx.source.health(), Instant::now());
            }
            accepted = listener.accept() => match accepted {
                // Over the bound the stream is dropped here, which closes it: the loop never
                // waits for a slot, and the connection holds no descriptor past this line.
                Ok((stream, _)) => if let Some(slot) = slots.try_take() {
                    let ctx = ctx.clone();
                    let http = http.clone();
                    tokio::spawn(async move {
                        let _slot = slot; // freed when the connection ends
                        let service = hyper::service::service_fn(move |req| {
                            let ctx = ctx.clone();
                            async move { Ok::<_, Infallible>(handle(req, &ctx)) }
                        });
                        let io = TokioIo::new(WriteDeadline::new(stream));
                        let _ = http.serve_connection(io, service).await;
                    });
                },
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
        }
    }
}

/// Whether `Host` names this machine's loopback (`localhost`, `127.0.0.1`, `[::1]`, any port):
/// a page on another origin that rebinds its DNS name to 127.0.0.1 still sends its own name.
pub(super) fn host_is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, _)) => ip,
            None => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Compares without an early exit on the first differing byte.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn authorized(req: &Request<Incoming>, token: &str) -> bool {
    let query = req.uri().query().unwrap_or("");
    if query_param(query, "token").is_some_and(|t| same(t, token)) {
        return true;
    }
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    header("x-view-token").is_some_and(|t| same(t, token))
        || header(AUTHORIZATION.as_str())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| same(t, token))
}

fn handle(req: Request<Incoming>, ctx: &ViewCtx) -> Response<Body> {
    let host = req.headers().get(HOST).and_then(|v| v.to_str().ok());
    if !host.is_some_and(host_is_loopback) {
        return text(
            StatusCode::FORBIDDEN,
            "forbidden: Host is not a loopback name",
        );
    }
    if !authorized(&req, &ctx.token) {
        return text(StatusCode::FORBIDDEN, "forbidden: missing or wrong token");
    }
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET");
    }
    let query = req.uri().query().unwrap_or("");
    let from = |name| query_param(query, name).and_then(|v| v.parse::<u64>().ok());
    let source = &*ctx.source;
    match req.uri().path() {
        "/" => page(ctx),
        "/api/activity" => json(&activity_json(source, from("from").unwrap_or(0))),
        "/api/sent" => json(&sent_json(source, from("from").unwrap_or(0))),
        "/api/stats" => json(&stats_json(source, &ctx.history)),
        "/api/live" => {
            // Resume after the last event the browser saw, else from the page's cursor.
            let last = req
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once('-'))
                .and_then(|(a, s)| Some((a.parse().ok()?, s.parse().ok()?)));
            let cursor = last.unwrap_or((from("a").unwrap_or(0), from("s").unwrap_or(0)));
            live(ctx, cursor)
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

/// Headers every answer carries: no caching, no sniffing, no referrer, and a strict CSP (no
/// CORS headers at all, so other origins cannot read anything).
fn secure(mut r: Response<Body>, nonce: &str) -> Response<Body> {
    let h = r.headers_mut();
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert("content-security-policy", v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

fn respond(status: StatusCode, kind: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    // No nonce is needed: a plain-text answer runs nothing.
    secure(respond(status, "text/plain; charset=utf-8", body), "none")
}

fn json(v: &Value) -> Response<Body> {
    secure(
        respond(StatusCode::OK, "application/json", v.to_string()),
        "none",
    )
}

fn page(ctx: &ViewCtx) -> Response<Body> {
    let state = initial_json(&*ctx.source, &ctx.history);
    let html = PAGE
        .replace("__NONCE__", &ctx.nonce)
        .replace("__TOKEN__", &ctx.token)
        .replace("__STATE__", &script_safe(&state));
    secure(
        respond(StatusCode::OK, "text/html; charset=utf-8", html),
        &ctx.nonce,
    )
}

/// Counts a live stream as open until dropped.
struct OpenStream(Arc<AtomicUsize>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body fed by a channel: one frame per live event, the end when the sender goes.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// Hands `event` to the live stream's connection. False when the browser went away, or has not
/// taken the earlier events within [`SEND_DEADLINE`] (it stopped reading): either way the
/// stream ends, so a stalled reader cannot hold its task and slot forever.
async fn send(tx: &tokio::sync::mpsc::Sender<Bytes>, event: String) -> bool {
    let sent = tokio::time::timeout(SEND_DEADLINE, tx.send(Bytes::from(event))).await;
    matches!(sent, Ok(Ok(())))
}

/// `/api/live`: server-sent `update` events carrying what is new since `cursor` (activity
/// seq, sent seq) and the stats when they changed, checked once a second. The event id is the
/// cursor after the event, so a reconnecting browser resumes where it left off.
fn live(ctx: &ViewCtx, cursor: (u64, u64)) -> Response<Body> {
    let open = ctx.live_open.clone();
    if open.fetch_add(1, Ordering::AcqRel) >= LIVE_MAX_OPEN {
        open.fetch_sub(1, Ordering::AcqRel);
        return text(StatusCode::SERVICE_UNAVAILABLE, "too many live streams");
    }
    ctx.live_opened.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let source = ctx.source.clone();
    let history = ctx.history.clone();
    tokio::spawn(async move {
        let _open = OpenStream(open);
        let (mut a, mut s) = cursor;
        let mut last_stats = String::new();
        let opened = Instant::now();
        let mut quiet_since = opened;
        if !send(&tx, format!("retry: {LIVE_RETRY_MS}\n\n")).await {
            return;
        }
        let mut tick = tokio::time::interval(LIVE_TICK);
        loop {
            tick.tick().await;
            let activity = activity_json(&*source, a);
            let sent = sent_json(&*source, s);
            let stats = stats_json(&*source, &history).to_string();
            let news = !activity["entries"].as_array().is_none_or(Vec::is_empty)
                || !sent["records"].as_array().is_none_or(Vec::is_empty);
            let now = Instant::now();
            if news || stats != last_stats {
                a = activity["next_seq"].as_u64().unwrap_or(a).max(a);
                s = sent["next_seq"].as_u64().unwrap_or(s).max(s);
                let data = format!(r#"{{"activity":{activity},"sent":{sent},"stats":{stats}}}"#);
                let event = format!("id: {a}-{s}\nevent: update\ndata: {data}\n\n");
                if !send(&tx, event).await {
                    return; // the browser went away or stopped reading
                }
                last_stats = stats;
                quiet_since = now;
            }
            if now.duration_since(quiet_since) >= LIVE_IDLE
                || now.duration_since(opened) >= LIVE_MAX
            {
                return; // ends the stream; the browser reconnects
            }
        }
    });
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    secure(r, "none")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_host_names_pass() {
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:1",
            "[::1]:9",
            "LOCALHOST",
        ] {
            assert!(host_is_loopback(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:80",
            "10.0.0.1:80",
            "[::2]:1",
            "localhost.evil:1",
            "",
        ] {
            assert!(!host_is_loopback(bad), "{bad}");
        }
    }
}
