//! The command-line tool and the tools' crates, in one test binary: the arguments and `--help`,
//! `audit`, `verify`, `collect` and `collect --ui`, the local collector end to end, the
//! published schemas against the real encoders, and free-text redaction as the audit shows it.
//! The binary under test is `CARGO_BIN_EXE_closedloop-telemetry`.

mod audit;
mod cli;
mod cli_help;
mod collect_ui;
mod collector;
mod redaction_fields;
mod schema;
mod verify;
