//! Shared test helpers: a real loopback HTTP server.
pub mod lean;
pub mod server;
