//! **Not API: may change without notice.** What the tools, the tests, the benches and the
//! examples of this workspace need from the facade beyond its public items: the consent and
//! identity files, the builder's resolved configuration for the audit, the view server over
//! another source (the collector's arrivals) and its bounds, and a few constants. Hidden from
//! the docs; nothing here is covered by semver.

pub use crate::preview::Preview;

/// The stored consent choice.
pub mod consent {
    pub use crate::consent::{load, store, CONSENT_FILE};
}

/// The persisted computeTargetId.
pub mod identity {
    pub use crate::identity::{load_or_create, ID_FILE};
}

/// The view page over any [`Source`](view::Source) (the command-line tool serves its
/// collector's arrivals this way), and the bounds of its connections.
#[cfg(feature = "view")]
pub mod view {
    pub use crate::view::{
        serve, Source, StreamHealth, HEADER_READ_TIMEOUT, MAX_CONNECTIONS, SEND_DEADLINE,
    };
}

/// What `build()` would run with, resolved without starting anything (for the command-line
/// tool's `audit`).
pub fn preview(builder: &crate::TelemetryBuilder) -> Preview {
    builder.preview()
}
