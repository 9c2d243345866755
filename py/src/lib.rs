//! Python bindings for fastbreaker: the PyO3 extension module `fastbreaker._native`.
//!
//! The module is compiled only with the `python` feature, which maturin enables (see
//! `pyproject.toml`). Without it this crate is an empty library, so that `cargo test
//! --workspace` and `cargo clippy --workspace` need neither PyO3 nor libpython.

/// The version of the core this crate wraps.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(feature = "python")]
mod adaptive;
#[cfg(feature = "python")]
mod breaker;
#[cfg(feature = "python")]
mod clock;
#[cfg(feature = "python")]
mod config;
#[cfg(feature = "python")]
mod counters;
#[cfg(feature = "python")]
mod guard;
#[cfg(feature = "python")]
mod keyed;
#[cfg(feature = "python")]
mod limiter;
#[cfg(feature = "python")]
mod listeners;
#[cfg(feature = "python")]
mod native;
#[cfg(feature = "python")]
mod region;
#[cfg(feature = "python")]
mod sim;

pub mod stats;
