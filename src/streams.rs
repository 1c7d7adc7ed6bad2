//! Starts the configured upstream streams.

use closedloop_telemetry_exporters::datadog::DatadogExporterBuilder;
use closedloop_telemetry_exporters::delivery::SpoolConfig;
use closedloop_telemetry_exporters::relay::RelayExporterBuilder;
use closedloop_telemetry_exporters::PostHogExporterBuilder;

use crate::builder::TelemetryBuilder;
use crate::sink::{Sink, StreamKind};
use crate::InitError;

/// Builds one sink per configured stream: PostHog, and the relay or else direct Datadog.
/// `denied`: the stored consent is Denied, so whatever an earlier run spooled is purged
/// before anything is sent.
pub(crate) fn start(
    b: &TelemetryBuilder,
    compute_target_id: &str,
    release: &str,
    denied: bool,
) -> Result<Vec<Sink>, InitError> {
    let mut sinks = Vec::new();
    if let Some(ph) = &b.cfg.posthog {
        let mut builder = PostHogExporterBuilder::default()
            .api_key(ph.api_key.clone())
            .host(ph.host.clone())
            .compute_target_id(compute_target_id)
            .release_version(release)
            .shutdown_timeout(b.shutdown_timeout);
        if let Some(spool) = spool(b, &["posthog", &ph.host, &ph.api_key], denied) {
            builder = builder.spool(spool);
        }
        if let Some(i) = b.posthog_flush_interval {
            builder = builder.flush_interval(i);
        }
        let exporter = builder.build()?;
        sinks.push(Sink {
            kind: StreamKind::PostHog,
            delivery: exporter.delivery().clone(),
            allow_custom: false,
        });
    }
    let diagnostics = if let Some(relay) = &b.cfg.relay {
        let mut builder = RelayExporterBuilder::default()
            .url(relay.url.clone())
            .token(relay.token.clone());
        if let Some(conn) = &b.relay_connection {
            builder = builder.channel(conn.clone());
        }
        Some((
            StreamKind::Relay,
            diagnostics_settings!(builder, b, compute_target_id, release)
                .spool_for(b, &["relay", &relay.url], denied)
                .build()?,
        ))
    } else if let Some(conn) = &b.relay_connection {
        let builder = RelayExporterBuilder::default().channel(conn.clone());
        Some((
            StreamKind::Relay,
            diagnostics_settings!(builder, b, compute_target_id, release)
                .spool_for(b, &["relay", "channel"], denied)
                .build()?,
        ))
    } else if let Some(dd) = &b.cfg.datadog {
        let builder = DatadogExporterBuilder::default()
            .api_key(dd.api_key.clone())
            .logs_url(dd.logs_url.clone());
        Some((
            StreamKind::Datadog,
            diagnostics_settings!(builder, b, compute_target_id, release)
                .spool_for(b, &["datadog", &dd.logs_url, &dd.api_key], denied)
                .build()?,
        ))
    } else {
        None
    };
    if let Some((kind, exporter)) = diagnostics {
        sinks.push(Sink {
            kind,
            delivery: exporter.delivery().clone(),
            allow_custom: b.allow_custom,
        });
    }
    Ok(sinks)
}

/// The spool of one stream: `<base>/<destination>/`, where `<destination>` is a fingerprint
/// (CRC-32C, hex) of the stream kind, its endpoint and, for PostHog and Datadog, its key. So
/// events spooled for one destination are only ever replayed to that destination, never to
/// whatever another app or configuration sends to next. `denied` purges it on open.
fn spool(b: &TelemetryBuilder, destination: &[&str], denied: bool) -> Option<SpoolConfig> {
    let base = spool_dir(b)?;
    let fingerprint = crc32c::crc32c(destination.join("\0").as_bytes());
    Some(SpoolConfig::new(base.join(format!("{fingerprint:08x}"))).purge_on_open(denied))
}

/// Sets the facade's destination-keyed spool on a relay or Datadog builder.
trait SpoolFor: Sized {
    fn spool_for(self, b: &TelemetryBuilder, destination: &[&str], denied: bool) -> Self;
}

macro_rules! spool_for {
    ($($t:ty),*) => {$(
        impl SpoolFor for $t {
            fn spool_for(self, b: &TelemetryBuilder, destination: &[&str], denied: bool) -> Self {
                match spool(b, destination, denied) {
                    Some(s) => self.spool(s),
                    None => self,
                }
            }
        }
    )*};
}
spool_for!(RelayExporterBuilder, DatadogExporterBuilder);

/// The spool base directory: `CL_TELEMETRY_SPOOL_DIR` / `spool_dir(..)`, else the OS cache
/// dir plus `closedloop-telemetry` (each stream spools in its own subdirectory). `None` when
/// neither exists: the engines keep events in memory only.
fn spool_dir(b: &TelemetryBuilder) -> Option<std::path::PathBuf> {
    b.cfg
        .spool_dir
        .clone()
        .or_else(|| dirs::cache_dir().map(|d| d.join(crate::identity::APP_DIR)))
}

/// Applies the facade's shared diagnostics settings to a relay or Datadog builder.
macro_rules! diagnostics_settings {
    ($builder:expr, $b:expr, $ct:expr, $rel:expr) => {{
        let mut builder = $builder
            .verbose($b.cfg.verbose)
            .allow_custom_events($b.allow_custom)
            .compute_target_id($ct)
            .release_version($rel)
            .shutdown_timeout($b.shutdown_timeout);
        if let Some(d) = $b.relay_max_delay {
            builder = builder.max_delay(d);
        }
        builder
    }};
}
use diagnostics_settings;
