//! The record convention: which attributes a log record carries and what they mean.
//!
//! The [`TelemetryLayer`](crate::TelemetryLayer) writes exactly this; the exporters read exactly
//! this. A record produced by another bridge (e.g. `opentelemetry-appender-tracing`) is understood
//! too, because the reader also accepts the snake_case tracing field names.
//!
//! | attribute | value | meaning |
//! |---|---|---|
//! | record `event_name` | catalogue dot name | the category, for catalogue events |
//! | `event` | string | the category, for custom events and for other bridges; wins over `event_name` |
//! | `computeTargetId`, `gatewaySessionId`, `commandId`, `operationId` | string | envelope |
//! | `loopId`, `jobId`, `loopSessionId` | string | trace context |
//! | `releaseVersion` | string | the app's release version |
//! | `exitCode`, `elapsedMs`, `stdoutBytes` | int | diagnostics |
//! | `logTail`, `stderrTail` | string, ≤ 4096 bytes (the end) | diagnostics, only when verbose |
//! | `exitSignal`, `abortReason`, `errorStack` | string | diagnostics |
//! | `spawnMeta`, `tokenUsage` | JSON object as a string, or a map | diagnostics |
//! | `extra.<name>` | any scalar | the event's other fields (PostHog properties, `diagnostics.extra`) |
//!
//! The record timestamp is the event time; readers fall back to `observed_timestamp`.

/// The attribute carrying the event name when it is not a `'static` catalogue name.
pub const EVENT: &str = "event";

/// The `event_name` the layer gives custom (non-catalogue) events; the name is in [`EVENT`].
pub const CUSTOM_EVENT_NAME: &str = "closedloop.custom";

/// The prefix of attributes holding the event's other fields.
pub const EXTRA_PREFIX: &str = "extra.";

/// Whether a field is part of the envelope, the trace context or diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The envelope (`trace` in the relay message).
    Envelope,
    /// Trace context (`loopId`, `jobId`, `loopSessionId`; also in `trace`).
    TraceContext,
    /// `diagnostics`.
    Diagnostics,
}

/// The value type a known field expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Str,
    /// A signed integer.
    Int,
    /// A non-negative integer (negative values go to `extra` instead).
    Count,
    /// A JSON object (given as a JSON string or a map).
    Object,
    /// A subprocess output tail, kept only when verbose and cut to its last 4096 bytes.
    Tail,
}

/// A field the convention knows, with its camelCase attribute key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Field {
    ComputeTargetId,
    GatewaySessionId,
    CommandId,
    OperationId,
    ReleaseVersion,
    LoopId,
    JobId,
    LoopSessionId,
    ExitCode,
    LogTail,
    StderrTail,
    ExitSignal,
    ElapsedMs,
    StdoutBytes,
    AbortReason,
    SpawnMeta,
    TokenUsage,
    ErrorStack,
}

impl Field {
    /// Every known field.
    pub const ALL: [Field; 18] = [
        Field::ComputeTargetId,
        Field::GatewaySessionId,
        Field::CommandId,
        Field::OperationId,
        Field::ReleaseVersion,
        Field::LoopId,
        Field::JobId,
        Field::LoopSessionId,
        Field::ExitCode,
        Field::LogTail,
        Field::StderrTail,
        Field::ExitSignal,
        Field::ElapsedMs,
        Field::StdoutBytes,
        Field::AbortReason,
        Field::SpawnMeta,
        Field::TokenUsage,
        Field::ErrorStack,
    ];

    /// The camelCase attribute key (and envelope key).
    pub const fn key(self) -> &'static str {
        self.names().1
    }

    /// The snake_case tracing field name.
    pub const fn snake(self) -> &'static str {
        self.names().0
    }

    const fn names(self) -> (&'static str, &'static str) {
        match self {
            Field::ComputeTargetId => ("compute_target_id", "computeTargetId"),
            Field::GatewaySessionId => ("gateway_session_id", "gatewaySessionId"),
            Field::CommandId => ("command_id", "commandId"),
            Field::OperationId => ("operation_id", "operationId"),
            Field::ReleaseVersion => ("release_version", "releaseVersion"),
            Field::LoopId => ("loop_id", "loopId"),
            Field::JobId => ("job_id", "jobId"),
            Field::LoopSessionId => ("loop_session_id", "loopSessionId"),
            Field::ExitCode => ("exit_code", "exitCode"),
            Field::LogTail => ("log_tail", "logTail"),
            Field::StderrTail => ("stderr_tail", "stderrTail"),
            Field::ExitSignal => ("exit_signal", "exitSignal"),
            Field::ElapsedMs => ("elapsed_ms", "elapsedMs"),
            Field::StdoutBytes => ("stdout_bytes", "stdoutBytes"),
            Field::AbortReason => ("abort_reason", "abortReason"),
            Field::SpawnMeta => ("spawn_meta", "spawnMeta"),
            Field::TokenUsage => ("token_usage", "tokenUsage"),
            Field::ErrorStack => ("error_stack", "errorStack"),
        }
    }

    /// Where the field goes.
    pub const fn section(self) -> Section {
        match self {
            Field::ComputeTargetId
            | Field::GatewaySessionId
            | Field::CommandId
            | Field::OperationId
            | Field::ReleaseVersion => Section::Envelope,
            Field::LoopId | Field::JobId | Field::LoopSessionId => Section::TraceContext,
            _ => Section::Diagnostics,
        }
    }

    /// The value type it expects.
    pub const fn kind(self) -> Kind {
        match self {
            Field::ExitCode => Kind::Int,
            Field::ElapsedMs | Field::StdoutBytes => Kind::Count,
            Field::SpawnMeta | Field::TokenUsage => Kind::Object,
            Field::LogTail | Field::StderrTail => Kind::Tail,
            _ => Kind::Str,
        }
    }

    /// Whether spans carry it as context for the events inside them.
    pub const fn is_context(self) -> bool {
        matches!(
            self,
            Field::GatewaySessionId
                | Field::CommandId
                | Field::OperationId
                | Field::LoopId
                | Field::JobId
                | Field::LoopSessionId
        )
    }

    /// Maps a tracing field name or attribute key (snake_case or camelCase) to a field.
    ///
    /// ```
    /// use closedloop_telemetry_layers::__private::convention::Field;
    /// assert_eq!(Field::from_name("loop_id"), Some(Field::LoopId));
    /// assert_eq!(Field::from_name("loopId"), Some(Field::LoopId));
    /// assert_eq!(Field::from_name("colour"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Field> {
        // A literal match compiles to a length-then-bytes dispatch: this runs for every field
        // of every event, so it must not scan the table.
        Some(match name {
            "compute_target_id" | "computeTargetId" => Field::ComputeTargetId,
            "gateway_session_id" | "gatewaySessionId" => Field::GatewaySessionId,
            "command_id" | "commandId" => Field::CommandId,
            "operation_id" | "operationId" => Field::OperationId,
            "release_version" | "releaseVersion" => Field::ReleaseVersion,
            "loop_id" | "loopId" => Field::LoopId,
            "job_id" | "jobId" => Field::JobId,
            "loop_session_id" | "loopSessionId" => Field::LoopSessionId,
            "exit_code" | "exitCode" => Field::ExitCode,
            "log_tail" | "logTail" => Field::LogTail,
            "stderr_tail" | "stderrTail" => Field::StderrTail,
            "exit_signal" | "exitSignal" => Field::ExitSignal,
            "elapsed_ms" | "elapsedMs" => Field::ElapsedMs,
            "stdout_bytes" | "stdoutBytes" => Field::StdoutBytes,
            "abort_reason" | "abortReason" => Field::AbortReason,
            "spawn_meta" | "spawnMeta" => Field::SpawnMeta,
            "token_usage" | "tokenUsage" => Field::TokenUsage,
            "error_stack" | "errorStack" => Field::ErrorStack,
            _ => return None,
        })
    }
}

/// The position of a context field in a fixed-size slot array (see [`Field::is_context`]).
pub(crate) const CONTEXT_FIELDS: [Field; 6] = [
    Field::GatewaySessionId,
    Field::CommandId,
    Field::OperationId,
    Field::LoopId,
    Field::JobId,
    Field::LoopSessionId,
];

/// The slot of a context field in [`CONTEXT_FIELDS`].
pub(crate) fn context_slot(field: Field) -> Option<usize> {
    CONTEXT_FIELDS.iter().position(|f| *f == field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Field::ALL {
            assert_eq!(Field::from_name(f.snake()), Some(f));
            assert_eq!(Field::from_name(f.key()), Some(f));
        }
        assert_eq!(
            CONTEXT_FIELDS.len(),
            Field::ALL.iter().filter(|f| f.is_context()).count()
        );
    }
}
