//! The PostHog request body the audit shows, with the project key replaced by a placeholder.

use closedloop_telemetry_exporters::__private::posthog::wire::Framer;

/// Shown instead of the PostHog project key in the audited body.
pub const PLACEHOLDER_API_KEY: &str = "<project api key>";

/// The PostHog body around `items`, with the project key replaced by a placeholder.
pub(crate) fn posthog_body(items: &[String], sent_at: &str) -> String {
    let refs: Vec<&[u8]> = items.iter().map(|i| i.as_bytes()).collect();
    let mut out = Vec::new();
    Framer::new(PLACEHOLDER_API_KEY).frame(&refs, sent_at, &mut out);
    String::from_utf8(out).unwrap_or_default()
}
