//! The HTTP side of the collector: accepting connections, routing, reading (and inflating)
//! bodies, and answering. It runs on the current-thread tokio runtime the
//! [`Collector`](super::Collector) owns on its own thread.

use std::convert::Infallible;
use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::received::{Destination, Received, Rejected};
use super::recorder::{cut_reason, Recorder};
use super::validate::{self, Accepted, Rejection, MAX_BODY_BYTES};

/// The most bytes read off the wire for one request (before any gzip inflation).
const MAX_WIRE_BYTES: usize = MAX_BODY_BYTES + 1024;
/// The PostHog batch path.
pub const POSTHOG_PATH: &str = "/batch/";
/// The relay path.
pub const RELAY_PATH: &str = "/relay";
/// The Datadog logs-intake path.
pub const DATADOG_PATH: &str = "/api/v2/logs";
/// The OTLP/HTTP logs path (under the collector's base URL, which is the OTLP endpoint).
pub const OTLP_PATH: &str = "/v1/logs";

/// What request handlers share.
pub(super) struct ServerCtx {
    pub(super) recorder: Arc<Recorder>,
    pub(super) relay_token: Option<String>,
}

/// Serves connections until `stop` fires.
pub(super) async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<ServerCtx>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let ctx = ctx.clone();
                            async move { Ok::<_, Infallible>(handle(req, &ctx).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
        }
    }
}

async fn handle(req: Request<Incoming>, ctx: &ServerCtx) -> Response<Full<Bytes>> {
    let stream = match req.uri().path() {
        "/batch/" | "/batch" => Destination::PostHog,
        RELAY_PATH => Destination::Relay,
        DATADOG_PATH => Destination::Datadog,
        OTLP_PATH => Destination::Otlp,
        path => {
            let reason = format!("no endpoint at {path}");
            return reject(ctx, None, Rejection::new(404, reason));
        }
    };
    if req.method() != Method::POST {
        let reason = format!("{} is not allowed here; use POST", req.method());
        return reject(ctx, Some(stream), Rejection::new(405, reason));
    }
    let (parts, body) = req.into_parts();
    let result = match Limited::new(body, MAX_WIRE_BYTES).collect().await {
        Ok(collected) => process(stream, &parts.headers, collected.to_bytes(), ctx),
        Err(_) => Err(Rejection::new(413, "request body too large or unreadable")),
    };
    match result {
        Ok((accepted, ok)) => {
            let at = SystemTime::now();
            ctx.recorder.accept(
                accepted
                    .into_iter()
                    .map(|a| Received {
                        stream,
                        name: a.name,
                        id: a.id,
                        body: a.body,
                        at,
                    })
                    .collect(),
            );
            ok
        }
        Err(rejection) => reject(ctx, Some(stream), rejection),
    }
}

fn process(
    stream: Destination,
    headers: &HeaderMap,
    wire: Bytes,
    ctx: &ServerCtx,
) -> Result<(Vec<Accepted>, Response<Full<Bytes>>), Rejection> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match stream {
        Destination::Relay => {
            validate::relay_auth(ctx.relay_token.as_deref(), header(AUTHORIZATION.as_str()))?
        }
        Destination::Datadog => validate::datadog_auth(header("dd-api-key"))?,
        Destination::PostHog | Destination::Otlp => {}
    }
    let limit = match stream {
        Destination::Datadog => validate::DATADOG_MAX_BODY_BYTES,
        _ => MAX_BODY_BYTES,
    };
    let gzip = header(CONTENT_ENCODING.as_str()).is_some_and(|v| v.eq_ignore_ascii_case("gzip"))
        || wire.starts_with(&[0x1f, 0x8b]);
    let body = if gzip {
        inflate(&wire, limit)?
    } else {
        wire.to_vec()
    };
    if body.len() > limit {
        return Err(Rejection::new(413, format!("body over {limit} bytes")));
    }
    if stream == Destination::Otlp {
        let encoding = validate::OtlpEncoding::from_content_type(header(CONTENT_TYPE.as_str()))?;
        let accepted = validate::otlp_logs(&body, encoding)?;
        let mut response = Response::new(Full::new(Bytes::from(encoding.success_body())));
        response.headers_mut().insert(
            CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(encoding.content_type()),
        );
        return Ok((accepted, response));
    }
    let json: Value = serde_json::from_slice(&body)
        .map_err(|e| Rejection::new(400, format!("failed to parse request: {e}")))?;
    let (accepted, status, reply) = match stream {
        Destination::PostHog => (
            validate::posthog_batch(&json)?,
            200,
            serde_json::json!({"status": "Ok"}),
        ),
        Destination::Relay => {
            let accepted = validate::relay_batch(&json)?;
            let reply = serde_json::json!({"status": "ok", "accepted": accepted.len()});
            (accepted, 200, reply)
        }
        Destination::Datadog => (
            validate::datadog_batch(body.len(), &json)?,
            202,
            serde_json::json!({}),
        ),
        Destination::Otlp => unreachable!("answered above"),
    };
    Ok((accepted, json_response(status, &reply)))
}

/// Inflates a gzip body, reading at most one byte past `limit` (a larger body is a 413).
fn inflate(wire: &[u8], limit: usize) -> Result<Vec<u8>, Rejection> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(wire)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Rejection::new(400, format!("failed to decode request: bad gzip: {e}")))?;
    if out.len() > limit {
        return Err(Rejection::new(
            413,
            format!("inflated body over {limit} bytes"),
        ));
    }
    Ok(out)
}

fn reject(
    ctx: &ServerCtx,
    stream: Option<Destination>,
    rejection: Rejection,
) -> Response<Full<Bytes>> {
    // A reason can quote the request: answer and keep only its start.
    let rejection = Rejection::new(rejection.status, cut_reason(rejection.reason));
    let response = json_response(rejection.status, &rejection.body(stream));
    ctx.recorder.reject(Rejected {
        stream,
        status: rejection.status,
        reason: rejection.reason,
        at: SystemTime::now(),
    });
    response
}

fn json_response(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
