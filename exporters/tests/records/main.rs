//! Records to events to wire JSON, without a network: the decoder, the redactor, and the
//! activity log (whose records the decoder never takes for telemetry).

mod activity_log;
mod decode;
mod redaction;
