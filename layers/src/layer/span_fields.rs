//! Trace-context fields stored once per span, in the span's extensions, already merged with
//! the span's ancestors so that an event reads one span instead of walking its scope.
//!
//! Each span that sets a context field itself keeps one slot array, `flat`: its own fields plus
//! every ancestor's (innermost first), computed when the span is created, and a bit mask of the
//! slots that are its own. A field recorded later (`span.record(..)`) changes that span's slot
//! and bumps the layer's context epoch; every `flat` computed under an older epoch is then
//! recomputed from the own slots of the scope the next time an event (or a new child span)
//! reads it. Events in a span that sets no context field read the nearest ancestor that does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tracing::field::{Field as TracingField, Visit};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::convention::{context_slot, Field, CONTEXT_FIELDS};
use crate::truncate::{keep_head, FIELD_MAX_BYTES};

/// One value per [`CONTEXT_FIELDS`] slot, as shared strings so every event inside the span
/// reuses them without copying.
pub(crate) type Slots = [Option<Arc<str>>; CONTEXT_FIELDS.len()];

/// The epoch of a `flat` that must be recomputed before use.
const STALE: u64 = u64::MAX;

/// What one span knows about trace context.
#[derive(Debug, Default)]
pub(crate) struct SpanContext {
    /// Own values in the `own` slots, inherited ones elsewhere.
    flat: Slots,
    /// Bit `i` set: slot `i` is the span's own value.
    own: u8,
    epoch: u64,
}

/// The bit mask of the set slots.
fn mask(slots: &Slots) -> u8 {
    slots
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_some())
        .fold(0, |m, (i, _)| m | (1 << i))
}

/// Whether no slot is set.
pub(crate) fn is_empty(slots: &Slots) -> bool {
    slots.iter().all(Option::is_none)
}

/// Fills the empty slots of `into` from `from`.
fn inherit(into: &mut Slots, from: &Slots) {
    for (mine, theirs) in into.iter_mut().zip(from) {
        if mine.is_none() {
            mine.clone_from(theirs);
        }
    }
}

/// The span's own context merged with every ancestor's, innermost first (the slow path).
fn walk<'a, R: LookupSpan<'a>>(span: &SpanRef<'a, R>) -> Slots {
    let mut flat = Slots::default();
    for s in span.scope() {
        if let Some(sc) = s.extensions().get::<SpanContext>() {
            for (slot, value) in flat.iter_mut().enumerate() {
                if value.is_none() && sc.own & (1 << slot) != 0 {
                    value.clone_from(&sc.flat[slot]);
                }
            }
        }
    }
    flat
}

/// Calls `f` with the context visible in `start` (its own fields and its ancestors'),
/// recomputing a stale cache first. Does not call `f` when no span in scope has context.
pub(crate) fn visible<'a, R: LookupSpan<'a>>(
    start: SpanRef<'a, R>,
    epoch: &AtomicU64,
    f: impl FnOnce(&Slots),
) {
    let now = epoch.load(Ordering::Acquire);
    let mut cur = Some(start);
    while let Some(span) = cur {
        {
            let ext = span.extensions();
            match ext.get::<SpanContext>() {
                Some(sc) if sc.epoch == now => return f(&sc.flat),
                Some(_) => {}
                None => {
                    drop(ext);
                    cur = span.parent();
                    continue;
                }
            }
        }
        let flat = walk(&span);
        let mut ext = span.extensions_mut();
        if let Some(sc) = ext.get_mut::<SpanContext>() {
            sc.flat = flat;
            sc.epoch = now;
            f(&sc.flat);
        }
        return;
    }
}

/// `on_new_span`: keeps the span's own context fields merged with its parent's.
pub(crate) fn on_new_span<'a, R: LookupSpan<'a>>(
    attrs: &tracing::span::Attributes<'_>,
    span: Option<SpanRef<'a, R>>,
    epoch: &AtomicU64,
) {
    let mut own = Slots::default();
    attrs.record(&mut SpanVisitor(&mut own));
    // A span without context fields stores nothing: events in it read its ancestors.
    let (false, Some(span)) = (is_empty(&own), span) else {
        return;
    };
    let now = epoch.load(Ordering::Acquire);
    let (own, mut flat) = (mask(&own), own);
    if let Some(parent) = span.parent() {
        visible(parent, epoch, |p| inherit(&mut flat, p));
    }
    span.extensions_mut().replace(SpanContext {
        flat,
        own,
        epoch: now,
    });
}

/// `on_record`: a late context field changes the span's own fields and makes every cached
/// merge stale.
pub(crate) fn on_record<'a, R: LookupSpan<'a>>(
    values: &tracing::span::Record<'_>,
    span: Option<SpanRef<'a, R>>,
    epoch: &AtomicU64,
) {
    let mut own = Slots::default();
    values.record(&mut SpanVisitor(&mut own));
    let (false, Some(span)) = (is_empty(&own), span) else {
        return;
    };
    {
        let mut ext = span.extensions_mut();
        match ext.get_mut::<SpanContext>() {
            Some(sc) => {
                sc.own |= mask(&own);
                for (slot, value) in own.into_iter().enumerate() {
                    if value.is_some() {
                        sc.flat[slot] = value;
                    }
                }
                sc.epoch = STALE;
            }
            None => ext.insert(SpanContext {
                own: mask(&own),
                flat: own,
                epoch: STALE,
            }),
        }
    }
    epoch.fetch_add(1, Ordering::AcqRel);
}

/// Visits span fields, keeping only the context ones.
pub(crate) struct SpanVisitor<'a>(pub(crate) &'a mut Slots);

impl SpanVisitor<'_> {
    fn put(&mut self, field: &TracingField, value: &str) {
        if let Some(slot) = Field::from_name(field.name()).and_then(context_slot) {
            self.0[slot] = Some(Arc::from(keep_head(value, FIELD_MAX_BYTES)));
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
            let (s, _) = crate::bounded::debug_string(value, FIELD_MAX_BYTES);
            self.put(field, &s);
        }
    }
}

/// The trace context (loopId, jobId, … and a span's gatewaySessionId) of the span current on
/// this thread, written into `trace`: what an event emitted here would carry. For the panic
/// hook, which runs on the panicking thread before it unwinds, so the span is still entered.
/// Needs the global or thread-default subscriber to be built on tracing-subscriber's
/// `Registry`; otherwise, outside a span, or when called from inside the subscriber itself
/// (a panic in a layer), nothing is written. Never panics on its own account and takes no lock
/// the current thread could hold.
pub fn current_trace_context(trace: &mut crate::envelope::TraceEnvelope) {
    use tracing_subscriber::registry::Registry;
    // `get_default` hands out the no-op dispatcher when this thread is already inside the
    // subscriber (its callbacks hold span extensions): nothing here can wait on them.
    tracing::dispatcher::get_default(|dispatch| {
        let Some(registry) = dispatch.downcast_ref::<Registry>() else {
            return;
        };
        let current = tracing::Subscriber::current_span(registry);
        let Some(id) = current.id() else {
            return;
        };
        let Some(span) = registry.span(id) else {
            return;
        };
        let flat = walk(&span);
        for (slot, value) in flat.iter().enumerate() {
            let Some(value) = value else { continue };
            let target = match CONTEXT_FIELDS[slot] {
                Field::GatewaySessionId => &mut trace.gateway_session_id,
                Field::CommandId => &mut trace.command_id,
                Field::OperationId => &mut trace.operation_id,
                Field::LoopId => &mut trace.loop_id,
                Field::JobId => &mut trace.job_id,
                Field::LoopSessionId => &mut trace.loop_session_id,
                _ => continue,
            };
            *target = Some(value.to_string());
        }
    });
}
