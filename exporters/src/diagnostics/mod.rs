//! What the relay and direct-Datadog builders share: their settings.

mod builder;

pub(crate) use builder::diagnostics_setters;
pub use builder::DiagnosticsSettings;
