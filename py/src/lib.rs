//! Python bindings for fastbreaker. Placeholder crate: the Python issue fills it with the
//! PyO3 module `fastbreaker._native`.

/// The version of the core this crate wraps.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
