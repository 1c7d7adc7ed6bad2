//! [`MemoryTransport`] (feature `testing`): a [`Transport`] that keeps every request in memory
//! and answers `200`, for tests that need to see what a destination would receive without a
//! server.

use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

use super::transport::{BoxFuture, Request, Response, Transport, TransportError};

/// Keeps every [`Request`] the engine sends, exactly as given (body bytes and per-request
/// headers such as `content-encoding: gzip`), and answers each with `200`, so nothing is ever
/// retried, split or dropped by the destination.
///
/// Clones share the same record: keep one clone and hand another to the engine (through
/// [`DeliverySpec::new`](super::DeliverySpec::new) or
/// [`DeliverySpec::map_transport`](super::DeliverySpec::map_transport)). Requests are kept in
/// the order the engine sends them, without bound: it is meant for tests.
///
/// The body is what an HTTP transport would put on the wire; the fixed headers an HTTP
/// transport adds from its own configuration (content type, credentials) are not part of a
/// [`Request`] and so are not recorded.
#[derive(Debug, Clone, Default)]
pub struct MemoryTransport {
    requests: Arc<Mutex<Vec<Request>>>,
}

impl MemoryTransport {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every request sent so far, in the order they were sent.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Request>> {
        // A push is complete or absent, so a poisoned lock is still consistent.
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Transport for MemoryTransport {
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        // Recorded at once, so the record follows the order the engine sends in.
        self.lock().push(request);
        Box::pin(async {
            Ok(Response {
                status: 200,
                retry_after: None,
                reason: String::new(),
                body: Vec::new(),
            })
        })
    }
}

/// The body of `request` as its receiver reads it: inflated when the request carries
/// `content-encoding: gzip` (any case), else as given. Fails on a body that is not valid gzip.
pub fn plain_body(request: &Request) -> std::io::Result<Vec<u8>> {
    let gzip = request
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-encoding") && v.eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Ok(request.body.clone());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(request.body.as_slice()).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::gzip_bytes;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn keeps_requests_in_order_shared_by_clones_and_answers_200() {
        let memory = MemoryTransport::new();
        let engine_side = memory.clone();
        let first = Request {
            body: b"[1]".to_vec(),
            headers: vec![],
            items: 1,
        };
        let second = Request {
            body: gzip_bytes(b"[2,3]", 1),
            headers: vec![("content-encoding", "gzip".into())],
            items: 2,
        };
        for r in [&first, &second] {
            let answer = block_on(engine_side.send(r.clone())).unwrap();
            assert_eq!(
                (answer.status, answer.retry_after, answer.reason),
                (200, None, String::new())
            );
        }
        assert_eq!(memory.requests(), [first.clone(), second.clone()]);
        assert_eq!(plain_body(&first).unwrap(), b"[1]");
        assert_eq!(plain_body(&second).unwrap(), b"[2,3]");
    }

    #[test]
    fn records_the_request_the_engine_would_send_over_http() {
        use crate::decode::Event;
        use crate::delivery::body::build_request;
        use crate::delivery::wire_format::{frame_json_array, InvalidEvent, Item, WireFormat};

        struct Array;
        impl WireFormat for Array {
            fn name(&self) -> &'static str {
                "array"
            }
            fn encode(&self, _: &Event, _: uuid::Uuid) -> Result<Vec<u8>, InvalidEvent> {
                Err(InvalidEvent("unused"))
            }
            fn frame(&self, items: &[&[u8]], out: &mut Vec<u8>) {
                frame_json_array(items, out)
            }
        }

        let item = Item {
            id: uuid::Uuid::now_v7(),
            created: std::time::SystemTime::now(),
            bytes: br#"{"n":1}"#.to_vec(),
        };
        let memory = MemoryTransport::new();
        let request = build_request(&Array, &[item], Some(1));
        let answer = block_on(memory.send(request.clone()));
        assert_eq!(answer.unwrap().status, 200);
        assert_eq!(memory.requests(), std::slice::from_ref(&request));
        assert_eq!(plain_body(&request).unwrap(), br#"[{"n":1}]"#);
    }

    #[test]
    fn a_gzip_header_over_a_body_that_is_not_gzip_is_an_error() {
        let bad = Request {
            body: b"[1]".to_vec(),
            headers: vec![("content-encoding", "GZIP".into())],
            items: 1,
        };
        assert!(plain_body(&bad).is_err());
    }
}
