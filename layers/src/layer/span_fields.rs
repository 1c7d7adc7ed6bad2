//! Trace-context fields stored once per span, in the span's extensions.

use std::sync::Arc;

use tracing::field::{Field as TracingField, Visit};

use crate::convention::{context_slot, Field, CONTEXT_FIELDS};
use crate::truncate::{keep_head, FIELD_MAX_BYTES};

/// The context fields one span set itself (not inherited), as shared strings so every event
/// inside the span reuses them without copying.
#[derive(Debug, Default, Clone)]
pub(crate) struct SpanContextFields(pub(crate) [Option<Arc<str>>; CONTEXT_FIELDS.len()]);

impl SpanContextFields {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

/// Visits span fields, keeping only the context ones.
pub(crate) struct SpanVisitor<'a>(pub(crate) &'a mut SpanContextFields);

impl SpanVisitor<'_> {
    fn put(&mut self, field: &TracingField, value: &str) {
        if let Some(slot) = Field::from_name(field.name()).and_then(context_slot) {
            self.0 .0[slot] = Some(Arc::from(keep_head(value, FIELD_MAX_BYTES)));
        }
    }
}

impl Visit for SpanVisitor<'_> {
    fn record_str(&mut self, field: &TracingField, value: &str) {
        self.put(field, value);
    }

    fn record_i64(&mut self, field: &TracingField, value: i64) {
        self.put(field, &value.to_string());
    }

    fn record_u64(&mut self, field: &TracingField, value: u64) {
        self.put(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &TracingField, value: &dyn std::fmt::Debug) {
        if Field::from_name(field.name()).is_some_and(Field::is_context) {
            let (s, _) = super::bounded::debug_string(value, FIELD_MAX_BYTES);
            self.put(field, &s);
        }
    }
}
