//! `--view`: the local view page of this session, open until Ctrl-C (cargo feature `view`:
//! `cargo run --features view --example desktop_client -- --view`).

use closedloop_telemetry::TelemetryHandle;

/// The running page (nothing without the `view` feature).
pub struct View {
    #[cfg(feature = "view")]
    _server: closedloop_telemetry::ViewServer,
}

/// Starts the page for `handle` on a free loopback port and prints its `ui:` line; exits with
/// status 2 when it cannot (or when built without the `view` feature).
pub fn start(handle: &TelemetryHandle) -> View {
    #[cfg(feature = "view")]
    {
        match handle.serve_view(std::net::SocketAddr::from(([127, 0, 0, 1], 0))) {
            Ok(server) => {
                println!("ui: {}", server.url());
                View { _server: server }
            }
            Err(e) => {
                eprintln!("--view: cannot start the view page: {e}");
                std::process::exit(2);
            }
        }
    }
    #[cfg(not(feature = "view"))]
    {
        let _ = handle;
        eprintln!("--view needs the `view` feature: cargo run --features view --example desktop_client -- --view");
        std::process::exit(2);
    }
}

impl View {
    /// Keeps the page open until the process is interrupted (Ctrl-C).
    pub fn wait(self) -> ! {
        println!("the view stays open: press Ctrl-C to stop");
        loop {
            std::thread::park();
        }
    }
}
