//! The facade as an app builds it, with the PostHog stream alone sending to a loopback
//! receiver, and a data and spool directory of its own (removed when dropped).

use std::path::PathBuf;

use closedloop_telemetry::{ClosedLoopLayer, TelemetryBuilder, TelemetryGuard};

/// A directory removed, with everything in it, when this is dropped.
pub struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Builds the facade sending PostHog events to `base` and splits it; `tweak` sets anything
/// else on the builder (verbose, ...). `tag` names the directory, the API key and the target id.
pub fn posthog(
    tag: &str,
    base: String,
    tweak: impl FnOnce(TelemetryBuilder) -> TelemetryBuilder,
) -> (ClosedLoopLayer, TelemetryGuard, ScratchDir) {
    let dir = std::env::temp_dir().join(format!("closedloop-{tag}-{}", uuid::Uuid::new_v4()));
    let builder = closedloop_telemetry::builder("1.0.0")
        .data_dir(dir.join("data"))
        .spool_dir(dir.join("spool"))
        .posthog(format!("phc_{tag}"), base)
        .compute_target_id(format!("ct-{tag}"));
    let (layer, guard) = tweak(builder).build().expect("facade builds").split();
    (layer, guard, ScratchDir(dir))
}
