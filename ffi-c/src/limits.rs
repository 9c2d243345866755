//! The limits the core enforces, as `FB_` constants of the header.
//!
//! cbindgen writes literals only, so each constant is a literal here, and a compile-time
//! assertion below ties it to the core's table (`core_fb::limits`): if the core changes a
//! limit, this crate stops compiling until the constant (and so the header) follows.
//! Defaults are not copied at all: `fb_breaker_config_default()` reads them from the core.

use core_fb::limits as core;

/// Largest `failure_threshold` (the consecutive-failure counter has 24 bits).
pub const FB_MAX_FAILURE_THRESHOLD: u32 = 16_777_215;
/// Largest `failure_rate_threshold` and `slow_call_rate_threshold`: they are percentages,
/// 1..=100 (0 turns the rule off).
pub const FB_MAX_RATE_THRESHOLD: u32 = 100;
/// Largest `window_size` of a count window. With a rate rule on, `minimum_calls` must also
/// be at most `window_size`.
pub const FB_MAX_WINDOW_SIZE: u32 = 1024;
/// Largest `window_buckets` of a time window.
pub const FB_MAX_WINDOW_BUCKETS: u32 = 64;
/// Longest open wait, about 208 days (2^54 ns): `wait_duration_ns` and `max_wait_duration_ns`
/// must not exceed it, and a growing wait with no cap stops there. Every wait ends.
pub const FB_MAX_WAIT_DURATION_NS: u64 = 18_014_398_509_481_984u64;
/// Smallest `backoff_factor_milli` (a factor of 1.0: the wait does not grow).
pub const FB_MIN_BACKOFF_FACTOR_MILLI: u32 = 1000;
/// Most growth steps of the open wait: a configuration whose wait cannot reach its cap
/// (`max_wait_duration_ns`, or `FB_MAX_WAIT_DURATION_NS`) within this many reopenings is
/// refused; raise `backoff_factor_milli` or lower the cap.
pub const FB_MAX_BACKOFF_STEPS: u32 = 1023;
/// Largest `jitter_permille` (jitter may take away the whole wait).
pub const FB_MAX_JITTER_PERMILLE: u32 = 1000;
/// Largest `half_open_max_calls`.
pub const FB_MAX_HALF_OPEN_MAX_CALLS: u32 = 1023;
/// Largest `success_threshold`.
pub const FB_MAX_SUCCESS_THRESHOLD: u32 = 1023;
/// Largest `burst` of a bucket (2^32 tokens).
pub const FB_MAX_BURST: u64 = 4_294_967_296u64;
/// Longest key of a keyed table (`fb_keyed_*`), in bytes: the table keeps every key whole,
/// so that two keys are never merged. Digest longer keys (e.g. SHA-256) before passing them.
pub const FB_MAX_KEY_LEN: usize = 64;
/// Largest `capacity` of a keyed table, in slots (2^24).
pub const FB_MAX_KEYED_CAPACITY: usize = 16_777_216;
/// Smallest `max_concurrent` of a bulkhead.
pub const FB_MIN_MAX_CONCURRENT: u32 = 1;

// Each constant is the core's (the header cannot drift from the core's table).
const _: () = {
    assert!(FB_MAX_FAILURE_THRESHOLD == core::MAX_FAILURE_THRESHOLD);
    assert!(FB_MAX_RATE_THRESHOLD == core::MAX_RATE_THRESHOLD as u32);
    assert!(FB_MAX_WINDOW_SIZE == core::MAX_WINDOW_SIZE as u32);
    assert!(FB_MAX_WINDOW_SIZE == core_fb::CountWindow1024::CAPACITY);
    assert!(FB_MAX_WINDOW_BUCKETS == core::MAX_WINDOW_BUCKETS as u32);
    assert!(FB_MAX_WAIT_DURATION_NS == core::MAX_WAIT_DURATION_NS);
    assert!(FB_MIN_BACKOFF_FACTOR_MILLI == core::MIN_BACKOFF_FACTOR_MILLI);
    assert!(FB_MAX_BACKOFF_STEPS == core::MAX_BACKOFF_STEPS as u32);
    assert!(FB_MAX_JITTER_PERMILLE == core::MAX_JITTER_PERMILLE as u32);
    assert!(FB_MAX_HALF_OPEN_MAX_CALLS == core::MAX_HALF_OPEN_MAX_CALLS as u32);
    assert!(FB_MAX_SUCCESS_THRESHOLD == core::MAX_SUCCESS_THRESHOLD as u32);
    assert!(FB_MAX_BURST == core::MAX_BURST);
    assert!(FB_MIN_MAX_CONCURRENT == core::MIN_MAX_CONCURRENT);
    assert!(FB_MAX_KEY_LEN == core::MAX_KEY_LEN);
    assert!(FB_MAX_KEYED_CAPACITY == core::MAX_KEYED_CAPACITY);
};
