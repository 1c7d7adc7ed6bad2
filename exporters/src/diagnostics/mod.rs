//! What the relay and direct-Datadog builders share: their settings.

mod builder;

pub use builder::DiagnosticsSettings;
pub(crate) use builder::{diagnostics_setters, DeliveryKnobs};
