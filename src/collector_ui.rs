//! `collect --ui`: the local view page for what the [collector](crate::collector) receives (cargo feature `view`). Its own module, so that the collector and the view never import each other.

use crate::collector::Collector;

/// The running view page of `collect --ui`; it answers until dropped.
#[derive(Debug)]
pub struct CollectorUi {
    line: String,
    #[cfg(feature = "view")]
    _server: crate::view::ViewServer,
}

impl CollectorUi {
    /// `ui: http://127.0.0.1:<port>/?token=<token>`: the line `collect --ui` prints.
    pub fn line(&self) -> &str {
        &self.line
    }
}

/// Serves the view page for `collector` on a free loopback port (see
/// [`serve_collector_view`](crate::view::serve_collector_view)). Without the `view` feature
/// there is no server to start and the error says so.
pub fn start_ui(collector: &Collector) -> Result<CollectorUi, String> {
    #[cfg(feature = "view")]
    {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let server = crate::view::serve_collector_view(collector, addr)
            .map_err(|e| format!("cannot start the view page: {e}"))?;
        Ok(CollectorUi {
            line: format!("ui: {}", server.url()),
            _server: server,
        })
    }
    #[cfg(not(feature = "view"))]
    {
        let _ = collector;
        Err("this build has no view page: rebuild with `--features cli,view`".into())
    }
}
