//! Log capture: what the process logs (worker threads included), in a buffer a test can read.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// A `Write` into a shared buffer; clone it into a `fmt` subscriber's `with_writer`.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Everything logged in this test binary from the first call on: installs a global `fmt`
/// subscriber (INFO and above, no colours) writing into one shared buffer.
pub fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish(),
        );
        logs
    })
}

/// The buffer behind [`logs`].
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    logs().0.clone()
}
