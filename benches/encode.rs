//! PostHog batch encoding cost per event: map `Event` → item (JSON), frame a 20-event batch,
//! optionally gzip it (levels 1 and 6). Run with `cargo bench --bench encode`; the batch
//! benches report throughput in events, so time per event = time per batch / 20.
//!
//! Encoding always redacts the event's free text ([`Redactor::free_text`]): `encode/redact/*`
//! measures that step alone for the same events as `encode/posthog_event*`, so the redaction
//! cost per event is their ratio (`*_free_text`: an event with an error stack, abort reason
//! and spawn meta holding secrets). `encode/timestamp` is the envelope timestamp each event
//! gets when it is decoded.

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;

use closedloop_telemetry_exporters::__private::decode::Event;
use closedloop_telemetry_exporters::__private::delivery::gzip_bytes;
use closedloop_telemetry_exporters::__private::posthog::wire::{encode_event, Framer};
use closedloop_telemetry_exporters::__private::redact::Redactor;
use closedloop_telemetry_layers::__private::catalogue::lookup;
use closedloop_telemetry_layers::__private::envelope::{
    format_timestamp, Diagnostics, TraceEnvelope,
};

const BATCH: usize = 20;

/// A realistic `command.completed`: envelope ids, trace context, diagnostics and extras.
fn event(i: usize) -> Event {
    let now = SystemTime::now();
    let mut trace = TraceEnvelope::new(format_timestamp(now), "ct-7f3a9c2e-5b1d-4e8a".into());
    trace.gateway_session_id = Some("gw-2c41e8d0-91aa-4f7e".into());
    trace.command_id = Some(format!("cmd-{i:08}"));
    trace.operation_id = Some(format!("op-{i:08}"));
    trace.loop_id = Some("loop-5521".into());
    trace.job_id = Some(format!("job-{i}"));
    trace.loop_session_id = Some("ls-0c9d".into());
    let mut diagnostics = Diagnostics {
        exit_code: Some(0),
        elapsed_ms: Some(1532 + i as i64),
        stdout_bytes: Some(48_213),
        token_usage: json!({"input": 1834, "output": 422}).as_object().cloned(),
        ..Default::default()
    };
    diagnostics
        .extra
        .insert("model".into(), json!("claude-sonnet"));
    diagnostics.extra.insert("approved".into(), json!(true));
    Event {
        name: "command.completed".into(),
        entry: lookup("command.completed"),
        time: now,
        severity: None,
        trace,
        diagnostics,
        release_version: Some("2.14.0".into()),
        sample_rate: None,
    }
}

/// [`event`] with free text as a failing command has it: a ~1.5 KiB error stack, an abort
/// reason and spawn meta, with two secrets among them.
fn event_with_free_text(i: usize) -> Event {
    let mut e = event(i);
    e.name = "command.timeout".into();
    e.entry = lookup("command.timeout");
    let mut stack = String::from(
        "Error: request failed with status 401 (https://api.example.com/v1/run?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl)\n",
    );
    for f in 0..20 {
        stack.push_str(&format!(
            "    at handler{f} (/home/dev/src/app/node_modules/lib/client.js:{}:{})\n",
            100 + f,
            7 + f
        ));
    }
    e.diagnostics.error_stack = Some(stack);
    e.diagnostics.abort_reason =
        Some("deadline of 30s exceeded while waiting for the gateway".into());
    e.diagnostics.spawn_meta = json!({
        "argv": ["npm", "test", "--", "--ci"],
        "cwd": "/Users/dev/src/app",
        "env": {"CI": "1", "NPM_TOKEN": "npm_0123456789abcdefghij0123456789abcd"},
    })
    .as_object()
    .cloned();
    e
}

/// Maps and frames one batch, as the worker does on each first attempt.
fn encode_batch(events: &[Event], framer: &Framer, gzip: Option<u32>) -> Vec<u8> {
    let items: Vec<Vec<u8>> = events
        .iter()
        .map(|e| encode_event(e, uuid::Uuid::now_v7()).expect("valid"))
        .collect();
    let slices: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    let mut body = Vec::with_capacity(8 * 1024);
    framer.frame(&slices, &format_timestamp(SystemTime::now()), &mut body);
    match gzip {
        Some(level) => gzip_bytes(&body, level),
        None => body,
    }
}

fn bench_encode(c: &mut Criterion) {
    let events: Vec<Event> = (0..BATCH).map(event).collect();
    let framer = Framer::new("phc_bench_key_0000000000000000000000000000");
    for (name, gzip) in [("plain", None), ("gzip1", Some(1)), ("gzip6", Some(6))] {
        let size = encode_batch(&events, &framer, gzip).len();
        eprintln!("posthog batch of {BATCH}, {name}: {size} bytes");
    }

    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    // Every event's envelope timestamp is formatted once, when it is decoded.
    let at = SystemTime::now();
    group.bench_function("timestamp", |b| b.iter(|| format_timestamp(black_box(at))));
    group.bench_function("posthog_event", |b| {
        b.iter(|| encode_event(black_box(&events[0]), uuid::Uuid::now_v7()))
    });
    group.bench_function("redact/posthog_event", |b| {
        b.iter(|| Redactor::shared().free_text(black_box(&events[0].diagnostics)))
    });
    let heavy = event_with_free_text(0);
    let sample = String::from_utf8(encode_event(&heavy, uuid::Uuid::now_v7()).expect("valid"))
        .expect("UTF-8");
    assert_eq!(sample.matches("[REDACTED:").count(), 2, "{sample}");
    group.bench_function("posthog_event_free_text", |b| {
        b.iter(|| encode_event(black_box(&heavy), uuid::Uuid::now_v7()))
    });
    group.bench_function("redact/posthog_event_free_text", |b| {
        b.iter(|| Redactor::shared().free_text(black_box(&heavy.diagnostics)))
    });
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, gzip) in [("plain", None), ("gzip1", Some(1)), ("gzip6", Some(6))] {
        group.bench_function(format!("posthog_batch20_{name}"), |b| {
            b.iter(|| encode_batch(black_box(&events), &framer, gzip))
        });
    }
    group.finish();
}

criterion_group!(encode, bench_encode);
criterion_main!(encode);
