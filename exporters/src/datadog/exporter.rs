//! The direct Datadog logs-intake exporter, used when there is no relay.

use closedloop_telemetry_layers::__private::catalogue::CatalogueEntry;
use uuid::Uuid;

use super::wire::{self, API_KEY_HEADER, MAX_BODY_BYTES, MAX_ITEMS};
use crate::decode::Event;
use crate::delivery::{
    frame_json_array, parse_http_url, BuildError, DeliveryOptions, DeliverySpec, HttpTransport,
    InvalidEvent, WireFormat,
};
use crate::diagnostics::DiagnosticsSettings;
use crate::exporter::StreamExporter;
use crate::relay::wire::routes_to_relay;

struct DatadogStream {
    allow_custom: bool,
    hostname: String,
    api_key: String,
}

impl WireFormat for DatadogStream {
    fn name(&self) -> &'static str {
        "datadog"
    }

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
        Ok(wire::datadog_item(event, id, &self.hostname).bytes)
    }

    fn frame(&self, items: &[&[u8]], out: &mut Vec<u8>) {
        frame_json_array(items, out);
    }

    fn redact(&self, text: &mut String) {
        if !self.api_key.is_empty() && text.contains(&self.api_key) {
            *text = text.replace(&self.api_key, "[redacted]");
        }
    }

    fn explain(&self, status: u16) -> Option<&'static str> {
        match super::status::classify(status) {
            super::DatadogOutcome::Drop { reason } => Some(reason),
            _ => None,
        }
    }
}

/// Builds a direct Datadog [`StreamExporter`].
///
/// | setting | default |
/// |---|---|
/// | [`api_key`](Self::api_key) | required (`DD_API_KEY`) |
/// | [`site`](Self::site) | `datadoghq.com` (`DD_SITE`) |
/// | [`logs_url`](Self::logs_url) | `https://http-intake.logs.{site}/api/v2/logs` (`DD_LOGS_URL`) |
/// | [`hostname`](Self::hostname) | the machine's host name, else `unknown` |
/// | batch | at most 1000 items and 5 MB per request; items older than 18 h expire |
/// | [`max_delay`](Self::max_delay) | 2 s (at most 60 s) |
/// | [`verbose`](Self::verbose), [`allow_custom_events`](Self::allow_custom_events) | off |
/// | [`compute_target_id`](Self::compute_target_id), [`release_version`](Self::release_version) | none: used only for records that lack them |
/// | [`delivery`](Self::delivery) | [`DeliveryOptions::default`] (queue, timeout, retries, spool, …) |
#[derive(Clone, Default)]
pub struct DatadogExporterBuilder {
    api_key: Option<String>,
    site: Option<String>,
    logs_url: Option<String>,
    hostname: Option<String>,
    settings: DiagnosticsSettings,
    delivery: DeliveryOptions,
}

impl std::fmt::Debug for DatadogExporterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatadogExporterBuilder")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("site", &self.site)
            .field(
                "logs_url",
                &self.logs_url.as_deref().map(crate::url_redact::redact_url),
            )
            .field("settings", &self.settings)
            .field("delivery", &self.delivery)
            .finish()
    }
}

impl DatadogExporterBuilder {
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

    /// How long the first queued message may wait. Default 2 s, at most 60 s.
    pub fn max_delay(mut self, delay: std::time::Duration) -> Self {
        self.settings.max_delay = delay;
        self
    }

    /// Fallback computeTargetId for records that lack one.
    pub fn compute_target_id(mut self, id: impl Into<String>) -> Self {
        self.settings.compute_target_id = Some(id.into());
        self
    }

    /// Fallback release version for records that lack one.
    pub fn release_version(mut self, version: impl Into<String>) -> Self {
        self.settings.release_version = Some(version.into());
        self
    }

    /// How to deliver: queue, timeout, gzip, retries, shutdown deadline, spool. Default
    /// [`DeliveryOptions::default`].
    pub fn delivery(mut self, options: DeliveryOptions) -> Self {
        self.delivery = options;
        self
    }

    /// The `DD-API-KEY`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The Datadog site, e.g. `datadoghq.eu`.
    pub fn site(mut self, site: impl Into<String>) -> Self {
        self.site = Some(site.into());
        self
    }

    /// Overrides the full intake URL.
    pub fn logs_url(mut self, url: impl Into<String>) -> Self {
        self.logs_url = Some(url.into());
        self
    }

    /// The `hostname` attribute of every item.
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
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
        self.delivery.check()?;
        let api_key = self
            .api_key
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .ok_or(BuildError::Missing("api_key (DD_API_KEY)"))?;
        let (setting, raw) = match &self.logs_url {
            Some(u) => ("DD_LOGS_URL", u.clone()),
            None => (
                "DD_SITE",
                wire::intake_url(self.site.as_deref().unwrap_or(wire::DEFAULT_SITE)),
            ),
        };
        let url = parse_http_url(setting, &raw)?;
        let endpoint = url.to_string();
        let headers = [
            ("content-type", "application/json".to_string()),
            (API_KEY_HEADER, api_key.clone()),
        ];
        let limits = self.settings.limits(MAX_ITEMS, MAX_BODY_BYTES);
        let transport = HttpTransport::new(url, &headers, self.delivery.effective_timeout())?;
        let stream = DatadogStream {
            allow_custom: self.settings.allow_custom_events,
            hostname: self.hostname.unwrap_or_else(default_hostname),
            api_key,
        };
        Ok(
            DeliverySpec::new(stream, transport, limits, &self.delivery)?
                .with_decode(self.settings.decode_options())
                .with_endpoint(endpoint),
        )
    }
}

/// The machine's host name (from `/proc` or `HOSTNAME`), else `unknown`: the default
/// `hostname` of every Datadog item.
pub fn default_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
