//! Helpers shared by the workspace's integration tests (`tests/`, `exporters/tests/`,
//! `tools/*/tests/`) and the benches: one loopback HTTP receiver ([`server::TestServer`],
//! scripted and recording, or lean for load tests and benches), process-level helpers, log
//! capture, a minimal tagged stream, the accounting invariant, the facade as an app builds it
//! and a small tmpfs.
//!
//! It depends on the facade, so only integration tests and benches use it (a test file names it
//! `use closedloop_telemetry_test_support as support;`); the crates' own unit tests must not,
//! as they would link a second copy of their crate.
#![warn(missing_docs)]

pub mod accounting;
pub mod facade;
pub mod logs;
pub mod process;
pub mod server;
pub mod spool_files;
pub mod tagged;
pub mod tmpfs;
