//! Bulkhead permits that record their owner process, so that a process killed while it
//! holds permits (SIGKILL, OOM killer) does not leak them.
//!
//! A bulkhead slot holds the [`Bulkhead`] and a table of [`OWNERS`] entries, each an owner
//! id (pid and process start time) and the count of permits it holds. A permit taken
//! through [`OwnedBulkhead`] is counted in its process's entry; when the bulkhead is full,
//! the entries of dead owners are reaped (their permits released), at most once per
//! [`REAP_INTERVAL_NS`] per bulkhead across all processes, or on demand with
//! [`OwnedBulkhead::reap`]. So a dead owner's permits come back at the first rejection
//! [`REAP_INTERVAL_NS`] after the previous reap, or sooner on demand.
//!
//! An owner is dead when `kill(pid, 0)` says no such process, when it is a zombie, or when
//! the process with its pid started at another time (a reused pid); the start time is
//! read from `/proc/<pid>/stat` (Linux; elsewhere only the pid is compared).
//!
//! Orders that never release a permit twice: a permit is taken from the bulkhead, then
//! counted in the entry; it is uncounted, then given back. A process killed between the
//! two steps leaks that one permit (a window of a few instructions); it never frees one
//! that someone else holds.

use crate::sync::Ordering;
use crate::{Bulkhead, BulkheadRejected, Clock, MonotonicClock, MILLISECOND};
use portable_atomic::AtomicU64;

/// Owner entries per bulkhead: processes that may hold its permits at once with tracking.
/// Permits of further processes are granted untracked.
pub const OWNERS: usize = 64;
/// The least time between two automatic reaps of one bulkhead (100 ms).
pub const REAP_INTERVAL_NS: u64 = 100 * MILLISECOND;

/// Bit 31 of an owner id: the entry is being reaped by that owner (a reaper that dies
/// midway is itself reaped later).
const REAPING: u64 = 1 << 31;

/// One owner's entry.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Owner {
    /// `pid << 32 | start time (31 bits) | REAPING`; 0: free.
    id: AtomicU64,
    /// Permits held.
    held: AtomicU64,
}

/// What a bulkhead slot holds: the [`Bulkhead`], then the table of its permits' owners.
/// Reach it through [`Shared`](super::Shared) (from [`Region::shared_bulkhead`](super::Region::shared_bulkhead)).
#[derive(Debug)]
#[repr(C)]
pub struct BulkheadSlot {
    pub(crate) bulkhead: Bulkhead,
    /// When the latest reap started (monotonic ns; 0: never).
    last_reap: AtomicU64,
    owners: [Owner; OWNERS],
}

impl BulkheadSlot {
    pub(crate) fn new(max_concurrent: u32) -> Result<Self, crate::ConfigError> {
        Ok(BulkheadSlot {
            bulkhead: Bulkhead::new(max_concurrent)?,
            last_reap: AtomicU64::new(0),
            owners: [const {
                Owner {
                    id: AtomicU64::new(0),
                    held: AtomicU64::new(0),
                }
            }; OWNERS],
        })
    }
}

impl BulkheadSlot {
    /// The bulkhead (permits taken from it directly are not tracked).
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.bulkhead
    }

    /// A handle whose permits record their owner process.
    pub fn owned(&self) -> OwnedBulkhead<'_> {
        OwnedBulkhead::new(self)
    }
}

impl crate::window::SameSettings for BulkheadSlot {
    fn same_settings(&self, other: &Self) -> bool {
        self.bulkhead.same_settings(&other.bulkhead)
    }
}

/// The start time of process `pid` (clock ticks since boot, low 31 bits) and whether it
/// is a zombie; `None` if it does not exist or `/proc` cannot say.
fn proc_stat(pid: u32) -> Option<(u64, bool)> {
    let text = std::fs::read_to_string(std::format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    // Fields after the state: ppid is field 4 of the line, starttime field 22.
    let start: u64 = fields.nth(22 - 4)?.parse().ok()?;
    Some((start & 0x7FFF_FFFF, state == "Z" || state == "X"))
}

/// This process's owner id, cached per process: a child forked after the first call
/// sees another pid and computes its own.
fn my_id() -> u64 {
    static ME: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    let cached = ME.load(Ordering::Relaxed);
    if cached != 0 && cached >> 32 == pid as u64 {
        return cached;
    }
    let start = proc_stat(pid).map_or(0, |(s, _)| s);
    let id = (pid as u64) << 32 | start;
    ME.store(id, Ordering::Relaxed);
    id
}

/// Whether the process behind owner id `id` is gone.
fn dead(id: u64) -> bool {
    let pid = (id >> 32) as u32;
    if !super::alive(pid) {
        return true;
    }
    match proc_stat(pid) {
        // A start time of 0 was not known to its owner (no /proc then): trust the pid.
        Some((start, zombie)) => zombie || (id & 0x7FFF_FFFF != 0 && start != id & 0x7FFF_FFFF),
        // Alive by kill(2) but no /proc entry (not Linux): trust the pid.
        None => false,
    }
}

/// A bulkhead in a region whose permits record their owner process (see the module docs).
/// From [`Region::owned_bulkhead`](super::Region::owned_bulkhead).
#[derive(Debug, Clone, Copy)]
pub struct OwnedBulkhead<'r> {
    slot: &'r BulkheadSlot,
}

/// A permit of an [`OwnedBulkhead`]; dropping it gives the slot back.
#[must_use = "dropping the permit releases the slot at once"]
#[derive(Debug)]
pub struct OwnedPermit<'r> {
    slot: &'r BulkheadSlot,
    /// The owner entry that counts it (`None`: untracked, the table was full).
    entry: Option<usize>,
}

impl Drop for OwnedPermit<'_> {
    fn drop(&mut self) {
        release(self.slot, self.entry);
    }
}

fn release(slot: &BulkheadSlot, entry: Option<usize>) -> bool {
    if let Some(i) = entry {
        if let Some(o) = slot.owners.get(i) {
            decrement(&o.held);
        }
    }
    slot.bulkhead.release()
}

/// An [`OwnedPermit`] taken apart, for bindings that hold permits across a language
/// boundary: give it back with [`OwnedBulkhead::release_raw`], once. Neither `Copy` nor
/// `Clone`.
#[derive(Debug, PartialEq, Eq)]
pub struct RawOwnedPermit {
    entry: Option<usize>,
}

impl<'r> OwnedPermit<'r> {
    /// Takes the permit apart without releasing it.
    pub fn into_raw(self) -> RawOwnedPermit {
        let raw = RawOwnedPermit { entry: self.entry };
        core::mem::forget(self);
        raw
    }
}

fn decrement(held: &AtomicU64) -> bool {
    let mut cur = held.load(Ordering::Relaxed);
    while cur > 0 {
        match held.compare_exchange_weak(cur, cur - 1, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(actual) => cur = actual,
        }
    }
    false
}

impl<'r> OwnedBulkhead<'r> {
    pub(crate) fn new(slot: &'r BulkheadSlot) -> Self {
        OwnedBulkhead { slot }
    }

    /// The bulkhead itself (its metrics, its limit). Permits taken from it directly are
    /// not tracked.
    pub fn bulkhead(&self) -> &'r Bulkhead {
        &self.slot.bulkhead
    }

    /// Takes a permit, counted as this process's. When the bulkhead is full, reaps dead
    /// owners' permits first (at most once per [`REAP_INTERVAL_NS`] across processes) and
    /// tries again.
    pub fn try_acquire(&self) -> Result<OwnedPermit<'r>, BulkheadRejected> {
        let b = &self.slot.bulkhead;
        if !b.try_acquire_raw() {
            let now = MonotonicClock.now_ns();
            let last = self.slot.last_reap.load(Ordering::Relaxed);
            let due = last == 0 || now.saturating_sub(last) >= REAP_INTERVAL_NS || last > now;
            // Relaxed: the stamp only spaces reaps out; the reap itself is CASes.
            if !due
                || self
                    .slot
                    .last_reap
                    .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
                || self.reap() == 0
                || !b.try_acquire_raw()
            {
                return Err(BulkheadRejected::Full {
                    max_concurrent: b.max_concurrent(),
                });
            }
        }
        let entry = self.entry();
        if let Some(i) = entry {
            self.slot.owners[i].held.fetch_add(1, Ordering::Relaxed);
        }
        Ok(OwnedPermit {
            slot: self.slot,
            entry,
        })
    }

    /// This process's entry, claiming a free one if it has none (reaping dead owners'
    /// entries if none is free); `None` if all are taken by live owners.
    fn entry(&self) -> Option<usize> {
        let me = my_id();
        let owners = &self.slot.owners;
        if let Some(i) = owners
            .iter()
            .position(|o| o.id.load(Ordering::Relaxed) == me)
        {
            return Some(i);
        }
        let claim = || {
            owners.iter().position(|o| {
                o.id.load(Ordering::Relaxed) == 0
                    && o.id
                        .compare_exchange(0, me, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
            })
        };
        claim().or_else(|| {
            self.reap();
            claim()
        })
    }

    /// Gives back a permit taken apart with [`OwnedPermit::into_raw`] from this bulkhead;
    /// `false` if none was out.
    pub fn release_raw(&self, permit: RawOwnedPermit) -> bool {
        release(self.slot, permit.entry)
    }

    /// Releases every permit held by dead owners now; returns how many.
    pub fn reap(&self) -> u64 {
        let me = my_id();
        let mine = me | REAPING;
        let mut released = 0;
        for o in &self.slot.owners {
            let id = o.id.load(Ordering::Relaxed);
            if id == 0 || id == me || id == mine || !dead(id) {
                continue;
            }
            // Adopt the entry as its reaper: one reaper wins; if it dies midway, the entry
            // (now under its id) is reaped again by someone else.
            if o.id
                .compare_exchange(id, mine, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // Uncount, then release, one permit at a time (the order of `OwnedPermit`'s
            // drop). Bounded by the limit: a corrupt count releases no more than that.
            for _ in 0..self.slot.bulkhead.max_concurrent() {
                if !decrement(&o.held) || !self.slot.bulkhead.release() {
                    break;
                }
                released += 1;
            }
            o.held.store(0, Ordering::Relaxed);
            let _ =
                o.id.compare_exchange(mine, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
        released
    }

    /// Permits held by live and dead owners, as counted in the table (for `region show`).
    pub fn held_by_owners(&self) -> impl Iterator<Item = (u32, u64)> + 'r {
        self.slot.owners.iter().filter_map(|o| {
            let id = o.id.load(Ordering::Relaxed);
            let held = o.held.load(Ordering::Relaxed);
            (id != 0 && held != 0).then_some(((id >> 32) as u32, held))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn pretend_owner(slot: &BulkheadSlot, i: usize, id: u64, held: u64) {
        for _ in 0..held {
            assert!(slot.bulkhead.try_acquire_raw());
        }
        slot.owners[i].id.store(id, Ordering::Relaxed);
        slot.owners[i].held.store(held, Ordering::Relaxed);
    }

    #[test]
    fn permits_count_under_this_process_and_come_back_on_drop() {
        let slot = BulkheadSlot::new(3).unwrap();
        let owned = OwnedBulkhead::new(&slot);
        let a = owned.try_acquire().unwrap();
        let b = owned.try_acquire().unwrap();
        let me = std::process::id();
        assert_eq!(owned.held_by_owners().collect::<Vec<_>>(), [(me, 2)]);
        drop(a);
        let raw = b.into_raw();
        assert_eq!(owned.held_by_owners().collect::<Vec<_>>(), [(me, 1)]);
        assert!(owned.release_raw(raw));
        assert_eq!(owned.held_by_owners().count(), 0);
        assert_eq!(slot.bulkhead.in_flight(), 0);
    }

    #[test]
    fn dead_and_reused_pids_are_reaped_live_owners_are_not() {
        let slot = BulkheadSlot::new(4).unwrap();
        let owned = OwnedBulkhead::new(&slot);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id() as u64;
        child.wait().unwrap();
        pretend_owner(&slot, 5, dead << 32, 1);
        // This process's pid with another start time: a reused pid, so a dead owner.
        let me = my_id();
        pretend_owner(&slot, 6, me ^ 1, 1);
        // The parent is alive, with its true start time.
        let parent = std::os::unix::process::parent_id();
        let start = proc_stat(parent).map_or(0, |(s, _)| s);
        pretend_owner(&slot, 7, (parent as u64) << 32 | start, 2);
        assert_eq!(slot.bulkhead.in_flight(), 4);
        // Full: the rejection reaps the two dead owners' permits, then admits.
        let p = owned.try_acquire().unwrap();
        assert_eq!(slot.bulkhead.in_flight(), 3);
        let mut held: Vec<_> = owned.held_by_owners().collect();
        held.sort();
        let mut expected = std::vec![(parent, 2), (std::process::id(), 1)];
        expected.sort();
        assert_eq!(held, expected);
        assert_eq!(owned.reap(), 0, "nothing dead is left");
        drop(p);
        // A corrupt count (shared memory) releases at most the limit and never below empty
        // (here it takes the two permits the live parent's entry counts: corruption can
        // free permits, never admit past the limit).
        pretend_owner(&slot, 9, dead << 32, 0);
        slot.owners[9].held.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(owned.reap(), 2);
        assert_eq!(slot.bulkhead.in_flight(), 0);
        assert_eq!(slot.owners[9].id.load(Ordering::Relaxed), 0, "entry freed");
    }

    #[test]
    fn proc_stat_reads_this_process() {
        if std::path::Path::new("/proc/self/stat").exists() {
            let (start, zombie) = proc_stat(std::process::id()).unwrap();
            assert!(start > 0 && !zombie);
        }
        assert_eq!(proc_stat(u32::MAX), None);
    }
}
