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
//! The breaker's state and time words, its lifetime counters and the token bucket are
//! 64-bit atomics from portable-atomic; the count window and the consecutive-failure
//! counter are 32-bit. On targets with a native 64-bit CAS (x86-64, AArch64, RV64) all of
//! it is lock-free. Elsewhere the firmware picks how portable-atomic provides what the core
//! lacks:
//! - thumbv6m and riscv32imc have no CAS at all: enable this crate's `critical-section`
//!   feature (and provide a critical-section implementation), or portable-atomic's
//!   `unsafe-assume-single-core`. Every read-modify-write then runs with interrupts masked.
//! - thumbv7m/thumbv7em have a 32-bit CAS only: by default portable-atomic emulates 64-bit
//!   atomics with a table of spinlocks, which **deadlocks if an interrupt handler uses a
//!   primitive while the code it interrupted holds the lock**. Use
//!   `unsafe-assume-single-core` (or `unsafe-assume-privileged` on multi-core parts) when a
//!   breaker or bucket is shared with interrupt handlers. This crate's `critical-section`
//!   feature changes nothing there.
#![no_std]
// Without `shm` the crate has no unsafe code at all. With it, one module (`shm::map`: the
// mapping, primitives placed in it, references handed out) allows unsafe code, and every
// unsafe block there carries a `// SAFETY:` comment.
#![cfg_attr(not(all(feature = "shm", unix)), forbid(unsafe_code))]
#![cfg_attr(all(feature = "shm", unix), deny(unsafe_code))]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

mod adaptive;
mod backoff;
#[doc(hidden)]
pub mod binding;
mod breaker;
mod bulkhead;
mod clock;
mod config;
mod count_window;
mod error;
mod keyed;
mod keyed_counters;
pub mod limits;
#[cfg(all(feature = "shm", unix))]
pub mod shm;
#[cfg(feature = "sim")]
pub mod sim;
mod state;
mod sync;
mod time_window;
mod token_bucket;
mod versioned;
mod window;

pub use adaptive::{
    AdaptiveConfig, AdaptiveLimiter, AdaptiveMetrics, AdaptiveMode, AdaptiveOutcome,
    AdaptivePermit, AdaptiveRejected, AdaptiveThrottle, Aimd, AnyRule, Gradient, LimitRule,
    RuleInput, Signal, ThrottleConfig, ThrottleMetrics, ThrottleRejected,
};
pub use backoff::Backoff;
pub use breaker::{CircuitBreaker, Metrics, Permit, PermitKind, Rejected, Transition};
pub use bulkhead::{Bulkhead, BulkheadMetrics, BulkheadPermit, BulkheadRejected};
#[cfg(feature = "embassy-time")]
pub use clock::EmbassyClock;
#[cfg(feature = "std")]
pub use clock::MonotonicClock;
pub use clock::{Clock, ManualClock};
pub use config::BreakerConfig;
pub use count_window::{
    CountWindow, CountWindow1024, CountWindow128, CountWindow256, CountWindow64,
};
pub use error::{ConfigError, ReconfigureError};
pub use keyed::{KeySlot, KeyedBuckets, KeyedMetrics, KeyedRejected, WhenFull};
#[cfg(feature = "std")]
pub use keyed_counters::HeapCounters;
pub use keyed_counters::{
    CounterSlot, CounterStorage, CountersRejected, KeyedCounters, COUNTER_LOCK_LEASE_NS,
    MAX_COUNTER_CAPACITY, MAX_WINDOW_ENTRIES,
};
pub use limits::MAX_FAILURE_THRESHOLD;
pub use state::{Outcome, State};
pub use time_window::{TimeWindow, TimeWindow64};
pub use token_bucket::{BucketConfig, BucketRejected, BucketState, TokenBucket};
pub use window::{Window, WindowShape, WindowStats};

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
