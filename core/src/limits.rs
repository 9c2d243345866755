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

/// The adaptive limiter's unit of limit: limits, bounds, increases and queue sizes are kept
/// in thousandths of a call (concurrency mode) or of a call per second (rate mode).
pub const ADAPTIVE_LIMIT_UNIT: u64 = 1000;
/// Smallest adaptive `min_limit_milli`: 0.001 calls per second (rate mode). Concurrency mode
/// needs at least [`MIN_ADAPTIVE_CONCURRENCY_MILLI`].
pub const MIN_ADAPTIVE_LIMIT_MILLI: u64 = 1;
/// Smallest adaptive `min_limit_milli` in concurrency mode: one call in flight.
pub const MIN_ADAPTIVE_CONCURRENCY_MILLI: u64 = ADAPTIVE_LIMIT_UNIT;
/// Largest adaptive limit: one million calls in flight, or per second.
pub const MAX_ADAPTIVE_LIMIT_MILLI: u64 = 1_000_000 * ADAPTIVE_LIMIT_UNIT;
/// Default adaptive `min_limit_milli`: 1.
pub const DEFAULT_ADAPTIVE_MIN_LIMIT_MILLI: u64 = ADAPTIVE_LIMIT_UNIT;
/// Default adaptive `max_limit_milli`: 1000.
pub const DEFAULT_ADAPTIVE_MAX_LIMIT_MILLI: u64 = 1000 * ADAPTIVE_LIMIT_UNIT;
/// Default adaptive `increase_milli`: the limit grows by 1 per RTT window of successes.
pub const DEFAULT_ADAPTIVE_INCREASE_MILLI: u64 = ADAPTIVE_LIMIT_UNIT;
/// Default adaptive `decrease_permille`: an overload halves the limit.
pub const DEFAULT_ADAPTIVE_DECREASE_PERMILLE: u32 = 500;
/// Largest adaptive `decrease_permille` (a factor below 1; the smallest is 1).
pub const MAX_ADAPTIVE_DECREASE_PERMILLE: u32 = 999;
/// Default adaptive `rtt_ns`, the window in which at most one decrease happens: 1 s.
pub const DEFAULT_ADAPTIVE_RTT_NS: u64 = SECOND;
/// Largest adaptive `rtt_ns` and `latency_target_ns`: one hour.
pub const MAX_ADAPTIVE_RTT_NS: u64 = 3600 * SECOND;
/// Longest pause a `Retry-After` can impose on an adaptive limiter: one day (longer ones are
/// cut to it, so that every pause ends).
pub const MAX_ADAPTIVE_RETRY_AFTER_NS: u64 = 86_400 * SECOND;
/// Default queue-size term of the gradient rule (`queue_milli`): 4 calls.
pub const DEFAULT_GRADIENT_QUEUE_MILLI: u64 = 4 * ADAPTIVE_LIMIT_UNIT;
/// Default smoothing of the gradient rule (`smoothing_permille`): 0.2.
pub const DEFAULT_GRADIENT_SMOOTHING_PERMILLE: u32 = 200;
/// Largest `smoothing_permille` (1.0: no smoothing; the smallest is 1).
pub const MAX_GRADIENT_SMOOTHING_PERMILLE: u32 = 1000;

/// Default adaptive throttle `k_milli`: K = 2 (the SRE book's recommendation).
pub const DEFAULT_THROTTLE_K_MILLI: u64 = 2000;
/// Smallest throttle `k_milli`: K = 1 (below 1 it would reject a healthy backend's calls).
pub const MIN_THROTTLE_K_MILLI: u64 = 1000;
/// Largest throttle `k_milli`: K = 1000.
pub const MAX_THROTTLE_K_MILLI: u64 = 1_000_000;
/// Default throttle `window_ns`: 60 s.
pub const DEFAULT_THROTTLE_WINDOW_NS: u64 = 60 * SECOND;
/// Largest throttle `window_ns`: one day.
pub const MAX_THROTTLE_WINDOW_NS: u64 = 86_400 * SECOND;
/// Default throttle `buckets`: 10.
pub const DEFAULT_THROTTLE_BUCKETS: u32 = 10;
/// Largest throttle `buckets` (the capacity of its ring).
pub const MAX_THROTTLE_BUCKETS: u32 = 64;
