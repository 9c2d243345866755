//! `fb_keyed_*`: keyed rate limits, one GCRA token bucket per key (a client address, an API
//! key, a user) in a table of fixed capacity (the core's `KeyedBuckets`).

use core::hash::{BuildHasher, Hasher};

use core_fb::{BucketState, Clock, KeyedBuckets, KeyedRejected, MonotonicClock, WhenFull};

use crate::bucket::{fb_bucket_config, fb_bucket_stats};
use crate::error::{guard, guard_value, Error};
use crate::handle::{self, KeyedTable};
use crate::{fb_keyed, fb_result, FB_OK, FB_REJECTED};

/// What a keyed table does with a new key when every slot it may live in holds a live key
/// (`fb_keyed_new`): `FB_WHEN_FULL_REJECT` or `FB_WHEN_FULL_ADMIT`.
pub type fb_when_full = u32;
/// Refuse the new key: `fb_keyed_try_acquire` returns `FB_ERR_TABLE_FULL`.
pub const FB_WHEN_FULL_REJECT: fb_when_full = 0;
/// Let the new key through untracked (`FB_OK`): it is not limited until it finds a slot.
pub const FB_WHEN_FULL_ADMIT: fb_when_full = 1;

/// Counters of a keyed table, from `fb_keyed_metrics`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct fb_keyed_stats {
    /// Slots in the table (the `capacity` it was made with).
    pub capacity: usize,
    /// Requests granted to tracked keys, in all.
    pub allowed: u64,
    /// Requests refused for want of tokens (`FB_REJECTED`), in all.
    pub limited: u64,
    /// New keys refused because the table had no room for them (`FB_ERR_TABLE_FULL`).
    pub full_rejected: u64,
    /// New keys let through untracked because the table had no room for them
    /// (`FB_WHEN_FULL_ADMIT`).
    pub full_admitted: u64,
    /// Keys holding tokens (not full) at the time of the call: a scan of the whole table.
    pub live_keys: usize,
}

fn now_or_clock(now: Option<u64>) -> u64 {
    now.unwrap_or_else(|| MonotonicClock.now_ns())
}

/// A random seed for the table's hash, from the operating system: std's `RandomState` keys
/// are drawn from the OS's entropy and differ for every instance.
fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x006b_6579_6564); // "keyed"
    h.finish()
}

/// The key of a call as a slice.
///
/// # Safety
/// `key` is NULL or valid for reads of `key_len` bytes for `'a`.
#[inline(always)]
unsafe fn key_of<'a>(key: *const u8, key_len: usize) -> Result<&'a [u8], Error> {
    if key.is_null() {
        return Err(Error::Null("key"));
    }
    // A slice may not exceed isize::MAX bytes; such a key is too long anyway.
    if key_len > isize::MAX as usize {
        return Err(Error::Keyed(KeyedRejected::KeyTooLong { len: key_len }));
    }
    // SAFETY: non-NULL, valid for reads of `key_len` bytes for 'a (contract), and
    // `key_len` is at most isize::MAX.
    Ok(unsafe { core::slice::from_raw_parts(key, key_len) })
}

/// Creates a keyed table of `capacity` slots on the heap, each key a bucket of `*config`,
/// and stores its handle in `*out`; free it with `fb_keyed_free`. The table never allocates
/// again: a key lives in one of the few slots from its home slot (its hash, seeded at random
/// here so that clients cannot choose keys that collide), a key whose bucket is full again
/// holds no slot (after a grace of 1 s), and a new key that finds no room is refused or let
/// through untracked as `when_full` says. A live key is never evicted.
///
/// Returns `FB_OK`, `FB_ERR_INVALID_CONFIG` (`fb_last_error()` names the field, the value
/// and the legal range: the bucket's fields, or `capacity`, 1..=`FB_MAX_KEYED_CAPACITY`),
/// `FB_ERR_INVALID_ARGUMENT` (an unknown `when_full`), `FB_ERR_NULL`.
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `config` is NULL or points to an `fb_bucket_config`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_keyed_new(
    config: *const fb_bucket_config,
    capacity: usize,
    when_full: fb_when_full,
    out: *mut *mut fb_keyed,
) -> fb_result {
    guard("fb_keyed_new", || {
        // SAFETY: the pointers obey this function's contract.
        let (config, out) = unsafe { (handle::input(config, "config")?, handle::out(out, "out")?) };
        let when_full = match when_full {
            FB_WHEN_FULL_REJECT => WhenFull::Reject,
            FB_WHEN_FULL_ADMIT => WhenFull::Admit,
            other => {
                return Err(Error::Invalid(
                    "when_full",
                    other.into(),
                    "must be FB_WHEN_FULL_REJECT (0) or FB_WHEN_FULL_ADMIT (1)",
                ))
            }
        };
        let table: KeyedTable =
            KeyedBuckets::with_capacity(config.to_core(), when_full, random_seed(), capacity)?;
        out.write(handle::new_keyed(table));
        Ok(FB_OK)
    })
}

/// Frees a keyed table made by `fb_keyed_new`. NULL is ignored.
///
/// Thread safety: must be the last call on this table, from any thread.
///
/// # Safety
/// `keyed` is NULL or a live handle that no other thread is using or will use.
#[no_mangle]
pub unsafe extern "C" fn fb_keyed_free(keyed: *mut fb_keyed) {
    // SAFETY: `keyed` obeys this function's contract.
    guard_value("fb_keyed_free", (), || unsafe { handle::free_keyed(keyed) })
}

/// Takes `n` tokens of the bucket of the key `key[0..key_len)` (any bytes, at most
/// `FB_MAX_KEY_LEN`) now if they are all there; otherwise takes nothing. A key not in the
/// table starts full and is given a slot.
///
/// Returns `FB_OK` (`*retry_after_ns` = 0), `FB_REJECTED` with the nanoseconds until the
/// key's tokens would be there in `*retry_after_ns`, `FB_ERR_EXCEEDS_CAPACITY` (`n` above the
/// burst: no wait helps), `FB_ERR_TABLE_FULL` (a new key found no room, and the table was made
/// with `FB_WHEN_FULL_REJECT`; with `FB_WHEN_FULL_ADMIT` it is `FB_OK`), `FB_ERR_KEY_TOO_LONG`
/// (`fb_last_error()` gives the length), `FB_ERR_BUSY` (another caller was claiming a slot
/// near the key's for longer than a bounded wait: try again). `n` = 0 always succeeds.
/// `retry_after_ns` may be NULL; it is written only with `FB_OK` and `FB_REJECTED`.
/// Other errors: `FB_ERR_NULL` (`keyed` or `key`), `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one table (a key's tokens: one CAS;
/// giving a new key a slot waits only for claims of keys with the same home slot).
///
/// # Safety
/// `keyed` is NULL or a live handle; `key` is NULL or valid for reads of `key_len` bytes;
/// `retry_after_ns` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_keyed_try_acquire(
    keyed: *const fb_keyed,
    key: *const u8,
    key_len: usize,
    n: u64,
    retry_after_ns: *mut u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe {
        try_acquire(
            "fb_keyed_try_acquire",
            keyed,
            key,
            key_len,
            n,
            retry_after_ns,
            None,
        )
    }
}

/// `fb_keyed_try_acquire` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one table.
///
/// # Safety
/// As `fb_keyed_try_acquire`.
#[no_mangle]
pub unsafe extern "C" fn fb_keyed_try_acquire_at(
    keyed: *const fb_keyed,
    key: *const u8,
    key_len: usize,
    n: u64,
    retry_after_ns: *mut u64,
    now_ns: u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe {
        try_acquire(
            "fb_keyed_try_acquire_at",
            keyed,
            key,
            key_len,
            n,
            retry_after_ns,
            Some(now_ns),
        )
    }
}

/// # Safety
/// As `fb_keyed_try_acquire`.
#[inline(always)]
unsafe fn try_acquire(
    func: &'static str,
    keyed: *const fb_keyed,
    key: *const u8,
    key_len: usize,
    n: u64,
    retry_after_ns: *mut u64,
    now: Option<u64>,
) -> fb_result {
    guard(func, || {
        // SAFETY: the pointers obey the calling function's contract.
        let (t, key, out) = unsafe {
            (
                handle::keyed(keyed)?,
                key_of(key, key_len)?,
                handle::out_opt(retry_after_ns),
            )
        };
        let (code, wait) = match t.try_acquire(key, n, now_or_clock(now)) {
            Ok(()) => (FB_OK, 0),
            Err(KeyedRejected::RateLimited { retry_after }) => (FB_REJECTED, retry_after),
            Err(r) => return Err(Error::Keyed(r)),
        };
        if let Some(out) = out {
            out.write(wait);
        }
        Ok(code)
    })
}

/// Stores in `*wait_ns` the nanoseconds until `n` tokens of the key `key[0..key_len)` could
/// be taken (0: now; a key not in the table is full), taking nothing and claiming no slot.
///
/// Returns `FB_OK`, `FB_ERR_EXCEEDS_CAPACITY` (`n` above the burst: no wait helps),
/// `FB_ERR_KEY_TOO_LONG`, `FB_ERR_NULL` (`keyed`, `key` or `wait_ns` NULL),
/// `FB_ERR_INVALID_ARGUMENT`. On an error `*wait_ns` is left unchanged.
///
/// Thread safety: safe from many threads at once on one table (loads only).
///
/// # Safety
/// `keyed` is NULL or a live handle; `key` is NULL or valid for reads of `key_len` bytes;
/// `wait_ns` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_keyed_retry_after(
    keyed: *const fb_keyed,
    key: *const u8,
    key_len: usize,
    n: u64,
    wait_ns: *mut u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe {
        retry_after(
            "fb_keyed_retry_after",
            keyed,
            key,
            key_len,
            n,
            wait_ns,
            None,
        )
    }
}

/// `fb_keyed_retry_after` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one table (loads only).
///
/// # Safety
/// As `fb_keyed_retry_after`.
#[no_mangle]
pub unsafe extern "C" fn fb_keyed_retry_after_at(
    keyed: *const fb_keyed,
    key: *const u8,
    key_len: usize,
    n: u64,
    wait_ns: *mut u64,
    now_ns: u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe {
        retry_after(
            "fb_keyed_retry_after_at",
            keyed,
            key,
            key_len,
            n,
            wait_ns,
            Some(now_ns),
        )
    }
}

/// # Safety
/// As `fb_keyed_retry_after`.
unsafe fn retry_after(
    func: &'static str,
    keyed: *const fb_keyed,
    key: *const u8,
    key_len: usize,
    n: u64,
    wait_ns: *mut u64,
    now: Option<u64>,
) -> fb_result {
    guard(func, || {
        // SAFETY: the pointers obey the calling function's contract.
        let (t, key, out) = unsafe {
            (
                handle::keyed(keyed)?,
                key_of(key, key_len)?,
                handle::out(wait_ns, "wait_ns")?,
            )
        };
        out.write(
            t.retry_after(key, n, now_or_clock(now))
                .map_err(Error::Keyed)?,
        );
        Ok(FB_OK)
    })
}

/// Stores limit, remaining, reset and retry-after of the key `key[0..key_len)`, from one
/// read of its slot, in `*stats` (for `RateLimit` headers; a key not in the table is full).
///
/// Returns `FB_OK`, `FB_ERR_KEY_TOO_LONG`, `FB_ERR_NULL` (`keyed`, `key` or `stats` NULL),
/// `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one table (loads only).
///
/// # Safety
/// `keyed` is NULL or a live handle; `key` is NULL or valid for reads of `key_len` bytes;
/// `stats` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_keyed_state(
    keyed: *const fb_keyed,
    key: *const u8,
    key_len: usize,
    stats: *mut fb_bucket_stats,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { state("fb_keyed_state", keyed, key, key_len, stats, None) }
}

/// `fb_keyed_state` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one table (loads only).
///
/// # Safety
/// As `fb_keyed_state`.
#[no_mangle]
pub unsafe extern "C" fn fb_keyed_state_at(
    keyed: *const fb_keyed,
    key: *const u8,
    key_len: usize,
    stats: *mut fb_bucket_stats,
    now_ns: u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe {
        state(
            "fb_keyed_state_at",
            keyed,
            key,
            key_len,
            stats,
            Some(now_ns),
        )
    }
}

/// # Safety
/// As `fb_keyed_state`.
unsafe fn state(
    func: &'static str,
    keyed: *const fb_keyed,
    key: *const u8,
    key_len: usize,
    stats: *mut fb_bucket_stats,
    now: Option<u64>,
) -> fb_result {
    guard(func, || {
        // SAFETY: the pointers obey the calling function's contract.
        let (t, key, out) = unsafe {
            (
                handle::keyed(keyed)?,
                key_of(key, key_len)?,
                handle::out(stats, "stats")?,
            )
        };
        let BucketState {
            limit,
            remaining,
            reset_after,
            retry_after,
        } = t.state(key, now_or_clock(now)).map_err(Error::Keyed)?;
        out.write(fb_bucket_stats {
            limit,
            remaining,
            reset_after_ns: reset_after,
            retry_after_ns: retry_after,
        });
        Ok(FB_OK)
    })
}

/// Refills the bucket of the key `key[0..key_len)` completely (its slot becomes free for
/// another key). `*found` (may be NULL) says whether the key was in the table; a key that
/// was not is `FB_OK` too.
///
/// Returns `FB_OK`, `FB_ERR_KEY_TOO_LONG`, `FB_ERR_BUSY` (the key's slot kept changing
/// hands: try again), `FB_ERR_NULL` (`keyed` or `key` NULL), `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one table.
///
/// # Safety
/// `keyed` is NULL or a live handle; `key` is NULL or valid for reads of `key_len` bytes;
/// `found` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_keyed_reset(
    keyed: *const fb_keyed,
    key: *const u8,
    key_len: usize,
    found: *mut bool,
) -> fb_result {
    guard("fb_keyed_reset", || {
        // SAFETY: the pointers obey this function's contract.
        let (t, key, out) = unsafe {
            (
                handle::keyed(keyed)?,
                key_of(key, key_len)?,
                handle::out_opt(found),
            )
        };
        let was = t.reset(key).map_err(Error::Keyed)?;
        if let Some(out) = out {
            out.write(was);
        }
        Ok(FB_OK)
    })
}

/// Stores the table's counters, and the keys live now, in `*stats`.
///
/// Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one table (relaxed loads: statistics;
/// `live_keys` scans the whole table, so call it for metrics, not on hot paths).
///
/// # Safety
/// `keyed` is NULL or a live handle; `stats` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_keyed_metrics(
    keyed: *const fb_keyed,
    stats: *mut fb_keyed_stats,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { metrics("fb_keyed_metrics", keyed, stats, None) }
}

/// `fb_keyed_metrics` at time `now_ns` (the time at which `live_keys` is counted).
///
/// Thread safety: safe from many threads at once on one table.
///
/// # Safety
/// As `fb_keyed_metrics`.
#[no_mangle]
pub unsafe extern "C" fn fb_keyed_metrics_at(
    keyed: *const fb_keyed,
    stats: *mut fb_keyed_stats,
    now_ns: u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { metrics("fb_keyed_metrics_at", keyed, stats, Some(now_ns)) }
}

/// # Safety
/// As `fb_keyed_metrics`.
unsafe fn metrics(
    func: &'static str,
    keyed: *const fb_keyed,
    stats: *mut fb_keyed_stats,
    now: Option<u64>,
) -> fb_result {
    guard(func, || {
        // SAFETY: the pointers obey the calling function's contract.
        let (t, out) = unsafe { (handle::keyed(keyed)?, handle::out(stats, "stats")?) };
        let m = t.metrics();
        out.write(fb_keyed_stats {
            capacity: m.capacity,
            allowed: m.allowed,
            limited: m.limited,
            full_rejected: m.full_rejected,
            full_admitted: m.full_admitted,
            live_keys: t.live_keys(now_or_clock(now)),
        });
        Ok(FB_OK)
    })
}
