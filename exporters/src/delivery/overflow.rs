//! The overflow: a compact byte form of a log record for the pipeline's queue. What a burst
//! holds beyond the queue's record bound costs a fraction of an in-memory `SdkLogRecord`
//! (BENCHMARKS.md, "held").
//!
//! Only what the decoder reads survives: the event name (a catalogue name or the custom
//! marker), the timestamps, the severity number, the trace context and every attribute.
//! Attribute keys are interned in a [`Keys`] table shared by the writer and the reader (one
//! byte per key). A record holding a value kind this form does not know is refused
//! ([`write`] returns false) and the caller treats it as it would a full queue.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use closedloop_telemetry_layers::__private::catalogue;
use closedloop_telemetry_layers::__private::convention::CUSTOM_EVENT_NAME;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, Severity};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry::Key;
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger};

/// Interned attribute keys: index (one byte) to key.
#[derive(Debug, Default)]
pub(crate) struct Keys(Vec<Key>);

/// The most keys interned; others are written out in full.
const MAX_KEYS: usize = 255;
/// The key byte of a key written out in full.
const INLINE_KEY: u8 = 255;

impl Keys {
    /// A copy for the reader (keys only ever get added).
    pub(crate) fn snapshot(&self) -> Keys {
        Keys(self.0.clone())
    }

    fn index(&mut self, key: &Key) -> Option<u8> {
        let s = key.as_str();
        // Static keys repeat with the same address: compare that first.
        let found = self
            .0
            .iter()
            .position(|k| std::ptr::eq(k.as_str(), s))
            .or_else(|| self.0.iter().position(|k| k.as_str() == s));
        match found {
            Some(i) => Some(i as u8),
            None if self.0.len() < MAX_KEYS => {
                self.0.push(key.clone());
                Some((self.0.len() - 1) as u8)
            }
            None => None,
        }
    }
}

const SEVERITIES: [Severity; 24] = [
    Severity::Trace,
    Severity::Trace2,
    Severity::Trace3,
    Severity::Trace4,
    Severity::Debug,
    Severity::Debug2,
    Severity::Debug3,
    Severity::Debug4,
    Severity::Info,
    Severity::Info2,
    Severity::Info3,
    Severity::Info4,
    Severity::Warn,
    Severity::Warn2,
    Severity::Warn3,
    Severity::Warn4,
    Severity::Error,
    Severity::Error2,
    Severity::Error3,
    Severity::Error4,
    Severity::Fatal,
    Severity::Fatal2,
    Severity::Fatal3,
    Severity::Fatal4,
];

/// Appends `record` and its destination mask (which destinations route it) to `out` in the
/// compact form. False (and `out` unchanged) when the record holds something the form cannot
/// carry.
pub(crate) fn write(record: &SdkLogRecord, mask: u8, keys: &mut Keys, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    out.push(mask);
    let ok = write_inner(record, keys, out);
    if !ok {
        out.truncate(start);
    }
    ok
}

fn write_inner(record: &SdkLogRecord, keys: &mut Keys, out: &mut Vec<u8>) -> bool {
    put_str(out, record.event_name().unwrap_or(""));
    put_time(out, record.timestamp());
    put_time(out, record.observed_timestamp());
    out.push(record.severity_number().map_or(0, |s| s as u8));
    match record.trace_context() {
        Some(tc) => {
            out.push(1 + u8::from(tc.trace_flags.is_some()));
            out.extend_from_slice(&u128::from_be_bytes(tc.trace_id.to_bytes()).to_le_bytes());
            out.extend_from_slice(&u64::from_be_bytes(tc.span_id.to_bytes()).to_le_bytes());
            out.push(tc.trace_flags.map_or(0, |f| f.to_u8()));
        }
        None => out.push(0),
    }
    let count_at = out.len();
    out.extend_from_slice(&[0, 0]);
    let mut count: u16 = 0;
    for (key, value) in record.attributes_iter() {
        match keys.index(key) {
            Some(i) => out.push(i),
            None => {
                out.push(INLINE_KEY);
                put_str(out, key.as_str());
            }
        }
        if !put_value(out, value) {
            return false;
        }
        count = match count.checked_add(1) {
            Some(c) => c,
            None => return false,
        };
    }
    out[count_at..count_at + 2].copy_from_slice(&count.to_le_bytes());
    true
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_time(out: &mut Vec<u8>, t: Option<SystemTime>) {
    let nanos = t
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64);
    out.extend_from_slice(&nanos.to_le_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &AnyValue) -> bool {
    match v {
        AnyValue::Int(i) => {
            out.push(0);
            out.extend_from_slice(&i.to_le_bytes());
        }
        AnyValue::Double(d) => {
            out.push(1);
            out.extend_from_slice(&d.to_le_bytes());
        }
        AnyValue::Boolean(b) => out.extend_from_slice(&[2, u8::from(*b)]),
        AnyValue::String(s) => {
            out.push(3);
            put_str(out, s.as_str());
        }
        AnyValue::Bytes(b) => {
            out.push(4);
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        AnyValue::ListAny(items) => {
            out.push(5);
            out.extend_from_slice(&(items.len() as u32).to_le_bytes());
            return items.iter().all(|i| put_value(out, i));
        }
        AnyValue::Map(map) => {
            out.push(6);
            out.extend_from_slice(&(map.len() as u32).to_le_bytes());
            for (k, v) in map.iter() {
                put_str(out, k.as_str());
                if !put_value(out, v) {
                    return false;
                }
            }
        }
        _ => return false,
    }
    true
}

/// Reads records written by [`write`] back, one at a time.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// The next record and its destination mask, rebuilt on a blank record of `logger`;
    /// `None` at the end.
    pub(crate) fn next(&mut self, keys: &Keys, logger: &SdkLogger) -> Option<(u8, SdkLogRecord)> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let mask = self.u8()?;
        let mut r = logger.create_log_record();
        let name = self.str()?;
        let name = if name == CUSTOM_EVENT_NAME {
            Some(CUSTOM_EVENT_NAME)
        } else {
            catalogue::lookup(name).map(|e| e.name)
        };
        if let Some(n) = name {
            r.set_event_name(n);
        }
        if let Some(t) = self.time()? {
            r.set_timestamp(t);
        }
        if let Some(t) = self.time()? {
            r.set_observed_timestamp(t);
        }
        let sev = self.u8()?;
        if let Some(s) = SEVERITIES.get(usize::from(sev).wrapping_sub(1)) {
            r.set_severity_number(*s);
        }
        let tc = self.u8()?;
        if tc > 0 {
            let trace = u128::from_le_bytes(self.take(16)?.try_into().ok()?);
            let span = u64::from_le_bytes(self.take(8)?.try_into().ok()?);
            let flags = self.u8()?;
            r.set_trace_context(
                TraceId::from(trace),
                SpanId::from(span),
                (tc == 2).then_some(TraceFlags::new(flags)),
            );
        }
        let count = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
        for _ in 0..count {
            let key = match self.u8()? {
                INLINE_KEY => Key::new(self.str()?.to_string()),
                i => keys.0.get(usize::from(i))?.clone(),
            };
            let value = self.value()?;
            r.add_attribute(key, value);
        }
        Some((mask, r))
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()?;
        std::str::from_utf8(self.take(n)?).ok()
    }

    fn time(&mut self) -> Option<Option<SystemTime>> {
        let n = u64::from_le_bytes(self.take(8)?.try_into().ok()?);
        Some((n > 0).then(|| UNIX_EPOCH + Duration::from_nanos(n)))
    }

    fn value(&mut self) -> Option<AnyValue> {
        Some(match self.u8()? {
            0 => AnyValue::Int(i64::from_le_bytes(self.take(8)?.try_into().ok()?)),
            1 => AnyValue::Double(f64::from_le_bytes(self.take(8)?.try_into().ok()?)),
            2 => AnyValue::Boolean(self.u8()? != 0),
            3 => AnyValue::from(self.str()?.to_string()),
            4 => {
                let n = self.u32()?;
                AnyValue::Bytes(Box::new(self.take(n)?.to_vec()))
            }
            5 => {
                let n = self.u32()?;
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(self.value()?);
                }
                AnyValue::ListAny(Box::new(items))
            }
            6 => {
                let n = self.u32()?;
                let mut map = std::collections::HashMap::new();
                for _ in 0..n {
                    let k = Key::new(self.str()?.to_string());
                    map.insert(k, self.value()?);
                }
                AnyValue::Map(Box::new(map))
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::logs::LoggerProvider as _;
    use opentelemetry_sdk::logs::SdkLoggerProvider;

    #[test]
    fn a_record_survives_the_round_trip_as_the_decoder_sees_it() {
        let logger = SdkLoggerProvider::builder().build().logger("t");
        let mut r = logger.create_log_record();
        r.set_event_name(CUSTOM_EVENT_NAME);
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        r.set_timestamp(t);
        r.set_observed_timestamp(t);
        r.set_severity_number(Severity::Warn);
        r.set_trace_context(TraceId::from(7u128), SpanId::from(9u64), None);
        r.add_attribute(Key::from_static_str("event"), AnyValue::from("my.custom"));
        r.add_attribute(Key::from_static_str("n"), AnyValue::Int(-5));
        r.add_attribute(Key::new("f".to_string()), AnyValue::Double(1.5));
        r.add_attribute(Key::from_static_str("b"), AnyValue::Boolean(true));
        r.add_attribute(
            Key::from_static_str("l"),
            AnyValue::ListAny(Box::new(vec![AnyValue::Int(1), AnyValue::from("x")])),
        );
        let mut keys = Keys::default();
        let mut buf = Vec::new();
        assert!(write(&r, 0b101, &mut keys, &mut buf));
        assert!(write(&r, 0b101, &mut keys, &mut buf));
        let mut reader = Reader::new(&buf);
        for _ in 0..2 {
            let (mask, back) = reader.next(&keys, &logger).expect("a record");
            assert_eq!(mask, 0b101);
            assert_eq!(back.event_name(), Some(CUSTOM_EVENT_NAME));
            assert_eq!(back.timestamp(), Some(t));
            assert_eq!(back.observed_timestamp(), Some(t));
            assert_eq!(back.severity_number(), Some(Severity::Warn));
            let tc = back.trace_context().expect("trace context");
            assert_eq!(
                (tc.trace_id, tc.span_id),
                (TraceId::from(7u128), SpanId::from(9u64))
            );
            let attrs = |r: &SdkLogRecord| -> Vec<(String, AnyValue)> {
                r.attributes_iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                    .collect()
            };
            assert_eq!(attrs(&back), attrs(&r));
        }
        assert!(reader.next(&keys, &logger).is_none());
        // Interned: the second copy is smaller than a record with every key in full.
        assert!(buf.len() < 2 * 200, "{} bytes", buf.len());
    }
}
