//! # fastbreaker-ffi: the C ABI of fastbreaker
//!
//! Builds `libfastbreaker.a` and `libfastbreaker.so`; `include/fastbreaker.h` is generated
//! from this crate by the pinned cbindgen (a dev-dependency: `make ffi-header`, or
//! `FASTBREAKER_BLESS=1 cargo test -p fastbreaker-ffi header`) and committed.
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
//! Layout, each module using only those listed before it: `error` (result codes, the panic
//! boundary, the last-error message), `limits` (the core's limits as `FB_` constants),
//! `breaker_types` (the breaker's C types and their conversions to and from the core's),
//! `listener` (the state-change listener of a breaker), `permits` (the owner-tracked
//! permits of a region bulkhead handle), `handle` (every cast between a C pointer and a Rust
//! object), then the functions of each primitive: `breaker`, `bucket`, `bulkhead` and `keyed`
//! (one bucket per key, using `bucket`'s types), and
//! `region` (host-shared primitives in a named shared-memory region).
#![warn(missing_docs)]
// The C names (fb_breaker, fb_result, ...) are the API.
#![allow(non_camel_case_types)]

use core::ffi::c_char;

use core_fb::{Clock, MonotonicClock};

mod error;
mod limits;

mod breaker_types;
mod listener;
mod permits;

mod handle;

mod adaptive;
mod breaker;
mod bucket;
mod bulkhead;
mod keyed;
mod region;

pub use adaptive::*;
pub use breaker::*;
pub use breaker_types::*;
pub use bucket::*;
pub use bulkhead::*;
pub use error::*;
pub use keyed::*;
pub use limits::*;
pub use listener::fb_breaker_listener;
pub use region::*;

/// A circuit breaker (opaque). Create it with `fb_breaker_new` or `fb_breaker_init`.
pub struct fb_breaker {
    _opaque: [u8; 0],
}

/// A GCRA token bucket (opaque). Create it with `fb_bucket_new` or `fb_bucket_init`.
pub struct fb_bucket {
    _opaque: [u8; 0],
}

/// A bulkhead, a limit on calls in flight (opaque). Create it with `fb_bulkhead_new` or
/// `fb_bulkhead_init`.
pub struct fb_bulkhead {
    _opaque: [u8; 0],
}

/// A table of GCRA token buckets, one per key (opaque): keyed rate limits. Create it with
/// `fb_keyed_new`.
pub struct fb_keyed {
    _opaque: [u8; 0],
}

/// A named shared-memory region holding breakers, buckets and bulkheads shared by every
/// process of the same user on this host (opaque). Open it with `fb_region_open`.
pub struct fb_region {
    _opaque: [u8; 0],
}

/// An adaptive limiter (opaque): a concurrency or rate limit moved by the backend's
/// answers (AIMD or gradient rule). Create it with `fb_adaptive_new`.
pub struct fb_adaptive {
    _opaque: [u8; 0],
}

/// An adaptive throttle (opaque): Google SRE client-side throttling. Create it with
/// `fb_throttle_new`.
pub struct fb_throttle {
    _opaque: [u8; 0],
}

/// Major version of the library this header belongs to.
pub const FB_VERSION_MAJOR: u32 = 0;
/// Minor version of the library this header belongs to.
pub const FB_VERSION_MINOR: u32 = 1;
/// Patch version of the library this header belongs to.
pub const FB_VERSION_PATCH: u32 = 0;

/// The library version, NUL-terminated (`FB_VERSION_STRING` is the header's).
const VERSION_C: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// One microsecond in the library's unit of time (nanoseconds). A `uint64_t` constant
/// (`UINT64_C`), so `x / FB_SECOND` prints with `PRIu64`.
pub const FB_MICROSECOND: u64 = 1_000u64;
/// One millisecond in nanoseconds (`uint64_t`).
pub const FB_MILLISECOND: u64 = 1_000_000u64;
/// One second in nanoseconds (`uint64_t`).
pub const FB_SECOND: u64 = 1_000_000_000u64;

const _: () = assert!(
    FB_MICROSECOND == core_fb::MICROSECOND
        && FB_MILLISECOND == core_fb::MILLISECOND
        && FB_SECOND == core_fb::SECOND
);

/// The library's version, `"MAJOR.MINOR.PATCH"` (compare with `FB_VERSION_STRING` to detect a
/// header/library mismatch). Static storage; never NULL.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn fb_version() -> *const c_char {
    error::guard_value("fb_version", VERSION_C.as_ptr().cast(), || {
        VERSION_C.as_ptr().cast()
    })
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
