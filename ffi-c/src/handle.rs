//! Every cast between a pointer the C side holds and a Rust object lives here.
//!
//! A handle points to a `Slot<T>`: a `#[repr(C)]` header of two `u32` (a tag naming the
//! concrete type `T`, and who owns the memory) followed by the object. The tag is written
//! once, before the handle is given out, and only read afterwards, so reading it from many
//! threads is fine. A breaker is one of two concrete types (the window is a type parameter
//! of the core's `CircuitBreaker`: `CountWindow1024` or `TimeWindow64`), which the tag also
//! selects, and carries its listener beside it.
//!
//! A handle from a region (`fb_region_breaker` & co.) is a `Slot` of its own tag holding a
//! `Shared<T>` (the core's handle that keeps the region mapped and dereferences to the
//! primitive in it), always on the heap; the functions below give the rest of the crate the
//! same references either way. The region handle itself (`fb_region`) is a `Slot` holding an
//! `Arc<Region>`.
//!
//! The rest of the crate sees only references: [`breaker`], [`bucket`], [`bulkhead`],
//! [`keyed`], [`region`], [`input`], [`out`] and [`inout`] check for NULL and turn the pointers into
//! `&T`. Uses `error`, `breaker_types`, `listener` and `permits` of this crate.

use core::ffi::c_void;
use core::mem::{align_of, size_of, MaybeUninit};

use std::sync::Arc;

use core_fb::shm::{Region, Shared};
use core_fb::{
    Bulkhead, CircuitBreaker, CountWindow1024, KeySlot, KeyedBuckets, TimeWindow64, TokenBucket,
};

use crate::breaker_types::{CoreConfig, WindowKind};
use crate::error::Error;
use crate::listener::Listener;
use crate::permits::SharedBulkhead;
use crate::{fb_adaptive, fb_breaker, fb_bucket, fb_bulkhead, fb_keyed, fb_region, fb_throttle};
use core_fb::{AdaptiveLimiter, AdaptiveThrottle, AnyRule};

/// What a handle points to.
#[repr(C)]
pub(crate) struct Slot<T> {
    /// Which concrete `T` follows (`TAG_*`).
    tag: u32,
    /// `HEAP` (made by `_new`, freed by `_free`) or `CALLER` (made by `_init` in storage the
    /// caller owns; `_free` leaves it alone).
    owner: u32,
    value: T,
}

/// A breaker and its state-change listener.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct BreakerCell<W> {
    pub(crate) breaker: CircuitBreaker<W>,
    pub(crate) listener: Listener,
    /// Whether the breaker was built detecting slow calls (then a record needs the call's
    /// duration; without, `fb_breaker_record` checks the settings in force, which a
    /// reconfiguration may have changed).
    pub(crate) detects_slow_calls: bool,
}

const HEAP: u32 = 0x4642_4850; // "FBHP"
const CALLER: u32 = 0x4642_4353; // "FBCS"

const TAG_COUNT: u32 = 0x1020;
const TAG_TIME: u32 = 0x1040;
const TAG_BUCKET: u32 = 0x2001;
const TAG_BULKHEAD: u32 = 0x3001;
const TAG_SHARED_COUNT: u32 = 0x1021;
const TAG_SHARED_TIME: u32 = 0x1041;
const TAG_SHARED_BUCKET: u32 = 0x2002;
const TAG_SHARED_BULKHEAD: u32 = 0x3002;
const TAG_REGION: u32 = 0x4001;
const TAG_KEYED: u32 = 0x5001;
const TAG_ADAPTIVE: u32 = 0x6001;
const TAG_THROTTLE: u32 = 0x6002;

/// A keyed table on the heap (`fb_keyed`).
pub(crate) type KeyedTable = KeyedBuckets<Box<[KeySlot]>>;

type CountCell = BreakerCell<CountWindow1024>;
type TimeCell = BreakerCell<TimeWindow64>;

/// A breaker in a region, with this handle's own listener (a listener is a C function of
/// this process: it hears of the changes made through this handle).
#[repr(C)]
pub(crate) struct SharedBreakerCell<W: 'static> {
    breaker: Shared<CircuitBreaker<W>>,
    listener: Listener,
    detects_slow_calls: bool,
}

type SharedCountCell = SharedBreakerCell<CountWindow1024>;
type SharedTimeCell = SharedBreakerCell<TimeWindow64>;

/// What the breaker functions use of a breaker handle, whoever holds the breaker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BreakerView<'a, W> {
    pub(crate) breaker: &'a CircuitBreaker<W>,
    pub(crate) listener: &'a Listener,
    /// Whether the breaker was built detecting slow calls (then a record needs the call's
    /// duration; without, `fb_breaker_record` checks the settings in force, which a
    /// reconfiguration may have changed).
    pub(crate) detects_slow_calls: bool,
}

impl<'a, W> BreakerView<'a, W> {
    fn of_cell(c: &'a BreakerCell<W>) -> Self {
        BreakerView {
            breaker: &c.breaker,
            listener: &c.listener,
            detects_slow_calls: c.detects_slow_calls,
        }
    }

    fn of_shared(c: &'a SharedBreakerCell<W>) -> Self {
        BreakerView {
            breaker: &c.breaker,
            listener: &c.listener,
            detects_slow_calls: c.detects_slow_calls,
        }
    }
}

/// A breaker behind a handle, by window type (each matched directly: the hot path is
/// monomorphized for both).
pub(crate) enum BreakerRef<'a> {
    Count(BreakerView<'a, CountWindow1024>),
    Time(BreakerView<'a, TimeWindow64>),
}

/// A bulkhead behind a handle: in this process, or in a region with owner-tracked permits.
pub(crate) enum BulkheadRef<'a> {
    Local(&'a Bulkhead),
    Shared(&'a SharedBulkhead),
}

impl BulkheadRef<'_> {
    /// The bulkhead itself (for its counters).
    pub(crate) fn bulkhead(&self) -> &Bulkhead {
        match self {
            BulkheadRef::Local(b) => b,
            BulkheadRef::Shared(s) => s.bulkhead(),
        }
    }
}

/// Runs `$body` with `$b` bound to the [`BreakerView`] behind a [`BreakerRef`], whatever its
/// window type.
macro_rules! with_breaker {
    ($r:expr, $b:ident => $body:expr) => {
        match $r {
            $crate::handle::BreakerRef::Count($b) => $body,
            $crate::handle::BreakerRef::Time($b) => $body,
        }
    };
}
pub(crate) use with_breaker;

/// Bytes of storage a breaker of `window` needs.
pub(crate) const fn breaker_storage_size(window: WindowKind) -> usize {
    match window {
        WindowKind::Count => size_of::<Slot<CountCell>>(),
        WindowKind::Time => size_of::<Slot<TimeCell>>(),
    }
}

#[cfg(test)]
/// The most storage and the largest alignment of any breaker type.
pub(crate) const fn breaker_storage_max() -> (usize, usize) {
    let (c, t) = (size_of::<Slot<CountCell>>(), size_of::<Slot<TimeCell>>());
    let (ca, ta) = (align_of::<Slot<CountCell>>(), align_of::<Slot<TimeCell>>());
    (if c > t { c } else { t }, if ca > ta { ca } else { ta })
}

#[cfg(test)]
/// Storage of a bucket handle.
pub(crate) const fn bucket_storage() -> (usize, usize) {
    (
        size_of::<Slot<TokenBucket>>(),
        align_of::<Slot<TokenBucket>>(),
    )
}

#[cfg(test)]
/// Storage of a bulkhead handle.
pub(crate) const fn bulkhead_storage() -> (usize, usize) {
    (size_of::<Slot<Bulkhead>>(), align_of::<Slot<Bulkhead>>())
}

/// Builds the breaker `c` asks for, checked by the core.
fn build<W>(
    c: &CoreConfig,
    new: fn(core_fb::BreakerConfig) -> Result<CircuitBreaker<W>, core_fb::ConfigError>,
) -> Result<BreakerCell<W>, Error> {
    let breaker = new(c.config).map_err(|e| Error::Config(c.explain(e)))?;
    Ok(BreakerCell {
        breaker,
        listener: Listener::new(),
        detects_slow_calls: c.config.slow_call_rate_threshold.is_some(),
    })
}

/// Checks `c` with the core (builds the breaker and drops it).
pub(crate) fn check_breaker(c: &CoreConfig) -> Result<(), Error> {
    match c.window {
        WindowKind::Count => build(c, CircuitBreaker::<CountWindow1024>::new).map(drop),
        WindowKind::Time => build(c, CircuitBreaker::<TimeWindow64>::new).map(drop),
    }
}

/// Builds the breaker `c` asks for on the heap.
pub(crate) fn new_breaker(c: &CoreConfig) -> Result<*mut fb_breaker, Error> {
    Ok(match c.window {
        WindowKind::Count => {
            boxed(TAG_COUNT, build(c, CircuitBreaker::<CountWindow1024>::new)?).cast()
        }
        WindowKind::Time => boxed(TAG_TIME, build(c, CircuitBreaker::<TimeWindow64>::new)?).cast(),
    })
}

/// Builds the breaker `c` asks for in the caller's `storage` of `size` bytes.
///
/// # Safety
/// `storage` is NULL or valid for writes of `size` bytes, and not in use as another object.
pub(crate) unsafe fn init_breaker(
    storage: *mut c_void,
    size: usize,
    c: &CoreConfig,
) -> Result<*mut fb_breaker, Error> {
    Ok(match c.window {
        WindowKind::Count => {
            let cell = build(c, CircuitBreaker::<CountWindow1024>::new)?;
            // SAFETY: forwarded from this function's contract.
            unsafe { place(storage, size, TAG_COUNT, cell) }?.cast()
        }
        WindowKind::Time => {
            let cell = build(c, CircuitBreaker::<TimeWindow64>::new)?;
            // SAFETY: forwarded from this function's contract.
            unsafe { place(storage, size, TAG_TIME, cell) }?.cast()
        }
    })
}

/// The breaker behind `p`.
///
/// # Safety
/// `p` is NULL or a handle from `fb_breaker_new`/`fb_breaker_init` not yet freed, whose
/// storage outlives `'a`.
#[inline(always)]
pub(crate) unsafe fn breaker<'a>(p: *const fb_breaker) -> Result<BreakerRef<'a>, Error> {
    if p.is_null() {
        return Err(Error::Null("breaker"));
    }
    // SAFETY: `p` is a live handle (contract), which begins with the u32 tag of its Slot.
    let tag = unsafe { p.cast::<u32>().read() };
    Ok(match tag {
        // SAFETY: the tag was written with a Slot of exactly this type (here and in the next
        // arms), which is alive for 'a (contract) and only accessed through shared refs.
        TAG_COUNT => BreakerRef::Count(BreakerView::of_cell(unsafe { value(p.cast()) })),
        // SAFETY: as above.
        TAG_TIME => BreakerRef::Time(BreakerView::of_cell(unsafe { value(p.cast()) })),
        // SAFETY: as above.
        TAG_SHARED_COUNT => BreakerRef::Count(BreakerView::of_shared(unsafe { value(p.cast()) })),
        // SAFETY: as above.
        TAG_SHARED_TIME => BreakerRef::Time(BreakerView::of_shared(unsafe { value(p.cast()) })),
        tag => return Err(not_a_handle("breaker", tag)),
    })
}

/// Frees a breaker made by `new_breaker`; ignores NULL and breakers in caller storage.
///
/// # Safety
/// `p` is NULL or a live breaker handle that no other thread uses any more.
pub(crate) unsafe fn free_breaker(p: *mut fb_breaker) {
    if p.is_null() {
        return;
    }
    // SAFETY: `p` is a live handle (contract), which begins with the u32 tag of its Slot.
    match unsafe { p.cast::<u32>().read() } {
        // SAFETY: the tag names the Slot's type; the handle is unused elsewhere (contract).
        TAG_COUNT => unsafe { release::<CountCell>(p.cast()) },
        // SAFETY: as above.
        TAG_TIME => unsafe { release::<TimeCell>(p.cast()) },
        // SAFETY: as above.
        TAG_SHARED_COUNT => unsafe { release::<SharedCountCell>(p.cast()) },
        // SAFETY: as above.
        TAG_SHARED_TIME => unsafe { release::<SharedTimeCell>(p.cast()) },
        _ => {}
    }
}

/// Moves a bucket to the heap.
pub(crate) fn new_bucket(value: TokenBucket) -> *mut fb_bucket {
    boxed(TAG_BUCKET, value).cast()
}

/// Places a bucket in the caller's storage.
///
/// # Safety
/// As [`init_breaker`].
pub(crate) unsafe fn init_bucket(
    storage: *mut c_void,
    size: usize,
    value: TokenBucket,
) -> Result<*mut fb_bucket, Error> {
    // SAFETY: forwarded from this function's contract.
    unsafe { place(storage, size, TAG_BUCKET, value) }.map(|p| p.cast())
}

/// The bucket behind `p`.
///
/// # Safety
/// As [`breaker`], for bucket handles.
#[inline(always)]
pub(crate) unsafe fn bucket<'a>(p: *const fb_bucket) -> Result<&'a TokenBucket, Error> {
    if p.is_null() {
        return Err(Error::Null("bucket"));
    }
    // SAFETY: `p` is a live handle (contract), which begins with the u32 tag of its Slot.
    match unsafe { p.cast::<u32>().read() } {
        // SAFETY: the tag was written with a Slot of exactly this type (here and in the next
        // arm), alive for 'a (contract) and only accessed through shared refs.
        TAG_BUCKET => Ok(unsafe { value::<TokenBucket>(p.cast()) }),
        // SAFETY: as above; the `Shared` keeps the region mapped while the handle lives.
        TAG_SHARED_BUCKET => Ok(unsafe { value::<Shared<TokenBucket>>(p.cast()) }),
        tag => Err(not_a_handle("bucket", tag)),
    }
}

/// Frees a bucket made by `new_bucket`; ignores NULL and buckets in caller storage.
///
/// # Safety
/// As [`free_breaker`], for bucket handles.
pub(crate) unsafe fn free_bucket(p: *mut fb_bucket) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        free_either::<TokenBucket, Shared<TokenBucket>>(p.cast(), TAG_BUCKET, TAG_SHARED_BUCKET)
    }
}

/// Moves a bulkhead to the heap.
pub(crate) fn new_bulkhead(value: Bulkhead) -> *mut fb_bulkhead {
    boxed(TAG_BULKHEAD, value).cast()
}

/// Places a bulkhead in the caller's storage.
///
/// # Safety
/// As [`init_breaker`].
pub(crate) unsafe fn init_bulkhead(
    storage: *mut c_void,
    size: usize,
    value: Bulkhead,
) -> Result<*mut fb_bulkhead, Error> {
    // SAFETY: forwarded from this function's contract.
    unsafe { place(storage, size, TAG_BULKHEAD, value) }.map(|p| p.cast())
}

/// The bulkhead behind `p`.
///
/// # Safety
/// As [`breaker`], for bulkhead handles.
#[inline(always)]
pub(crate) unsafe fn bulkhead<'a>(p: *const fb_bulkhead) -> Result<BulkheadRef<'a>, Error> {
    if p.is_null() {
        return Err(Error::Null("bulkhead"));
    }
    // SAFETY: `p` is a live handle (contract), which begins with the u32 tag of its Slot.
    match unsafe { p.cast::<u32>().read() } {
        // SAFETY: the tag was written with a Slot of exactly this type (here and in the next
        // arm), alive for 'a (contract) and only accessed through shared refs.
        TAG_BULKHEAD => Ok(BulkheadRef::Local(unsafe { value::<Bulkhead>(p.cast()) })),
        // SAFETY: as above.
        TAG_SHARED_BULKHEAD => Ok(BulkheadRef::Shared(unsafe {
            value::<SharedBulkhead>(p.cast())
        })),
        tag => Err(not_a_handle("bulkhead", tag)),
    }
}

/// Frees a bulkhead made by `new_bulkhead`; ignores NULL and bulkheads in caller storage.
///
/// # Safety
/// As [`free_breaker`], for bulkhead handles.
pub(crate) unsafe fn free_bulkhead(p: *mut fb_bulkhead) {
    // SAFETY: forwarded from this function's contract.
    unsafe { free_either::<Bulkhead, SharedBulkhead>(p.cast(), TAG_BULKHEAD, TAG_SHARED_BULKHEAD) }
}

/// A breaker handle on the heap for a count-window breaker in a region.
pub(crate) fn new_shared_breaker_count(
    breaker: Shared<CircuitBreaker<CountWindow1024>>,
    c: &CoreConfig,
) -> *mut fb_breaker {
    boxed(TAG_SHARED_COUNT, shared_cell(breaker, c)).cast()
}

/// A breaker handle on the heap for a time-window breaker in a region.
pub(crate) fn new_shared_breaker_time(
    breaker: Shared<CircuitBreaker<TimeWindow64>>,
    c: &CoreConfig,
) -> *mut fb_breaker {
    boxed(TAG_SHARED_TIME, shared_cell(breaker, c)).cast()
}

fn shared_cell<W>(breaker: Shared<CircuitBreaker<W>>, c: &CoreConfig) -> SharedBreakerCell<W> {
    SharedBreakerCell {
        breaker,
        listener: Listener::new(),
        detects_slow_calls: c.config.slow_call_rate_threshold.is_some(),
    }
}

/// A bucket handle on the heap for a bucket in a region.
pub(crate) fn new_shared_bucket(bucket: Shared<TokenBucket>) -> *mut fb_bucket {
    boxed(TAG_SHARED_BUCKET, bucket).cast()
}

/// A bulkhead handle on the heap for a bulkhead in a region.
pub(crate) fn new_shared_bulkhead(bulkhead: SharedBulkhead) -> *mut fb_bulkhead {
    boxed(TAG_SHARED_BULKHEAD, bulkhead).cast()
}

/// A region handle on the heap.
pub(crate) fn new_region(region: Arc<Region>) -> *mut fb_region {
    boxed(TAG_REGION, region).cast()
}

/// The region behind `p`.
///
/// # Safety
/// As [`breaker`], for region handles.
pub(crate) unsafe fn region<'a>(p: *const fb_region) -> Result<&'a Arc<Region>, Error> {
    // SAFETY: forwarded from this function's contract.
    unsafe { single(p.cast(), TAG_REGION, "region") }
}

/// Frees a region handle; ignores NULL.
///
/// # Safety
/// As [`free_breaker`], for region handles.
pub(crate) unsafe fn free_region(p: *mut fb_region) {
    // SAFETY: forwarded from this function's contract.
    unsafe { free_single::<Arc<Region>>(p.cast(), TAG_REGION) }
}

/// A keyed table handle on the heap.
pub(crate) fn new_keyed(table: KeyedTable) -> *mut fb_keyed {
    boxed(TAG_KEYED, table).cast()
}

/// The keyed table behind `p`.
///
/// # Safety
/// As [`breaker`], for keyed table handles.
#[inline(always)]
pub(crate) unsafe fn keyed<'a>(p: *const fb_keyed) -> Result<&'a KeyedTable, Error> {
    // SAFETY: forwarded from this function's contract.
    unsafe { single(p.cast(), TAG_KEYED, "keyed") }
}

/// Frees a keyed table handle; ignores NULL.
///
/// # Safety
/// As [`free_breaker`], for keyed table handles.
pub(crate) unsafe fn free_keyed(p: *mut fb_keyed) {
    // SAFETY: forwarded from this function's contract.
    unsafe { free_single::<KeyedTable>(p.cast(), TAG_KEYED) }
}

/// An adaptive limiter handle on the heap.
pub(crate) fn new_adaptive(limiter: AdaptiveLimiter<AnyRule>) -> *mut fb_adaptive {
    boxed(TAG_ADAPTIVE, limiter).cast()
}

/// The adaptive limiter behind `p`.
///
/// # Safety
/// As [`breaker`], for adaptive limiter handles.
#[inline(always)]
pub(crate) unsafe fn adaptive<'a>(
    p: *const fb_adaptive,
) -> Result<&'a AdaptiveLimiter<AnyRule>, Error> {
    // SAFETY: forwarded from this function's contract.
    unsafe { single(p.cast(), TAG_ADAPTIVE, "adaptive") }
}

/// Frees an adaptive limiter handle; ignores NULL.
///
/// # Safety
/// As [`free_breaker`], for adaptive limiter handles.
pub(crate) unsafe fn free_adaptive(p: *mut fb_adaptive) {
    // SAFETY: forwarded from this function's contract.
    unsafe { free_single::<AdaptiveLimiter<AnyRule>>(p.cast(), TAG_ADAPTIVE) }
}

/// An adaptive throttle handle on the heap.
pub(crate) fn new_throttle(throttle: AdaptiveThrottle) -> *mut fb_throttle {
    boxed(TAG_THROTTLE, throttle).cast()
}

/// The adaptive throttle behind `p`.
///
/// # Safety
/// As [`breaker`], for throttle handles.
#[inline(always)]
pub(crate) unsafe fn throttle<'a>(p: *const fb_throttle) -> Result<&'a AdaptiveThrottle, Error> {
    // SAFETY: forwarded from this function's contract.
    unsafe { single(p.cast(), TAG_THROTTLE, "throttle") }
}

/// Frees a throttle handle; ignores NULL.
///
/// # Safety
/// As [`free_breaker`], for throttle handles.
pub(crate) unsafe fn free_throttle(p: *mut fb_throttle) {
    // SAFETY: forwarded from this function's contract.
    unsafe { free_single::<AdaptiveThrottle>(p.cast(), TAG_THROTTLE) }
}

/// A C input pointer as a reference.
///
/// # Safety
/// `p` is NULL or points to a valid, initialized `T` that outlives `'a`.
#[inline(always)]
pub(crate) unsafe fn input<'a, T>(p: *const T, name: &'static str) -> Result<&'a T, Error> {
    // SAFETY: forwarded from this function's contract; NULL becomes None.
    unsafe { p.as_ref() }.ok_or(Error::Null(name))
}

/// A C out-parameter as a place to write a `T` to.
///
/// # Safety
/// `p` is NULL or valid for writes of one `T`, aligned, and not accessed by anyone else
/// until the call returns.
#[inline(always)]
pub(crate) unsafe fn out<'a, T>(
    p: *mut T,
    name: &'static str,
) -> Result<&'a mut MaybeUninit<T>, Error> {
    // SAFETY: forwarded from this function's contract (MaybeUninit: the target may hold
    // garbage); NULL becomes None.
    unsafe { p.cast::<MaybeUninit<T>>().as_mut() }.ok_or(Error::Null(name))
}

/// A C in-out pointer as a mutable reference.
///
/// # Safety
/// `p` is NULL or points to a valid, initialized `T`, aligned, and not accessed by anyone
/// else until the call returns.
#[inline(always)]
pub(crate) unsafe fn inout<'a, T>(p: *mut T, name: &'static str) -> Result<&'a mut T, Error> {
    // SAFETY: forwarded from this function's contract; NULL becomes None.
    unsafe { p.as_mut() }.ok_or(Error::Null(name))
}

/// An optional C out-parameter (NULL: the caller does not want the value).
///
/// # Safety
/// As [`out`].
#[inline(always)]
pub(crate) unsafe fn out_opt<'a, T>(p: *mut T) -> Option<&'a mut MaybeUninit<T>> {
    // SAFETY: forwarded from this function's contract; NULL becomes None.
    unsafe { p.cast::<MaybeUninit<T>>().as_mut() }
}

// ----- internals -----

fn boxed<T>(tag: u32, value: T) -> *mut Slot<T> {
    Box::into_raw(Box::new(Slot {
        tag,
        owner: HEAP,
        value,
    }))
}

/// Writes `value` into the caller's storage.
///
/// # Safety
/// `storage` is NULL or valid for writes of `size` bytes and not in use as another object.
unsafe fn place<T>(
    storage: *mut c_void,
    size: usize,
    tag: u32,
    value: T,
) -> Result<*mut Slot<T>, Error> {
    let (need, align) = (size_of::<Slot<T>>(), align_of::<Slot<T>>());
    if storage.is_null() {
        return Err(Error::Null("storage"));
    }
    if (storage as usize) % align != 0 || size < need {
        return Err(Error::Buffer {
            size,
            need,
            align,
            misaligned: (storage as usize) % align != 0,
        });
    }
    let p = storage.cast::<Slot<T>>();
    // SAFETY: `p` is non-NULL and aligned for Slot<T> (checked), and valid for writes of
    // `size >= size_of::<Slot<T>>()` bytes that nothing else uses (contract).
    unsafe {
        p.write(Slot {
            tag,
            owner: CALLER,
            value,
        })
    };
    Ok(p)
}

/// The object of a handle whose type is `T`.
///
/// # Safety
/// `p` points to a live `Slot<T>` that outlives `'a`, only accessed through shared
/// references.
#[inline(always)]
unsafe fn value<'a, T>(p: *const Slot<T>) -> &'a T {
    // SAFETY: forwarded from this function's contract.
    unsafe { &(*p).value }
}

/// The object of a single-type handle, after checking its tag.
///
/// # Safety
/// `p` is NULL or a live handle whose Slot outlives `'a`; if its tag is `tag`, its type is
/// `Slot<T>`.
#[inline(always)]
unsafe fn single<'a, T>(p: *const Slot<T>, tag: u32, name: &'static str) -> Result<&'a T, Error> {
    if p.is_null() {
        return Err(Error::Null(name));
    }
    // SAFETY: `p` is a live handle (contract), which begins with the u32 tag of its Slot.
    let found = unsafe { p.cast::<u32>().read() };
    if found != tag {
        return Err(not_a_handle(name, found));
    }
    // SAFETY: the tag matches, so `p` is a live Slot<T> (contract).
    Ok(unsafe { value(p) })
}

/// Frees a single-type handle if it was made on the heap.
///
/// # Safety
/// `p` is NULL or a live handle that no other thread uses any more; if its tag is `tag`,
/// its type is `Slot<T>`.
unsafe fn free_single<T>(p: *mut Slot<T>, tag: u32) {
    if p.is_null() {
        return;
    }
    // SAFETY: `p` is a live handle (contract), which begins with the u32 tag of its Slot.
    if unsafe { p.cast::<u32>().read() } == tag {
        // SAFETY: the tag matches; the handle is unused elsewhere (contract).
        unsafe { release(p) }
    }
}

/// Frees a handle of one of two types (by its tag) if it was made on the heap.
///
/// # Safety
/// `p` is NULL or a live handle that no other thread uses any more; if its tag is `tag_a`,
/// its type is `Slot<A>`, if `tag_b`, `Slot<B>`.
unsafe fn free_either<A, B>(p: *mut Slot<A>, tag_a: u32, tag_b: u32) {
    if p.is_null() {
        return;
    }
    // SAFETY: `p` is a live handle (contract), which begins with the u32 tag of its Slot.
    let tag = unsafe { p.cast::<u32>().read() };
    if tag == tag_a {
        // SAFETY: the tag names the Slot's type; the handle is unused elsewhere (contract).
        unsafe { release(p) }
    } else if tag == tag_b {
        // SAFETY: as above.
        unsafe { release(p.cast::<Slot<B>>()) }
    }
}

/// Drops a Slot made by `boxed`, or does nothing to one in caller storage.
///
/// # Safety
/// `p` is a live `Slot<T>` that no other thread uses any more.
unsafe fn release<T>(p: *mut Slot<T>) {
    // SAFETY: `p` is a live Slot<T> (contract).
    let owner = unsafe { (*p).owner };
    if owner == HEAP {
        // SAFETY: HEAP slots come from Box::into_raw in `boxed` with this very type (the tag
        // decided T), and nobody uses the handle any more. The tag is cleared first so that
        // a stale handle is more likely to be caught than misread.
        unsafe {
            (*p).tag = 0;
            drop(Box::from_raw(p));
        }
    }
}

#[cold]
fn not_a_handle(name: &'static str, tag: u32) -> Error {
    Error::Invalid(
        name,
        tag.into(),
        "not a live handle of this kind (its tag is wrong)",
    )
}
