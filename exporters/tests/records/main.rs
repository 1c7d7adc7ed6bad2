//! Records to events to wire JSON, without a network: the decoder and the redactor.

mod decode;
mod redaction;
