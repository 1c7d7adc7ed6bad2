//! The relay exporter: `desktop.telemetry` messages POSTed as a JSON array to the relay (or
//! handed to the app's own relay connection), on the shared delivery engine.

use std::sync::Arc;

use closedloop_telemetry_layers::__private::catalogue::CatalogueEntry;
use uuid::Uuid;

use super::channel::{ChannelTransport, RelayConnection};
use super::wire::{self, MAX_BODY_BYTES, MAX_ITEMS};
use crate::decode::Event;
use crate::delivery::{
    frame_json_array, parse_http_url, BuildError, DeliveryOptions, DeliverySpec, HttpTransport,
    InvalidEvent, Transport, WireFormat,
};
use crate::diagnostics::DiagnosticsSettings;
use crate::exporter::StreamExporter;

/// The relay stream plugged into the engine.
struct RelayStream {
    allow_custom: bool,
    token: Option<String>,
}

impl WireFormat for RelayStream {
    fn name(&self) -> &'static str {
        "relay"
    }

    fn routes(&self, entry: Option<&CatalogueEntry>) -> bool {
        wire::routes_to_relay(entry, self.allow_custom)
    }

    /// Diagnostics carry the (redacted) tails of an event that has them.
    fn sends_tails(&self) -> bool {
        true
    }

    fn encode(&self, event: &Event, id: Uuid) -> Result<Vec<u8>, InvalidEvent> {
        if event.trace.compute_target_id.is_empty() {
            return Err(InvalidEvent("empty computeTargetId"));
        }
        Ok(wire::relay_item(event, id))
    }

    fn frame(&self, items: &[&[u8]], out: &mut Vec<u8>) {
        frame_json_array(items, out);
    }

    fn redact(&self, text: &mut String) {
        if let Some(t) = self.token.as_deref().filter(|t| !t.is_empty()) {
            if text.contains(t) {
                *text = text.replace(t, "[redacted]");
            }
        }
    }
}

/// Builds a relay [`StreamExporter`].
///
/// | setting | default |
/// |---|---|
/// | [`url`](Self::url) | required for HTTP (`CL_RELAY_URL`) |
/// | [`token`](Self::token) | none (`CL_RELAY_TOKEN`): no `Authorization` header |
/// | [`channel`](Self::channel) | off: use the app's own relay connection instead of HTTP |
/// | batch | at most 100 messages and 5 MB per request; messages older than 18 h expire (counted as `expired`) |
/// | [`max_delay`](Self::max_delay) | 2 s (at most 60 s) |
/// | [`verbose`](Self::verbose), [`allow_custom_events`](Self::allow_custom_events) | off |
/// | [`compute_target_id`](Self::compute_target_id), [`release_version`](Self::release_version) | none: used only for records that lack them |
/// | [`delivery`](Self::delivery) | [`DeliveryOptions::default`] (queue, timeout, retries, spool, …) |
#[derive(Clone, Default)]
pub struct RelayExporterBuilder {
    url: Option<String>,
    token: Option<String>,
    channel: Option<RelayConnection>,
    settings: DiagnosticsSettings,
    delivery: DeliveryOptions,
}

impl std::fmt::Debug for RelayExporterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayExporterBuilder")
            .field(
                "url",
                &self.url.as_deref().map(crate::url_redact::redact_url),
            )
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("channel", &self.channel.is_some())
            .field("settings", &self.settings)
            .field("delivery", &self.delivery)
            .finish()
    }
}

impl RelayExporterBuilder {
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

    /// The relay endpoint messages are POSTed to.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Sends `Authorization: Bearer <token>`.
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.trim().is_empty());
        self
    }

    /// Hands batches to the app's own relay connection instead of HTTP (see
    /// [`RelayConnection`]).
    pub fn channel(mut self, connection: RelayConnection) -> Self {
        self.channel = Some(connection);
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
        let limits = self.settings.limits(MAX_ITEMS, MAX_BODY_BYTES);
        let stream = RelayStream {
            allow_custom: self.settings.allow_custom_events,
            token: self.token.clone(),
        };
        let timeout = self.delivery.effective_timeout();
        let (transport, endpoint): (Box<dyn Transport>, String) = match &self.channel {
            Some(conn) => (
                Box::new(ChannelTransport::new(conn.clone(), timeout)),
                "channel".into(),
            ),
            None => {
                let raw = self
                    .url
                    .as_deref()
                    .ok_or(BuildError::Missing("url (CL_RELAY_URL)"))?;
                let url = parse_http_url("CL_RELAY_URL", raw)?;
                let mut headers = vec![("content-type", "application/json".to_string())];
                if let Some(t) = &self.token {
                    headers.push(("authorization", format!("Bearer {t}")));
                }
                let endpoint = url.to_string();
                (
                    Box::new(HttpTransport::new(url, &headers, timeout)?),
                    endpoint,
                )
            }
        };
        let spec =
            DeliverySpec::from_parts(Arc::new(stream), transport.into(), limits, &self.delivery)?
                .with_decode(self.settings.decode_options())
                .with_endpoint(endpoint);
        Ok(match self.channel {
            Some(conn) => spec.on_start(move |delivery| conn.attach(delivery)),
            None => spec,
        })
    }
}
