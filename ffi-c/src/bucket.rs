//! `fb_bucket_*`: the GCRA token bucket.

use core::ffi::c_void;

use core_fb::{BucketConfig, BucketRejected, BucketState, Clock, MonotonicClock, TokenBucket};

use crate::error::{guard, guard_value, Error};
use crate::handle;
use crate::{fb_bucket, fb_result, FB_OK, FB_REJECTED};

/// Bytes of storage that hold a bucket (`fb_bucket_init`).
pub const FB_BUCKET_STORAGE_SIZE: usize = 128;
/// Alignment of bucket storage.
pub const FB_BUCKET_STORAGE_ALIGN: usize = 8;

/// How a bucket refills: `rate` tokens every `period_ns`, holding at most `burst`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct fb_bucket_config {
    /// Tokens added per period: at least 1, at most one per nanosecond of the period.
    /// Default 1.
    pub rate: u64,
    /// The period, non-zero. Default 1 s.
    pub period_ns: u64,
    /// Capacity: the most tokens that can be taken at once, 1..=`FB_MAX_BURST`. Default 1.
    pub burst: u64,
}

/// What a caller needs for `X-RateLimit-*` and `Retry-After` headers (`fb_bucket_state`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct fb_bucket_stats {
    /// The capacity (`X-RateLimit-Limit`).
    pub limit: u64,
    /// Tokens that can be taken now (`X-RateLimit-Remaining`).
    pub remaining: u64,
    /// Nanoseconds until the bucket is full again (`X-RateLimit-Reset`, relative).
    pub reset_after_ns: u64,
    /// Nanoseconds until one token is available, 0 if one is (`Retry-After`).
    pub retry_after_ns: u64,
}

impl fb_bucket_config {
    pub(crate) fn to_core(self) -> BucketConfig {
        BucketConfig {
            rate: self.rate,
            period_ns: self.period_ns,
            burst: self.burst,
        }
    }

    fn from_core(c: BucketConfig) -> Self {
        fb_bucket_config {
            rate: c.rate,
            period_ns: c.period_ns,
            burst: c.burst,
        }
    }
}

fn now_or_clock(now: Option<u64>) -> u64 {
    now.unwrap_or_else(|| MonotonicClock.now_ns())
}

/// The default configuration (the core's table): 1 token per second, burst 1.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn fb_bucket_config_default() -> fb_bucket_config {
    fb_bucket_config_per_second(
        core_fb::limits::DEFAULT_RATE,
        core_fb::limits::DEFAULT_BURST,
    )
}

/// `rate` tokens per second (the core's `BucketConfig::per_second`), holding at most
/// `burst`. Checked when the bucket is made.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn fb_bucket_config_per_second(rate: u64, burst: u64) -> fb_bucket_config {
    let c = BucketConfig::per_second(rate, burst);
    let config = fb_bucket_config {
        rate: c.rate,
        period_ns: c.period_ns,
        burst: c.burst,
    };
    guard_value("fb_bucket_config_per_second", config, || config)
}

/// Creates a full bucket on the heap and stores its handle in `*out`; free it with
/// `fb_bucket_free`.
///
/// Returns `FB_OK`, `FB_ERR_INVALID_CONFIG` (`fb_last_error()` names the field and the
/// value), `FB_ERR_NULL`.
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `config` is NULL or points to an `fb_bucket_config`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_new(
    config: *const fb_bucket_config,
    out: *mut *mut fb_bucket,
) -> fb_result {
    guard("fb_bucket_new", || {
        // SAFETY: the pointers obey this function's contract.
        let (config, out) = unsafe { (handle::input(config, "config")?, handle::out(out, "out")?) };
        let bucket = TokenBucket::new(config.to_core())?;
        out.write(handle::new_bucket(bucket));
        Ok(FB_OK)
    })
}

/// Creates a full bucket in `storage` (at least `FB_BUCKET_STORAGE_SIZE` bytes, aligned to
/// `FB_BUCKET_STORAGE_ALIGN`) without touching the heap. The storage stays the caller's: keep
/// it alive and unmoved while the handle is used; `fb_bucket_free` ignores the handle.
///
/// Returns `FB_OK`, `FB_ERR_BUFFER`, `FB_ERR_INVALID_CONFIG`, `FB_ERR_NULL`.
///
/// Thread safety: safe from any thread, on distinct storage.
///
/// # Safety
/// `storage` is NULL or valid for writes of `size` bytes and not used for anything else while
/// the bucket lives; `config` is NULL or points to an `fb_bucket_config`; `out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_init(
    storage: *mut c_void,
    size: usize,
    config: *const fb_bucket_config,
    out: *mut *mut fb_bucket,
) -> fb_result {
    guard("fb_bucket_init", || {
        if storage.is_null() {
            return Err(Error::Null("storage"));
        }
        // SAFETY: the pointers obey this function's contract.
        let (config, out) = unsafe { (handle::input(config, "config")?, handle::out(out, "out")?) };
        let bucket = TokenBucket::new(config.to_core())?;
        // SAFETY: `storage` obeys this function's contract.
        out.write(unsafe { handle::init_bucket(storage, size, bucket) }?);
        Ok(FB_OK)
    })
}

/// Frees a bucket made by `fb_bucket_new`. NULL is ignored, and so is a bucket made by
/// `fb_bucket_init`.
///
/// Thread safety: must be the last call on this bucket, from any thread.
///
/// # Safety
/// `bucket` is NULL or a live handle that no other thread is using or will use.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_free(bucket: *mut fb_bucket) {
    // SAFETY: `bucket` obeys this function's contract.
    guard_value("fb_bucket_free", (), || unsafe {
        handle::free_bucket(bucket)
    })
}

/// Takes `n` tokens now if they are all there; otherwise takes nothing.
///
/// Returns `FB_OK` (`*retry_after_ns` = 0), `FB_REJECTED` with the nanoseconds until the
/// tokens would be there in `*retry_after_ns`, or `FB_ERR_EXCEEDS_CAPACITY` (`n` above the
/// burst: no wait helps). `n` = 0 always succeeds. `retry_after_ns` may be NULL.
/// Other errors: `FB_ERR_NULL` (`bucket`), `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one bucket (one CAS).
///
/// # Safety
/// `bucket` is NULL or a live handle; `retry_after_ns` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_try_acquire(
    bucket: *const fb_bucket,
    n: u64,
    retry_after_ns: *mut u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { try_acquire("fb_bucket_try_acquire", bucket, n, retry_after_ns, None) }
}

/// `fb_bucket_try_acquire` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one bucket (one CAS).
///
/// # Safety
/// As `fb_bucket_try_acquire`.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_try_acquire_at(
    bucket: *const fb_bucket,
    n: u64,
    retry_after_ns: *mut u64,
    now_ns: u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe {
        try_acquire(
            "fb_bucket_try_acquire_at",
            bucket,
            n,
            retry_after_ns,
            Some(now_ns),
        )
    }
}

/// # Safety
/// As `fb_bucket_try_acquire`.
#[inline(always)]
unsafe fn try_acquire(
    func: &'static str,
    bucket: *const fb_bucket,
    n: u64,
    retry_after_ns: *mut u64,
    now: Option<u64>,
) -> fb_result {
    guard(func, || {
        // SAFETY: the pointers obey the calling function's contract.
        let (b, out) = unsafe { (handle::bucket(bucket)?, handle::out_opt(retry_after_ns)) };
        let (code, wait) = match b.try_acquire(n, now_or_clock(now)) {
            Ok(()) => (FB_OK, 0),
            Err(BucketRejected::RateLimited { retry_after }) => (FB_REJECTED, retry_after),
            Err(r) => return Err(Error::Capacity(r)),
        };
        if let Some(out) = out {
            out.write(wait);
        }
        Ok(code)
    })
}

/// Takes `n` tokens now, in the queue's order, and stores in `*wait_ns` how long to wait
/// before using them (0: use them now). Fair blocking and async waiters build on this: each
/// sleeps for its own reservation; `fb_bucket_refund` gives back one that is abandoned.
///
/// Returns `FB_OK`, `FB_ERR_EXCEEDS_CAPACITY` (`n` above the burst), `FB_ERR_NULL`,
/// `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one bucket.
///
/// # Safety
/// `bucket` is NULL or a live handle; `wait_ns` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_reserve(
    bucket: *const fb_bucket,
    n: u64,
    wait_ns: *mut u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { reserve("fb_bucket_reserve", bucket, n, u64::MAX, wait_ns, None) }
}

/// `fb_bucket_reserve` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one bucket.
///
/// # Safety
/// As `fb_bucket_reserve`.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_reserve_at(
    bucket: *const fb_bucket,
    n: u64,
    wait_ns: *mut u64,
    now_ns: u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe {
        reserve(
            "fb_bucket_reserve_at",
            bucket,
            n,
            u64::MAX,
            wait_ns,
            Some(now_ns),
        )
    }
}

/// `fb_bucket_reserve`, but only if the wait would be at most `max_wait_ns`; otherwise takes
/// nothing and returns `FB_REJECTED` with the wait in `*wait_ns`.
///
/// Thread safety: safe from many threads at once on one bucket.
///
/// # Safety
/// As `fb_bucket_reserve`.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_reserve_within(
    bucket: *const fb_bucket,
    n: u64,
    max_wait_ns: u64,
    wait_ns: *mut u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe {
        reserve(
            "fb_bucket_reserve_within",
            bucket,
            n,
            max_wait_ns,
            wait_ns,
            None,
        )
    }
}

/// `fb_bucket_reserve_within` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one bucket.
///
/// # Safety
/// As `fb_bucket_reserve`.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_reserve_within_at(
    bucket: *const fb_bucket,
    n: u64,
    max_wait_ns: u64,
    wait_ns: *mut u64,
    now_ns: u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe {
        reserve(
            "fb_bucket_reserve_within_at",
            bucket,
            n,
            max_wait_ns,
            wait_ns,
            Some(now_ns),
        )
    }
}

/// # Safety
/// As `fb_bucket_reserve`.
unsafe fn reserve(
    func: &'static str,
    bucket: *const fb_bucket,
    n: u64,
    max_wait_ns: u64,
    wait_ns: *mut u64,
    now: Option<u64>,
) -> fb_result {
    guard(func, || {
        // SAFETY: the pointers obey the calling function's contract.
        let (b, out) = unsafe { (handle::bucket(bucket)?, handle::out(wait_ns, "wait_ns")?) };
        let (code, wait) = match b.reserve_within(n, now_or_clock(now), max_wait_ns) {
            Ok(wait) => (FB_OK, wait),
            Err(BucketRejected::RateLimited { retry_after }) => (FB_REJECTED, retry_after),
            Err(r) => return Err(Error::Capacity(r)),
        };
        out.write(wait);
        Ok(code)
    })
}

/// Gives back `n` tokens of a reservation that will not be used. Never makes the bucket
/// fuller than full.
///
/// Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one bucket.
///
/// # Safety
/// `bucket` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_refund(bucket: *const fb_bucket, n: u64) -> fb_result {
    // SAFETY: `bucket` obeys this function's contract.
    unsafe { refund("fb_bucket_refund", bucket, n, None) }
}

/// `fb_bucket_refund` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one bucket.
///
/// # Safety
/// `bucket` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_refund_at(
    bucket: *const fb_bucket,
    n: u64,
    now_ns: u64,
) -> fb_result {
    // SAFETY: `bucket` obeys this function's contract.
    unsafe { refund("fb_bucket_refund_at", bucket, n, Some(now_ns)) }
}

/// # Safety
/// `bucket` is NULL or a live handle.
unsafe fn refund(
    func: &'static str,
    bucket: *const fb_bucket,
    n: u64,
    now: Option<u64>,
) -> fb_result {
    guard(func, || {
        // SAFETY: `bucket` obeys the calling function's contract.
        let b = unsafe { handle::bucket(bucket)? };
        b.refund(n, now_or_clock(now));
        Ok(FB_OK)
    })
}

/// Stores in `*tokens` how many tokens could be taken now.
///
/// Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one bucket (one load).
///
/// # Safety
/// `bucket` is NULL or a live handle; `tokens` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_available(
    bucket: *const fb_bucket,
    tokens: *mut u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { available("fb_bucket_available", bucket, tokens, None) }
}

/// `fb_bucket_available` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one bucket (one load).
///
/// # Safety
/// As `fb_bucket_available`.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_available_at(
    bucket: *const fb_bucket,
    tokens: *mut u64,
    now_ns: u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { available("fb_bucket_available_at", bucket, tokens, Some(now_ns)) }
}

/// # Safety
/// As `fb_bucket_available`.
unsafe fn available(
    func: &'static str,
    bucket: *const fb_bucket,
    tokens: *mut u64,
    now: Option<u64>,
) -> fb_result {
    guard(func, || {
        // SAFETY: the pointers obey the calling function's contract.
        let (b, out) = unsafe { (handle::bucket(bucket)?, handle::out(tokens, "tokens")?) };
        out.write(b.available(now_or_clock(now)));
        Ok(FB_OK)
    })
}

/// Stores limit, remaining, reset and retry-after, from one read of the bucket, in
/// `*stats`.
///
/// Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one bucket (one load).
///
/// # Safety
/// `bucket` is NULL or a live handle; `stats` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_state(
    bucket: *const fb_bucket,
    stats: *mut fb_bucket_stats,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { state("fb_bucket_state", bucket, stats, None) }
}

/// `fb_bucket_state` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one bucket (one load).
///
/// # Safety
/// As `fb_bucket_state`.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_state_at(
    bucket: *const fb_bucket,
    stats: *mut fb_bucket_stats,
    now_ns: u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { state("fb_bucket_state_at", bucket, stats, Some(now_ns)) }
}

/// # Safety
/// As `fb_bucket_state`.
unsafe fn state(
    func: &'static str,
    bucket: *const fb_bucket,
    stats: *mut fb_bucket_stats,
    now: Option<u64>,
) -> fb_result {
    guard(func, || {
        // SAFETY: the pointers obey the calling function's contract.
        let (b, out) = unsafe { (handle::bucket(bucket)?, handle::out(stats, "stats")?) };
        let BucketState {
            limit,
            remaining,
            reset_after,
            retry_after,
        } = b.state(now_or_clock(now));
        out.write(fb_bucket_stats {
            limit,
            remaining,
            reset_after_ns: reset_after,
            retry_after_ns: retry_after,
        });
        Ok(FB_OK)
    })
}

/// Refills the bucket completely.
///
/// Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one bucket.
///
/// # Safety
/// `bucket` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_reset(bucket: *const fb_bucket) -> fb_result {
    // SAFETY: `bucket` obeys this function's contract.
    unsafe { reset("fb_bucket_reset", bucket) }
}

/// `fb_bucket_reset` at time `now_ns`, for symmetry with the other `_at` functions: a reset
/// bucket is full at every time, so `now_ns` changes nothing.
///
/// Returns `FB_OK`, `FB_ERR_NULL` (`bucket` NULL), `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one bucket.
///
/// # Safety
/// `bucket` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_reset_at(bucket: *const fb_bucket, now_ns: u64) -> fb_result {
    let _ = now_ns;
    // SAFETY: `bucket` obeys this function's contract.
    unsafe { reset("fb_bucket_reset_at", bucket) }
}

/// # Safety
/// `bucket` is NULL or a live handle.
unsafe fn reset(func: &'static str, bucket: *const fb_bucket) -> fb_result {
    guard(func, || {
        // SAFETY: `bucket` obeys the calling function's contract.
        let b = unsafe { handle::bucket(bucket)? };
        b.reset();
        Ok(FB_OK)
    })
}

/// Stores in `*wait_ns` the nanoseconds until `n` tokens could be taken (0: now), taking
/// nothing.
///
/// Returns `FB_OK`, `FB_ERR_EXCEEDS_CAPACITY` (`n` above the burst: no wait helps;
/// `*wait_ns` is left unchanged), `FB_ERR_NULL` (`bucket` or `wait_ns` NULL),
/// `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one bucket (one load).
///
/// # Safety
/// `bucket` is NULL or a live handle; `wait_ns` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_retry_after(
    bucket: *const fb_bucket,
    n: u64,
    wait_ns: *mut u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { retry_after("fb_bucket_retry_after", bucket, n, wait_ns, None) }
}

/// `fb_bucket_retry_after` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one bucket (one load).
///
/// # Safety
/// As `fb_bucket_retry_after`.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_retry_after_at(
    bucket: *const fb_bucket,
    n: u64,
    wait_ns: *mut u64,
    now_ns: u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { retry_after("fb_bucket_retry_after_at", bucket, n, wait_ns, Some(now_ns)) }
}

/// # Safety
/// As `fb_bucket_retry_after`.
unsafe fn retry_after(
    func: &'static str,
    bucket: *const fb_bucket,
    n: u64,
    wait_ns: *mut u64,
    now: Option<u64>,
) -> fb_result {
    guard(func, || {
        // SAFETY: the pointers obey the calling function's contract.
        let (b, out) = unsafe { (handle::bucket(bucket)?, handle::out(wait_ns, "wait_ns")?) };
        out.write(
            b.retry_after(n, now_or_clock(now))
                .map_err(Error::Capacity)?,
        );
        Ok(FB_OK)
    })
}

/// Stores the bucket's configuration in force, read back from the bucket (the one it was
/// built with, or the last `fb_bucket_reconfigure`'s), in `*config`.
///
/// Returns `FB_OK`, `FB_ERR_NULL` (`bucket` or `config` NULL), `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one bucket (loads only).
///
/// # Safety
/// `bucket` is NULL or a live handle; `config` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_get_config(
    bucket: *const fb_bucket,
    config: *mut fb_bucket_config,
) -> fb_result {
    guard("fb_bucket_get_config", || {
        // SAFETY: the pointers obey this function's contract.
        let (b, out) = unsafe { (handle::bucket(bucket)?, handle::out(config, "config")?) };
        out.write(fb_bucket_config::from_core(b.config()));
        Ok(FB_OK)
    })
}

/// Changes the bucket's rate, period and burst at run time, now (on `fb_now_ns()`'s clock),
/// keeping its state: the tokens in use stay in use, counted at the new interval, and drain
/// at the new rate. A burst lowered below the tokens in use leaves the bucket over its limit
/// (nothing can be taken) until they drain.
///
/// `*config` is checked as `fb_bucket_new` checks it. The bucket's time unit is fixed when
/// it is built (1 ns unless `burst * period_ns / rate` exceeds 2^62 ns): a configuration that
/// needs a coarser one is `FB_ERR_INVALID_CONFIG` naming `burst`. Atomic: every grant is
/// decided on either the old settings or the new ones.
///
/// On a bucket from `fb_region_bucket`, the change is made in the region, for every process
/// attached to the slot.
///
/// Returns `FB_OK`; `FB_ERR_INVALID_CONFIG` (`fb_last_error()` names the field, the value and
/// the legal range); `FB_ERR_BUSY` (another reconfiguration of this bucket was under way for
/// too long: try again); `FB_ERR_NULL` (`bucket` or `config` NULL);
/// `FB_ERR_INVALID_ARGUMENT` (not a bucket handle). On an error nothing changes.
///
/// Thread safety: safe from many threads at once on one bucket; reconfigurations are
/// serialised.
///
/// # Safety
/// `bucket` is NULL or a live handle; `config` is NULL or points to an `fb_bucket_config`.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_reconfigure(
    bucket: *const fb_bucket,
    config: *const fb_bucket_config,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { reconfigure("fb_bucket_reconfigure", bucket, config, None) }
}

/// `fb_bucket_reconfigure` at time `now_ns` (the clock of the other `_at` calls on this
/// bucket): the tokens in use at `now_ns` stay in use.
///
/// Thread safety: safe from many threads at once on one bucket; reconfigurations are
/// serialised.
///
/// # Safety
/// As `fb_bucket_reconfigure`.
#[no_mangle]
pub unsafe extern "C" fn fb_bucket_reconfigure_at(
    bucket: *const fb_bucket,
    config: *const fb_bucket_config,
    now_ns: u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { reconfigure("fb_bucket_reconfigure_at", bucket, config, Some(now_ns)) }
}

/// # Safety
/// As `fb_bucket_reconfigure`.
unsafe fn reconfigure(
    func: &'static str,
    bucket: *const fb_bucket,
    config: *const fb_bucket_config,
    now: Option<u64>,
) -> fb_result {
    guard(func, || {
        // SAFETY: the pointers obey the calling function's contract.
        let (b, config) = unsafe { (handle::bucket(bucket)?, handle::input(config, "config")?) };
        b.reconfigure(config.to_core(), now_or_clock(now))?;
        Ok(FB_OK)
    })
}
