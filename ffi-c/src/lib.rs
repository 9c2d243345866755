//! # fastbreaker-ffi: the C ABI of fastbreaker
//!
//! Builds `libfastbreaker.a` and `libfastbreaker.so`; `include/fastbreaker.h` is generated
//! from this crate by a pinned cbindgen (`make ffi-header`) and committed.
//!
//! Conventions of every `fb_*` function:
//! - it returns an `fb_result` (negative: an error) or a value that cannot fail;
//! - it checks each pointer argument and returns `FB_ERR_NULL` for a NULL one (every
//!   `_free` accepts NULL, and optional out-parameters say so);
//! - it runs inside a panic boundary: a Rust panic becomes `FB_ERR_PANIC`, never an unwind
//!   into C;
//! - on an error it leaves a message for `fb_last_error()` on the calling thread;
//! - it may be called from many threads at once on one handle, except `_free`, which must
//!   be the last call on its handle.
//!
//! Layout: `handle` holds every cast between a C pointer and a Rust object, `error` the
//! panic boundary and the last-error message; `breaker` (with `breaker_types`), `bucket`
//! and `bulkhead` the functions of each primitive.
#![warn(missing_docs)]
// The C names (fb_breaker, fb_result, ...) are the API.
#![allow(non_camel_case_types)]

use core::ffi::c_char;

use core_fb::{Clock, MonotonicClock};

mod breaker;
mod breaker_types;
mod bucket;
mod bulkhead;
mod error;
mod handle;

pub use breaker::*;
pub use breaker_types::*;
pub use bucket::*;
pub use bulkhead::*;
pub use error::fb_last_error;
pub use handle::{fb_breaker, fb_bucket, fb_bulkhead};

/// Major version of the library this header belongs to.
pub const FB_VERSION_MAJOR: u32 = 0;
/// Minor version of the library this header belongs to.
pub const FB_VERSION_MINOR: u32 = 1;
/// Patch version of the library this header belongs to.
pub const FB_VERSION_PATCH: u32 = 0;

/// The library version, NUL-terminated (`FB_VERSION_STRING` is the header's).
const VERSION_C: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Result of an `fb_*` call: `FB_OK` (0), `FB_REJECTED` (1), or a negative `FB_ERR_*`.
pub type fb_result = i32;

/// Success.
pub const FB_OK: fb_result = 0;
/// Not an error: the breaker, bucket or bulkhead refused the call (see the function).
pub const FB_REJECTED: fb_result = 1;
/// A required pointer argument was NULL.
pub const FB_ERR_NULL: fb_result = -1;
/// A configuration value cannot work; `fb_last_error()` names the field and the value.
pub const FB_ERR_INVALID_CONFIG: fb_result = -2;
/// A Rust panic was caught at the boundary (a bug in fastbreaker); see `fb_last_error()`.
pub const FB_ERR_PANIC: fb_result = -3;
/// More tokens asked of a bucket at once than its burst: no wait can help.
pub const FB_ERR_EXCEEDS_CAPACITY: fb_result = -4;
/// The storage given to an `_init` function is too small or misaligned.
pub const FB_ERR_BUFFER: fb_result = -5;
/// An argument is out of range: an unknown outcome, a permit that was not granted, a
/// pointer that is not a live handle of the expected kind.
pub const FB_ERR_INVALID_ARGUMENT: fb_result = -6;

/// One microsecond in the library's unit of time (nanoseconds).
pub const FB_MICROSECOND: u64 = 1_000u64;
/// One millisecond in nanoseconds.
pub const FB_MILLISECOND: u64 = 1_000_000u64;
/// One second in nanoseconds.
pub const FB_SECOND: u64 = 1_000_000_000u64;

/// The library's version, `"MAJOR.MINOR.PATCH"` (compare with `FB_VERSION_STRING` to detect a
/// header/library mismatch). Static storage; never NULL.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn fb_version() -> *const c_char {
    VERSION_C.as_ptr().cast()
}

/// A static description of a result code, e.g. `"FB_ERR_NULL: a required pointer argument
/// was NULL"`; unknown codes give `"unknown fb_result code"`. Never NULL.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn fb_result_str(code: fb_result) -> *const c_char {
    let s: &'static str = match code {
        FB_OK => "FB_OK: success\0",
        FB_REJECTED => "FB_REJECTED: the call was refused\0",
        FB_ERR_NULL => "FB_ERR_NULL: a required pointer argument was NULL\0",
        FB_ERR_INVALID_CONFIG => "FB_ERR_INVALID_CONFIG: a configuration value cannot work\0",
        FB_ERR_PANIC => "FB_ERR_PANIC: internal error (a panic was caught)\0",
        FB_ERR_EXCEEDS_CAPACITY => {
            "FB_ERR_EXCEEDS_CAPACITY: more tokens requested than the bucket's burst\0"
        }
        FB_ERR_BUFFER => "FB_ERR_BUFFER: storage too small or misaligned\0",
        FB_ERR_INVALID_ARGUMENT => "FB_ERR_INVALID_ARGUMENT: an argument is out of range\0",
        _ => "unknown fb_result code\0",
    };
    s.as_ptr().cast()
}

/// Nanoseconds on the clock the functions without `_at` read: `CLOCK_MONOTONIC`, which is
/// the same in every process of the machine. Pass it (or your own monotonic time) to the
/// `_at` variants.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn fb_now_ns() -> u64 {
    error::guard_value("fb_now_ns", 0, || MonotonicClock.now_ns())
}

#[cfg(test)]
mod tests;
