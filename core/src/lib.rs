//! # fastbreaker
//!
//! A lock-free, `no_std`, allocation-free circuit breaker with fixed-size sliding windows.
//! Every primitive is a plain struct of atomics with a `const fn new`, so it can live in a
//! `static`, on a firmware task's stack, inside a C struct or in shared memory.
//!
//! ## Time
//! The core never has to read a clock: every operation has a form that takes `now`, a `u64`
//! count of nanoseconds on a monotonic clock ([`CircuitBreaker::acquire`],
//! [`CircuitBreaker::record`]). The `_with` forms take a [`Clock`] and read it only when the
//! configuration needs time: a closed breaker on a count window without slow-call detection
//! reads none. Clocks: [`ManualClock`] (tests, simulation), [`MonotonicClock`] (feature
//! `std`, `CLOCK_MONOTONIC`), [`EmbassyClock`] (feature `embassy-time`).
//!
//! ## Example
//! ```
//! use fastbreaker::{BreakerConfig, CircuitBreaker, CountWindow64, Outcome, Rejected, State, SECOND};
//!
//! let config = BreakerConfig { failure_threshold: Some(3), wait_duration_ns: 10 * SECOND, ..BreakerConfig::new() };
//! let breaker = CircuitBreaker::<CountWindow64>::new(config).unwrap();
//!
//! let mut now = 0;
//! for _ in 0..3 {
//!     let permit = breaker.acquire(now).unwrap();
//!     breaker.record(permit, Outcome::Failure, now);
//! }
//! assert_eq!(breaker.state(), State::Open);
//! assert_eq!(breaker.acquire(now).unwrap_err(), Rejected::Open { retry_after: 10 * SECOND });
//!
//! now += 10 * SECOND;                          // the wait is over: one probe goes through
//! let probe = breaker.acquire(now).unwrap();
//! assert_eq!(breaker.state(), State::HalfOpen);
//! let change = breaker.record(probe, Outcome::Success, now).unwrap();
//! assert_eq!((change.from, change.to), (State::HalfOpen, State::Closed));
//! ```
//!
//! ## Where lock-freedom ends
//! The breaker's state is one 64-bit word changed by compare-and-swap. On targets without a
//! native 64-bit CAS (Cortex-M0/M3/M4, RV32), portable-atomic emulates 64-bit atomics: with
//! its `critical-section` feature (forwarded by this crate's feature of the same name) by
//! briefly disabling interrupts, otherwise (targets with a 32-bit CAS) with a lock-based
//! fallback. The 32-bit window counters stay native wherever a 32-bit CAS exists.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

mod backoff;
mod breaker;
mod bulkhead;
mod clock;
mod config;
mod count_window;
mod state;
mod sync;
mod time_window;
mod token_bucket;
mod window;

pub use backoff::Backoff;
pub use breaker::{CircuitBreaker, Metrics, Permit, PermitKind, Rejected, Transition};
pub use bulkhead::{Bulkhead, BulkheadMetrics, BulkheadPermit};
#[cfg(feature = "embassy-time")]
pub use clock::EmbassyClock;
#[cfg(feature = "std")]
pub use clock::MonotonicClock;
pub use clock::{Clock, ManualClock};
pub use config::{BreakerConfig, ConfigError};
pub use count_window::{
    CountWindow, CountWindow1024, CountWindow128, CountWindow256, CountWindow64,
};
pub use state::{Outcome, State};
pub use time_window::TimeWindow;
pub use token_bucket::{BucketConfig, BucketState, TokenBucket};
pub use window::{Window, WindowStats};

/// One microsecond in the core's unit of time (nanoseconds).
pub const MICROSECOND: u64 = 1_000;
/// One millisecond in nanoseconds.
pub const MILLISECOND: u64 = 1_000_000;
/// One second in nanoseconds.
pub const SECOND: u64 = 1_000_000_000;

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
