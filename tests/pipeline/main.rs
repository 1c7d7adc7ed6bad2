//! The facade end to end, in one test binary: install, consent, accounting, bad input, bursts,
//! configuration ranges, OTLP to the local collector, the spool's keys and permissions, Windows file semantics, the
//! per-app namespaces, the HTTP-stack filter, verbose tails, the README, and the load harness
//! (`#[ignore]`d, run by hand).
//!
//! The tests run in parallel threads of one process: none may change process-global state
//! another relies on. Tests that do (the environment, a global subscriber of their own, a global
//! allocator) are binaries of their own: `tests/corporate_network.rs`, `tests/do_not_track.rs`,
//! `tests/url_redaction.rs`, `tests/view.rs`, and `tests/resources/`. Two modules here read the
//! process-global log of `support::logs` (`permissions`, `spool_keys`); each looks only for
//! lines naming its own directories. `app_namespace` runs its own test `app_namespace::app` in
//! copies of this binary; `crash` runs `crash::child` in child processes, as only a child may
//! install the process-wide panic hook (this process never builds telemetry in that module).

mod accounting;
mod app_namespace;
mod bad_input;
mod burst;
mod config_range;
mod consent;
mod consent_race;
#[cfg(unix)]
mod crash;
mod file_semantics;
mod install;
mod layer_targets;
mod load;
mod otlp;
mod permissions;
mod readme;
mod spool_keys;
mod verbose_tails;
mod volume;
