//! The PostHog product-analytics stream: wire format ([`wire`]), builder and exporter.
//!
//! Routing: only catalogue events whose row has a PostHog name. Mapping and batch shape:
//! [`wire`]. Delivery (batches of at most 20, every 30 s, retries, 413 splits, stats): the
//! shared [`delivery`](crate::delivery) engine.

mod builder;
mod exporter;
pub mod wire;

pub use builder::{
    PostHogExporterBuilder, DEFAULT_FLUSH_INTERVAL, DEFAULT_HOST, MAX_FLUSH_INTERVAL,
};
