//! `TelemetryLayer`: every catalogue row and bad input, span context, and composition with
//! the subscribers apps already have.

mod compose;
mod context;
mod events;
