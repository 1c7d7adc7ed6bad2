//! Request bodies: frame a batch with its stream, optionally gzip it.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::transport::Request;
use super::wire_format::{Item, WireFormat};

/// The gzip level used when a stream enables compression, chosen with `benches/encode.rs` on a
/// 20-event PostHog batch (2-core machine, the run in `BENCHMARKS.md`): plain 1.02 µs/event and
/// 11.9 KB; level 1 2.42 µs/event and 969 B; level 6 4.14 µs/event and 829 B. Level 1 gets almost all of the
/// size win for less than half of level 6's compression time.
pub(crate) const DEFAULT_GZIP_LEVEL: u32 = 1;

/// Frames `items` with `stream` and, with `gzip = Some(level)`, compresses the body and adds
/// `Content-Encoding: gzip`.
pub(crate) fn build_request(stream: &dyn WireFormat, items: &[Item], gzip: Option<u32>) -> Request {
    let slices: Vec<&[u8]> = items.iter().map(|i| i.bytes.as_slice()).collect();
    let mut body = Vec::with_capacity(64 + slices.iter().map(|s| s.len() + 1).sum::<usize>());
    stream.frame(&slices, &mut body);
    let mut headers = Vec::new();
    if let Some(level) = gzip {
        body = gzip_bytes(&body, level);
        headers.push(("content-encoding", "gzip".to_string()));
    }
    Request {
        body,
        headers,
        items: items.len(),
    }
}

/// Compresses `data` as one gzip member at `level` (0–9).
pub fn gzip_bytes(data: &[u8], level: u32) -> Vec<u8> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(data.len() / 3 + 64),
        Compression::new(level.min(9)),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::wire_format::{frame_json_array, InvalidEvent};
    use std::io::Read;

    struct Array;
    impl WireFormat for Array {
        fn name(&self) -> &'static str {
            "array"
        }
        fn encode(&self, _: &crate::decode::Event, _: uuid::Uuid) -> Result<Vec<u8>, InvalidEvent> {
            Err(InvalidEvent("unused"))
        }
        fn frame(&self, items: &[&[u8]], out: &mut Vec<u8>) {
            frame_json_array(items, out)
        }
    }

    fn items() -> Vec<Item> {
        (1..=3)
            .map(|n| Item {
                id: uuid::Uuid::now_v7(),
                created: std::time::SystemTime::now(),
                bytes: format!("{{\"n\":{n}}}").into_bytes(),
            })
            .collect()
    }

    #[test]
    fn plain_and_gzip_bodies_carry_the_same_json() {
        let plain = build_request(&Array, &items(), None);
        assert_eq!(plain.body, br#"[{"n":1},{"n":2},{"n":3}]"#);
        assert!(plain.headers.is_empty());
        assert_eq!(plain.items, 3);

        let gz = build_request(&Array, &items(), Some(DEFAULT_GZIP_LEVEL));
        assert_eq!(gz.headers, vec![("content-encoding", "gzip".to_string())]);
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(&gz.body[..])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated, plain.body);
    }
}
