//! Shared test helpers: real loopback HTTP servers and process-level helpers.
pub mod accounting;
pub mod lean;
pub mod logs;
pub mod process;
pub mod server;
pub mod tagged;
pub mod tmpfs;
