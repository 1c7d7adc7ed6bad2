//! Fuzzes the spool's record reader (the segment scanner) two ways:
//!
//! 1. The input as raw segment bytes: the scanner must not panic, its steps must tile the input
//!    exactly (no byte read twice or skipped unaccounted), each record must re-encode to the
//!    very bytes it was read from, and a damaged stretch is always followed by a record.
//! 2. The input as items plus damage: the first half is cut into items and encoded, the second
//!    half gives byte flips; the checks of 1 hold on the result, and every record whose bytes
//!    no flip touched must still be found, in order.
#![no_main]

use closedloop_telemetry_exporters::__private::spool::test_support::{scan_segment, Scanned};
use closedloop_telemetry_exporters::__private::spool::SpoolItem;
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

fuzz_target!(|data: &[u8]| {
    raw_bytes(data);
    items_with_flips(data);
});

fn raw_bytes(data: &[u8]) {
    let mut pos = 0;
    let mut after_damage = false;
    for step in scan_segment(data) {
        match step {
            Scanned::Record { start, end, item } => {
                assert_eq!(start, pos);
                assert!(start < end && end <= data.len());
                let mut again = Vec::new();
                item.encode_into(&mut again);
                assert_eq!(again, &data[start..end], "record re-encodes to its bytes");
                pos = end;
                after_damage = false;
            }
            Scanned::Damaged { start, end } => {
                assert_eq!(start, pos);
                assert!(start < end && end <= data.len());
                assert!(!after_damage, "two damaged stretches in a row");
                pos = end;
                after_damage = true;
            }
        }
    }
    assert_eq!(pos, data.len(), "the steps cover the whole input");
}

fn items_with_flips(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let (item_bytes, flips) = rest.split_at(rest.len() / 2);
    let chunk = usize::from(chunk % 64) + 1;
    let mut buf = Vec::new();
    let mut spans = Vec::new();
    for (i, bytes) in item_bytes.chunks(chunk).enumerate() {
        let start = buf.len();
        let item = SpoolItem::new(Uuid::from_u128(i as u128), i as u64, bytes.to_vec());
        item.encode_into(&mut buf);
        spans.push((start, buf.len(), item));
    }
    if buf.is_empty() {
        return;
    }
    let mut touched = vec![false; buf.len()];
    for pair in flips.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([pair[0], pair[1]])) % buf.len();
        let mask = pair[2] | 1;
        buf[at] ^= mask;
        touched[at] = true;
    }
    // The structural checks again, on a real segment with damage in it (arbitrary bytes alone
    // almost never forge the two checksums of a whole record).
    raw_bytes(&buf);
    let found: Vec<SpoolItem> = scan_segment(&buf)
        .filter_map(|s| match s {
            Scanned::Record { item, .. } => Some(item),
            Scanned::Damaged { .. } => None,
        })
        .collect();
    let mut rest = found.iter();
    for (start, end, item) in &spans {
        if !touched[*start..*end].iter().any(|&t| t) {
            assert!(rest.any(|f| f == item), "lost an untouched record");
        }
    }
}
