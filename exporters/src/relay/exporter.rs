//! The relay exporter: `desktop.telemetry` messages POSTed as a JSON array to the relay (or
//! handed to the app's own relay connection), on the shared delivery engine.

use std::sync::Arc;

use uuid::Uuid;

use super::channel::{ChannelTransport, RelayConnection};
use super::wire::{self, MAX_BODY_BYTES, MAX_ITEMS};
use crate::decode::Event;
use crate::delivery::{
    frame_json_array, parse_http_url, BuildError, Delivery, HttpTransport, InvalidEvent, Limits,
    Stream, Transport,
};
use crate::diagnostics::{diagnostics_setters, DiagnosticsSettings, MAX_AGE};
use crate::exporter::StreamExporter;

/// The relay exporter (a [`StreamExporter`] built by [`RelayExporterBuilder`]).
pub type RelayExporter = StreamExporter;

/// The relay stream plugged into the engine.
struct RelayStream {
    allow_custom: bool,
    token: Option<String>,
}

impl Stream for RelayStream {
    fn name(&self) -> &'static str {
        "relay"
    }

    fn routes(&self, event: &Event) -> bool {
        wire::routes_to_relay(event, self.allow_custom)
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
/// | shared settings | see [`DiagnosticsSettings`] (max delay 2 s, verbose off, …) |
#[derive(Clone, Default)]
pub struct RelayExporterBuilder {
    url: Option<String>,
    token: Option<String>,
    channel: Option<RelayConnection>,
    settings: DiagnosticsSettings,
}

impl std::fmt::Debug for RelayExporterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayExporterBuilder")
            .field("url", &self.url.as_deref().map(crate::redact_url))
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("channel", &self.channel.is_some())
            .field("settings", &self.settings)
            .finish()
    }
}

diagnostics_setters!(RelayExporterBuilder);

impl RelayExporterBuilder {
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

    /// Checks the settings, starts the worker and returns the exporter.
    pub fn build(self) -> Result<RelayExporter, BuildError> {
        self.settings.check()?;
        let limits = Limits {
            max_items: MAX_ITEMS,
            max_body_bytes: MAX_BODY_BYTES,
            max_delay: self.settings.max_delay,
            expiry: Some(MAX_AGE),
        };
        let stream = RelayStream {
            allow_custom: self.settings.allow_custom_events,
            token: self.token.clone(),
        };
        let config = self.settings.delivery_config(limits);
        let (transport, endpoint): (Box<dyn Transport>, String) = match &self.channel {
            Some(conn) => (
                Box::new(ChannelTransport::new(conn.clone(), config.request_timeout)),
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
                    Box::new(HttpTransport::new(url, &headers, config.request_timeout)?),
                    endpoint,
                )
            }
        };
        let delivery = Delivery::start(stream, transport, config)?;
        if let Some(conn) = &self.channel {
            conn.attach(delivery.clone());
        }
        Ok(StreamExporter {
            delivery,
            decode: Arc::new(self.settings.decode_options()),
            endpoint: Arc::from(endpoint.as_str()),
        })
    }
}
