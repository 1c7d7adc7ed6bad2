//! Fuzzes the attribute-to-envelope decoder (`decode`): the input is read as a list of
//! attributes (a key from the convention, a prefixed `extra.` key or arbitrary text, and a value
//! of any `AnyValue` kind, nested lists and maps included) plus decode options. The decoder
//! must never panic, and an event it returns must serialise to JSON (the envelope and the
//! diagnostics every wire format is built from).
#![no_main]

use std::sync::OnceLock;

use closedloop_telemetry_exporters::__private::decode::{decode, DecodeOptions};
use closedloop_telemetry_layers::__private::convention::{Field, EVENT};
use libfuzzer_sys::fuzz_target;
use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::Key;
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};

fn logger() -> &'static SdkLogger {
    static LOGGER: OnceLock<SdkLogger> = OnceLock::new();
    LOGGER.get_or_init(|| SdkLoggerProvider::builder().build().logger("fuzz"))
}

/// Reads bytes off the front of the input; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn bytes(&mut self, max: usize) -> &[u8] {
        let n = (self.byte() as usize).min(max).min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn text(&mut self) -> String {
        String::from_utf8_lossy(self.bytes(64)).into_owned()
    }
    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(std::array::from_fn(|_| self.byte()))
    }
}

const NAMES: [&str; 6] = [
    "job.completed",
    "command.completed",
    "command.failed",
    "approval.requested",
    "plugin.loaded",
    "",
];

fn key(input: &mut Input) -> String {
    let b = input.byte();
    match b % 4 {
        0 => EVENT.to_string(),
        1 => Field::ALL[(b as usize / 4) % Field::ALL.len()].key().to_string(),
        2 => Field::ALL[(b as usize / 4) % Field::ALL.len()].snake().to_string(),
        _ => format!("extra.{}", input.text()),
    }
}

fn value(input: &mut Input, depth: u32) -> AnyValue {
    match input.byte() % 8 {
        0 => AnyValue::Int(input.i64()),
        1 => AnyValue::Double(f64::from_bits(input.i64() as u64)),
        2 => AnyValue::Boolean(input.byte() & 1 == 1),
        3 => AnyValue::Bytes(Box::new(input.bytes(64).to_vec())),
        4 if depth < 8 => {
            let n = input.byte() % 4;
            AnyValue::ListAny(Box::new((0..n).map(|_| value(input, depth + 1)).collect()))
        }
        5 if depth < 8 => {
            let n = input.byte() % 4;
            let map = (0..n)
                .map(|_| (Key::from(input.text()), value(input, depth + 1)))
                .collect();
            AnyValue::Map(Box::new(map))
        }
        6 => AnyValue::String(NAMES[input.byte() as usize % NAMES.len()].into()),
        _ => AnyValue::String(input.text().into()),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let flags = input.byte();
    let opts = DecodeOptions {
        compute_target_id: (flags & 1 == 1).then(|| "ct-fuzz".to_string()),
        release_version: (flags & 2 == 2).then(|| "1.0.0".to_string()),
        keep_tails: flags & 4 == 4,
    };
    let mut record = logger().create_log_record();
    if flags & 8 == 8 {
        record.set_severity_number(Severity::Info);
    }
    if flags & 16 == 16 {
        record.set_timestamp(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(input.i64() as u64 >> 20),
        );
    }
    let attributes = input.byte() % 24;
    for _ in 0..attributes {
        let k = key(&mut input);
        let v = value(&mut input, 0);
        record.add_attribute(k, v);
    }
    if let Ok(event) = decode(&record, &opts) {
        serde_json::to_string(&event.trace).expect("the envelope serialises");
        serde_json::to_string(&event.diagnostics).expect("diagnostics serialise");
        let _ = format!("{event:?}");
    }
});
