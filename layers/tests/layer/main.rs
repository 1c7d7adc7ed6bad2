//! `TelemetryLayer`: every catalogue row and bad input, awkward field values, span context,
//! and composition with the subscribers apps already have.

mod compose;
mod context;
mod events;
mod inputs;
