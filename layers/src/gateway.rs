//! The gateway session id, set by the app at runtime on every (re)connection.

use std::sync::{Arc, OnceLock, RwLock};

/// What [`GatewaySession::set`] and [`GatewaySession::clear`] call with the new value.
type Observer = Box<dyn Fn(Option<&str>) + Send + Sync>;

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
#[derive(Clone, Default)]
pub struct GatewaySession(Arc<Inner>);

#[derive(Default)]
struct Inner {
    id: RwLock<Option<Arc<str>>>,
    /// Told of every change (the facade's session marker records it), once set.
    observer: OnceLock<Observer>,
}

impl std::fmt::Debug for GatewaySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("GatewaySession").field(&self.get()).finish()
    }
}

impl GatewaySession {
    /// Sets the id after a (re)connection.
    pub fn set(&self, id: impl Into<Arc<str>>) {
        let id = id.into();
        // A poisoned lock only means a writer panicked mid-assignment of an Option; the value
        // is still a valid Option, so recover it rather than panic on the app thread.
        *self.0.id.write().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
        self.changed(Some(&id));
    }

    /// Clears the id (disconnected).
    pub fn clear(&self) {
        *self.0.id.write().unwrap_or_else(|p| p.into_inner()) = None;
        self.changed(None);
    }

    /// The current id.
    pub fn get(&self) -> Option<Arc<str>> {
        self.0.id.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn changed(&self, id: Option<&str>) {
        if let Some(observer) = self.0.observer.get() {
            observer(id);
        }
    }

    /// Calls `observer` with the new value on every later change (on the thread that makes
    /// it, after the change). The first observer stays; returns whether this one was taken.
    pub(crate) fn observe(&self, observer: impl Fn(Option<&str>) + Send + Sync + 'static) -> bool {
        self.0.observer.set(Box::new(observer)).is_ok()
    }
}
