//! The PostHog stream plugged into the shared delivery engine: catalogue events with a PostHog
//! name, framed as `{host}/batch/` bodies.

use std::time::SystemTime;

use uuid::Uuid;

use closedloop_telemetry_layers::__private::catalogue::CatalogueEntry;
use closedloop_telemetry_layers::__private::envelope::format_timestamp;

use super::wire::{self, Framer};
use crate::decode::Event;
use crate::delivery::{InvalidEvent, WireFormat};

/// The PostHog stream plugged into the engine.
pub(crate) struct PostHogStream {
    pub(crate) framer: Framer,
    pub(crate) api_key: String,
}

impl WireFormat for PostHogStream {
    fn name(&self) -> &'static str {
        "posthog"
    }

    fn routes(&self, entry: Option<&CatalogueEntry>) -> bool {
        wire::routes_to_posthog(entry)
    }

    fn encode(&self, event: &Event, id: Uuid) -> Result<Vec<u8>, InvalidEvent> {
        wire::encode_event(event, id)
    }

    fn frame(&self, items: &[&[u8]], out: &mut Vec<u8>) {
        self.framer
            .frame(items, &format_timestamp(SystemTime::now()), out);
    }

    fn redact(&self, text: &mut String) {
        if !self.api_key.is_empty() && text.contains(&self.api_key) {
            *text = text.replace(&self.api_key, "[redacted]");
        }
    }
}
