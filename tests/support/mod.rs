//! Shared test helpers: real loopback HTTP servers and process-level helpers. Those the
//! exporters' tests use too live in `exporters/tests/support/` and are included from there.
pub mod accounting;
pub mod facade;
pub mod lean;
#[path = "../../exporters/tests/support/logs.rs"]
pub mod logs;
#[path = "../../exporters/tests/support/process.rs"]
pub mod process;
#[path = "../../exporters/tests/support/server.rs"]
pub mod server;
#[path = "../../exporters/tests/support/spool_files.rs"]
pub mod spool_files;
#[path = "../../exporters/tests/support/tagged.rs"]
pub mod tagged;
pub mod tmpfs;
