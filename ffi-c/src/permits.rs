//! The bulkhead behind a handle from `fb_region_bulkhead`: a bulkhead in a region whose
//! permits record their owner process (the core's `OwnedBulkhead`), so that the permits of a
//! process killed while holding them come back.
//!
//! The C API takes and gives back permits with no token (`fb_bulkhead_try_acquire`,
//! `fb_bulkhead_release`), while the core hands out one `RawOwnedPermit` per permit and takes
//! it back on release. So the handle keeps the raw permits it gave out in a small lock-free
//! bag: cells whose state word is `EMPTY`, or `BUSY`/`FULL` with the pid of the process that
//! filled it. A release takes a `FULL` cell of this process. The pid makes fork safe: a child
//! inherits a copy of the bag, but the parent's permits stay the parent's (the child cannot
//! release them, and a cell a parent thread was filling at `fork` is skipped for good). No
//! lock is ever waited for: each cell's `Mutex` is only touched by the thread that moved the
//! cell to `BUSY`, so `try_lock` always succeeds (the mutex only gives safe interior
//! mutability). Uses only the core.
//!
//! A process that holds more than [`TRACKED`] of one handle's permits at once gets the extra
//! ones untracked (from the plain bulkhead, counted in `untracked`): those are not reclaimed
//! if it dies, as the core's own untracked permits (its owner table full).

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use core_fb::binding::{bulkhead_release, bulkhead_try_acquire};
use core_fb::shm::{BulkheadSlot, RawOwnedPermit, Shared};
use core_fb::Bulkhead;

extern "C" {
    /// POSIX (`<pthread.h>`; in glibc's libc since 2.34, in libpthread before).
    fn pthread_atfork(
        prepare: Option<unsafe extern "C" fn()>,
        parent: Option<unsafe extern "C" fn()>,
        child: Option<unsafe extern "C" fn()>,
    ) -> i32;
}

/// This process's pid, once known (0: ask the kernel); cleared in a child after `fork` by
/// the hook [`forget_pid`]. `getpid` is a system call (glibc does not cache it), which costs
/// 50 ns on a plain Linux host and several hundred in some sandboxes: too much for a bulkhead.
static PID: AtomicU32 = AtomicU32::new(0);
/// 0: the fork hook is not installed; 1: being installed; 2: installed; 3: could not be.
/// No lock: a child forked mid-install sees 1 for good and only loses the cache.
static HOOK: AtomicU8 = AtomicU8::new(0);

unsafe extern "C" fn forget_pid() {
    PID.store(0, Ordering::Relaxed);
}

/// This process's pid, cached while the fork hook is installed. (A child made by a raw
/// `clone` system call, which runs no fork hooks, must not use region bulkheads it inherits.)
fn pid() -> u32 {
    let cached = PID.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    if HOOK
        .compare_exchange(0, 1, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        // SAFETY: `forget_pid` is a function of the expected type that may run in any
        // child after fork (it only stores to an atomic: async-signal-safe).
        let ok = unsafe { pthread_atfork(None, None, Some(forget_pid)) } == 0;
        HOOK.store(if ok { 2 } else { 3 }, Ordering::Relaxed);
    }
    let pid = std::process::id();
    if HOOK.load(Ordering::Relaxed) == 2 {
        PID.store(pid, Ordering::Relaxed);
    }
    pid
}

/// Owner-tracked permits one handle can hold at once in one process.
pub(crate) const TRACKED: u32 = 1024;

const EMPTY: u64 = 0;
const BUSY: u64 = 1;
const FULL: u64 = 2;

fn state(kind: u64, pid: u32) -> u64 {
    u64::from(pid) << 8 | kind
}

#[derive(Debug)]
struct Cell {
    /// `EMPTY`, or `pid << 8 | BUSY` / `pid << 8 | FULL`.
    state: AtomicU64,
    /// The raw permit, while `FULL`.
    permit: Mutex<Option<RawOwnedPermit>>,
}

impl Cell {
    /// Puts `value` in the cell (which the caller moved to `BUSY`).
    fn put(&self, value: Option<RawOwnedPermit>) -> Option<RawOwnedPermit> {
        match self.permit.try_lock() {
            Ok(mut p) => core::mem::replace(&mut *p, value),
            Err(std::sync::TryLockError::Poisoned(e)) => {
                core::mem::replace(&mut *e.into_inner(), value)
            }
            // Only the thread that holds the cell `BUSY` locks it: never reached.
            Err(std::sync::TryLockError::WouldBlock) => value,
        }
    }
}

/// A region bulkhead and the permits this handle gave out.
#[derive(Debug)]
pub(crate) struct SharedBulkhead {
    slot: Shared<BulkheadSlot>,
    cells: Box<[Cell]>,
    /// `pid << 32 | count`: permits taken untracked by process `pid` (another pid: none).
    untracked: AtomicU64,
}

impl SharedBulkhead {
    pub(crate) fn new(slot: Shared<BulkheadSlot>) -> Self {
        // Twice the limit: cells held by a parent at `fork` (dead weight in the child's
        // copy) or reserved by a losing acquire leave room for the rest.
        let n = slot
            .bulkhead()
            .max_concurrent()
            .saturating_mul(2)
            .min(TRACKED) as usize;
        let cells = (0..n)
            .map(|_| Cell {
                state: AtomicU64::new(EMPTY),
                permit: Mutex::new(None),
            })
            .collect();
        SharedBulkhead {
            slot,
            cells,
            untracked: AtomicU64::new(0),
        }
    }

    /// The bulkhead in the region.
    pub(crate) fn bulkhead(&self) -> &Bulkhead {
        self.slot.bulkhead()
    }

    /// Takes a permit counted as this process's (reaping dead owners' permits when full).
    pub(crate) fn try_acquire(&self) -> bool {
        let pid = pid();
        let Some(cell) = self.reserve(pid) else {
            return self.acquire_untracked(pid);
        };
        match self.slot.owned().try_acquire() {
            Ok(permit) => {
                cell.put(Some(permit.into_raw()));
                // Release: pairs with the Acquire CAS in `release`, which then sees the permit.
                cell.state.store(state(FULL, pid), Ordering::Release);
                true
            }
            Err(_) => {
                cell.state.store(EMPTY, Ordering::Release);
                false
            }
        }
    }

    /// An empty cell, moved to `BUSY` by this process.
    fn reserve(&self, pid: u32) -> Option<&Cell> {
        self.cells.iter().find(|c| {
            c.state.load(Ordering::Relaxed) == EMPTY
                && c.state
                    // Acquire: pairs with the Release store of EMPTY after the previous use.
                    .compare_exchange(
                        EMPTY,
                        state(BUSY, pid),
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
        })
    }

    fn acquire_untracked(&self, pid: u32) -> bool {
        if !bulkhead_try_acquire(self.bulkhead()) {
            return false;
        }
        let _ = self
            .untracked
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                let count = if (v >> 32) as u32 == pid {
                    v & 0xFFFF_FFFF
                } else {
                    0
                };
                Some(u64::from(pid) << 32 | (count + 1))
            });
        true
    }

    /// Gives back a permit this process took through this handle: `None` if it holds none
    /// through it, else whether the bulkhead had one out (`false`: reaped meanwhile, which
    /// only happens to a process judged dead).
    pub(crate) fn release(&self) -> Option<bool> {
        let pid = pid();
        let full = state(FULL, pid);
        for cell in self.cells.iter() {
            if cell.state.load(Ordering::Relaxed) == full
                && cell
                    .state
                    // Acquire: pairs with the Release store of FULL in `try_acquire`.
                    .compare_exchange(full, state(BUSY, pid), Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                let raw = cell.put(None);
                // Release: pairs with the Acquire CAS in `reserve`.
                cell.state.store(EMPTY, Ordering::Release);
                if let Some(raw) = raw {
                    return Some(self.slot.owned().release_raw(raw));
                }
            }
        }
        let taken = self
            .untracked
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                ((v >> 32) as u32 == pid && v & 0xFFFF_FFFF > 0).then(|| v - 1)
            });
        taken.ok().map(|_| bulkhead_release(self.bulkhead()))
    }
}

impl Drop for SharedBulkhead {
    /// Gives back the permits this process still holds through the handle: nothing could
    /// release them afterwards (until the process died).
    fn drop(&mut self) {
        while self.release().is_some() {}
    }
}
