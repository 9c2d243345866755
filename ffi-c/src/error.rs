//! Result codes, the panic boundary around every function and the thread-local last-error
//! message.

use core::ffi::c_char;
use std::cell::RefCell;
use std::ffi::CString;
use std::panic::{self, AssertUnwindSafe};

use core_fb::shm::RegionError;
use core_fb::{BucketRejected, ConfigError, KeyedRejected, ReconfigureError};

/// Result of an `fb_*` call: `FB_OK` (0), `FB_REJECTED` (1), or a negative `FB_ERR_*`.
pub type fb_result = i32;

/// Success.
pub const FB_OK: fb_result = 0;
/// Not an error: the breaker, bucket or bulkhead refused the call (see the function).
pub const FB_REJECTED: fb_result = 1;
/// A required pointer argument was NULL.
pub const FB_ERR_NULL: fb_result = -1;
/// A configuration value cannot work; `fb_last_error()` gives the core's message, naming
/// the field, the value and the legal range.
pub const FB_ERR_INVALID_CONFIG: fb_result = -2;
/// A Rust panic was caught at the boundary (a bug in fastbreaker); see `fb_last_error()`.
pub const FB_ERR_PANIC: fb_result = -3;
/// More tokens asked of a bucket at once than its burst: no wait can help. Never reported as
/// a plain `FB_REJECTED`.
pub const FB_ERR_EXCEEDS_CAPACITY: fb_result = -4;
/// The storage given to an `_init` function is too small or misaligned.
pub const FB_ERR_BUFFER: fb_result = -5;
/// An argument is out of range: an unknown outcome, a permit that was not granted, a
/// pointer that is not a live handle of the expected kind.
pub const FB_ERR_INVALID_ARGUMENT: fb_result = -6;
/// The permit was already recorded: a permit counts once. Nothing changed.
pub const FB_ERR_PERMIT_USED: fb_result = -7;
/// `fb_bulkhead_release` with no slot out: an extra release. Nothing changed. (On a bulkhead
/// from a region: no slot out that this process took through this handle.)
pub const FB_ERR_NOT_HELD: fb_result = -8;

/// A region failure not covered by the codes below (a newer library's); see
/// `fb_last_error()`.
pub const FB_ERR_REGION: fb_result = -9;
/// A region or slot name is not allowed: empty, too long (`FB_REGION_MAX_NAME_LEN`,
/// `FB_REGION_MAX_SLOT_NAME_LEN`), not UTF-8, or holding `/`, `..`, a NUL or a control
/// character; `fb_last_error()` says which rule.
pub const FB_ERR_REGION_NAME: fb_result = -10;
/// A system call on the region file failed (open, create, mmap, unlink, ...);
/// `fb_last_error()` names the call, the file and the OS error (`ENOENT` for a missing
/// directory, `EACCES`, `ENOSPC`, `ENOMEM`, ...).
pub const FB_ERR_REGION_IO: fb_result = -11;
/// No region of that name, and the options said not to create one (or, from
/// `fb_region_unlink`, nothing to remove).
pub const FB_ERR_REGION_NOT_FOUND: fb_result = -12;
/// The file is not one this user should trust: another owner, group or other permission
/// bits, or not a regular file (symlinks are not followed).
pub const FB_ERR_REGION_UNTRUSTED: fb_result = -13;
/// The file is not a fastbreaker region (wrong magic).
pub const FB_ERR_REGION_BAD_MAGIC: fb_result = -14;
/// The region was made by a build with another layout version: unlink it once no process
/// of the other version uses it.
pub const FB_ERR_REGION_VERSION: fb_result = -15;
/// The region header's checksum does not match: a corrupt file.
pub const FB_ERR_REGION_CHECKSUM: fb_result = -16;
/// Same layout version, but a size in the header differs from this build's (another target
/// or compiler made it), or the file's length disagrees with its header.
pub const FB_ERR_REGION_LAYOUT: fb_result = -17;
/// A header field is out of range under a valid checksum.
pub const FB_ERR_REGION_CORRUPT_HEADER: fb_result = -18;
/// The file is shorter than a region header (or its header) needs.
pub const FB_ERR_REGION_TRUNCATED: fb_result = -19;
/// The slot cannot be trusted (bad metadata checksum, unknown kind or claim state, stored
/// settings that do not validate or do not match the primitive in place).
pub const FB_ERR_REGION_CORRUPT_SLOT: fb_result = -20;
/// Every slot of the region holds another name.
pub const FB_ERR_REGION_FULL: fb_result = -21;
/// A live process is still initialising the slot after the options' `init_timeout_ns`:
/// try again.
pub const FB_ERR_REGION_SLOT_BUSY: fb_result = -22;
/// The slot holds another kind of primitive (a bucket asked for as a breaker, or a breaker
/// asked for with the other window kind).
pub const FB_ERR_REGION_KIND_MISMATCH: fb_result = -23;
/// The slot exists with another configuration; `fb_last_error()` shows both, the one in
/// the region and the one asked for. Nothing changed.
pub const FB_ERR_REGION_CONFIG_MISMATCH: fb_result = -24;
/// Another reconfiguration of the same primitive (`fb_*_reconfigure`) was under way for
/// longer than a bounded wait (in a region: possibly in another process), or, in a keyed
/// table, another caller was giving a slot near the key's to a new key for that long. Nothing
/// changed: try again.
pub const FB_ERR_BUSY: fb_result = -25;
/// A new key found no room in a keyed table made with `FB_WHEN_FULL_REJECT` (every slot it
/// may live in holds a live key). Nothing changed; the key may find room once other keys'
/// buckets are full again.
pub const FB_ERR_TABLE_FULL: fb_result = -26;
/// A key longer than `FB_MAX_KEY_LEN` bytes; `fb_last_error()` gives its length. Nothing
/// changed.
pub const FB_ERR_KEY_TOO_LONG: fb_result = -27;

/// A static description of a result code, e.g. `"FB_ERR_NULL: a required pointer argument
/// was NULL"`; unknown codes give `"unknown fb_result code"`. Never NULL.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn fb_result_str(code: fb_result) -> *const c_char {
    guard_value("fb_result_str", c"unknown fb_result code".as_ptr(), || {
        result_name(code).as_ptr()
    })
}

fn result_name(code: fb_result) -> &'static core::ffi::CStr {
    match code {
        FB_OK => c"FB_OK: success",
        FB_REJECTED => c"FB_REJECTED: the call was refused",
        FB_ERR_NULL => c"FB_ERR_NULL: a required pointer argument was NULL",
        FB_ERR_INVALID_CONFIG => c"FB_ERR_INVALID_CONFIG: a configuration value cannot work",
        FB_ERR_PANIC => c"FB_ERR_PANIC: internal error (a panic was caught)",
        FB_ERR_EXCEEDS_CAPACITY => {
            c"FB_ERR_EXCEEDS_CAPACITY: more tokens requested than the bucket's burst"
        }
        FB_ERR_BUFFER => c"FB_ERR_BUFFER: storage too small or misaligned",
        FB_ERR_INVALID_ARGUMENT => c"FB_ERR_INVALID_ARGUMENT: an argument is out of range",
        FB_ERR_PERMIT_USED => c"FB_ERR_PERMIT_USED: the permit was already recorded",
        FB_ERR_NOT_HELD => c"FB_ERR_NOT_HELD: no bulkhead slot was out to release",
        FB_ERR_REGION => c"FB_ERR_REGION: the shared-memory region failed",
        FB_ERR_REGION_NAME => c"FB_ERR_REGION_NAME: a region or slot name is not allowed",
        FB_ERR_REGION_IO => c"FB_ERR_REGION_IO: a system call on the region file failed",
        FB_ERR_REGION_NOT_FOUND => c"FB_ERR_REGION_NOT_FOUND: no region of that name",
        FB_ERR_REGION_UNTRUSTED => {
            c"FB_ERR_REGION_UNTRUSTED: the region file is not this user's private regular file"
        }
        FB_ERR_REGION_BAD_MAGIC => c"FB_ERR_REGION_BAD_MAGIC: not a fastbreaker region",
        FB_ERR_REGION_VERSION => c"FB_ERR_REGION_VERSION: the region has another layout version",
        FB_ERR_REGION_CHECKSUM => c"FB_ERR_REGION_CHECKSUM: the region header is corrupt",
        FB_ERR_REGION_LAYOUT => {
            c"FB_ERR_REGION_LAYOUT: the region was laid out by another build or is resized"
        }
        FB_ERR_REGION_CORRUPT_HEADER => {
            c"FB_ERR_REGION_CORRUPT_HEADER: a region header field is out of range"
        }
        FB_ERR_REGION_TRUNCATED => c"FB_ERR_REGION_TRUNCATED: the region file is truncated",
        FB_ERR_REGION_CORRUPT_SLOT => c"FB_ERR_REGION_CORRUPT_SLOT: a region slot is corrupt",
        FB_ERR_REGION_FULL => c"FB_ERR_REGION_FULL: every slot of the region is taken",
        FB_ERR_REGION_SLOT_BUSY => {
            c"FB_ERR_REGION_SLOT_BUSY: the slot is still being initialised by another process"
        }
        FB_ERR_REGION_KIND_MISMATCH => {
            c"FB_ERR_REGION_KIND_MISMATCH: the slot holds another kind of primitive"
        }
        FB_ERR_REGION_CONFIG_MISMATCH => {
            c"FB_ERR_REGION_CONFIG_MISMATCH: the slot exists with another configuration"
        }
        FB_ERR_BUSY => c"FB_ERR_BUSY: another reconfiguration or claim is under way: try again",
        FB_ERR_TABLE_FULL => c"FB_ERR_TABLE_FULL: the keyed table has no room for a new key",
        FB_ERR_KEY_TOO_LONG => c"FB_ERR_KEY_TOO_LONG: the key is longer than FB_MAX_KEY_LEN bytes",
        _ => c"unknown fb_result code",
    }
}

/// Why a call failed; turned into a result code and a message at the boundary.
#[derive(Debug)]
pub(crate) enum Error {
    /// A required pointer argument, by name, was NULL.
    Null(&'static str),
    /// A configuration value cannot work.
    Config(ConfigError),
    /// More tokens asked of a bucket than its burst.
    Capacity(BucketRejected),
    /// A permit recorded a second time.
    PermitUsed,
    /// A bulkhead released with no slot out.
    NotHeld,
    /// An `_init` storage buffer is too small or misaligned.
    Buffer {
        /// Bytes given.
        size: usize,
        /// Bytes needed.
        need: usize,
        /// Alignment needed.
        align: usize,
        /// Whether the pointer was misaligned (else: too small).
        misaligned: bool,
    },
    /// An argument out of range: name, value, what it accepts.
    Invalid(&'static str, u64, &'static str),
    /// A region or one of its slots could not be opened.
    Region(RegionError),
    /// Another reconfiguration of the primitive is under way.
    Busy,
    /// A keyed table refused a key for another reason than its tokens.
    Keyed(KeyedRejected),
}

impl Error {
    fn code(&self) -> fb_result {
        match self {
            Error::Null(_) => FB_ERR_NULL,
            Error::Config(_) => FB_ERR_INVALID_CONFIG,
            Error::Capacity(_) => FB_ERR_EXCEEDS_CAPACITY,
            Error::PermitUsed => FB_ERR_PERMIT_USED,
            Error::NotHeld => FB_ERR_NOT_HELD,
            Error::Buffer { .. } => FB_ERR_BUFFER,
            Error::Invalid(..) => FB_ERR_INVALID_ARGUMENT,
            Error::Region(e) => region_code(e),
            Error::Busy => FB_ERR_BUSY,
            Error::Keyed(r) => match r {
                KeyedRejected::ExceedsCapacity { .. } => FB_ERR_EXCEEDS_CAPACITY,
                KeyedRejected::TableFull => FB_ERR_TABLE_FULL,
                KeyedRejected::KeyTooLong { .. } => FB_ERR_KEY_TOO_LONG,
                // `KeyedRejected` is non-exhaustive: a newer kind of refusal is also "try
                // again" until it gets a code of its own (RateLimited never gets here).
                _ => FB_ERR_BUSY,
            },
        }
    }

    fn message(&self, func: &str) -> String {
        match self {
            Error::Null(arg) => format!("{func}: argument `{arg}` is NULL"),
            Error::Config(e) => format!("{func}: {e}"),
            Error::Capacity(r) => format!("{func}: {r}"),
            Error::PermitUsed => {
                format!("{func}: the permit was already recorded (a permit counts once)")
            }
            Error::NotHeld => format!("{func}: no slot is out: nothing to release"),
            Error::Buffer {
                size,
                need,
                align,
                misaligned: true,
            } => format!(
                "{func}: storage is not aligned to {align} bytes (size {size}, {need} needed)"
            ),
            Error::Buffer { size, need, .. } => {
                format!("{func}: storage of {size} bytes is too small: {need} needed")
            }
            Error::Invalid(arg, value, reason) => {
                format!("{func}: invalid {arg} = {value}: {reason}")
            }
            Error::Region(e) => format!("{func}: {e}"),
            Error::Busy => format!("{func}: {}", ReconfigureError::Busy),
            Error::Keyed(r) => format!("{func}: {r}"),
        }
    }
}

/// The result code of a region error: one per kind of failure.
fn region_code(e: &RegionError) -> fb_result {
    use RegionError as R;
    match e {
        R::InvalidName { .. } => FB_ERR_REGION_NAME,
        R::InvalidOptions { .. } => FB_ERR_INVALID_ARGUMENT,
        R::Io { .. } => FB_ERR_REGION_IO,
        R::NotFound { .. } => FB_ERR_REGION_NOT_FOUND,
        R::Untrusted { .. } => FB_ERR_REGION_UNTRUSTED,
        R::BadMagic { .. } => FB_ERR_REGION_BAD_MAGIC,
        R::VersionMismatch { .. } => FB_ERR_REGION_VERSION,
        R::ChecksumMismatch { .. } => FB_ERR_REGION_CHECKSUM,
        R::LayoutMismatch { .. } => FB_ERR_REGION_LAYOUT,
        R::CorruptHeader { .. } => FB_ERR_REGION_CORRUPT_HEADER,
        R::Truncated { .. } => FB_ERR_REGION_TRUNCATED,
        R::CorruptSlot { .. } => FB_ERR_REGION_CORRUPT_SLOT,
        R::Full { .. } => FB_ERR_REGION_FULL,
        R::SlotBusy { .. } => FB_ERR_REGION_SLOT_BUSY,
        R::InvalidConfig { .. } => FB_ERR_INVALID_CONFIG,
        R::KindMismatch { .. } => FB_ERR_REGION_KIND_MISMATCH,
        R::ConfigMismatch { .. } => FB_ERR_REGION_CONFIG_MISMATCH,
        _ => FB_ERR_REGION,
    }
}

impl From<RegionError> for Error {
    fn from(e: RegionError) -> Self {
        match e {
            // The core's message names the field, the value and the legal range.
            RegionError::InvalidConfig { error, .. } => Error::Config(error),
            e => Error::Region(e),
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

impl From<ReconfigureError> for Error {
    fn from(e: ReconfigureError) -> Self {
        match e {
            ReconfigureError::Invalid(e) => Error::Config(e),
            // `ReconfigureError` is non-exhaustive: a newer kind of refusal is also "try
            // again" until it gets a code of its own.
            _ => Error::Busy,
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Runs `f` inside the panic boundary of the C function `func`: its `Ok` is the result
/// code, its `Err` is recorded for `fb_last_error()` and returned as an error code, and a
/// panic becomes `FB_ERR_PANIC`.
///
/// The error is turned into its code inside the boundary, so that only an `i32` crosses
/// `catch_unwind` (whose result travels through memory): this keeps the hot paths lean.
#[inline(always)]
pub(crate) fn guard<F>(func: &'static str, f: F) -> fb_result
where
    F: FnOnce() -> Result<fb_result, Error>,
{
    let result = panic::catch_unwind(AssertUnwindSafe(move || match f() {
        Ok(code) => code,
        Err(e) => fail(func, e),
    }));
    match result {
        Ok(code) => code,
        Err(payload) => panicked(func, payload),
    }
}

/// The panic boundary of a function that returns a value rather than a result code:
/// `fallback` if `f` panics.
#[inline(always)]
pub(crate) fn guard_value<T, F>(func: &'static str, fallback: T, f: F) -> T
where
    F: FnOnce() -> T,
{
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            panicked(func, payload);
            fallback
        }
    }
}

#[cold]
#[inline(never)]
fn fail(func: &'static str, e: Error) -> fb_result {
    set_last_error(e.message(func));
    e.code()
}

#[cold]
#[inline(never)]
fn panicked(func: &'static str, payload: Box<dyn std::any::Any + Send>) -> fb_result {
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    set_last_error(format!("{func}: panic: {what}"));
    // Dropping a panic payload can itself panic; keep that from unwinding into C.
    let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
    FB_ERR_PANIC
}

fn set_last_error(msg: String) {
    let msg = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // try_with: during thread teardown the slot may be gone; the message is then dropped.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = Some(msg));
}

/// The message of the last call that returned an error code on this thread, naming the
/// function and what was wrong, e.g. `"fb_breaker_new: invalid failure_rate_threshold =
/// 120: must be a percentage in 1..=100"`; `""` if there was none.
///
/// Successful calls (and `FB_REJECTED`) leave it unchanged: read it right after the failing
/// call. The pointer stays valid until the next failing call on this thread or the thread's
/// end. Never NULL.
///
/// Thread safety: safe from any thread; each thread has its own message.
#[no_mangle]
pub extern "C" fn fb_last_error() -> *const c_char {
    guard_value("fb_last_error", c"".as_ptr(), || {
        LAST_ERROR
            .try_with(|slot| slot.borrow().as_ref().map(|m| m.as_ptr()))
            .ok()
            .flatten()
            .unwrap_or(c"".as_ptr())
    })
}

#[cfg(test)]
pub(crate) fn last_error() -> String {
    // SAFETY: fb_last_error returns a NUL-terminated string that stays valid until the next
    // failing call on this thread; it is copied at once.
    unsafe { std::ffi::CStr::from_ptr(fb_last_error()) }
        .to_string_lossy()
        .into_owned()
}
