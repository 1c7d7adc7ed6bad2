//! Starts the configured upstream streams.

use closedloop_telemetry_exporters::datadog::DatadogExporterBuilder;
use closedloop_telemetry_exporters::delivery::{DeliveryOptions, SpoolConfig};
use closedloop_telemetry_exporters::diagnostics::DEFAULT_MAX_DELAY;
use closedloop_telemetry_exporters::relay::RelayExporterBuilder;
use closedloop_telemetry_exporters::PostHogExporterBuilder;

use crate::builder::TelemetryBuilder;
use crate::orphans::{self, OrphanSpool};
use crate::sink::{Sink, StreamKind};
use crate::InitError;

/// Builds one sink per configured stream: PostHog, and the relay or else direct Datadog.
/// `denied`: the stored consent is Denied, so whatever an earlier run spooled is purged
/// before anything is sent. Also returns the spool directories no configured stream uses
/// (after deleting the expired ones, see [`orphans::sweep`]).
pub(crate) fn start(
    b: &TelemetryBuilder,
    compute_target_id: &str,
    release: &str,
    denied: bool,
) -> Result<(Vec<Sink>, Vec<OrphanSpool>), InitError> {
    let mut sinks = Vec::new();
    let spools = Spools {
        base: spool_dir(b),
        denied,
        active: Default::default(),
    };
    // Every stream delivers with the default options, the facade's shutdown deadline and its
    // destination's spool.
    let delivery = |destination: &[&str]| {
        DeliveryOptions::builder()
            .with_shutdown_timeout(b.shutdown_timeout)
            .with_spool(spools.config(destination))
            .build()
    };
    if let Some(ph) = &b.cfg.posthog {
        let mut builder = PostHogExporterBuilder::default()
            .api_key(ph.api_key.clone())
            .host(ph.host.clone())
            .compute_target_id(compute_target_id)
            .release_version(release)
            .delivery(delivery(&["posthog", &destination(&ph.host), &ph.api_key]));
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
    let max_delay = b.relay_max_delay.unwrap_or(DEFAULT_MAX_DELAY);
    let diagnostics = if b.cfg.relay.is_some() || b.relay_connection.is_some() {
        let mut builder = RelayExporterBuilder::default()
            .verbose(b.cfg.verbose)
            .allow_custom_events(b.allow_custom)
            .compute_target_id(compute_target_id)
            .release_version(release)
            .max_delay(max_delay);
        let destination = match &b.cfg.relay {
            Some(relay) => {
                builder = builder.url(relay.url.clone()).token(relay.token.clone());
                destination(&relay.url)
            }
            None => "channel".to_string(),
        };
        if let Some(conn) = &b.relay_connection {
            builder = builder.channel(conn.clone());
        }
        let exporter = builder
            .delivery(delivery(&["relay", &destination]))
            .build()?;
        Some((StreamKind::Relay, exporter))
    } else if let Some(dd) = &b.cfg.datadog {
        let exporter = DatadogExporterBuilder::default()
            .api_key(dd.api_key.clone())
            .logs_url(dd.logs_url.clone())
            .verbose(b.cfg.verbose)
            .allow_custom_events(b.allow_custom)
            .compute_target_id(compute_target_id)
            .release_version(release)
            .max_delay(max_delay)
            .delivery(delivery(&["datadog", &destination(&dd.logs_url)]))
            .build()?;
        Some((StreamKind::Datadog, exporter))
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
    let orphans = match &spools.base {
        Some(base) => orphans::sweep(base, &spools.active.borrow(), std::time::SystemTime::now()),
        None => Vec::new(),
    };
    Ok((sinks, orphans))
}

/// The destination spools of one start: where they live, and the ones in use.
struct Spools {
    base: Option<std::path::PathBuf>,
    denied: bool,
    active: std::cell::RefCell<Vec<String>>,
}

impl Spools {
    /// The spool of one stream: `<base>/<destination>/`, where `<destination>` is a fingerprint
    /// (CRC-32C, hex) of the stream kind, its URL (without credentials or query, see
    /// [`destination`]) and, for PostHog, its project key. Credentials that rotate (relay
    /// token, Datadog API key) are not part of it, so a new key keeps delivering what the old
    /// one spooled. Events spooled for one destination are only ever replayed to that
    /// destination. A denied consent purges it on open.
    fn config(&self, destination: &[&str]) -> Option<SpoolConfig> {
        let base = self.base.as_ref()?;
        let fingerprint = format!("{:08x}", crc32c::crc32c(destination.join("\0").as_bytes()));
        let dir = base.join(&fingerprint);
        self.active.borrow_mut().push(fingerprint);
        Some(SpoolConfig::new(dir).purge_on_open(self.denied))
    }
}

/// A destination URL without userinfo, query or fragment (where credentials such as
/// `?dd-api-key=` travel) and without a trailing slash; the raw text if it does not parse.
fn destination(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.as_str().trim_end_matches('/').to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// The spool base directory: `CL_TELEMETRY_SPOOL_DIR` / `spool_dir(..)`, else the OS cache
/// dir plus `closedloop-telemetry` (each stream spools in its own subdirectory). `None` when
/// neither exists: the engines keep events in memory only.
fn spool_dir(b: &TelemetryBuilder) -> Option<std::path::PathBuf> {
    b.cfg
        .spool_dir
        .clone()
        .or_else(|| dirs::cache_dir().map(|d| d.join(crate::identity::APP_DIR)))
}
