//! The scripted desktop session: the "app" part of the example. It lives in the library as
//! [`closedloop_telemetry_collector::demo::play`] so `closedloop-telemetry audit` can replay it too.

pub use closedloop_telemetry_collector::demo::play;
