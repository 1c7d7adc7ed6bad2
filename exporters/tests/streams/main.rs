//! Each stream end to end against a loopback server through its public builder: PostHog
//! (wire, retries, runtimes), the relay (HTTP and the channel transport) and Datadog.
//! `posthog_feedback.rs` is a binary of its own: it installs the process-global subscriber.

use closedloop_telemetry_test_support as support;

mod datadog;
mod otlp;
mod posthog_common;
mod posthog_retry;
mod posthog_runtime;
mod posthog_wire;
mod relay;
