//! The one table of defaults and limits.
//!
//! Every binding (C, Python) reads its defaults and legal ranges from here instead of
//! keeping copies: a rule, default or limit lives once, in the core. [`BreakerConfig::new`]
//! and [`BucketConfig::per_second`] are built from these values, and validation checks
//! against them.
//!
//! [`BreakerConfig::new`]: crate::BreakerConfig::new
//! [`BucketConfig::per_second`]: crate::BucketConfig::per_second

use crate::SECOND;

/// Default `failure_threshold`: open after 5 failures in a row.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// Largest `failure_threshold`: the consecutive-failure counter has 24 bits.
pub const MAX_FAILURE_THRESHOLD: u32 = (1 << 24) - 1;
/// Largest `failure_rate_threshold` and `slow_call_rate_threshold` (a percentage; the
/// smallest is 1).
pub const MAX_RATE_THRESHOLD: u8 = 100;
/// Default `minimum_calls`: outcomes the window must hold before a rate rule applies.
pub const DEFAULT_MINIMUM_CALLS: u32 = 10;
/// Default `slow_call_duration_ns`: 60 s.
pub const DEFAULT_SLOW_CALL_DURATION_NS: u64 = 60 * SECOND;

/// Default `window_size` of a count window: the last 100 outcomes (or the window type's
/// capacity, if that is smaller).
pub const DEFAULT_WINDOW_SIZE: u16 = 100;
/// Largest `window_size` the bindings accept: the capacity of [`CountWindow1024`], the
/// count window they use.
///
/// [`CountWindow1024`]: crate::CountWindow1024
pub const MAX_WINDOW_SIZE: u16 = 1024;
/// Default `window_buckets` of a time window: 10 buckets (or the window type's capacity,
/// if that is smaller).
pub const DEFAULT_WINDOW_BUCKETS: u16 = 10;
/// Largest `window_buckets` the bindings accept: the capacity of [`TimeWindow64`], the
/// time window they use.
///
/// [`TimeWindow64`]: crate::TimeWindow64
pub const MAX_WINDOW_BUCKETS: u16 = 64;
/// Default `bucket_duration_ns` of a time window: 1 s (so the default window spans 10 s).
pub const DEFAULT_BUCKET_DURATION_NS: u64 = SECOND;

/// Default `wait_duration_ns`: an open breaker waits 60 s before admitting a probe.
pub const DEFAULT_WAIT_DURATION_NS: u64 = 60 * SECOND;
/// Longest open wait, grown or not: 2^54 ns (about 208 days). `wait_duration_ns` and
/// `max_wait_duration_ns` must not exceed it, and a growing wait with no cap stops here.
///
/// The breaker keeps the start of its current state modulo 2^56 ns; capping every wait well
/// below that is what guarantees that every wait ends.
pub const MAX_WAIT_DURATION_NS: u64 = 1 << 54;
/// Default `backoff_factor_milli`: 1000, the wait does not grow.
pub const DEFAULT_BACKOFF_FACTOR_MILLI: u32 = 1000;
/// Smallest `backoff_factor_milli` (a factor of 1.0).
pub const MIN_BACKOFF_FACTOR_MILLI: u32 = 1000;
/// Most growth steps of the open wait. The wait grows once per reopening until it reaches
/// its cap; a configuration whose cap cannot be reached within this many steps is refused.
pub const MAX_BACKOFF_STEPS: u16 = 1023;
/// Largest `jitter_permille` (jitter may take away the whole wait).
pub const MAX_JITTER_PERMILLE: u16 = 1000;
/// Default `half_open_max_calls`: one probe at a time.
pub const DEFAULT_HALF_OPEN_MAX_CALLS: u16 = 1;
/// Largest `half_open_max_calls` (the width of its field in the state word).
pub const MAX_HALF_OPEN_MAX_CALLS: u16 = 1023;
/// Default `success_threshold`: one successful probe closes the breaker.
pub const DEFAULT_SUCCESS_THRESHOLD: u16 = 1;
/// Largest `success_threshold` (the width of its field in the state word).
pub const MAX_SUCCESS_THRESHOLD: u16 = 1023;

/// Default token-bucket `period_ns`: rates are per second.
pub const DEFAULT_PERIOD_NS: u64 = SECOND;
/// Largest token-bucket `burst`: 2^32 tokens.
pub const MAX_BURST: u64 = 1 << 32;

/// Default token-bucket `rate` where a binding offers a default configuration (C's
/// `fb_bucket_config_default`): one token per period.
pub const DEFAULT_RATE: u64 = 1;
/// Default token-bucket `burst` where a binding offers a default configuration.
pub const DEFAULT_BURST: u64 = 1;

/// Smallest bulkhead `max_concurrent`.
pub const MIN_MAX_CONCURRENT: u32 = 1;
/// Default bulkhead `max_concurrent` where a binding offers a default configuration (C's
/// `fb_bulkhead_config_default`).
pub const DEFAULT_MAX_CONCURRENT: u32 = 10;

/// Longest key of a keyed table ([`KeyedBuckets`](crate::KeyedBuckets)), in bytes. The
/// table keeps every key whole, so that two keys are never merged; the bindings digest
/// longer keys (SHA-256) before they reach it.
#[cfg(not(loom))]
pub const MAX_KEY_LEN: usize = 64;
/// Under loom, keys of one word (the model checks the same code with fewer key words).
#[cfg(loom)]
pub const MAX_KEY_LEN: usize = 8;
/// Slots of a keyed table that a key may live in: its home slot and the ones after it. A
/// new key finds no room when these all hold live keys.
pub const KEY_PROBE_WINDOW: usize = 16;
/// Largest keyed table, in slots.
pub const MAX_KEYED_CAPACITY: usize = 1 << 24;
/// How long after its tokens are back (its TAT has passed) a key keeps its slot before a
/// new key may take it: 1 s. Callers pass their own `now`; one whose clock lags another's by
/// less than this still finds the key where it was, so the per-key GCRA bound holds for
/// callers whose clocks agree within it.
pub const KEY_REUSE_GRACE_NS: u64 = crate::SECOND;
/// How long a claim of a new key may hold its home slot's claim lock before another
/// claimer takes the lock over (a claimer that died, in a shared table): 100 ms.
pub const KEY_CLAIM_LEASE_NS: u64 = 100 * crate::MILLISECOND;
