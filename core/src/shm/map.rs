//! The one module of the crate that uses unsafe code: the mapping, primitives placed in it,
//! and references into it.
//!
//! Everything in the mapping is accessed as atomics (the header and slot metadata, as
//! `AtomicU64` words) or as a primitive placed in a slot's area. Primitives are only
//! written in place while their slot is claimed by this process (claim word
//! `INITIALISING | our pid`, won by a CAS in [`Mapping::claim`]), and references to them are
//! only handed out once the slot is ready; a ready slot is never written in place again.
#![allow(unsafe_code)]

use super::layout::{slot_offset, AREA_SIZE, HEADER_SIZE, HEADER_WORDS, META_SIZE, META_WORDS};
use super::layout::{INITIALISING, READY};
use super::Region;
use crate::sync::Ordering;
use crate::{Bulkhead, CircuitBreaker, CountWindow1024, TimeWindow64, TokenBucket};
use core::mem::{align_of, needs_drop, size_of};
use core::ptr::NonNull;
use portable_atomic::AtomicU64;
use rustix::mm::{MapFlags, ProtFlags};
use std::os::fd::AsFd;
use std::sync::Arc;

/// Types that may be placed in and viewed from a slot's area.
///
/// # Safety
/// Every bit pattern must be a valid value of the type (all fields, recursively, are
/// integers or atomic integers: no `bool`, enum, reference or pointer), the type must have
/// no drop glue and be `Sync`, and it must fit the area with an alignment of at most 64.
pub(crate) unsafe trait InPlace: Sized + Sync {}

// SAFETY: `TokenBucket` is an `AtomicU64` and four integers.
unsafe impl InPlace for TokenBucket {}
// SAFETY: `Bulkhead` is atomics and one `u32`.
unsafe impl InPlace for Bulkhead {}
// SAFETY: a `Bulkhead` (as above), an `AtomicU64` and an array of pairs of `AtomicU64`s.
unsafe impl InPlace for super::owners::BulkheadSlot {}
// SAFETY: a breaker is atomics, `Settings` (integers only: `random_seed` is a `u8` for this
// reason), and a window of atomics and integers (`CountWindow`: `u32` and `AtomicU32`s;
// `TimeWindow`: `u64`, `u32` and `AtomicU64`s).
unsafe impl InPlace for CircuitBreaker<CountWindow1024> {}
// SAFETY: as above.
unsafe impl InPlace for CircuitBreaker<TimeWindow64> {}
// SAFETY: `KeySlot` is `repr(C, align(64))`: `AtomicU64` words only (tag, TAT, length, lock,
// key) and trailing padding that is never read.
unsafe impl InPlace for crate::KeySlot {}
// SAFETY: `KeyCounters` is `repr(C)` and four `AtomicU64` words.
unsafe impl InPlace for crate::keyed::KeyCounters {}
// SAFETY: `CounterSlot` is `repr(C)` and `AtomicU64` words only.
unsafe impl InPlace for crate::CounterSlot {}
// SAFETY: an `AtomicU64` is a 64-bit word; any bits are valid (a counter table's log).
// (Under `cfg(loom)` this names loom's atomic, as `KeySlot` holds loom's atomics: those
// builds compile the mapping but their models never place anything in one.)
unsafe impl InPlace for crate::sync::AtomicU64 {}

const fn fits<T>() -> bool {
    size_of::<T>() <= AREA_SIZE && align_of::<T>() <= 64 && !needs_drop::<T>()
}
const _: () = {
    assert!(fits::<TokenBucket>());
    assert!(fits::<super::owners::BulkheadSlot>());
    assert!(fits::<Bulkhead>());
    assert!(fits::<CircuitBreaker<CountWindow1024>>());
    assert!(fits::<CircuitBreaker<TimeWindow64>>());
    // Processes share these words: an atomic emulated with a process-local lock would not
    // be atomic across processes.
    assert!(AtomicU64::is_always_lock_free());
    assert!(portable_atomic::AtomicU32::is_always_lock_free());
    assert!(align_of::<AtomicU64>() == 8 && size_of::<AtomicU64>() == 8);
};

/// Proof that this process won the claim of a slot (see [`Mapping::claim`]).
#[derive(Debug)]
pub(crate) struct Claimed {
    index: u32,
    pid: u32,
}

/// A shared read-write mapping of a region file, or of anonymous memory (for checking
/// region bytes). Its length is at least the header, and the caller checks every slot
/// index against the capacity; offsets are checked again here.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory accessed only through atomics and `InPlace`
// (`Sync`) types; the pointer is not tied to a thread.
unsafe impl Send for Mapping {}
// SAFETY: as above: `&Mapping` hands out only shared references to `Sync` data.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` shared, read-write. `len` must be at least the header and
    /// at most the file's length (the caller checked it against `fstat`).
    pub(crate) fn file<Fd: AsFd>(fd: Fd, len: usize) -> std::io::Result<Self> {
        assert!(len >= HEADER_SIZE);
        // SAFETY: a fresh mapping at an address the kernel picks: it aliases nothing of
        // ours. The file is at least `len` bytes (checked by the caller); a process that
        // truncates it later makes accesses fault (SIGBUS), which the docs state.
        let ptr = unsafe {
            rustix::mm::mmap(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        }?;
        Ok(Mapping {
            ptr: NonNull::new(ptr.cast()).ok_or(std::io::ErrorKind::Other)?,
            len,
        })
    }

    /// Anonymous private memory holding a copy of `bytes` (at least the header).
    pub(crate) fn copy_of(bytes: &[u8]) -> std::io::Result<Self> {
        assert!(bytes.len() >= HEADER_SIZE);
        // SAFETY: a fresh anonymous mapping at an address the kernel picks.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                bytes.len(),
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }?;
        let map = Mapping {
            ptr: NonNull::new(ptr.cast()).ok_or(std::io::ErrorKind::Other)?,
            len: bytes.len(),
        };
        // SAFETY: the mapping is `bytes.len()` bytes, fresh, and no reference into it
        // exists yet; `bytes` is a distinct allocation.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), map.ptr.as_ptr(), map.len) };
        Ok(map)
    }

    /// `N` atomic words at `offset`, if they lie within the mapping.
    fn words<const N: usize>(&self, offset: usize) -> &[AtomicU64; N] {
        let end = offset.checked_add(N * 8).expect("offset overflow");
        assert!(end <= self.len && offset % 8 == 0, "offset out of bounds");
        // SAFETY: in bounds (checked above), 8-aligned (the mapping is page-aligned and the
        // offset a multiple of 8), any bit pattern is a valid `AtomicU64`, and the memory
        // lives as long as `self` (unmapped on drop). All accesses to these words, in every
        // process, are atomic.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<[AtomicU64; N]>() }
    }

    /// `n` values of `T` from byte `offset` on (a keyed table's counters and slots), if
    /// they lie within the mapping.
    pub(crate) fn slice_at<T: InPlace>(&self, offset: usize, n: usize) -> &[T] {
        let end = n
            .checked_mul(size_of::<T>())
            .and_then(|bytes| offset.checked_add(bytes))
            .expect("size overflow");
        assert!(
            end <= self.len && offset % align_of::<T>() == 0 && align_of::<T>() <= 64,
            "values out of bounds"
        );
        // SAFETY: in bounds and aligned (checked above, against a page-aligned base); every
        // bit pattern is a valid `T` (`InPlace`), which is only accessed through atomics, in
        // every process; the memory lives as long as `self` (unmapped on drop).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr().add(offset).cast::<T>(), n) }
    }

    /// The header's words.
    pub(crate) fn header(&self) -> &[AtomicU64; HEADER_WORDS] {
        self.words(0)
    }

    /// Slot `index`'s metadata words (word 0 is the claim).
    pub(crate) fn meta(&self, index: u32) -> &[AtomicU64; META_WORDS] {
        self.words(slot_offset(index))
    }

    /// Tries to move slot `index`'s claim word from `current` to `INITIALISING | pid`.
    /// `current` must be an empty claim, or an initialising one whose owner is dead: the
    /// caller checks it. Whoever wins may write the slot in place.
    pub(crate) fn claim(&self, index: u32, current: u64, pid: u32) -> Option<Claimed> {
        let state = current & 0xFF;
        assert!(state != READY, "a ready slot is never claimed again");
        let mine = INITIALISING | (pid as u64) << 32;
        // Acquire on success: pairs with nothing written by a dead owner that we rely on
        // (the whole slot is rewritten); it orders our writes after the win.
        self.meta(index)[0]
            .compare_exchange(current, mine, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Claimed { index, pid })
    }

    /// Writes `value` into the claimed slot's area, then the metadata words (all but the
    /// claim), then publishes the slot as ready, and returns the reference.
    pub(crate) fn place<T: InPlace>(
        &self,
        claimed: Claimed,
        meta: &[u64; META_WORDS],
        value: T,
    ) -> &T {
        let offset = slot_offset(claimed.index) + META_SIZE;
        assert!(offset + AREA_SIZE <= self.len, "slot out of bounds");
        let words = self.meta(claimed.index);
        for (word, &v) in words.iter().zip(meta).skip(1) {
            word.store(v, Ordering::Relaxed);
        }
        let ptr = self.ptr.as_ptr().wrapping_add(offset).cast::<T>();
        // SAFETY: in bounds (checked above; `T` fits the area: `InPlace`), aligned (page-
        // aligned base, offsets multiples of 64, `align_of::<T>() <= 64`). No reference to
        // this area exists in any cooperating process: the slot's claim is ours
        // (`Claimed`), and references are only handed out for ready slots, which are never
        // claimed again. The old bytes need no drop (`InPlace`: no drop glue).
        unsafe { ptr.write(value) };
        // Release: pairs with the Acquire load of the claim word in `Region::find`
        // (and `view`'s callers): whoever sees READY sees the primitive and metadata.
        words[0].store(READY | (claimed.pid as u64) << 32, Ordering::Release);
        // SAFETY: as for `view`: written just above, valid, aligned, lives as long as `self`.
        unsafe { &*ptr }
    }

    /// The primitive in slot `index`'s area, as a `T`. The caller has loaded the claim
    /// word as READY with Acquire ordering.
    pub(crate) fn view<T: InPlace>(&self, index: u32) -> &T {
        let offset = slot_offset(index) + META_SIZE;
        assert!(offset + AREA_SIZE <= self.len, "slot out of bounds");
        // SAFETY: in bounds and aligned (as in `place`); every bit pattern is a valid `T`
        // (`InPlace`), so whatever the slot holds is a `T`; it is only mutated through
        // atomics once ready, and lives as long as `self`. Its settings are checked by the
        // caller before the reference leaves the region module.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<T>() }
    }
}

/// A primitive in a region, holding the region open: what a binding keeps in a handle
/// (`'static`, `Send`, `Sync` and `Clone`, no lifetime to carry across a language
/// boundary). Dereferences to the primitive. From the `Region::shared_*` methods.
pub struct Shared<T: 'static> {
    region: Arc<Region>,
    ptr: NonNull<T>,
}

impl<T> Shared<T> {
    /// `primitive` must have been handed out by `region` (it points into its mapping).
    pub(crate) fn new(region: &Arc<Region>, primitive: &T) -> Self {
        debug_assert!(region.map.contains(primitive));
        Shared {
            region: Arc::clone(region),
            ptr: NonNull::from(primitive),
        }
    }

    /// The region the primitive lives in.
    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }
}

impl<T> core::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `ptr` came from a reference into `region`'s mapping (`new`'s contract,
        // kept by its crate-private callers), which stays mapped while `region` lives, and
        // this holds the `Arc`. Only shared references are ever made to it.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            region: Arc::clone(&self.region),
            ptr: self.ptr,
        }
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Shared")
            .field("region", &self.region.name())
            .field("primitive", &**self)
            .finish()
    }
}

// SAFETY: a `Shared<T>` is an `Arc<Region>` (`Send + Sync`) and what amounts to a `&T`,
// which is `Send` and `Sync` when `T: Sync` (every `InPlace` type is).
unsafe impl<T: Sync> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Shared<T> {}

impl Mapping {
    /// Whether `value` lies within the mapping.
    fn contains<T>(&self, value: &T) -> bool {
        let start = self.ptr.as_ptr() as usize;
        let at = value as *const T as usize;
        at >= start && at + size_of::<T>() <= start + self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping of `len` bytes made in `file`/`copy_of`; every reference into
        // it borrows `self`, so none outlives this.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

extern "C" {
    /// POSIX (`<pthread.h>`; in glibc's libc since 2.34, in libpthread before, which std
    /// links).
    fn pthread_atfork(
        prepare: Option<unsafe extern "C" fn()>,
        parent: Option<unsafe extern "C" fn()>,
        child: Option<unsafe extern "C" fn()>,
    ) -> core::ffi::c_int;
}

/// Has `child` run in the child process after every later `fork` (`pthread_atfork`);
/// `false` if it could not be registered. `child` must be async-signal-safe (it runs in
/// the forked copy of a process that may have had other threads): stores to atomics only.
pub(crate) fn on_fork_child(child: extern "C" fn()) -> bool {
    let child = child as unsafe extern "C" fn();
    // SAFETY: `pthread_atfork` only records the three pointers (two null). `child` is a
    // `void (*)(void)` of this library that stays callable while its code is mapped (glibc
    // drops the handlers of a library it unloads); what it does in the child is the
    // caller's contract above.
    unsafe { pthread_atfork(None, None, Some(child)) == 0 }
}
