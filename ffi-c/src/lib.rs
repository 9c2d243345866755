//! C ABI for fastbreaker. Placeholder crate: the C/C++ issue fills it with the
//! `fb_*` functions and the generated `include/fastbreaker.h`.

/// The version of the core this crate wraps.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
