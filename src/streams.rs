//! Configures the destinations from the resolved [`Settings`]: one [`DeliverySpec`] each, for
//! the exporters' one pipeline (started by `install.rs`).

use closedloop_telemetry_exporters::__private::delivery::DeliverySpec;
use closedloop_telemetry_exporters::__private::BuilderExt;
use closedloop_telemetry_exporters::DatadogExporterBuilder;
use closedloop_telemetry_exporters::OtlpExporterBuilder;
use closedloop_telemetry_exporters::RelayExporterBuilder;
use closedloop_telemetry_exporters::SpoolOptions;
use closedloop_telemetry_exporters::{Destination, PostHogExporterBuilder};

use crate::consent::Consent;
use crate::orphans::{self, OrphanSpool};
use crate::settings::Settings;
use crate::InitError;

/// What [`configure`] found and made.
#[derive(Debug, Default)]
pub(crate) struct Configured {
    /// Each configured destination with its (not yet started) engine.
    pub(crate) specs: Vec<(Destination, DeliverySpec)>,
    /// The spool directories no configured destination uses (see [`orphans::sweep`]).
    pub(crate) orphans: Vec<OrphanSpool>,
    /// The destination directories (fingerprints) of the configured destinations' spools.
    pub(crate) spool_dirs: Vec<String>,
}

/// The configured destinations: PostHog, the relay or else direct Datadog, and OTLP. With consent
/// denied, whatever an earlier run spooled for them is purged as the spools open, before
/// anything is sent, and every other destination directory of the spool base is purged now
/// ([`orphans::purge_denied`]). Also returns the spool directories no configured destination
/// uses (after deleting the expired ones, see [`orphans::sweep`]).
///
/// None when upstream is disabled (a denial still purges the spool base).
pub(crate) fn configure(s: &Settings) -> Result<Configured, InitError> {
    let denied = s.consent == Consent::Denied;
    if s.upstream_disabled {
        if let (Some(base), true) = (&s.spool_base, denied) {
            orphans::purge_denied(base, &[], &[]);
        }
        return Ok(Configured::default());
    }
    let mut specs = Vec::new();
    let spools = Spools {
        base: s.spool_base.clone(),
        denied,
        active: Default::default(),
    };
    let compute_target_id = s.compute_target_id.as_str();
    let release = s.release.as_str();
    // Every stream delivers with the default options, the facade's shutdown deadline and its
    // destination's spool.
    let delivery = |kind: Destination, destination: &[&str]| {
        let mut options = s
            .delivery
            .to_builder()
            .with_shutdown_timeout(s.shutdown_timeout)
            .with_spool(spools.config(destination));
        for (d, name, limit) in &s.rate_limits {
            if *d == kind {
                options = options.with_rate_limit_for(name.clone(), *limit);
            }
        }
        options.build()
    };
    if let Some(ph) = &s.posthog {
        let spec = PostHogExporterBuilder::default()
            .api_key(ph.api_key.clone())
            .host(ph.host.clone())
            .compute_target_id(compute_target_id)
            .release_version(release)
            .flush_interval(s.posthog_flush_interval)
            .delivery(delivery(
                Destination::PostHog,
                &["posthog", &destination(&ph.host), &ph.api_key],
            ))
            .spec()?;
        specs.push((Destination::PostHog, hooked(s, Destination::PostHog, spec)));
    }
    let max_delay = s.relay_max_delay;
    let diagnostics = if s.relay.is_some() || s.relay_connection.is_some() {
        let mut builder = RelayExporterBuilder::default()
            .verbose(s.verbose)
            .allow_custom_events(s.allow_custom)
            .compute_target_id(compute_target_id)
            .release_version(release)
            .max_delay(max_delay);
        let destination = match &s.relay {
            Some(relay) => {
                builder = builder.url(relay.url.clone()).token(relay.token.clone());
                destination(&relay.url)
            }
            None => "channel".to_string(),
        };
        if let Some(conn) = &s.relay_connection {
            builder = builder.channel(conn.clone());
        }
        let spec = builder
            .delivery(delivery(Destination::Relay, &["relay", &destination]))
            .spec()?;
        // The app's relay connection is not HTTP: the test kit leaves it alone.
        let spec = match s.relay_connection {
            None => hooked(s, Destination::Relay, spec),
            Some(_) => spec,
        };
        Some((Destination::Relay, spec))
    } else if let Some(dd) = &s.datadog {
        let spec = DatadogExporterBuilder::default()
            .api_key(dd.api_key.clone())
            .logs_url(dd.logs_url.clone())
            .verbose(s.verbose)
            .allow_custom_events(s.allow_custom)
            .compute_target_id(compute_target_id)
            .release_version(release)
            .max_delay(max_delay)
            .delivery(delivery(
                Destination::Datadog,
                &["datadog", &destination(&dd.logs_url)],
            ))
            .spec()?;
        Some((Destination::Datadog, hooked(s, Destination::Datadog, spec)))
    } else {
        None
    };
    specs.extend(diagnostics);
    if let Some(otlp) = &s.otlp {
        let mut builder = OtlpExporterBuilder::default()
            .endpoint(otlp.endpoint.clone())
            .protocol(otlp.protocol)
            .compression(otlp.compression)
            .verbose(s.verbose)
            .allow_custom_events(s.allow_custom)
            .compute_target_id(compute_target_id)
            .release_version(release)
            .max_delay(max_delay);
        for (name, value) in &otlp.headers {
            builder = builder.header(name.clone(), value.clone());
        }
        // Header values are credentials that may rotate: not part of the spool's key.
        let spec = builder
            .delivery(delivery(
                Destination::Otlp,
                &["otlp", &destination(&otlp.endpoint)],
            ))
            .spec()?;
        specs.push((Destination::Otlp, hooked(s, Destination::Otlp, spec)));
    }
    let active = spools.active.take();
    let orphans = match &spools.base {
        Some(base) if denied => {
            // Nothing of the user's may be sent once a grant brings the destination back.
            orphans::purge_denied(base, &active, &[]);
            orphans::sweep(base, &active, std::time::SystemTime::now())
        }
        Some(base) => orphans::sweep(base, &active, std::time::SystemTime::now()),
        None => Vec::new(),
    };
    Ok(Configured {
        specs,
        orphans,
        spool_dirs: active,
    })
}

/// The destination over the test kit's transport, when the builder set its hook (feature
/// `testing`, see `Settings::transport_hook`); else as configured.
#[cfg(any(test, feature = "testing"))]
fn hooked(s: &Settings, to: Destination, spec: DeliverySpec) -> DeliverySpec {
    match &s.transport_hook {
        Some(hook) => spec.map_transport(|configured| (hook.0)(to, configured)),
        None => spec,
    }
}

/// The destination as configured (the test kit's hook exists with feature `testing` only).
#[cfg(not(any(test, feature = "testing")))]
fn hooked(_: &Settings, _: Destination, spec: DeliverySpec) -> DeliverySpec {
    spec
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
    fn config(&self, destination: &[&str]) -> Option<SpoolOptions> {
        let base = self.base.as_ref()?;
        let fingerprint = format!("{:08x}", crc32c::crc32c(destination.join("\0").as_bytes()));
        let dir = base.join(&fingerprint);
        self.active.borrow_mut().push(fingerprint);
        Some(SpoolOptions::new(dir).with_purge_on_open(self.denied))
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
