//! A scripted desktop session: the "app" part of the `desktop_client` example and the default
//! session of the command-line tool's `audit`. It only uses `tracing` and the
//! gateway-session handle; it never touches an exporter. Every catalogue row is emitted at least once, with realistic
//! subprocess output that contains secrets (which verbose mode must redact).

use std::time::Duration;

use closedloop_telemetry_layers::GatewaySession;
use tracing::{error, info, info_span, warn};

// Realistic subprocess output, with a secret that verbose mode must redact.
const NPM_TAIL: &str = "npm WARN deprecated inflight@1.0.6: This module is not supported\n\
npm ERR! code E401\n\
npm ERR! Unable to authenticate, need: Bearer realm=\"https://npm.pkg.github.com\", token ghp_4f9ZkqLr8TnW2xYc7VbM1sPdQ0aHjE3uKoIy\n\
npm ERR! A complete log of this run can be found in: ~/.npm/_logs/debug-0.log\n";

const PYTEST_TAIL: &str = "tests/test_api.py::test_login FAILED\n\
E   AssertionError: expected 200, got 401 for user dev@example.com\n\
E   requests: POST https://admin:hunter2@staging.internal/api/login\n\
==== 1 failed, 41 passed in 3.12s ====\n";

fn pause() {
    std::thread::sleep(Duration::from_millis(5));
}

/// Plays the whole session on the current thread's subscriber. Every catalogue row is emitted at least once.
pub fn play(gateway: &GatewaySession) {
    // --- connection -----------------------------------------------------------------------
    gateway.set("gw-5f2a91");
    info!(
        event = "connection.established",
        endpoint = "wss://relay.example/desktop",
        latency_ms = 84_u64
    );
    info!(
        activity = "security",
        summary = "device key loaded",
        body = "keychain item closedloop.device (ed25519)"
    );

    // --- a command with an approval -------------------------------------------------------
    command("cmd-0001", "op-11", |_| {
        info!(
            event = "approval.requested",
            tool = "shell",
            risk = "medium"
        );
        pause();
        info!(
            event = "approval.resolved",
            decision = "approved",
            wait_ms = 1840_u64
        );
        info!(event = "command.started");
        info!(
            activity = "request",
            summary = "POST /v1/commands/cmd-0001/run",
            body = r#"{"cmd":"npm test","cwd":"~/src/app"}"#
        );
        pause();
        info!(
            event = "command.completed",
            exit_code = 0,
            elapsed_ms = 4210_u64,
            stdout_bytes = 18_344_u64
        );
    });

    // --- a loop of jobs ---------------------------------------------------------------------
    let lp = info_span!("loop", loop_id = "loop-7c1e", loop_session_id = "ls-20b4");
    lp.in_scope(|| {
        job("job-001", |_| {
            info!(event = "job.started", spawn_meta = r#"{"pid":48213,"argv0":"node","cwd":"~/src/app"}"#);
            pause();
            info!(event = "job.completed", exit_code = 0, elapsed_ms = 1532_u64, stdout_bytes = 20_480_u64,
                token_usage = r#"{"input":1834,"output":412}"#);
        });
        job("job-002", |_| {
            info!(event = "job.started");
            error!(event = "job.failed", exit_code = 1, elapsed_ms = 9120_u64, stdout_bytes = 3301_u64,
                log_tail = NPM_TAIL, stderr_tail = "npm ERR! code E401\n",
                error_stack = "Error: Command failed: npm ci\n    at ChildProcess.exithandler (node:child_process:422:12)");
        });
        job("job-003", |span| {
            info!(event = "job.started");
            warn!(event = "job.auth_challenge", provider = "github", scope = "read:packages");
            span.record("operation_id", "op-auth-3");
            warn!(event = "job.cancelled", abort_reason = "user cancelled", exit_signal = "SIGTERM", elapsed_ms = 700_u64);
        });
        job("job-004", |_| {
            info!(event = "job.recovery.finalize_replayed", replayed_steps = 3_u64);
        });
        job("job-005", |_| {
            error!(event = "preflight.binary_not_found", binary = "pnpm");
            error!(event = "preflight.script_not_found", script = "scripts/build.sh");
            error!(event = "preflight.spawn_failed", exit_code = -2, error_stack = "ENOENT: spawn /usr/local/bin/uv",
                log_tail = PYTEST_TAIL);
        });
        info!(event = "queue.stats_changed", depth = 3_u64, running = 1_u64, waiting = 2_u64);
    });

    // --- commands that end badly ------------------------------------------------------------
    command("cmd-0002", "op-12", |_| {
        info!(event = "command.started");
        error!(
            event = "command.failed",
            exit_code = 2,
            elapsed_ms = 311_u64
        );
    });
    command("cmd-0003", "op-13", |_| {
        info!(event = "command.started");
        error!(
            event = "command.timeout",
            elapsed_ms = 120_000_u64,
            abort_reason = "deadline exceeded"
        );
    });
    command("cmd-0004", "op-14", |_| {
        info!(event = "command.started");
        warn!(
            event = "command.cancelled",
            abort_reason = "user pressed stop"
        );
    });
    command("cmd-0005", "op-15", |_| {
        error!(
            event = "command.gateway_error",
            status = 502_u64,
            abort_reason = "upstream closed"
        );
    });

    // --- sandbox, health checks ---------------------------------------------------------------
    warn!(
        event = "sandbox.blocked_operation",
        operation = "write",
        path_class = "outside-workspace"
    );
    info!(
        activity = "security",
        summary = "sandbox blocked a write outside the workspace",
        body = "write ~/.ssh/config denied by policy fs.workspace-only"
    );
    warn!(
        event = "healthcheck.failure_detected",
        check = "relay_ping",
        consecutive = 1_u64
    );
    error!(
        event = "healthcheck.failure_persistent",
        check = "relay_ping",
        consecutive = 5_u64
    );

    // --- connection trouble and recovery ------------------------------------------------------
    warn!(event = "connection.degraded", rtt_ms = 2400_u64);
    error!(event = "connection.lost", reason = "ping timeout");
    gateway.clear();
    pause();
    gateway.set("gw-9d03c7");
    info!(
        event = "connection.reconnection_resumed",
        attempt = 2_u64,
        downtime_ms = 3100_u64
    );
    info!(event = "healthcheck.recovered", check = "relay_ping");
    gateway.set("gw-b71e44");
    info!(
        event = "connection.established",
        endpoint = "wss://relay.example/desktop",
        latency_ms = 91_u64
    );
    command("cmd-0006", "op-16", |_| {
        info!(event = "command.initiated", source = "palette");
        info!(event = "command.started");
        info!(
            event = "command.completed",
            exit_code = 0,
            elapsed_ms = 88_u64,
            stdout_bytes = 512_u64
        );
    });
}

fn command(id: &str, op: &str, body: impl FnOnce(&tracing::Span)) {
    let span = info_span!("command", command_id = id, operation_id = op);
    let _g = span.enter();
    if id != "cmd-0006" {
        info!(event = "command.initiated", source = "chat");
    }
    body(&span);
}

fn job(id: &str, body: impl FnOnce(&tracing::Span)) {
    let span = info_span!("job", job_id = id, operation_id = tracing::field::Empty);
    let _g = span.enter();
    body(&span);
}
