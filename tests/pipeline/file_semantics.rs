//! Windows file semantics, on every platform: another program (a virus scanner, a backup tool)
//! may hold any of our files open without sharing delete, and Windows then refuses to delete or
//! rename over it until it is closed. Nothing may be lost or sent twice because of that: a
//! deletion is retried once the file is closed, and a replacement succeeds at the next write.
//! On Unix the same tests pass trivially (an open file can be unlinked); under Wine and on
//! Windows they exercise the refusals.

use closedloop_telemetry_test_support as support;

use std::fs::{self, File};
use std::path::Path;

use closedloop_telemetry::__private::consent;
use closedloop_telemetry::__private::identity;
use closedloop_telemetry::Consent;
use closedloop_telemetry_exporters::__private::spool::{Position, Spool, SpoolItem};
use support::process::TempDir;
use support::spool_files::{index_of, primary, segment_files, small};
use uuid::Uuid;

/// Opens `path` for reading the way a program that does not share delete does: on Windows,
/// deleting the file or renaming over it then fails until this handle is closed.
fn hold_open(path: &Path) -> File {
    let mut opts = fs::OpenOptions::new();
    opts.read(true);
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        const FILE_SHARE_READ: u32 = 1;
        const FILE_SHARE_WRITE: u32 = 2;
        opts.share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE);
    }
    opts.open(path).unwrap()
}

fn item(i: u32) -> SpoolItem {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&i.to_be_bytes());
    SpoolItem::new(
        Uuid::from_bytes(id),
        1_700_000_000_000 + u64::from(i),
        vec![b'x'; 60],
    )
}

/// Reads everything pending; the indices and the position of the last item.
fn drain(spool: &mut Spool) -> (Vec<u32>, Option<Position>) {
    let mut got = Vec::new();
    let mut last = None;
    loop {
        let batch = spool.read_batch(7, usize::MAX).unwrap();
        if batch.is_empty() {
            return (got, last);
        }
        last = batch.last().map(|(p, _)| *p);
        got.extend(batch.iter().map(|(_, it)| index_of(it)));
    }
}

#[test]
fn an_acked_segment_held_open_by_another_program_is_deleted_once_it_is_closed() {
    let tmp = TempDir::new("held-segment");
    let mut spool = Spool::open(tmp.path(), small()).unwrap();
    for i in 0..30 {
        spool.append(&item(i)).unwrap();
    }
    spool.sync().unwrap();
    let first = segment_files(tmp.path())[0].clone();
    assert!(segment_files(tmp.path()).len() >= 3);

    let reader = hold_open(&first);
    let batch = spool.read_batch(15, usize::MAX).unwrap();
    assert!(batch.iter().any(|(p, _)| p.segment > batch[0].0.segment));
    spool.ack(batch.last().unwrap().0).unwrap();
    drop(reader);

    // The next acknowledgement deletes it: nothing waits for a restart.
    let next = spool.read_batch(1, usize::MAX).unwrap();
    spool.ack(next[0].0).unwrap();
    assert!(!first.exists(), "the acked segment is deleted once closed");
    drop(spool);

    let mut again = Spool::open(tmp.path(), small()).unwrap();
    assert_eq!(drain(&mut again).0, (16..30).collect::<Vec<_>>());
}

#[test]
fn the_cursor_is_replaced_at_the_next_ack_once_a_reader_holding_it_closes() {
    let tmp = TempDir::new("held-cursor");
    let mut spool = Spool::open(tmp.path(), small()).unwrap();
    for i in 0..20 {
        spool.append(&item(i)).unwrap();
    }
    let five = spool.read_batch(5, usize::MAX).unwrap();
    spool.ack(five.last().unwrap().0).unwrap();

    let reader = hold_open(&tmp.path().join("cursor"));
    let five = spool.read_batch(5, usize::MAX).unwrap();
    // The cursor is overwritten in place, which a reader sharing writes does not prevent; were
    // the write refused (an error, counted), the next acknowledgement would redo it.
    let _ = spool.ack(five.last().unwrap().0);
    drop(reader);
    let five = spool.read_batch(5, usize::MAX).unwrap();
    spool.ack(five.last().unwrap().0).unwrap();
    spool.sync().unwrap();
    drop(spool);

    let mut again = Spool::open(tmp.path(), small()).unwrap();
    assert_eq!(drain(&mut again).0, (15..20).collect::<Vec<_>>());
}

#[test]
fn an_orphan_held_open_is_adopted_once_and_removed_by_a_later_start() {
    let tmp = TempDir::new("held-orphan");
    let orphan = tmp.path().join("pid-4242");
    {
        let mut s = Spool::open(&orphan, small()).unwrap();
        for i in 0..25 {
            s.append(&item(i)).unwrap();
        }
        s.sync().unwrap();
    }
    let reader = hold_open(&segment_files(&orphan)[0]);

    let mut first = primary(tmp.path());
    assert_eq!(
        first.stats().adopted_items,
        25,
        "adopted even if not yet removable"
    );
    let (got, _) = drain(&mut first);
    assert_eq!(got, (0..25).collect::<Vec<_>>());
    drop(first);
    drop(reader);

    // Whether or not the first start could remove it, nothing is adopted twice.
    let mut second = primary(tmp.path());
    assert_eq!(second.stats().adopted_items, 0, "nothing sent twice");
    assert!(!orphan.exists(), "removed once nothing holds it");
    assert_eq!(drain(&mut second).0, (0..25).collect::<Vec<_>>());
}

/// The files in `dir` other than `keep`: temporary files left behind.
fn leftovers(dir: &Path, keep: &str) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != keep)
        .collect()
}

#[test]
fn a_held_consent_file_keeps_the_old_choice_until_it_can_be_replaced() {
    let tmp = TempDir::new("held-consent");
    consent::store(tmp.path(), Consent::Granted).unwrap();
    let reader = hold_open(&tmp.path().join(consent::CONSENT_FILE));
    // Windows (and Wine) refuse to rename over a file that is open: the caller gets the
    // error, the old choice stands whole, and no temporary file is left behind.
    match consent::store(tmp.path(), Consent::Denied) {
        Ok(()) => assert_eq!(consent::load(tmp.path()), Some(Consent::Denied)),
        Err(_) => assert_eq!(consent::load(tmp.path()), Some(Consent::Granted)),
    }
    assert_eq!(
        leftovers(tmp.path(), consent::CONSENT_FILE),
        Vec::<String>::new()
    );
    drop(reader);
    consent::store(tmp.path(), Consent::Denied).unwrap();
    assert_eq!(consent::load(tmp.path()), Some(Consent::Denied));
}

#[test]
fn a_held_damaged_identity_file_leaves_no_temporary_file_and_is_replaced_later() {
    let tmp = TempDir::new("held-identity");
    let path = tmp.path().join(identity::ID_FILE);
    fs::write(&path, "").unwrap();
    let reader = hold_open(&path);
    // Replacing the damaged file fails where it is open (Windows): an error, nothing stranded.
    let first = identity::load_or_create(tmp.path());
    assert_eq!(
        leftovers(tmp.path(), identity::ID_FILE),
        Vec::<String>::new()
    );
    drop(reader);
    let id = identity::load_or_create(tmp.path()).unwrap();
    if let Ok(first) = first {
        assert_eq!(first, id);
    }
    assert_eq!(
        identity::load_or_create(tmp.path()).unwrap(),
        id,
        "stored once, then reused"
    );
}
