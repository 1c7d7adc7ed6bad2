//! Maps one event's fields onto a log record following the [record convention](crate::convention).
//!
//! Outcomes for awkward input (documented in the README and tested):
//! - a known integer field given a string parses it (`exit_code = "3"` → `3`); a value that is
//!   not an integer (`"abc"`, `1.5`, `true`, > `i64::MAX`) keeps its own name in `extra`;
//! - `elapsed_ms` / `stdout_bytes` below zero keep their own name in `extra`;
//! - a known string field given a number or bool is stored as its text;
//! - strings are cut to 4096 bytes on a UTF-8 boundary (tails keep the end, others the start);
//! - `Debug`/`Display` values are formatted with a bound, so a huge value costs at most 4 KiB
//!   (a verbose tail keeps the end of its text, in a buffer of at most about 12 KiB);
//! - control characters are kept as they are (JSON encoding escapes them);
//! - `message` is never forwarded (free text may hold user content);
//! - `log_tail` / `stderr_tail` are not even read unless verbose is on.

use opentelemetry::logs::{AnyValue, LogRecord};
use opentelemetry::Key;
use tracing::field::{Field as TracingField, Visit};

use crate::catalogue::{self, CatalogueEntry};
use crate::convention::{Field, Kind, CONTEXT_FIELDS};
use crate::stats::LayerStats;
use crate::truncate::{keep_head, keep_tail, FIELD_MAX_BYTES, TAIL_MAX_BYTES};

/// The longest custom event name kept, in bytes.
pub(crate) const MAX_EVENT_NAME_BYTES: usize = 128;

/// Per [`Field`] (by discriminant): its context slot bit, or 0. A table, so the per-field work
/// on the app thread is an index instead of a search.
const CONTEXT_BIT: [u8; Field::ALL.len()] = {
    let mut bits = [0u8; Field::ALL.len()];
    let mut slot = 0;
    while slot < CONTEXT_FIELDS.len() {
        bits[CONTEXT_FIELDS[slot] as usize] = 1 << slot;
        slot += 1;
    }
    bits
};

/// What the `event` field said.
#[derive(Debug)]
pub(crate) enum EventName {
    Missing,
    Catalogue(&'static CatalogueEntry),
    Custom(String),
    Invalid,
}

/// Visits an event's fields, writing attributes straight into the record.
pub(crate) struct EventFields<'a, R> {
    record: &'a mut R,
    verbose: bool,
    stats: &'a LayerStats,
    pub(crate) name: EventName,
    /// Bit `i` is set when the event itself set context slot `i`.
    pub(crate) context_set: u8,
    pub(crate) has_activity: bool,
    pub(crate) has_compute_target: bool,
    pub(crate) has_release: bool,
}

impl<'a, R: LogRecord> EventFields<'a, R> {
    pub(crate) fn new(record: &'a mut R, verbose: bool, stats: &'a LayerStats) -> Self {
        EventFields {
            record,
            verbose,
            stats,
            name: EventName::Missing,
            context_set: 0,
            has_activity: false,
            has_compute_target: false,
            has_release: false,
        }
    }

    fn known(&mut self, field: Field, value: AnyValue) {
        self.context_set |= CONTEXT_BIT[field as usize];
        match field {
            Field::ComputeTargetId => self.has_compute_target = true,
            Field::ReleaseVersion => self.has_release = true,
            _ => {}
        }
        self.record
            .add_attribute(Key::from_static_str(field.key()), value);
    }

    fn extra(&mut self, name: &'static str, value: AnyValue) {
        self.record.add_attribute(Key::from_static_str(name), value);
    }

    fn retyped(&mut self, name: &'static str, value: AnyValue) {
        LayerStats::add(&self.stats.retyped_fields);
        self.extra(name, value);
    }

    fn bounded<'s>(&self, s: &'s str, tail: bool) -> &'s str {
        let max = if tail {
            TAIL_MAX_BYTES
        } else {
            FIELD_MAX_BYTES
        };
        if s.len() > max {
            LayerStats::add(&self.stats.truncated_fields);
        }
        if tail {
            keep_tail(s, max)
        } else {
            keep_head(s, max)
        }
    }

    fn set_name(&mut self, value: &str) {
        let trimmed = value.trim();
        self.name = if trimmed.is_empty() {
            EventName::Invalid
        } else if let Some(entry) = catalogue::lookup(trimmed) {
            EventName::Catalogue(entry)
        } else {
            EventName::Custom(keep_head(trimmed, MAX_EVENT_NAME_BYTES).to_string())
        };
    }

    /// Returns true when the field was one of the reserved names handled here.
    fn reserved(&mut self, name: &str) -> bool {
        match name {
            "message" => true,
            "activity" => {
                self.has_activity = true;
                true
            }
            _ => false,
        }
    }

    fn put_str(&mut self, f: &TracingField, value: &str) {
        let name = f.name();
        // Known fields first: they are the common case and none is a reserved name.
        let Some(field) = Field::from_name(name) else {
            if name == crate::convention::EVENT {
                return self.set_name(value);
            }
            if self.reserved(name) {
                return;
            }
            let v = self.bounded(value, false).to_string();
            return self.extra(name, AnyValue::from(v));
        };
        match field.kind() {
            Kind::Tail => {
                if self.verbose {
                    let v = self.bounded(value, true).to_string();
                    self.known(field, AnyValue::from(v));
                }
            }
            Kind::Str | Kind::Object => {
                let v = self.bounded(value, false).to_string();
                self.known(field, AnyValue::from(v));
            }
            Kind::Int | Kind::Count => match value.trim().parse::<i64>() {
                Ok(n) if field.kind() == Kind::Int || n >= 0 => self.known(field, AnyValue::Int(n)),
                _ => {
                    let v = self.bounded(value, false).to_string();
                    self.retyped(name, AnyValue::from(v));
                }
            },
        }
    }

    fn put_int(&mut self, f: &TracingField, value: i64) {
        let name = f.name();
        match Field::from_name(name).map(|fd| (fd, fd.kind())) {
            None if name == crate::convention::EVENT => self.name = EventName::Invalid,
            None if self.reserved(name) => {}
            None => self.extra(name, AnyValue::Int(value)),
            Some((field, Kind::Int)) => self.known(field, AnyValue::Int(value)),
            Some((field, Kind::Count)) if value >= 0 => self.known(field, AnyValue::Int(value)),
            Some((field, Kind::Str)) => self.known(field, AnyValue::from(value.to_string())),
            Some(_) => self.retyped(name, AnyValue::Int(value)),
        }
    }

    fn put_other(&mut self, f: &TracingField, value: AnyValue, text: impl FnOnce() -> String) {
        let name = f.name();
        if name == crate::convention::EVENT {
            self.name = EventName::Invalid;
            return;
        }
        if self.reserved(name) {
            return;
        }
        match Field::from_name(name) {
            None => self.extra(name, value),
            Some(field) if field.kind() == Kind::Str => self.known(field, AnyValue::from(text())),
            Some(_) => self.retyped(name, value),
        }
    }
}

impl<R: LogRecord> Visit for EventFields<'_, R> {
    fn record_str(&mut self, field: &TracingField, value: &str) {
        self.put_str(field, value);
    }

    fn record_i64(&mut self, field: &TracingField, value: i64) {
        self.put_int(field, value);
    }

    fn record_u64(&mut self, field: &TracingField, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.put_int(field, v),
            Err(_) => self.put_str(field, &value.to_string()),
        }
    }

    fn record_i128(&mut self, field: &TracingField, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.put_int(field, v),
            Err(_) => self.put_str(field, &value.to_string()),
        }
    }

    fn record_u128(&mut self, field: &TracingField, value: u128) {
        match i64::try_from(value) {
            Ok(v) => self.put_int(field, v),
            Err(_) => self.put_str(field, &value.to_string()),
        }
    }

    fn record_f64(&mut self, field: &TracingField, value: f64) {
        let integral = value.fract() == 0.0 && value.abs() < 9.0e15;
        let is_int_field = Field::from_name(field.name())
            .is_some_and(|f| matches!(f.kind(), Kind::Int | Kind::Count));
        if integral && is_int_field {
            return self.put_int(field, value as i64);
        }
        self.put_other(field, AnyValue::Double(value), || value.to_string());
    }

    fn record_bool(&mut self, field: &TracingField, value: bool) {
        self.put_other(field, AnyValue::Boolean(value), || value.to_string());
    }

    fn record_error(&mut self, field: &TracingField, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &TracingField, value: &dyn std::fmt::Debug) {
        let name = field.name();
        if name == "message" {
            return;
        }
        let tail = Field::from_name(name).is_some_and(|f| f.kind() == Kind::Tail);
        if tail && !self.verbose {
            return;
        }
        // Keep a few bytes past the bound so truncation is still detected and counted. A tail
        // keeps its end (formatted in bounded memory), any other value its start.
        let (s, _) = if tail {
            crate::bounded::debug_tail_string(value, TAIL_MAX_BYTES + 4)
        } else {
            crate::bounded::debug_string(value, FIELD_MAX_BYTES + 4)
        };
        self.put_str(field, &s);
    }
}
