//! The gateway session id, set by the app at runtime on every (re)connection.

use std::sync::{Arc, RwLock};

/// A shared, cheaply cloned handle to the current `gatewaySessionId`.
///
/// The layer reads it for every event that has no `gateway_session_id` in its span scope.
///
/// ```
/// use closedloop_telemetry_layers::GatewaySession;
/// let gw = GatewaySession::default();
/// gw.set("gw-2");
/// assert_eq!(gw.get().as_deref(), Some("gw-2"));
/// gw.clear();
/// assert!(gw.get().is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct GatewaySession(Arc<RwLock<Option<Arc<str>>>>);

impl GatewaySession {
    /// Sets the id after a (re)connection.
    pub fn set(&self, id: impl Into<Arc<str>>) {
        let id = id.into();
        // A poisoned lock only means a writer panicked mid-assignment of an Option; the value
        // is still a valid Option, so recover it rather than panic on the app thread.
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(id);
    }

    /// Clears the id (disconnected).
    pub fn clear(&self) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The current id.
    pub fn get(&self) -> Option<Arc<str>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
