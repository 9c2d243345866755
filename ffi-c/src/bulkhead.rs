//! `fb_bulkhead_*`: a limit on calls in flight.

use core::ffi::c_void;

use core_fb::binding::{bulkhead_release, bulkhead_try_acquire};
use core_fb::Bulkhead;

use crate::error::{guard, guard_value, Error};
use crate::handle::{self, BulkheadRef};
use crate::{fb_bulkhead, fb_result, FB_OK, FB_REJECTED};

/// Bytes of storage that hold a bulkhead (`fb_bulkhead_init`).
pub const FB_BULKHEAD_STORAGE_SIZE: usize = 40;
/// Alignment of bulkhead storage.
pub const FB_BULKHEAD_STORAGE_ALIGN: usize = 8;

/// A bulkhead's limit.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct fb_bulkhead_config {
    /// Calls allowed in flight at once, at least `FB_MIN_MAX_CONCURRENT`. Default 10.
    pub max_concurrent: u32,
}

/// Counters of a bulkhead, from `fb_bulkhead_metrics`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct fb_bulkhead_stats {
    /// The limit.
    pub max_concurrent: u32,
    /// Calls in flight now.
    pub in_flight: u32,
    /// Most calls ever in flight at once.
    pub peak: u32,
    /// Slots granted in all.
    pub acquired: u64,
    /// Requests refused in all.
    pub rejected: u64,
}

/// The default configuration (the core's table): 10 calls in flight.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn fb_bulkhead_config_default() -> fb_bulkhead_config {
    let config = fb_bulkhead_config {
        max_concurrent: core_fb::limits::DEFAULT_MAX_CONCURRENT,
    };
    guard_value("fb_bulkhead_config_default", config, || config)
}

/// Creates a bulkhead on the heap and stores its handle in `*out`; free it with
/// `fb_bulkhead_free`.
///
/// Returns `FB_OK`, `FB_ERR_INVALID_CONFIG` (`fb_last_error()` names the field and the
/// value), `FB_ERR_NULL`.
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `config` is NULL or points to an `fb_bulkhead_config`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_bulkhead_new(
    config: *const fb_bulkhead_config,
    out: *mut *mut fb_bulkhead,
) -> fb_result {
    guard("fb_bulkhead_new", || {
        // SAFETY: the pointers obey this function's contract.
        let (config, out) = unsafe { (handle::input(config, "config")?, handle::out(out, "out")?) };
        let bulkhead = Bulkhead::new(config.max_concurrent)?;
        out.write(handle::new_bulkhead(bulkhead));
        Ok(FB_OK)
    })
}

/// Creates a bulkhead in `storage` (at least `FB_BULKHEAD_STORAGE_SIZE` bytes, aligned to
/// `FB_BULKHEAD_STORAGE_ALIGN`) without touching the heap. The storage stays the caller's;
/// `fb_bulkhead_free` ignores the handle.
///
/// Returns `FB_OK`, `FB_ERR_BUFFER`, `FB_ERR_INVALID_CONFIG`, `FB_ERR_NULL`.
///
/// Thread safety: safe from any thread, on distinct storage.
///
/// # Safety
/// `storage` is NULL or valid for writes of `size` bytes and not used for anything else while
/// the bulkhead lives; `config` is NULL or points to an `fb_bulkhead_config`; `out` is NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_bulkhead_init(
    storage: *mut c_void,
    size: usize,
    config: *const fb_bulkhead_config,
    out: *mut *mut fb_bulkhead,
) -> fb_result {
    guard("fb_bulkhead_init", || {
        if storage.is_null() {
            return Err(Error::Null("storage"));
        }
        // SAFETY: the pointers obey this function's contract.
        let (config, out) = unsafe { (handle::input(config, "config")?, handle::out(out, "out")?) };
        let bulkhead = Bulkhead::new(config.max_concurrent)?;
        // SAFETY: `storage` obeys this function's contract.
        out.write(unsafe { handle::init_bulkhead(storage, size, bulkhead) }?);
        Ok(FB_OK)
    })
}

/// Frees a bulkhead made by `fb_bulkhead_new`. NULL is ignored, and so is a bulkhead made
/// by `fb_bulkhead_init`.
///
/// Thread safety: must be the last call on this bulkhead, from any thread.
///
/// # Safety
/// `bulkhead` is NULL or a live handle that no other thread is using or will use.
#[no_mangle]
pub unsafe extern "C" fn fb_bulkhead_free(bulkhead: *mut fb_bulkhead) {
    // SAFETY: `bulkhead` obeys this function's contract.
    guard_value("fb_bulkhead_free", (), || unsafe {
        handle::free_bulkhead(bulkhead)
    })
}

/// Takes a slot: `FB_OK` (give it back with `fb_bulkhead_release` when the call ends) or
/// `FB_REJECTED` (all slots are out).
///
/// Other results: `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one bulkhead (lock-free; the count never
/// exceeds the limit, even transiently).
///
/// # Safety
/// `bulkhead` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_bulkhead_try_acquire(bulkhead: *const fb_bulkhead) -> fb_result {
    guard("fb_bulkhead_try_acquire", || {
        // SAFETY: `bulkhead` obeys this function's contract.
        let acquired = match unsafe { handle::bulkhead(bulkhead)? } {
            BulkheadRef::Local(b) => bulkhead_try_acquire(b),
            BulkheadRef::Shared(s) => s.try_acquire(),
        };
        Ok(if acquired { FB_OK } else { FB_REJECTED })
    })
}

/// Gives back a slot taken by `fb_bulkhead_try_acquire`.
///
/// Returns `FB_OK`, `FB_ERR_NOT_HELD` (no slot was out: an extra release, which changes
/// nothing), `FB_ERR_NULL` (`bulkhead` NULL), `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one bulkhead.
///
/// # Safety
/// `bulkhead` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_bulkhead_release(bulkhead: *const fb_bulkhead) -> fb_result {
    guard("fb_bulkhead_release", || {
        // SAFETY: `bulkhead` obeys this function's contract.
        let released = match unsafe { handle::bulkhead(bulkhead)? } {
            BulkheadRef::Local(b) => bulkhead_release(b),
            BulkheadRef::Shared(s) => s.release() == Some(true),
        };
        if released {
            Ok(FB_OK)
        } else {
            Err(Error::NotHeld)
        }
    })
}

/// Changes the limit at run time. Slots out stay out: a limit lowered below the calls in
/// flight admits nothing until enough of them are released. Atomic (one word): every
/// `fb_bulkhead_try_acquire` decides on the old limit or the new one.
///
/// On a bulkhead from `fb_region_bulkhead`, the change is made in the region, for every
/// process attached to the slot.
///
/// Returns `FB_OK`, `FB_ERR_INVALID_CONFIG` (`max_concurrent` below `FB_MIN_MAX_CONCURRENT`:
/// `fb_last_error()` names the field and the value; nothing changes), `FB_ERR_NULL`
/// (`bulkhead` NULL), `FB_ERR_INVALID_ARGUMENT` (not a bulkhead handle).
///
/// Thread safety: safe from many threads at once on one bulkhead (one store).
///
/// # Safety
/// `bulkhead` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_bulkhead_reconfigure(
    bulkhead: *const fb_bulkhead,
    max_concurrent: u32,
) -> fb_result {
    guard("fb_bulkhead_reconfigure", || {
        // SAFETY: `bulkhead` obeys this function's contract.
        let b = unsafe { handle::bulkhead(bulkhead)? };
        b.bulkhead().reconfigure(max_concurrent)?;
        Ok(FB_OK)
    })
}

/// Stores a snapshot of the counters in `*stats`.
///
/// Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one bulkhead (loads only).
///
/// # Safety
/// `bulkhead` is NULL or a live handle; `stats` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_bulkhead_metrics(
    bulkhead: *const fb_bulkhead,
    stats: *mut fb_bulkhead_stats,
) -> fb_result {
    guard("fb_bulkhead_metrics", || {
        // SAFETY: the pointers obey this function's contract.
        let (b, out) = unsafe { (handle::bulkhead(bulkhead)?, handle::out(stats, "stats")?) };
        let m = b.bulkhead().metrics();
        out.write(fb_bulkhead_stats {
            max_concurrent: m.max_concurrent,
            in_flight: m.in_flight,
            peak: m.peak,
            acquired: m.acquired,
            rejected: m.rejected,
        });
        Ok(FB_OK)
    })
}
