//! The bulkhead behind a handle from `fb_region_bulkhead`: a bulkhead in a region whose
//! permits record their owner process (the core's `OwnedBulkhead`), so that the permits of a
//! process killed while holding them come back.
//!
//! The C API takes and gives back permits with no token (`fb_bulkhead_try_acquire`,
//! `fb_bulkhead_release`). The core counts them in this process's owner entry and, per
//! handle, in a tally word of process memory (`pid << 32 | untracked << 16 | tracked`,
//! see `OwnedBulkhead::try_acquire_tallied`): a release gives back a permit this process
//! took through this handle. The pid makes fork safe: a child inherits a copy of the
//! tally, but the parent's permits stay the parent's (the child cannot release them). No
//! lock, no allocation per permit, no system call. Uses only the core.
//!
//! A process that holds more than [`TRACKED`] of one handle's permits at once gets the extra
//! ones untracked (from the plain bulkhead, counted in the tally): those are not reclaimed
//! if it dies, as the core's own untracked permits (its owner table full).

use core::sync::atomic::AtomicU64;

use core_fb::shm::{BulkheadSlot, OwnedBulkhead, Shared};
use core_fb::Bulkhead;

/// Owner-tracked permits one handle can hold at once in one process.
pub(crate) const TRACKED: u32 = 1024;

/// A region bulkhead and the permits this process took through this handle.
#[derive(Debug)]
pub(crate) struct SharedBulkhead {
    slot: Shared<BulkheadSlot>,
    /// The core's tally word of this handle's permits.
    tally: AtomicU64,
}

impl SharedBulkhead {
    pub(crate) fn new(slot: Shared<BulkheadSlot>) -> Self {
        SharedBulkhead {
            slot,
            tally: AtomicU64::new(0),
        }
    }

    /// The bulkhead in the region.
    pub(crate) fn bulkhead(&self) -> &Bulkhead {
        self.slot.bulkhead()
    }

    /// Takes a permit counted as this process's (reaping dead owners' permits when full).
    pub(crate) fn try_acquire(&self) -> bool {
        self.slot
            .owned()
            .try_acquire_tallied(&self.tally, TRACKED as u16)
            .is_ok()
    }

    /// Gives back a permit this process took through this handle: `None` if it holds none
    /// through it, else whether the bulkhead had one out (`false`: reaped meanwhile, which
    /// only happens to a process judged dead).
    pub(crate) fn release(&self) -> Option<bool> {
        self.slot.owned().release_tallied(&self.tally)
    }
}

impl Drop for SharedBulkhead {
    /// Gives back the permits this process still holds through the handle: nothing could
    /// release them afterwards (until the process died).
    fn drop(&mut self) {
        let (tracked, untracked) = OwnedBulkhead::tallied(&self.tally);
        // Bounded: each release takes one off the tally.
        for _ in 0..tracked + untracked {
            if self.release().is_none() {
                break;
            }
        }
    }
}
