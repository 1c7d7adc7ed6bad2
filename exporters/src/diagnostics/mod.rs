//! What the relay and direct-Datadog builders share: their settings.

mod builder;

pub use builder::DiagnosticsSettings;
pub(crate) use builder::{check_limits, diagnostics_setters};
