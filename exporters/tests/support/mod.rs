//! Shared test helpers of the exporters' tests (the facade's tests include them too, from
//! `tests/support/mod.rs`): real loopback HTTP servers, process-level helpers, log capture, a
//! minimal tagged stream and the accounting invariant.
pub mod accounting;
pub mod logs;
pub mod process;
pub mod server;
pub mod spool_files;
pub mod tagged;
