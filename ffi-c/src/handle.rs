//! Every cast between a pointer the C side holds and a Rust object lives here.
//!
//! A handle points to a `Slot<T>`: a `#[repr(C)]` header of two `u32` (a tag naming the
//! concrete type `T`, and who owns the memory) followed by the object. The tag is written
//! once, before the handle is given out, and only read afterwards, so reading it from many
//! threads is fine. Breakers come in several concrete types (the window is a type
//! parameter of the core's `CircuitBreaker`), so the tag also selects the type to cast to.
//!
//! The rest of the crate sees only references: [`breaker`], [`bucket`], [`bulkhead`],
//! [`input`] and [`out`] check for NULL and turn the pointers into `&T`.

use core::ffi::c_void;
use core::mem::{align_of, size_of, MaybeUninit};

use core_fb::{
    BreakerConfig, Bulkhead, CircuitBreaker, ConfigError, CountWindow, TimeWindow, TokenBucket,
};

use crate::breaker::AnyBreaker;
use crate::breaker_types::{FB_MAX_WINDOW_BUCKETS, FB_MAX_WINDOW_SIZE};
use crate::error::Error;

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

/// What a handle points to.
#[repr(C)]
pub(crate) struct Slot<T> {
    /// Which concrete `T` follows (`TAG_*`, or a bucket count for time-window breakers).
    tag: u32,
    /// `HEAP` (made by `_new`, freed by `_free`) or `CALLER` (made by `_init` in storage the
    /// caller owns; `_free` leaves it alone).
    owner: u32,
    value: T,
}

const HEAP: u32 = 0x4642_4850; // "FBHP"
const CALLER: u32 = 0x4642_4353; // "FBCS"

// Breakers on a time window of B buckets are tagged B (1..=FB_MAX_WINDOW_BUCKETS).
const TAG_COUNT64: u32 = 0x1002;
const TAG_COUNT256: u32 = 0x1008;
const TAG_COUNT1024: u32 = 0x1020;
const TAG_BUCKET: u32 = 0x2001;
const TAG_BULKHEAD: u32 = 0x3001;

// The literal list in `match_time_window!` and `breaker_storage_max` are written for these.
const _: () = assert!(FB_MAX_WINDOW_BUCKETS == 64 && FB_MAX_WINDOW_SIZE == 1024);

/// Runs `$body` with `$W` standing for `TimeWindow<B>` where `B == $buckets`, for every
/// `B` in 1..=64 (the core's time window has its bucket count as a const parameter).
macro_rules! match_time_window {
    ($buckets:expr, $W:ident => $body:expr, _ => $fallback:expr) => {
        match_time_window!(@arms $buckets, $W, $body, $fallback;
            1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30
            31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57
            58 59 60 61 62 63 64)
    };
    (@arms $buckets:expr, $W:ident, $body:expr, $fallback:expr; $($b:literal)*) => {
        match $buckets {
            $( $b => {
                type $W = TimeWindow<$b>;
                $body
            } )*
            _ => $fallback,
        }
    };
}

/// Runs `$body` with `$W` standing for the window type of the breaker tagged `$tag`.
macro_rules! match_breaker_window {
    ($tag:expr, $W:ident => $body:expr, _ => $fallback:expr) => {
        match $tag {
            TAG_COUNT64 => {
                type $W = CountWindow<2>;
                $body
            }
            TAG_COUNT256 => {
                type $W = CountWindow<8>;
                $body
            }
            TAG_COUNT1024 => {
                type $W = CountWindow<32>;
                $body
            }
            tag => match_time_window!(tag, $W => $body, _ => $fallback),
        }
    };
}

/// The concrete breaker type a configuration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BreakerKind(u32);

impl BreakerKind {
    /// A count window of `size` outcomes (1..=1024), in the smallest type that holds it.
    pub(crate) fn count(size: u32) -> Option<Self> {
        match size {
            1..=64 => Some(BreakerKind(TAG_COUNT64)),
            65..=256 => Some(BreakerKind(TAG_COUNT256)),
            257..=FB_MAX_WINDOW_SIZE => Some(BreakerKind(TAG_COUNT1024)),
            _ => None,
        }
    }

    /// A time window of `buckets` buckets (1..=64).
    pub(crate) fn time(buckets: u32) -> Option<Self> {
        (1..=FB_MAX_WINDOW_BUCKETS)
            .contains(&buckets)
            .then_some(BreakerKind(buckets))
    }

    /// Whether a breaker of this kind can be built from `config` (builds one and drops it).
    pub(crate) fn check(self, config: BreakerConfig) -> Result<(), ConfigError> {
        match_breaker_window!(self.0, W => CircuitBreaker::<W>::new(config).map(drop),
            _ => unreachable!("BreakerKind holds a valid tag"))
    }

    /// Bytes of storage a breaker of this kind needs.
    pub(crate) fn storage_size(self) -> usize {
        match_breaker_window!(self.0, W => size_of::<Slot<CircuitBreaker<W>>>(), _ => 0)
    }

    #[cfg(test)]
    /// Alignment of storage a breaker of this kind needs.
    pub(crate) fn storage_align(self) -> usize {
        match_breaker_window!(self.0, W => align_of::<Slot<CircuitBreaker<W>>>(), _ => 0)
    }
}

#[cfg(test)]
/// The breaker type with the most storage, and the largest alignment of any breaker type.
pub(crate) const fn breaker_storage_max() -> (usize, usize) {
    let size = size_of::<Slot<CircuitBreaker<TimeWindow<64>>>>();
    let align = align_of::<Slot<CircuitBreaker<TimeWindow<64>>>>();
    (size, align)
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

/// A breaker behind a handle. Count windows are matched directly (the hot path is
/// monomorphized); time windows, of which there are 64 types, go through a vtable.
pub(crate) enum BreakerRef<'a> {
    Count64(&'a CircuitBreaker<CountWindow<2>>),
    Count256(&'a CircuitBreaker<CountWindow<8>>),
    Count1024(&'a CircuitBreaker<CountWindow<32>>),
    Time(&'a dyn AnyBreaker),
}

/// Builds the breaker of `kind` on the heap.
pub(crate) fn new_breaker(
    kind: BreakerKind,
    config: BreakerConfig,
) -> Result<*mut fb_breaker, Error> {
    match_breaker_window!(kind.0, W => {
        let value = CircuitBreaker::<W>::new(config)?;
        Ok(boxed(kind.0, value).cast())
    }, _ => unreachable!("BreakerKind holds a valid tag"))
}

/// Builds the breaker of `kind` in the caller's `storage` of `size` bytes.
///
/// # Safety
/// `storage` is NULL or valid for writes of `size` bytes, and not in use as another object.
pub(crate) unsafe fn init_breaker(
    storage: *mut c_void,
    size: usize,
    kind: BreakerKind,
    config: BreakerConfig,
) -> Result<*mut fb_breaker, Error> {
    match_breaker_window!(kind.0, W => {
        let value = CircuitBreaker::<W>::new(config)?;
        // SAFETY: forwarded from this function's contract.
        unsafe { place(storage, size, kind.0, value) }.map(|p| p.cast())
    }, _ => unreachable!("BreakerKind holds a valid tag"))
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
        // two arms), which is alive for 'a (contract) and only accessed through shared refs.
        TAG_COUNT64 => BreakerRef::Count64(unsafe { value(p.cast()) }),
        // SAFETY: as above.
        TAG_COUNT256 => BreakerRef::Count256(unsafe { value(p.cast()) }),
        // SAFETY: as above.
        TAG_COUNT1024 => BreakerRef::Count1024(unsafe { value(p.cast()) }),
        tag => BreakerRef::Time(match_time_window!(tag, W => {
            // SAFETY: as above, for the time-window type the tag names.
            let b: &CircuitBreaker<W> = unsafe { value(p.cast()) };
            b as &dyn AnyBreaker
        }, _ => return Err(not_a_handle("breaker", tag)))),
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
    let tag = unsafe { p.cast::<u32>().read() };
    match_breaker_window!(tag, W => {
        // SAFETY: the tag names the Slot's type; the handle is unused elsewhere (contract).
        unsafe { release::<CircuitBreaker<W>>(p.cast()) }
    }, _ => ())
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
    // SAFETY: forwarded from this function's contract.
    unsafe { single(p.cast(), TAG_BUCKET, "bucket") }
}

/// Frees a bucket made by `new_bucket`; ignores NULL and buckets in caller storage.
///
/// # Safety
/// As [`free_breaker`], for bucket handles.
pub(crate) unsafe fn free_bucket(p: *mut fb_bucket) {
    // SAFETY: forwarded from this function's contract.
    unsafe { free_single::<TokenBucket>(p.cast(), TAG_BUCKET) }
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
pub(crate) unsafe fn bulkhead<'a>(p: *const fb_bulkhead) -> Result<&'a Bulkhead, Error> {
    // SAFETY: forwarded from this function's contract.
    unsafe { single(p.cast(), TAG_BULKHEAD, "bulkhead") }
}

/// Frees a bulkhead made by `new_bulkhead`; ignores NULL and bulkheads in caller storage.
///
/// # Safety
/// As [`free_breaker`], for bulkhead handles.
pub(crate) unsafe fn free_bulkhead(p: *mut fb_bulkhead) {
    // SAFETY: forwarded from this function's contract.
    unsafe { free_single::<Bulkhead>(p.cast(), TAG_BULKHEAD) }
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
