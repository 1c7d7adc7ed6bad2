//! The delivery engine and its on-disk spool against loopback servers: the spool, expiry,
//! the fault suite and network behaviour.

#[path = "../support/mod.rs"]
mod support;

mod expiry;
mod faults;
mod network;
mod spool;
