//! `fb_region_*`: host-shared breakers, buckets and bulkheads, in a named shared-memory
//! region (the core's `shm` module), handed out as the same handles as the rest of the API.

use core::ffi::{c_char, c_void, CStr};
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use core_fb::shm::{Region, RegionError, RegionOptions, SlotConfig, SlotEntry};

use crate::breaker_types::{fb_breaker_config, WindowKind};
use crate::error::{guard, guard_value, Error};
use crate::handle;
use crate::permits::SharedBulkhead;
use crate::{fb_breaker, fb_bucket, fb_bucket_config, fb_bulkhead, fb_bulkhead_config};
use crate::{fb_region, fb_result, FB_OK};

/// Slots of a region created with the default options.
pub const FB_REGION_DEFAULT_CAPACITY: u32 = 256;
/// The most slots a region can have.
pub const FB_REGION_MAX_CAPACITY: u32 = 65_536;
/// The longest region name, in bytes.
pub const FB_REGION_MAX_NAME_LEN: usize = 100;
/// The longest slot name, in bytes.
pub const FB_REGION_MAX_SLOT_NAME_LEN: usize = 64;
/// The layout version this library reads and writes (a region of another version is
/// refused with `FB_ERR_REGION_VERSION`).
pub const FB_REGION_LAYOUT_VERSION: u32 = 2;
/// The least time between two automatic reclaims of dead processes' permits on one
/// bulkhead (100 ms, in nanoseconds).
pub const FB_REGION_REAP_INTERVAL_NS: u64 = 100_000_000u64;
/// Processes whose bulkhead permits one region bulkhead tracks at once; permits of further
/// processes are granted untracked (not reclaimed if their process dies).
pub const FB_REGION_BULKHEAD_OWNERS: u32 = 64;
/// Permits one region bulkhead handle tracks at once in one process; further ones are
/// granted untracked.
pub const FB_REGION_BULKHEAD_TRACKED_PER_HANDLE: u32 = 1024;

const _: () = {
    use core_fb::shm as s;
    assert!(FB_REGION_DEFAULT_CAPACITY == s::DEFAULT_CAPACITY);
    assert!(FB_REGION_MAX_CAPACITY == s::MAX_CAPACITY);
    assert!(FB_REGION_MAX_NAME_LEN == s::MAX_REGION_NAME_LEN);
    assert!(FB_REGION_MAX_SLOT_NAME_LEN == s::MAX_SLOT_NAME_LEN);
    assert!(FB_REGION_LAYOUT_VERSION == s::LAYOUT_VERSION);
    assert!(FB_REGION_REAP_INTERVAL_NS == s::REAP_INTERVAL_NS);
    assert!(FB_REGION_BULKHEAD_OWNERS as usize == s::OWNERS);
    assert!(FB_REGION_BULKHEAD_TRACKED_PER_HANDLE == crate::permits::TRACKED);
};

/// How to open a region; start from `fb_region_options_default()`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct fb_region_options {
    /// The directory of the region file, NUL-terminated; NULL: `/dev/shm`. Read during the
    /// call only. Every process must give the same directory to share a region.
    pub dir: *const c_char,
    /// Slots of a region this call creates, 1..=`FB_REGION_MAX_CAPACITY` (each takes 2 KiB
    /// of the file). An existing region keeps the capacity it was made with. Default
    /// `FB_REGION_DEFAULT_CAPACITY`.
    pub capacity: u32,
    /// Create the region if it does not exist (default true); false: `FB_ERR_REGION_NOT_FOUND`.
    pub create: bool,
    /// How long to wait for another live process that is initialising a slot, in
    /// nanoseconds (default 2 s); then `FB_ERR_REGION_SLOT_BUSY`.
    pub init_timeout_ns: u64,
}

/// About an open region, from `fb_region_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct fb_region_stats {
    /// Its number of slots.
    pub capacity: u32,
    /// Whether the `fb_region_open` that made this handle created the region file.
    pub created: bool,
}

/// What a slot of a region holds (`fb_region_slot.kind`).
pub type fb_slot_kind = u32;
/// A breaker on a count window (`fb_region_slot.breaker` is its configuration).
pub const FB_SLOT_BREAKER_COUNT: fb_slot_kind = 1;
/// A breaker on a time window (`fb_region_slot.breaker`).
pub const FB_SLOT_BREAKER_TIME: fb_slot_kind = 2;
/// A token bucket (`fb_region_slot.bucket`).
pub const FB_SLOT_BUCKET: fb_slot_kind = 3;
/// A bulkhead (`fb_region_slot.bulkhead`).
pub const FB_SLOT_BULKHEAD: fb_slot_kind = 4;
/// Being initialised by process `fb_region_slot.pid` (no name or configuration yet).
pub const FB_SLOT_INITIALISING: fb_slot_kind = 5;
/// Not to be trusted; `fb_region_slot.detail` says why.
pub const FB_SLOT_CORRUPT: fb_slot_kind = 6;

/// One used slot of a region, as `fb_region_list` reports it. The strings are valid during
/// the callback only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct fb_region_slot {
    /// The slot's index in the region.
    pub index: u32,
    /// `FB_SLOT_*`.
    pub kind: fb_slot_kind,
    /// The slot's name (bytes that are not UTF-8 replaced by U+FFFD); `""` unless the kind
    /// is a primitive's. Never NULL.
    pub name: *const c_char,
    /// The configuration as text, for a primitive, or why the slot is corrupt. Never NULL.
    pub detail: *const c_char,
    /// The initialiser's pid, for `FB_SLOT_INITIALISING`; else 0.
    pub pid: u32,
    /// For `FB_SLOT_BREAKER_COUNT`/`_TIME`: the configuration its first opener gave, which
    /// `fb_region_breaker` attaches with. Else the default.
    pub breaker: fb_breaker_config,
    /// For `FB_SLOT_BUCKET`: its configuration. Else the default.
    pub bucket: fb_bucket_config,
    /// For `FB_SLOT_BULKHEAD`: its configuration. Else the default.
    pub bulkhead: fb_bulkhead_config,
}

/// Called by `fb_region_list` for each used slot, with the `user_data` given; return 0 to go
/// on, anything else to stop.
pub type fb_region_list_fn =
    Option<unsafe extern "C" fn(slot: *const fb_region_slot, user_data: *mut c_void) -> i32>;

/// The default options: `/dev/shm` (`dir` NULL), `FB_REGION_DEFAULT_CAPACITY` slots, create
/// if missing, wait up to 2 s for a slot's initialiser.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn fb_region_options_default() -> fb_region_options {
    let o = RegionOptions::new();
    let options = fb_region_options {
        dir: core::ptr::null(),
        capacity: o.capacity,
        create: o.create,
        init_timeout_ns: u64::try_from(o.init_timeout.as_nanos()).unwrap_or(u64::MAX),
    };
    guard_value("fb_region_options_default", options, || options)
}

/// A C string argument as `&str` (a name: must be UTF-8).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for `'a`.
unsafe fn name_arg<'a>(
    p: *const c_char,
    arg: &'static str,
    of: &'static str,
) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::Null(arg));
    }
    // SAFETY: non-NULL and NUL-terminated (contract).
    let bytes = unsafe { CStr::from_ptr(p) };
    bytes.to_str().map_err(|_| {
        Error::Region(RegionError::InvalidName {
            of,
            name: bytes.to_string_lossy().into_owned(),
            reason: "must be UTF-8",
        })
    })
}

/// The core's options from the C ones (NULL: the defaults).
///
/// # Safety
/// `options` is NULL or points to an `fb_region_options` whose `dir` is NULL or a
/// NUL-terminated string.
unsafe fn options_arg(options: *const fb_region_options) -> RegionOptions {
    let mut o = RegionOptions::new();
    // SAFETY: forwarded from this function's contract.
    if let Ok(c) = unsafe { handle::input(options, "options") } {
        o = o
            .capacity(c.capacity)
            .create(c.create)
            .init_timeout(Duration::from_nanos(c.init_timeout_ns));
        // SAFETY: forwarded from this function's contract.
        if let Some(dir) = unsafe { dir_arg(c.dir) } {
            o = o.dir(dir);
        }
    }
    o
}

/// A directory argument (NULL: none).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for `'a`.
unsafe fn dir_arg<'a>(p: *const c_char) -> Option<&'a Path> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated (contract).
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    Some(Path::new(OsStr::from_bytes(bytes)))
}

/// Opens region `name` (creating it unless `options->create` is false) and stores its
/// handle in `*out`; free it with `fb_region_free`.
///
/// A region is one file, `<dir>/fastbreaker.<name>` (`dir` defaults to `/dev/shm`, a
/// memory-backed file system), created with mode 0600: only processes of the same user on
/// the same host can open it, and it is lost on reboot (or when unlinked). Every process that
/// opens it by the same name and directory maps the same memory; breakers, buckets and
/// bulkheads are then found in it by name (`fb_region_breaker`, `fb_region_bucket`,
/// `fb_region_bulkhead`). The creator builds the file under a temporary name and links it
/// into place, so openers never see a half-made region and never wait for its creator.
///
/// `name`: 1..=`FB_REGION_MAX_NAME_LEN` bytes of UTF-8, without `/`, `..`, NUL or control
/// characters. `options` may be NULL (the defaults).
///
/// Returns `FB_OK`; `FB_ERR_NULL` (`name` or `out`); `FB_ERR_REGION_NAME`;
/// `FB_ERR_INVALID_ARGUMENT` (capacity out of range); `FB_ERR_REGION_NOT_FOUND` (no region
/// and `create` false); `FB_ERR_REGION_IO` (a system call failed: a missing directory, no
/// permission, no space or memory); `FB_ERR_REGION_UNTRUSTED` (another owner, a mode other
/// than 0600 or not a regular file); `FB_ERR_REGION_BAD_MAGIC`, `FB_ERR_REGION_VERSION`,
/// `FB_ERR_REGION_CHECKSUM`, `FB_ERR_REGION_LAYOUT`, `FB_ERR_REGION_CORRUPT_HEADER`,
/// `FB_ERR_REGION_TRUNCATED` (the file is not a region this build can use: nothing is
/// reused or repaired). `fb_last_error()` gives the details.
///
/// After `fork()` the child may go on using the handle and every handle from it (the
/// mapping is shared); processes in different pid namespaces must not share a region.
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `options` is NULL or points to an
/// `fb_region_options` whose `dir` is NULL or a NUL-terminated string; `out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn fb_region_open(
    name: *const c_char,
    options: *const fb_region_options,
    out: *mut *mut fb_region,
) -> fb_result {
    guard("fb_region_open", || {
        // SAFETY: the pointers obey this function's contract.
        let (name, out) = unsafe { (name_arg(name, "name", "region")?, handle::out(out, "out")?) };
        // SAFETY: `options` obeys this function's contract.
        let options = unsafe { options_arg(options) };
        let region = Region::open(name, &options)?;
        out.write(handle::new_region(Arc::new(region)));
        Ok(FB_OK)
    })
}

/// Frees a region handle. NULL is ignored.
///
/// The breakers, buckets and bulkheads taken from the region stay valid: each holds the
/// region open (the mapping is unmapped when the region handle and every handle from it are
/// freed). Freeing changes nothing in the region itself, which stays for other processes
/// (see `fb_region_unlink`).
///
/// Thread safety: must be the last call on this region handle, from any thread; handles
/// taken from it may go on being used on other threads.
///
/// # Safety
/// `region` is NULL or a live region handle that no other thread is using or will use.
#[no_mangle]
pub unsafe extern "C" fn fb_region_free(region: *mut fb_region) {
    // SAFETY: `region` obeys this function's contract.
    guard_value("fb_region_free", (), || unsafe {
        handle::free_region(region)
    })
}

/// Removes region `name`'s file from `dir` (NULL: `/dev/shm`).
///
/// Processes that have it open keep using the old region (the memory lives until the last
/// one unmaps it), while the next `fb_region_open` of the name creates a new, empty one: so
/// unlink only when no process should share state through it any more (at deployment,
/// after a layout version change, in tests).
///
/// Returns `FB_OK` (removed), `FB_ERR_REGION_NOT_FOUND` (there was none), `FB_ERR_NULL`
/// (`name`), `FB_ERR_REGION_NAME`, `FB_ERR_REGION_IO`.
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `dir` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn fb_region_unlink(name: *const c_char, dir: *const c_char) -> fb_result {
    guard("fb_region_unlink", || {
        // SAFETY: the pointers obey this function's contract.
        let (name, dir) = unsafe { (name_arg(name, "name", "region")?, dir_arg(dir)) };
        let mut options = RegionOptions::new();
        if let Some(dir) = dir {
            options = options.dir(dir);
        }
        if Region::unlink(name, &options)? {
            Ok(FB_OK)
        } else {
            Err(Error::Region(RegionError::NotFound {
                path: options.path(name)?,
            }))
        }
    })
}

/// Stores the region's capacity and whether this handle's open created it in `*info`.
///
/// Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT` (not a region handle).
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `region` is NULL or a live region handle; `info` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_region_info(
    region: *const fb_region,
    info: *mut fb_region_stats,
) -> fb_result {
    guard("fb_region_info", || {
        // SAFETY: the pointers obey this function's contract.
        let (r, out) = unsafe { (handle::region(region)?, handle::out(info, "info")?) };
        out.write(fb_region_stats {
            capacity: r.capacity(),
            created: r.created(),
        });
        Ok(FB_OK)
    })
}

/// The breaker in slot `name` of the region, as an `fb_breaker` handle that every
/// `fb_breaker_*` function takes; free it with `fb_breaker_free`.
///
/// The first process to ask for the slot initialises it with `*config` (a count or time
/// window, per `config->window_kind`); later ones attach to the same breaker, and must ask
/// for the same configuration: otherwise `FB_ERR_REGION_CONFIG_MISMATCH`, with both
/// configurations in `fb_last_error()`, or `FB_ERR_REGION_KIND_MISMATCH` for another
/// window kind (or another primitive). Configurations are compared as the breakers they
/// build (so `jitter_seed` `FB_RANDOM_SEED` matches `FB_RANDOM_SEED`, not a fixed seed).
/// Every process sees and moves the same state, counters and window; times are
/// `CLOCK_MONOTONIC` (`fb_now_ns()`), the same in every process, so give the `_at`
/// functions of a region breaker times from that clock only.
///
/// The listener (`fb_breaker_set_listener`) is this handle's: it hears of the changes
/// made through this handle, not of those made by other handles or processes. A probe of a
/// half-open breaker whose process dies is presumed hung after the open wait (as in one
/// process), so it never wedges the breaker.
///
/// Each call makes a new handle (several handles to one slot are fine); the handle keeps
/// the region mapped, so it stays valid after `fb_region_free(region)`. Not for
/// `fb_breaker_init`: region handles live on the heap.
///
/// Returns `FB_OK`; `FB_ERR_NULL`; `FB_ERR_INVALID_CONFIG` (the core's message);
/// `FB_ERR_REGION_NAME` (1..=`FB_REGION_MAX_SLOT_NAME_LEN` bytes of UTF-8, no NUL);
/// `FB_ERR_REGION_CONFIG_MISMATCH`; `FB_ERR_REGION_KIND_MISMATCH`; `FB_ERR_REGION_FULL`;
/// `FB_ERR_REGION_SLOT_BUSY` (try again); `FB_ERR_REGION_CORRUPT_SLOT`;
/// `FB_ERR_INVALID_ARGUMENT` (not a region handle).
///
/// Thread safety: safe from any thread, and from many processes at once on one slot (one
/// of them initialises it).
///
/// # Safety
/// `region` is NULL or a live region handle; `name` is NULL or a NUL-terminated string;
/// `config` is NULL or points to an `fb_breaker_config`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_region_breaker(
    region: *const fb_region,
    name: *const c_char,
    config: *const fb_breaker_config,
    out: *mut *mut fb_breaker,
) -> fb_result {
    guard("fb_region_breaker", || {
        // SAFETY: the pointers obey this function's contract.
        let (r, name, config, out) = unsafe {
            (
                handle::region(region)?,
                name_arg(name, "name", "slot")?,
                handle::input(config, "config")?,
                handle::out(out, "out")?,
            )
        };
        let core = config.to_core()?;
        let explain = |e: RegionError| match Error::from(e) {
            Error::Config(e) => Error::Config(core.explain(e)),
            e => e,
        };
        out.write(match core.window {
            WindowKind::Count => handle::new_shared_breaker_count(
                r.shared_breaker_count(name, &core.config)
                    .map_err(explain)?,
                &core,
            ),
            WindowKind::Time => handle::new_shared_breaker_time(
                r.shared_breaker_time(name, &core.config).map_err(explain)?,
                &core,
            ),
        });
        Ok(FB_OK)
    })
}

/// The token bucket in slot `name` of the region, as an `fb_bucket` handle (free it with
/// `fb_bucket_free`): one budget for every process, e.g. 100 per second across all workers.
/// Initialised full by the first process that asks for it, as `fb_region_breaker` (same
/// rules for names, configurations, lifetime and results).
///
/// Thread safety: safe from any thread and any process.
///
/// # Safety
/// `region` is NULL or a live region handle; `name` is NULL or a NUL-terminated string;
/// `config` is NULL or points to an `fb_bucket_config`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_region_bucket(
    region: *const fb_region,
    name: *const c_char,
    config: *const fb_bucket_config,
    out: *mut *mut fb_bucket,
) -> fb_result {
    guard("fb_region_bucket", || {
        // SAFETY: the pointers obey this function's contract.
        let (r, name, config, out) = unsafe {
            (
                handle::region(region)?,
                name_arg(name, "name", "slot")?,
                handle::input(config, "config")?,
                handle::out(out, "out")?,
            )
        };
        let bucket = r.shared_bucket(name, config.to_core())?;
        out.write(handle::new_shared_bucket(bucket));
        Ok(FB_OK)
    })
}

/// The bulkhead in slot `name` of the region, as an `fb_bulkhead` handle (free it with
/// `fb_bulkhead_free`): a limit on calls in flight across every process. Initialised by
/// the first process that asks for it, as `fb_region_breaker` (same rules for names,
/// configurations, lifetime and results).
///
/// Its permits record their owner process: the permits of a process that dies holding them
/// (SIGKILL, the OOM killer) are reclaimed when the bulkhead is found full, at most once per
/// `FB_REGION_REAP_INTERVAL_NS` across processes, so they come back at the first rejected
/// `fb_bulkhead_try_acquire` that much after the previous reclaim. A process is judged dead
/// by its pid and start time (a reused pid is not mistaken for it). Permits are beyond
/// tracking, and are not reclaimed, when more than `FB_REGION_BULKHEAD_OWNERS` processes
/// hold permits at once, or one handle holds more than
/// `FB_REGION_BULKHEAD_TRACKED_PER_HANDLE` in one process.
///
/// `fb_bulkhead_release` gives back a permit that this process took through this handle
/// (`FB_ERR_NOT_HELD` if it holds none through it), so release through the handle you
/// acquired with. Permits held when the process forks stay the parent's: the child cannot
/// release them. `fb_bulkhead_free` gives back the permits this process still holds through
/// the handle.
///
/// Thread safety: safe from any thread and any process.
///
/// # Safety
/// `region` is NULL or a live region handle; `name` is NULL or a NUL-terminated string;
/// `config` is NULL or points to an `fb_bulkhead_config`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_region_bulkhead(
    region: *const fb_region,
    name: *const c_char,
    config: *const fb_bulkhead_config,
    out: *mut *mut fb_bulkhead,
) -> fb_result {
    guard("fb_region_bulkhead", || {
        // SAFETY: the pointers obey this function's contract.
        let (r, name, config, out) = unsafe {
            (
                handle::region(region)?,
                name_arg(name, "name", "slot")?,
                handle::input(config, "config")?,
                handle::out(out, "out")?,
            )
        };
        let slot = r.shared_bulkhead(name, config.max_concurrent)?;
        out.write(handle::new_shared_bulkhead(SharedBulkhead::new(slot)));
        Ok(FB_OK)
    })
}

/// Calls `callback` with each used slot of the region, in index order, with `user_data`,
/// until it returns non-zero: for tools (a `region ls`). A slot holding a primitive is
/// checked as attaching to it would check it (`FB_SLOT_CORRUPT` if that fails). To read a
/// primitive's state and counters, attach to it with the listed configuration
/// (`fb_region_breaker(region, slot->name, &slot->breaker, &b)`, then
/// `fb_breaker_metrics`).
///
/// Returns `FB_OK`, `FB_ERR_NULL` (`region` or `callback`), `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from any thread (the listing is not a snapshot: slots made meanwhile
/// may or may not be listed).
///
/// # Safety
/// `region` is NULL or a live region handle; `callback` may be called with `user_data`; it
/// must return normally (no `longjmp`, no C++ exception) and must not free `region`.
#[no_mangle]
pub unsafe extern "C" fn fb_region_list(
    region: *const fb_region,
    callback: fb_region_list_fn,
    user_data: *mut c_void,
) -> fb_result {
    guard("fb_region_list", || {
        // SAFETY: `region` obeys this function's contract.
        let r = unsafe { handle::region(region)? };
        let callback = callback.ok_or(Error::Null("callback"))?;
        for entry in r.list() {
            let (slot, name, detail) = slot_to_c(&entry);
            let mut slot = slot;
            slot.name = name.as_ptr();
            slot.detail = detail.as_ptr();
            // SAFETY: the caller promised a function that may be called with `user_data`;
            // `slot` and its strings outlive the call.
            if unsafe { callback(&slot, user_data) } != 0 {
                break;
            }
        }
        Ok(FB_OK)
    })
}

fn c_string(s: String) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

/// The C form of a listed slot, with its name and detail (to be pointed to).
fn slot_to_c(entry: &SlotEntry) -> (fb_region_slot, CString, CString) {
    let mut slot = fb_region_slot {
        index: 0,
        kind: 0,
        name: core::ptr::null(),
        detail: core::ptr::null(),
        pid: 0,
        breaker: crate::breaker::fb_breaker_config_default(),
        bucket: crate::bucket::fb_bucket_config_default(),
        bulkhead: crate::bulkhead::fb_bulkhead_config_default(),
    };
    let (name, detail) = match entry {
        SlotEntry::Ready(info) => {
            slot.index = info.index;
            match info.config {
                SlotConfig::BreakerCount(c) => {
                    slot.kind = FB_SLOT_BREAKER_COUNT;
                    slot.breaker = fb_breaker_config::from_core(&c, WindowKind::Count);
                }
                SlotConfig::BreakerTime(c) => {
                    slot.kind = FB_SLOT_BREAKER_TIME;
                    slot.breaker = fb_breaker_config::from_core(&c, WindowKind::Time);
                }
                SlotConfig::Bucket(c) => {
                    slot.kind = FB_SLOT_BUCKET;
                    slot.bucket = fb_bucket_config {
                        rate: c.rate,
                        period_ns: c.period_ns,
                        burst: c.burst,
                    };
                }
                SlotConfig::Bulkhead { max_concurrent } => {
                    slot.kind = FB_SLOT_BULKHEAD;
                    slot.bulkhead = fb_bulkhead_config { max_concurrent };
                }
            }
            (info.name.clone(), info.config.to_string())
        }
        SlotEntry::Initialising { index, pid } => {
            slot.index = *index;
            slot.kind = FB_SLOT_INITIALISING;
            slot.pid = *pid;
            (String::new(), String::new())
        }
        SlotEntry::Corrupt { index, reason } => {
            slot.index = *index;
            slot.kind = FB_SLOT_CORRUPT;
            (String::new(), (*reason).to_string())
        }
        // A kind of entry of a newer core: reported as corrupt (not understood).
        _ => {
            slot.kind = FB_SLOT_CORRUPT;
            (String::new(), "unknown kind of slot entry".to_string())
        }
    };
    (slot, c_string(name), c_string(detail))
}
