//! Per-event cost of the diagnostics wire work, off the app thread: redacting a 4 KiB verbose
//! tail (with and without secrets) and encoding relay / Datadog items around it.
//!
//! Encoding always redacts, so `export/encode/*` includes `export/redact_tail/*`: the share of
//! redaction in the encoding cost is their ratio. Run with `cargo bench --bench export`.

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use closedloop_telemetry_exporters::__private::datadog::wire::datadog_item;
use closedloop_telemetry_exporters::__private::decode::Event;
use closedloop_telemetry_exporters::__private::redact::Redactor;
use closedloop_telemetry_exporters::__private::relay::wire::relay_item;
use closedloop_telemetry_layers::__private::catalogue::lookup;
use closedloop_telemetry_layers::__private::envelope::{
    format_timestamp, Diagnostics, TraceEnvelope,
};
use closedloop_telemetry_layers::__private::truncate::{keep_tail, TAIL_MAX_BYTES};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use uuid::Uuid;

/// Realistic build / CLI output, no secrets.
const CLEAN_LINES: &[&str] = &[
    "   Compiling serde_json v1.0.154",
    "   Compiling closedloop-desktop v0.9.3 (/home/dev/src/closedloop)",
    "warning: unused variable: `handle` --> src/worker.rs:88:13",
    "npm WARN deprecated inflight@1.0.6: This module is not supported",
    "added 1432 packages, and audited 1433 packages in 38s",
    "Step 7/12 : RUN pip install --no-cache-dir -r requirements.txt",
    " ---> Running in 4f2b9c1d0e7a",
    "Successfully built 9c1e4f0a7b2d",
    "2026-11-25T09:14:03.120Z INFO job 123e4567-e89b-12d3-a456-426614174000 started",
    "  File \"/usr/lib/python3.11/site-packages/requests/sessions.py\", line 589, in request",
    "commit 3f2a9c1e0b7d4a6f8e9d0c1b2a3f4e5d6c7b8a9f (HEAD -> main, origin/main)",
    "test result: ok. 214 passed; 0 failed; 3 ignored; finished in 4.21s",
    "café ✓ 日本語 — résumé uploaded, 12.4 MiB/s",
];

/// Lines with secrets, mixed into the secret-bearing tail.
const SECRET_LINES: &[&str] = &[
    "> Authorization: Bearer ghp_0123456789abcdefghijABCDEFGHIJ012345",
    "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "Cloning https://deploy:s3cr3t-pass@git.example.com/team/app.git",
    "{\"level\":\"error\",\"user\":\"jane.doe@example.com\",\"password\":\"hunter2!\"}",
    "DD_API_KEY=0123456789abcdef0123456789abcdef",
];

fn tail(with_secrets: bool) -> String {
    let mut out = String::new();
    let mut i = 0;
    while out.len() < TAIL_MAX_BYTES + 200 {
        out.push_str(CLEAN_LINES[i % CLEAN_LINES.len()]);
        out.push('\n');
        if with_secrets && i % 8 == 3 {
            out.push_str(SECRET_LINES[(i / 8) % SECRET_LINES.len()]);
            out.push('\n');
        }
        i += 1;
    }
    // A tail starts at a line, as most do; the fragment rule is exercised by the tests.
    let t = keep_tail(&out, TAIL_MAX_BYTES);
    t[t.find('\n').map_or(0, |n| n + 1)..].to_string()
}

fn event(tail: String) -> Event {
    let time = UNIX_EPOCH + Duration::from_millis(1_795_598_043_120);
    let mut trace = TraceEnvelope::new(format_timestamp(time), "ct-7f3a".into());
    trace.gateway_session_id = Some("gs-91".into());
    trace.command_id = Some("cmd-5521".into());
    trace.job_id = Some("job-7".into());
    trace.otel_trace_id = Some("0af7651916cd43dd8448eb211c80319c".into());
    trace.otel_span_id = Some("b7ad6b7169203331".into());
    Event {
        name: "job.failed".into(),
        entry: lookup("job.failed"),
        time,
        severity: None,
        trace,
        diagnostics: Diagnostics {
            exit_code: Some(1),
            elapsed_ms: Some(1532),
            stderr_tail: Some(tail),
            ..Default::default()
        },
        release_version: Some("0.9.3".into()),
        sample_rate: None,
    }
}

fn export(c: &mut Criterion) {
    let redactor = Redactor::new();
    let clean = tail(false);
    let secret = tail(true);
    assert!(clean.len() > 4000 && secret.len() > 4000);
    assert!(
        redactor.redact(&clean).len() == clean.len(),
        "clean tail has no secrets"
    );
    let id = Uuid::from_u128(7);

    let mut g = c.benchmark_group("export");
    g.throughput(Throughput::Elements(1));
    g.bench_function("redact_tail/4k_clean", |b| {
        b.iter(|| redactor.redact_tail(black_box(&clean)))
    });
    g.bench_function("redact_tail/4k_secrets", |b| {
        b.iter(|| redactor.redact_tail(black_box(&secret)))
    });
    for (label, text) in [("clean", &clean), ("secrets", &secret)] {
        let e = event(text.clone());
        // Encoding always redacts (tails with `redact_tail`, free text with `free_text`).
        g.bench_function(format!("encode/relay_4k_{label}"), |b| {
            b.iter(|| relay_item(black_box(&e), id))
        });
        g.bench_function(format!("encode/datadog_4k_{label}"), |b| {
            b.iter(|| datadog_item(black_box(&e), id, "host-1"))
        });
    }
    g.finish();
}

criterion_group!(benches, export);
criterion_main!(benches);
