//! The OTLP/HTTP logs exporter: the diagnostics stream sent to any OpenTelemetry Collector.

use closedloop_telemetry_layers::__private::catalogue::CatalogueEntry;
use opentelemetry_proto::tonic::resource::v1::Resource;
use uuid::Uuid;

use super::wire::{self, Compression, Protocol, MAX_BODY_BYTES, MAX_ITEMS};
use crate::decode::Event;
use crate::delivery::{
    parse_http_url, BuildError, DeliveryOptions, DeliverySpec, HttpTransport, InvalidEvent,
    WireFormat,
};
use crate::diagnostics::DiagnosticsSettings;
use crate::exporter::StreamExporter;
use crate::relay::wire::routes_to_relay;

/// The OTLP stream plugged into the engine.
struct OtlpStream {
    allow_custom: bool,
    protocol: Protocol,
    resource: Resource,
    /// Header values (credentials such as an API key), kept out of logged reasons.
    secrets: Vec<String>,
}

impl WireFormat for OtlpStream {
    fn name(&self) -> &'static str {
        "otlp"
    }

    /// The relay's routing: the same events.
    fn routes(&self, entry: Option<&CatalogueEntry>) -> bool {
        routes_to_relay(entry, self.allow_custom)
    }

    /// Diagnostics carry the (redacted) tails of an event that has them.
    fn sends_tails(&self) -> bool {
        true
    }

    fn encode(&self, event: &Event, id: Uuid) -> Result<Vec<u8>, InvalidEvent> {
        if event.trace.compute_target_id.is_empty() {
            return Err(InvalidEvent("empty computeTargetId"));
        }
        Ok(wire::encode_item(event, id))
    }

    fn frame(&self, items: &[&[u8]], out: &mut Vec<u8>) {
        wire::frame(items, &self.resource, self.protocol, out);
    }

    fn redact(&self, text: &mut String) {
        for secret in self.secrets.iter().filter(|s| s.len() >= 4) {
            if text.contains(secret.as_str()) {
                *text = text.replace(secret.as_str(), "[redacted]");
            }
        }
    }

    /// The OTLP/HTTP spec's retryable answers: 429, 502, 503 and 504 (and 413, which the
    /// engine splits); every other error is final.
    fn retries(&self, status: u16) -> bool {
        matches!(status, 413 | 429 | 502 | 503 | 504)
    }

    /// An error answer's `google.rpc.Status` message (the spec's way to say why).
    fn reason(&self, body: &[u8]) -> Option<String> {
        wire::status_message(body, self.protocol)
    }

    /// A 2xx answer with a `partial_success`: how many records were rejected, and why.
    fn partially_rejected(&self, body: &[u8]) -> Option<(u64, String)> {
        wire::partial_success(body, self.protocol)
    }
}

/// Builds an OTLP/HTTP logs [`StreamExporter`]: the diagnostics stream (the relay's events,
/// redaction and tails rule) sent to any OpenTelemetry Collector.
///
/// | setting | default |
/// |---|---|
/// | [`endpoint`](Self::endpoint) | required (`CL_OTLP_ENDPOINT`); requests go to `{endpoint}/v1/logs` |
/// | [`header`](Self::header) | none (`CL_OTLP_HEADERS`, `k=v,k2=v2`, values percent-decoded) |
/// | [`protocol`](Self::protocol) | `http/protobuf` (`CL_OTLP_PROTOCOL`; or `http/json`) |
/// | [`compression`](Self::compression) | `gzip` (`CL_OTLP_COMPRESSION`; or `none`) |
/// | [`service_name`](Self::service_name) | `closedloop-desktop` |
/// | batch | at most 512 records and 1 MiB per request; records older than 18 h expire |
/// | [`max_delay`](Self::max_delay) | 2 s (at most 60 s) |
/// | [`verbose`](Self::verbose), [`allow_custom_events`](Self::allow_custom_events) | off |
/// | [`compute_target_id`](Self::compute_target_id), [`release_version`](Self::release_version) | none: used only for records that lack them |
/// | [`delivery`](Self::delivery) | [`DeliveryOptions::default`], with gzip as `compression` says |
///
/// The standard `OTEL_EXPORTER_OTLP_*` variables are never read: an app's own tracing endpoint
/// must not start receiving user telemetry because this library was added.
///
/// ```
/// use closedloop_telemetry_exporters::{OtlpExporterBuilder, Protocol};
/// // Requests go to http://127.0.0.1:4318/v1/logs, as OTLP/JSON with gzip.
/// let exporter = OtlpExporterBuilder::default()
///     .endpoint("http://127.0.0.1:4318")
///     .protocol(Protocol::HttpJson)
///     .header("x-tenant", "acme")
///     .build()
///     .unwrap();
/// # drop(exporter);
/// // Without an endpoint there is nothing to send to: a build error, not a panic.
/// assert!(OtlpExporterBuilder::default().build().is_err());
/// ```
#[derive(Clone, Default)]
pub struct OtlpExporterBuilder {
    endpoint: Option<String>,
    headers: Vec<(String, String)>,
    protocol: Protocol,
    compression: Compression,
    service_name: Option<String>,
    settings: DiagnosticsSettings,
    delivery: Option<DeliveryOptions>,
}

impl std::fmt::Debug for OtlpExporterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpExporterBuilder")
            .field(
                "endpoint",
                &self.endpoint.as_deref().map(crate::url_redact::redact_url),
            )
            .field("headers", &header_names)
            .field("protocol", &self.protocol)
            .field("compression", &self.compression)
            .field("service_name", &self.service_name)
            .field("settings", &self.settings)
            .field("delivery", &self.delivery)
            .finish()
    }
}

impl OtlpExporterBuilder {
    /// The collector's base URL, e.g. `http://127.0.0.1:4318`.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// One more header on every request (e.g. an API key); the value is never logged.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// `http/protobuf` (default) or `http/json`.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// `gzip` (default) or `none`.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The resource's `service.name`. Default `closedloop-desktop`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Keeps (redacted) log tails. Default off.
    pub fn verbose(mut self, on: bool) -> Self {
        self.settings.verbose = on;
        self
    }

    /// Sends events outside the catalogue too. Default off.
    pub fn allow_custom_events(mut self, on: bool) -> Self {
        self.settings.allow_custom_events = on;
        self
    }

    /// How long the first queued record may wait. Default 2 s, at most 60 s.
    pub fn max_delay(mut self, delay: std::time::Duration) -> Self {
        self.settings.max_delay = delay;
        self
    }

    /// Fallback computeTargetId for records that lack one.
    pub fn compute_target_id(mut self, id: impl Into<String>) -> Self {
        self.settings.compute_target_id = Some(id.into());
        self
    }

    /// The release version: `service.version`, and the fallback for records that lack one.
    pub fn release_version(mut self, version: impl Into<String>) -> Self {
        self.settings.release_version = Some(version.into());
        self
    }

    /// How to deliver: queue, timeout, retries, shutdown deadline, spool. Default
    /// [`DeliveryOptions::default`]; gzip follows [`compression`](Self::compression) unless
    /// these options turn it on.
    pub fn delivery(mut self, options: DeliveryOptions) -> Self {
        self.delivery = Some(options);
        self
    }

    /// Checks the settings, starts the exporter's background thread and returns the exporter.
    pub fn build(self) -> Result<StreamExporter, BuildError> {
        StreamExporter::start(self.spec()?)
    }

    /// Checks the settings and returns the destination, not started (for a
    /// [`Pipeline`](crate::pipeline::Pipeline) of several).
    pub(crate) fn spec(self) -> Result<DeliverySpec, BuildError> {
        self.settings.check()?;
        let mut delivery = self.delivery.unwrap_or_default();
        if self.compression == Compression::Gzip && delivery.gzip_level().is_none() {
            delivery = delivery.gzipped();
        }
        delivery.check()?;
        let endpoint = self
            .endpoint
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .ok_or(BuildError::Missing("endpoint (CL_OTLP_ENDPOINT)"))?;
        let url = parse_http_url("CL_OTLP_ENDPOINT", &wire::logs_url(&endpoint))?;
        let shown = url.to_string();
        let mut headers = vec![(
            "content-type".to_string(),
            self.protocol.content_type().to_string(),
        )];
        headers.extend(
            self.headers
                .iter()
                .map(|(k, v)| (k.trim().to_string(), v.clone())),
        );
        let limits = self.settings.limits(MAX_ITEMS, MAX_BODY_BYTES);
        let transport = HttpTransport::with_headers(url, &headers, delivery.effective_timeout())?;
        let service_name = self
            .service_name
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| wire::DEFAULT_SERVICE_NAME.to_string());
        let stream = OtlpStream {
            allow_custom: self.settings.allow_custom_events,
            protocol: self.protocol,
            resource: wire::resource(&service_name, self.settings.release_version.as_deref()),
            secrets: self.headers.iter().map(|(_, v)| v.clone()).collect(),
        };
        Ok(DeliverySpec::new(stream, transport, limits, &delivery)?
            .with_decode(self.settings.decode_options())
            .with_endpoint(shown))
    }
}
