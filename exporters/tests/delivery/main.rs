//! The delivery engine and its on-disk spool against loopback servers: the spool, expiry,
//! the fault suite and network behaviour.

use closedloop_telemetry_test_support as support;

mod expiry;
mod faults;
mod network;
mod spool;
