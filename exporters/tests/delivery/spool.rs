//! The on-disk spool: round trips, replay after restart and after SIGKILL, rotation, the size
//! cap, cursor damage, random segment damage (property test), unusable directories, the
//! one-process-per-directory lock, and the adoption of `pid-<pid>` directories left behind.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::accounting::assert_accounting;
use crate::support::process::{KillOnDrop, TempDir};
use crate::support::server::TestServer;
use crate::support::spool_files::{index_of, primary, segment_files, small};
use crate::support::tagged;
use closedloop_telemetry_exporters::__private::delivery::Delivery;
use closedloop_telemetry_exporters::__private::spool::test_support::{scan_segment, Scanned};
use closedloop_telemetry_exporters::__private::spool::{
    CursorStatus, Position, Spool, SpoolError, SpoolHandle, SpoolItem,
};
use closedloop_telemetry_exporters::SpoolOptions;
use proptest::prelude::*;
use uuid::Uuid;

/// Item `i`: id and time derived from `i`, `len` bytes of payload.
fn item(i: u32, len: usize) -> SpoolItem {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&i.to_be_bytes());
    id[15] = 0xAB;
    let bytes = (0..len)
        .map(|k| b'a' + ((i as usize + k) % 26) as u8)
        .collect::<Vec<_>>();
    SpoolItem::new(
        Uuid::from_bytes(id),
        1_700_000_000_000 + u64::from(i),
        bytes,
    )
}

/// Reads everything pending, in batches of 7.
fn drain(spool: &mut Spool) -> Vec<(Position, SpoolItem)> {
    let mut all = Vec::new();
    loop {
        let batch = spool.read_batch(7, usize::MAX).unwrap();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

fn indices(items: &[(Position, SpoolItem)]) -> Vec<u32> {
    items.iter().map(|(_, it)| index_of(it)).collect()
}

#[test]
fn append_read_ack_round_trip() {
    let tmp = TempDir::new("roundtrip");
    let mut spool = Spool::open(tmp.path(), small()).unwrap();
    assert_eq!(spool.recovery().cursor, CursorStatus::Absent);
    let items: Vec<_> = (0..10).map(|i| item(i, 50)).collect();
    for it in &items {
        spool.append(it).unwrap();
    }
    assert_eq!(spool.stats().pending_items, 10);
    let read = drain(&mut spool);
    let got: Vec<_> = read.iter().map(|(_, it)| it.clone()).collect();
    assert_eq!(
        got, items,
        "ids, created times and bytes come back unchanged"
    );
    assert!(
        read.windows(2).all(|w| w[0].0 < w[1].0),
        "positions increase"
    );
    spool.ack(read.last().unwrap().0).unwrap();
    assert_eq!(spool.stats().pending_items, 0);
    assert!(spool.read_batch(10, usize::MAX).unwrap().is_empty());
}

#[test]
fn read_batch_honours_item_and_byte_limits() {
    let tmp = TempDir::new("limits");
    let mut spool = Spool::open(tmp.path(), small()).unwrap();
    for i in 0..10 {
        spool.append(&item(i, 100)).unwrap();
    }
    assert_eq!(spool.read_batch(3, usize::MAX).unwrap().len(), 3);
    assert_eq!(
        spool.read_batch(100, 250).unwrap().len(),
        3,
        "stops once 250 bytes reached"
    );
    assert_eq!(
        spool.read_batch(100, 1).unwrap().len(),
        1,
        "one item even if over the limit"
    );
    assert_eq!(spool.read_batch(100, usize::MAX).unwrap().len(), 3);
}

#[test]
fn rewind_rereads_exactly_the_unacked_items() {
    let tmp = TempDir::new("rewind");
    let mut spool = Spool::open(tmp.path(), small()).unwrap();
    for i in 0..20 {
        spool.append(&item(i, 80)).unwrap();
    }
    let first = spool.read_batch(8, usize::MAX).unwrap();
    spool.ack(first[2].0).unwrap();
    spool.rewind();
    let again = drain(&mut spool);
    assert_eq!(indices(&again), (3..20).collect::<Vec<_>>());
    assert_eq!(spool.stats().pending_items, 17);
}

#[test]
fn ack_is_clamped_to_what_was_handed_out_and_never_goes_back() {
    let tmp = TempDir::new("clamp");
    let mut spool = Spool::open(tmp.path(), small()).unwrap();
    for i in 0..5 {
        spool.append(&item(i, 10)).unwrap();
    }
    spool.ack(Position::new(u64::MAX, 0)).unwrap();
    assert_eq!(
        spool.stats().pending_items,
        5,
        "nothing handed out yet: no-op"
    );
    let batch = spool.read_batch(2, usize::MAX).unwrap();
    let inside_second = Position::new(batch[1].0.segment, batch[1].0.offset - 1);
    spool.ack(inside_second).unwrap();
    assert_eq!(
        spool.ack_position(),
        batch[0].0,
        "snaps to the last whole item"
    );
    spool.ack(Position::new(u64::MAX, 0)).unwrap();
    assert_eq!(
        spool.ack_position(),
        batch[1].0,
        "clamped to the last handed-out item"
    );
    spool.ack(batch[0].0).unwrap();
    assert_eq!(spool.ack_position(), batch[1].0, "acks never move back");
    assert_eq!(indices(&drain(&mut spool)), vec![2, 3, 4]);
}

#[test]
fn ack_items_never_moves_the_cursor_past_an_unacknowledged_item() {
    let tmp = TempDir::new("ack-items");
    {
        let mut spool = Spool::open(tmp.path(), small()).unwrap();
        for i in 0..4 {
            spool.append(&item(i, 10)).unwrap();
        }
        let batch = spool.read_batch(4, usize::MAX).unwrap();
        // Item 1 is dropped (e.g. expired) while item 0 is still in flight.
        spool.ack_items([batch[1].0]).unwrap();
        assert_eq!(
            spool.ack_position(),
            Position::default(),
            "item 0 is not acked"
        );
        assert_eq!(spool.stats().pending_items, 3);
        // Item 0 delivered: the cursor covers 0 and 1, not 2.
        spool.ack_items([batch[0].0]).unwrap();
        assert_eq!(spool.ack_position(), batch[1].0);
        spool.ack_items([batch[3].0]).unwrap();
        assert_eq!(spool.ack_position(), batch[1].0, "item 2 is still out");
        spool.sync().unwrap();
    }
    // A restart replays item 2 and, not yet covered by the cursor, item 3 (a duplicate).
    let mut spool = Spool::open(tmp.path(), small()).unwrap();
    assert_eq!(indices(&drain(&mut spool)), vec![2, 3]);
}

#[test]
fn graceful_reopen_replays_exactly_the_unacked_items() {
    let tmp = TempDir::new("reopen");
    {
        let mut spool = Spool::open(tmp.path(), small()).unwrap();
        for i in 0..30 {
            spool.append(&item(i, 60)).unwrap();
        }
        let read = drain(&mut spool);
        spool.ack(read[11].0).unwrap();
        spool.sync().unwrap();
    }
    let mut spool = Spool::open(tmp.path(), small()).unwrap();
    let rec = spool.recovery();
    assert!(matches!(rec.cursor, CursorStatus::Restored(_)));
    assert_eq!(rec.items_to_replay, 18);
    assert_eq!(spool.stats().pending_items, 18);
    assert_eq!(indices(&drain(&mut spool)), (12..30).collect::<Vec<_>>());
}

#[test]
fn drop_without_sync_keeps_everything_appended() {
    let tmp = TempDir::new("nosync");
    {
        let mut spool = Spool::open(tmp.path(), small()).unwrap();
        for i in 0..100 {
            spool.append(&item(i, 40)).unwrap();
        }
        // No sync: dropping writes the buffer to the page cache only.
    }
    let mut spool = Spool::open(tmp.path(), small()).unwrap();
    assert_eq!(spool.recovery().items_to_replay, 100);
    assert_eq!(indices(&drain(&mut spool)), (0..100).collect::<Vec<_>>());
}

#[test]
fn maybe_sync_writes_the_buffer_out_before_the_interval() {
    let tmp = TempDir::new("maybesync");
    let opts = small().with_sync_interval(Duration::from_secs(3600));
    let mut spool = Spool::open(tmp.path(), opts).unwrap();
    let it = item(1, 30);
    spool.append(&it).unwrap();
    let file = &segment_files(tmp.path())[0];
    assert_eq!(fs::metadata(file).unwrap().len(), 0, "append only buffers");
    spool.maybe_sync(Instant::now()).unwrap();
    assert_eq!(fs::metadata(file).unwrap().len(), it.encoded_len() as u64);
    spool.sync().unwrap();
}

#[test]
fn rotation_spreads_records_over_segments_and_acks_delete_them() {
    let tmp = TempDir::new("rotate");
    let mut spool = Spool::open(tmp.path(), small()).unwrap();
    for i in 0..100 {
        spool.append(&item(i, 100)).unwrap();
    }
    spool.sync().unwrap();
    let files = segment_files(tmp.path());
    assert!(files.len() >= 10, "{} segments", files.len());
    for f in &files {
        assert!(fs::metadata(f).unwrap().len() <= 1024);
    }
    assert_eq!(spool.stats().segments, files.len());
    let read = drain(&mut spool);
    assert_eq!(indices(&read), (0..100).collect::<Vec<_>>());
    spool.ack(read[49].0).unwrap();
    let left = segment_files(tmp.path()).len();
    assert!(
        left < files.len() && left > 1,
        "acked segments deleted: {left}"
    );
    spool.ack(read[99].0).unwrap();
    assert!(
        segment_files(tmp.path()).len() <= 1,
        "only the active segment may stay"
    );
    assert_eq!(spool.stats().pending_items, 0);
}

#[test]
fn cap_drops_the_oldest_segment_counts_it_and_keeps_the_new_item() {
    let tmp = TempDir::new("cap");
    let opts = SpoolOptions::default()
        .with_segment_bytes(1024)
        .with_max_bytes(4096);
    let mut spool = Spool::open(tmp.path(), opts).unwrap();
    for i in 0..200 {
        spool.append(&item(i, 100)).unwrap();
        assert!(spool.stats().bytes_on_disk <= 4096);
    }
    let stats = spool.stats();
    assert!(stats.dropped_by_cap > 0);
    let read = drain(&mut spool);
    let got = indices(&read);
    assert_eq!(got.last(), Some(&199), "the newest item is kept");
    let first = got[0];
    assert_eq!(
        got,
        (first..200).collect::<Vec<_>>(),
        "a contiguous newest suffix"
    );
    assert_eq!(
        u64::from(first),
        stats.dropped_by_cap,
        "every lost item counted"
    );
    assert_eq!(stats.pending_items, read.len() as u64);
}

#[test]
fn cap_drop_of_handed_out_items_ignores_their_late_ack() {
    let tmp = TempDir::new("capinflight");
    let opts = SpoolOptions::default()
        .with_segment_bytes(1024)
        .with_max_bytes(2048);
    let mut spool = Spool::open(tmp.path(), opts).unwrap();
    for i in 0..5 {
        spool.append(&item(i, 100)).unwrap();
    }
    let in_flight = spool.read_batch(3, usize::MAX).unwrap();
    for i in 5..40 {
        spool.append(&item(i, 100)).unwrap();
    }
    spool.ack(in_flight[2].0).unwrap();
    let stats = spool.stats();
    let rest = drain(&mut spool);
    assert_eq!(rest.last().map(|(_, it)| index_of(it)), Some(39));
    assert_eq!(stats.dropped_by_cap + rest.len() as u64, 40);
}

#[test]
fn oversized_items_are_refused_and_nothing_is_written() {
    let tmp = TempDir::new("toolarge");
    let opts = SpoolOptions::default()
        .with_segment_bytes(1024)
        .with_max_bytes(2048);
    let mut spool = Spool::open(tmp.path(), opts).unwrap();
    let err = spool.append(&item(0, 4096)).unwrap_err();
    assert!(
        matches!(err, SpoolError::ItemTooLarge { limit: 2048, .. }),
        "{err}"
    );
    assert_eq!(spool.stats().pending_items, 0);
    spool.append(&item(1, 1500)).unwrap();
    assert_eq!(
        indices(&drain(&mut spool)),
        vec![1],
        "bigger than a segment is fine"
    );
}

#[test]
fn cursor_survives_restarts_and_segment_numbers_are_never_reused() {
    let tmp = TempDir::new("cursor");
    let mut next = 0;
    for round in 0..4 {
        let mut spool = Spool::open(tmp.path(), small()).unwrap();
        if round > 0 {
            assert!(matches!(spool.recovery().cursor, CursorStatus::Restored(_)));
        }
        // Everything from earlier rounds was acked: only this round's items are pending.
        assert_eq!(spool.recovery().items_to_replay, 0);
        for _ in 0..25 {
            spool.append(&item(next, 90)).unwrap();
            next += 1;
        }
        let read = drain(&mut spool);
        assert_eq!(indices(&read), (next - 25..next).collect::<Vec<_>>());
        spool.ack(read.last().unwrap().0).unwrap();
        // No sync: the cursor file was replaced at ack time.
    }
}

#[test]
fn corrupt_cursor_replays_from_the_oldest_segment_and_says_so() {
    let tmp = TempDir::new("badcursor");
    {
        let mut spool = Spool::open(tmp.path(), small()).unwrap();
        for i in 0..10 {
            spool.append(&item(i, 20)).unwrap();
        }
        let read = drain(&mut spool);
        spool.ack(read[5].0).unwrap();
        spool.sync().unwrap();
    }
    fs::write(tmp.path().join("cursor"), b"garbage, not a cursor").unwrap();
    let mut spool = Spool::open(tmp.path(), small()).unwrap();
    assert_eq!(spool.recovery().cursor, CursorStatus::Corrupt);
    assert_eq!(spool.recovery().items_to_replay, 10);
    assert_eq!(indices(&drain(&mut spool)), (0..10).collect::<Vec<_>>());
}

#[test]
fn damaged_record_in_the_middle_is_skipped_and_counted_once() {
    let tmp = TempDir::new("damage");
    {
        let mut spool = Spool::open(tmp.path(), small()).unwrap();
        for i in 0..5 {
            spool.append(&item(i, 20)).unwrap();
        }
        spool.sync().unwrap();
    }
    let file = &segment_files(tmp.path())[0];
    let mut bytes = fs::read(file).unwrap();
    let rec = item(0, 20).encoded_len();
    bytes[2 * rec + 30] ^= 0xFF; // inside record 2's payload
    fs::write(file, &bytes).unwrap();
    let mut spool = Spool::open(tmp.path(), small()).unwrap();
    assert_eq!(indices(&drain(&mut spool)), vec![0, 1, 3, 4]);
    let stats = spool.stats();
    assert_eq!(
        (stats.corrupt_regions_skipped, stats.corrupt_bytes_skipped),
        (1, rec as u64)
    );
    spool.rewind();
    assert_eq!(drain(&mut spool).len(), 4);
    assert_eq!(
        spool.stats().corrupt_regions_skipped,
        1,
        "a re-read is not counted again"
    );
}

#[test]
fn unusable_directory_is_a_distinct_error_and_falls_back_to_memory() {
    let tmp = TempDir::new("unusable");
    let file = tmp.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let dir = file.join("spool");
    let err = Spool::open(&dir, small()).unwrap_err();
    assert!(matches!(err, SpoolError::Unusable { .. }), "{err}");
    match Spool::open_or_fallback(&dir, small()) {
        SpoolHandle::MemoryOnly {
            primary_error,
            fallback_error,
        } => {
            assert!(matches!(primary_error, SpoolError::Unusable { .. }));
            assert!(matches!(fallback_error, SpoolError::Unusable { .. }));
        }
        other => panic!("expected memory only, got {other:?}"),
    }
}

#[test]
fn second_open_is_locked_and_falls_back_to_a_per_process_directory() {
    // flock(2) locks an open file description, so a second open in the same process contends.
    let tmp = TempDir::new("lock");
    let mut first = Spool::open(tmp.path(), small()).unwrap();
    first.append(&item(1, 10)).unwrap();
    let err = Spool::open(tmp.path(), small()).unwrap_err();
    match &err {
        SpoolError::Locked { holder, .. } => assert_eq!(*holder, Some(std::process::id())),
        other => panic!("expected Locked, got {other}"),
    }
    let mut handle = Spool::open_or_fallback(tmp.path(), small());
    let own = tmp.path().join(format!("pid-{}", std::process::id()));
    match &handle {
        SpoolHandle::PerProcess {
            spool,
            primary_error,
        } => {
            assert_eq!(spool.dir(), own);
            assert!(matches!(primary_error, SpoolError::Locked { .. }));
        }
        other => panic!("expected per-process, got {other:?}"),
    }
    let second = handle.spool_mut().unwrap();
    second.append(&item(2, 10)).unwrap();
    assert_eq!(indices(&drain(second)), vec![2], "its own items only");
    assert_eq!(
        indices(&drain(&mut first)),
        vec![1],
        "the subdirectory is not a segment"
    );
    drop(handle);
    drop(first);
    let SpoolHandle::Primary(mut reopened) = Spool::open_or_fallback(tmp.path(), small()) else {
        panic!("the directory is free again");
    };
    // The subdirectory's unacknowledged item is adopted (see the adoption tests at the end).
    assert_eq!(indices(&drain(&mut reopened)), vec![1, 2]);
    assert!(!own.exists());
}

const CHILD_DIR: &str = "CL_SPOOL_TEST_CHILD_DIR";
const SYNCED: u32 = 500;

/// Not a test on its own: the body of the child process in `sigkill_...` below.
#[test]
fn child_appends_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let mut spool = Spool::open(&dir, small()).unwrap();
    for i in 0..SYNCED {
        spool.append(&item(i, 64)).unwrap();
    }
    spool.maybe_sync(Instant::now()).unwrap();
    println!("READY");
    // Keep writing (well under the cap, so nothing is dropped) until the parent's SIGKILL
    // lands, mid-append or after.
    for i in SYNCED..SYNCED + 4000 {
        spool.append(&item(i, 64)).unwrap();
        if i % 64 == 0 {
            spool.maybe_sync(Instant::now()).unwrap();
        }
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn sigkill_loses_nothing_written_out_and_the_lock_is_per_process() {
    let tmp = TempDir::new("sigkill");
    let mut child = KillOnDrop::spawn_test(
        "spool::child_appends_until_killed",
        &[(CHILD_DIR, tmp.path().as_os_str())],
    );
    let child = &mut child.0;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.any(|l| l.map(|l| l.trim_end().ends_with("READY")).unwrap_or(false));
    assert!(ready, "child never became ready");

    // Another process holds the directory: a distinct error naming it.
    match Spool::open(tmp.path(), small()) {
        Err(SpoolError::Locked { holder, .. }) => assert_eq!(holder, Some(child.id())),
        other => panic!("expected Locked, got {other:?}"),
    }

    child.kill().unwrap(); // SIGKILL on Unix: no destructor, no flush.
    child.wait().unwrap();

    let mut spool = Spool::open(tmp.path(), small()).unwrap();
    let got = indices(&drain(&mut spool));
    assert!(
        got.len() >= SYNCED as usize,
        "only {} items survived",
        got.len()
    );
    assert_eq!(
        got,
        (0..got.len() as u32).collect::<Vec<_>>(),
        "a gap-free prefix"
    );
    assert!(
        spool.stats().corrupt_regions_skipped <= 1,
        "at most a torn tail"
    );
}

/// A change to one segment file.
#[derive(Debug, Clone)]
enum Damage {
    Flip { file: usize, at: usize, mask: u8 },
    Truncate { file: usize, at: usize },
    AppendGarbage { file: usize, bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0..8usize, any::<usize>(), 1..=255u8).prop_map(|(file, at, mask)| Damage::Flip {
            file,
            at,
            mask
        }),
        (0..8usize, any::<usize>()).prop_map(|(file, at)| Damage::Truncate { file, at }),
        (0..8usize, proptest::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(file, bytes)| Damage::AppendGarbage { file, bytes }),
    ]
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=5000 for a longer run.
    /// Random flips, truncations and garbage never panic, and every record whose bytes were
    /// not touched is still delivered, in order, with nothing invented.
    #[test]
    fn every_untouched_record_survives_random_damage(
        sizes in proptest::collection::vec(0..300usize, 1..40),
        damages in proptest::collection::vec(damage(), 1..6),
    ) {
        let tmp = TempDir::new("prop");
        let originals: Vec<SpoolItem> =
            sizes.iter().enumerate().map(|(i, &n)| item(i as u32, n)).collect();
        {
            let mut spool = Spool::open(tmp.path(), small()).unwrap();
            for it in &originals {
                spool.append(it).unwrap();
            }
            spool.sync().unwrap();
        }
        let files = segment_files(tmp.path());
        // Record spans per file before damage, and which bytes the damage touches.
        let mut spans = Vec::new();
        let mut contents = Vec::new();
        for f in &files {
            let bytes = fs::read(f).unwrap();
            let s: Vec<(usize, usize, u32)> = scan_segment(&bytes)
                .filter_map(|s| match s {
                    Scanned::Record { start, end, item } => Some((start, end, index_of(&item))),
                    Scanned::Damaged { .. } => None,
                })
                .collect();
            spans.push(s);
            contents.push(bytes);
        }
        let mut touched: Vec<Vec<bool>> = contents.iter().map(|c| vec![false; c.len()]).collect();
        for d in &damages {
            match d {
                Damage::Flip { file, at, mask } => {
                    let f = file % files.len();
                    if contents[f].is_empty() { continue; }
                    let at = at % contents[f].len();
                    contents[f][at] ^= mask;
                    if at < touched[f].len() { touched[f][at] = true; }
                }
                Damage::Truncate { file, at } => {
                    let f = file % files.len();
                    let at = at % (contents[f].len() + 1);
                    contents[f].truncate(at);
                    for t in touched[f].iter_mut().skip(at) { *t = true; }
                }
                Damage::AppendGarbage { file, bytes } => {
                    let f = file % files.len();
                    contents[f].extend_from_slice(bytes);
                }
            }
        }
        for (f, c) in files.iter().zip(&contents) {
            fs::write(f, c).unwrap();
        }
        let expected: Vec<u32> = spans
            .iter()
            .zip(&touched)
            .flat_map(|(s, t)| {
                s.iter()
                    .filter(|(start, end, _)| !t[*start..*end].iter().any(|&x| x))
                    .map(|&(_, _, i)| i)
                    .collect::<Vec<_>>()
            })
            .collect();

        let mut spool = Spool::open(tmp.path(), small()).unwrap();
        let got = drain(&mut spool);
        for (_, it) in &got {
            prop_assert_eq!(it, &originals[index_of(it) as usize], "nothing invented");
        }
        let got = indices(&got);
        let mut rest = got.iter();
        for e in &expected {
            prop_assert!(rest.any(|g| g == e), "lost untouched record {} (got {:?})", e, got);
        }
    }
}

/// Opens `dir` as a second spool while another holds it: the per-process fallback.
fn per_process(dir: &Path) -> Spool {
    match Spool::open_or_fallback(dir, small()) {
        SpoolHandle::PerProcess { spool, .. } => spool,
        other => panic!("expected per-process, got {other:?}"),
    }
}

#[test]
fn a_pid_directory_left_by_an_earlier_process_is_adopted_by_the_next_primary_open() {
    let tmp = TempDir::new("adopt");
    let own = tmp.path().join(format!("pid-{}", std::process::id()));
    // "Process A" holds the directory; "process B" (a second open) falls back to pid-<pid>.
    let mut a = Spool::open(tmp.path(), small()).unwrap();
    a.append(&item(1000, 40)).unwrap();
    let mut b = per_process(tmp.path());
    assert_eq!(b.dir(), own);
    let originals: Vec<SpoolItem> = (0..60).map(|i| item(i, 40)).collect();
    for it in &originals {
        b.append(it).unwrap();
    }
    // B delivered the first 10, and had the next 5 on the wire when it exited.
    let sent = b.read_batch(10, usize::MAX).unwrap();
    b.ack(sent.last().unwrap().0).unwrap();
    assert_eq!(b.read_batch(5, usize::MAX).unwrap().len(), 5);
    drop(b);
    drop(a);

    let mut c = primary(tmp.path());
    assert!(!own.exists(), "the adopted directory is removed");
    let stats = c.stats();
    assert_eq!((stats.adopted_dirs, stats.adopted_items), (1, 50));
    assert_eq!(stats.pending_items, 51);
    assert_eq!(c.recovery().items_to_replay, 51);
    let got: Vec<SpoolItem> = drain(&mut c).into_iter().map(|(_, it)| it).collect();
    assert_eq!(got[0], item(1000, 40), "its own replay first");
    assert_eq!(
        &got[1..],
        &originals[10..],
        "every unacknowledged record, with the same id, time and bytes, in order"
    );
    drop(c);

    // Adopted records are ordinary records now: replayed until acked, never adopted twice.
    let mut d = primary(tmp.path());
    assert_eq!(d.stats().adopted_dirs, 0);
    assert_eq!(drain(&mut d).len(), 51);
}

#[test]
fn a_pid_directory_still_locked_by_a_live_spool_is_left_alone() {
    let tmp = TempDir::new("adopt-live");
    let own = tmp.path().join(format!("pid-{}", std::process::id()));
    let a = Spool::open(tmp.path(), small()).unwrap();
    let mut b = per_process(tmp.path());
    for i in 0..5 {
        b.append(&item(i, 20)).unwrap();
    }
    drop(a);

    // B is still alive: the next primary open must not take its directory.
    let mut c = primary(tmp.path());
    assert_eq!(c.stats().adopted_dirs, 0);
    assert!(drain(&mut c).is_empty());
    assert!(own.join("LOCK").exists());
    assert_eq!(indices(&drain(&mut b)), vec![0, 1, 2, 3, 4], "B goes on");
    drop(c);
    drop(b);

    // Once B is gone, the next primary open adopts them.
    let mut d = primary(tmp.path());
    assert_eq!(d.stats().adopted_items, 5);
    assert_eq!(indices(&drain(&mut d)), vec![0, 1, 2, 3, 4]);
    assert!(!own.exists());
}

fn engine(base: &str, spool_dir: &Path) -> Delivery {
    tagged::start(base, tagged::config(Some(SpoolOptions::new(spool_dir))))
}

/// `(seq, id)` of every item in a JSON-array body or in spooled item bytes.
fn seq_and_id(v: &serde_json::Value) -> (usize, String) {
    (
        v["seq"].as_str().unwrap().parse().unwrap(),
        v["id"].as_str().unwrap().to_string(),
    )
}

#[test]
fn records_spooled_in_a_pid_directory_are_delivered_by_the_next_engine_start() {
    const N: usize = 40;
    let tmp = TempDir::new("adopt-engine");
    let stream_dir = tmp.path().join(tagged::STREAM);
    let own = stream_dir.join(format!("pid-{}", std::process::id()));
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    // Engine A takes the stream's directory (the flush handshake: its worker has opened it).
    let a = engine(&dead, tmp.path());
    assert!(a.flush(Duration::from_secs(5)).is_complete());
    // Engine B finds it locked, spools in pid-<pid>, and exits during the outage.
    let b = engine(&dead, tmp.path());
    for n in 0..N {
        b.submit(vec![tagged::event(n)]).unwrap();
    }
    let report = b.shutdown(Duration::from_millis(500)).unwrap();
    assert_eq!(report.stats.spooled, N as u64, "{report:?}");
    assert_accounting(&report.stats);
    assert_accounting(&a.shutdown(Duration::from_secs(5)).unwrap().stats);
    // What B left behind, by seq.
    let mut left = std::collections::BTreeMap::new();
    {
        let mut orphan = Spool::open(&own, SpoolOptions::default()).unwrap();
        for (_, it) in drain(&mut orphan) {
            let (seq, id) = seq_and_id(&serde_json::from_slice(&it.bytes).unwrap());
            assert_eq!(id, it.id.to_string());
            left.insert(seq, id);
        }
    }
    assert_eq!(left.len(), N);

    let server = TestServer::always(200);
    let c = engine(&server.base(), tmp.path());
    assert!(c.flush(Duration::from_secs(8)).is_complete());
    let mut arrived = std::collections::BTreeMap::new();
    for r in server.requests() {
        for v in r.json().as_array().unwrap() {
            let (seq, id) = seq_and_id(v);
            assert!(arrived.insert(seq, id).is_none(), "seq {seq} sent twice");
        }
    }
    assert_eq!(arrived, left, "every record, with the id B gave it");
    let s = c.stats();
    assert_eq!((s.sent, s.dropped.total()), (N as u64, 0), "{s:?}");
    let spool = s.spool.expect("C has a spool");
    assert_eq!((spool.adopted_dirs, spool.adopted_items), (1, N as u64));
    assert!(!own.exists());
    assert_accounting(&c.shutdown(Duration::from_secs(5)).unwrap().stats);
}
