//! The relay-bound diagnostics stream (`desktop.telemetry`): its wire format and the
//! `diagnostics` view it shares with the direct Datadog intake.

pub mod view;
pub mod wire;
