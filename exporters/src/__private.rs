//! **Not API: may change without notice.** What the other crates of this workspace (the
//! facade, the tools, the tests, the benches and the fuzz targets) need from the exporters
//! beyond their public items: the delivery engine and its pipeline, the decoder, the spool,
//! the wire formats, the redactor and a few shared helpers and constants. Hidden from the
//! docs; nothing here is covered by semver.
//!
//! The modules mirror the crate's own (`__private::delivery` is `crate::delivery`, and so
//! on). Methods of public types that are not API are reached through the traits at the end
//! ([`StreamExporterExt`], [`BuilderExt`], [`DestinationExt`]).

use crate::delivery::{BuildError, Delivery, DeliverySpec};

/// The record decoder (the only reader of record attributes).
pub mod decode {
    pub use crate::decode::{decode, DecodeError, DecodeOptions, DecodingProcessor, Event};
}

/// The delivery engine: the handle of one destination, its parts (wire format, transport,
/// limits), the "sent" tap of the view page and the shared range checks.
pub mod delivery {
    pub use crate::delivery::{
        check_range, deadline_after, frame_json_array, gzip_bytes, parse_http_url, BoxFuture,
        CrashWrite, Delivery, DeliverySpec, HttpTransport, InvalidEvent, Limits, Request, Response,
        SentOutcome, SentRecord, SentRing, Transport, TransportError, WireFormat,
        DEFAULT_SHUTDOWN_TIMEOUT, MAX_BATCH_DELAY, MAX_DURATION_SETTING, SENT_RING_CAPACITY,
    };
    #[cfg(any(test, feature = "testing"))]
    pub use crate::delivery::{plain_body, MemoryTransport};
}

/// The pipeline: one queue and one background thread for up to 8 destinations.
pub mod pipeline {
    pub use crate::pipeline::Pipeline;
    pub use crate::volume::LimitObserver;
}

/// The durable on-disk spool.
pub mod spool {
    pub use crate::spool::{
        dir_usage, lock_dir, purge_unlocked, remove_if_unlocked, CursorStatus, DirLock, Position,
        Spool, SpoolError, SpoolHandle, SpoolItem, SpoolStats,
    };
    /// The segment reader, for the spool's fuzz target and its record-level tests.
    pub mod test_support {
        pub use crate::spool::test_support::{scan_segment, Scanned};
    }
}

/// The PostHog stream's defaults and wire format.
pub mod posthog {
    pub use crate::posthog::{wire, DEFAULT_FLUSH_INTERVAL, DEFAULT_HOST, MAX_FLUSH_INTERVAL};
}

/// The relay stream's wire format.
pub mod relay {
    pub use crate::relay::wire;
}

/// The OTLP/HTTP logs wire format (the mapping, the framing, the response parsing).
pub mod otlp {
    pub use crate::otlp::wire;
}

/// The Datadog intake's wire format.
pub mod datadog {
    pub use crate::datadog::{default_hostname, wire};
}

/// What the relay and Datadog diagnostics streams share.
pub mod diagnostics {
    pub use crate::diagnostics::{DEFAULT_MAX_DELAY, MAX_AGE};
}

/// The environment, looked up once.
pub mod env {
    pub use crate::env::{Env, VARS};
}

/// The redactor of free text.
pub mod redact {
    pub use crate::redact::Redactor;
}

/// Files and directories only the user can read.
pub mod private_fs {
    #[cfg(any(test, feature = "testing"))]
    pub use crate::private_fs::dir_syncs_on_this_thread;
    pub use crate::private_fs::{create_dir_all, create_file, sync_dir};
}

/// A loopback server on a thread of its own (the collector, the view page).
pub mod server_thread {
    pub use crate::server_thread::{bind_loopback, check_loopback, ServerThread};
}

pub use crate::url_redact::redact_url;

/// The methods of [`StreamExporter`](crate::StreamExporter) that are not API.
pub trait StreamExporterExt {
    /// Starts one destination alone, on a background thread of its own.
    fn start(spec: DeliverySpec) -> Result<Self, BuildError>
    where
        Self: Sized;
    /// The engine handle (submit decoded events, stats, flush, shutdown).
    fn delivery(&self) -> &Delivery;
}

impl StreamExporterExt for crate::StreamExporter {
    fn start(spec: DeliverySpec) -> Result<Self, BuildError> {
        crate::StreamExporter::start(spec)
    }

    fn delivery(&self) -> &Delivery {
        crate::StreamExporter::delivery(self)
    }
}

/// The exporter builders' `spec()`: the destination configured and checked, not started (for
/// a [`Pipeline`](pipeline::Pipeline) of several destinations).
pub trait BuilderExt {
    /// The destination configured and checked, not started.
    fn spec(self) -> Result<DeliverySpec, BuildError>;
}

impl BuilderExt for crate::PostHogExporterBuilder {
    fn spec(self) -> Result<DeliverySpec, BuildError> {
        crate::PostHogExporterBuilder::spec(self)
    }
}

impl BuilderExt for crate::RelayExporterBuilder {
    fn spec(self) -> Result<DeliverySpec, BuildError> {
        crate::RelayExporterBuilder::spec(self)
    }
}

impl BuilderExt for crate::DatadogExporterBuilder {
    fn spec(self) -> Result<DeliverySpec, BuildError> {
        crate::DatadogExporterBuilder::spec(self)
    }
}

impl BuilderExt for crate::OtlpExporterBuilder {
    fn spec(self) -> Result<DeliverySpec, BuildError> {
        crate::OtlpExporterBuilder::spec(self)
    }
}

/// The methods of [`Destination`](crate::Destination) that are not API.
pub trait DestinationExt {
    /// Whether this destination takes an event of this catalogue row (the same rule its wire
    /// format applies), for the audit when no pipeline runs.
    fn routes(
        self,
        entry: Option<&closedloop_telemetry_layers::__private::catalogue::CatalogueEntry>,
        allow_custom: bool,
    ) -> bool;
}

impl DestinationExt for crate::Destination {
    fn routes(
        self,
        entry: Option<&closedloop_telemetry_layers::__private::catalogue::CatalogueEntry>,
        allow_custom: bool,
    ) -> bool {
        crate::Destination::routes(self, entry, allow_custom)
    }
}
