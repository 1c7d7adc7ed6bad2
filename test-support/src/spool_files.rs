//! Spool-level test helpers shared by the spool suite and the Windows file-semantics tests:
//! small segments, the item index encoded in an id, the segment files of a directory, and
//! opening a directory as the primary spool.

use std::fs;
use std::path::{Path, PathBuf};

use closedloop_telemetry_exporters::__private::spool::{Spool, SpoolHandle, SpoolItem};
use closedloop_telemetry_exporters::SpoolOptions;

/// 1 KiB segments under a 1 MiB cap: a few dozen small items span several segments.
pub fn small() -> SpoolOptions {
    SpoolOptions::default()
        .with_segment_bytes(1024)
        .with_max_bytes(1024 * 1024)
}

/// The index a test encoded in the first four bytes of an item's id.
pub fn index_of(item: &SpoolItem) -> u32 {
    u32::from_be_bytes(item.id.as_bytes()[..4].try_into().unwrap())
}

/// The `.seg` files of `dir`, sorted.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// Opens `dir` with [`small`] options, which must give the primary directory.
pub fn primary(dir: &Path) -> Spool {
    match Spool::open_or_fallback(dir, small()) {
        SpoolHandle::Primary(spool) => spool,
        other => panic!("expected the primary directory, got {other:?}"),
    }
}
