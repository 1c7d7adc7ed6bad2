//! `collect --ui`: the local view page for what the collector receives.

use closedloop_telemetry_collector::Collector;

pub use crate::collector_view::serve_collector_view;

/// The running view page of `collect --ui`; it answers until dropped.
#[derive(Debug)]
pub struct CollectorUi {
    line: String,
    _server: closedloop_telemetry::ViewServer,
}

impl CollectorUi {
    /// `ui: http://127.0.0.1:<port>/?token=<token>`: the line `collect --ui` prints.
    pub fn line(&self) -> &str {
        &self.line
    }
}

/// Serves the view page for `collector` on a free loopback port (see
/// [`serve_collector_view`]).
pub fn start_ui(collector: &Collector) -> Result<CollectorUi, String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = serve_collector_view(collector, addr)
        .map_err(|e| format!("cannot start the view page: {e}"))?;
    Ok(CollectorUi {
        line: format!("ui: {}", server.url()),
        _server: server,
    })
}
