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
//!
//! The hot path makes no system call and no scan: this process's owner id is cached, and
//! forgotten in a child after `fork` by a `pthread_atfork` hook (registered on first use);
//! the index of its entry in each slot is cached per process as a hint, trusted only once
//! the entry's id word (one load) says it is ours.

use crate::sync::Ordering;
use crate::{Bulkhead, BulkheadRejected, Clock, MonotonicClock, MILLISECOND};
use portable_atomic::{AtomicU64, AtomicU8};

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

/// This process's owner id, once known; 0: not known (ask the kernel). Set only while the
/// fork hook is installed, and cleared by it ([`forget_me`]) in every child after `fork`, so
/// the hot path is one load with no system call.
static ME: AtomicU64 = AtomicU64::new(0);
/// The latest id computed without the fork hook (its pid is compared with `getpid`).
static LAST: AtomicU64 = AtomicU64::new(0);
/// 0: the fork hook is not installed; 1: being installed; 2: installed; 3: could not be.
/// No lock: a child forked mid-install sees 1 for good and only loses the cache.
static HOOK: AtomicU8 = AtomicU8::new(0);

/// Runs in the child after every `fork` (once the hook is installed): the child is another
/// process. Async-signal-safe: one atomic store.
extern "C" fn forget_me() {
    ME.store(0, Ordering::Relaxed);
}

/// This process's owner id (`pid << 32 | start time`). Cached while the fork hook is
/// installed (one relaxed load); a child forked after the first call computes its own. (A
/// child made by a raw `clone` or `fork` system call, which runs no fork hooks, must not use
/// region bulkheads it inherits; `posix_spawn` and `vfork` children only `exec`.)
#[inline]
fn my_id() -> u64 {
    match ME.load(Ordering::Relaxed) {
        0 => my_id_slow(),
        id => id,
    }
}

#[cold]
fn my_id_slow() -> u64 {
    if HOOK
        .compare_exchange(0, 1, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        let ok = super::map::on_fork_child(forget_me);
        // Release: pairs with the Acquire load below (in any thread): whoever caches the id
        // does so after the hook is registered, so every later fork runs it.
        HOOK.store(if ok { 2 } else { 3 }, Ordering::Release);
    }
    let pid = std::process::id();
    let last = LAST.load(Ordering::Relaxed);
    let id = if last != 0 && last >> 32 == pid as u64 {
        last
    } else {
        let start = proc_stat(pid).map_or(0, |(s, _)| s);
        let id = (pid as u64) << 32 | start;
        LAST.store(id, Ordering::Relaxed);
        id
    };
    if HOOK.load(Ordering::Acquire) == 2 {
        ME.store(id, Ordering::Relaxed);
    }
    id
}

/// Where this process last found its entry in a bulkhead slot: one word per slot address
/// (hashed into [`HINTS`] cells), `tag | HINT_SET | index`. Only a hint: an entry is trusted
/// once its id word is loaded and found to be this process's, so a hint inherited over
/// `fork`, left by a slot at the same address in an unmapped region, or overwritten by a
/// colliding slot costs a scan, never a wrong count.
const HINTS: usize = 64;
static HINT: [AtomicU64; HINTS] = [const { AtomicU64::new(0) }; HINTS];
const HINT_SET: u64 = 0x80;
const HINT_INDEX: u64 = 0x3F;
const _: () = assert!(OWNERS <= HINT_INDEX as usize + 1);

/// The hint cell of one slot, and the tag that marks its hints.
struct Hint {
    cell: &'static AtomicU64,
    tag: u64,
}

impl Hint {
    #[inline]
    fn of(slot: &BulkheadSlot) -> Hint {
        // Fibonacci hashing of the address: the top bits pick the cell, the rest tag it.
        let h = (slot as *const BulkheadSlot as usize as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Hint {
            cell: &HINT[(h >> 58) as usize % HINTS],
            tag: h & !0xFF,
        }
    }

    #[inline]
    fn get(&self) -> Option<usize> {
        let v = self.cell.load(Ordering::Relaxed);
        (v & !0xFF == self.tag && v & HINT_SET != 0).then_some((v & HINT_INDEX) as usize)
    }

    fn set(&self, index: usize) {
        self.cell.store(
            self.tag | HINT_SET | index as u64 & HINT_INDEX,
            Ordering::Relaxed,
        );
    }
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

/// A tally word's fields (see [`OwnedBulkhead::try_acquire_tallied`]): `pid << 32 |
/// untracked << 16 | tracked`.
const TALLY_FIELD: u64 = 0xFFFF;
const TALLY_UNTRACKED: u32 = 16;

/// Counts one more permit of `pid` in field `shift` of tally word `v` (a word of another pid
/// counts none), unless the field already counts `max`.
#[inline]
fn tally_add(v: u64, pid: u32, shift: u32, max: u64) -> Option<u64> {
    let v = if (v >> 32) as u32 == pid {
        v
    } else {
        u64::from(pid) << 32
    };
    ((v >> shift & TALLY_FIELD) < max.min(TALLY_FIELD)).then(|| v + (1 << shift))
}

/// Counts one permit of `pid` less in field `shift` of tally word `v`, if it counts any.
#[inline]
fn tally_sub(v: u64, pid: u32, shift: u32) -> Option<u64> {
    ((v >> 32) as u32 == pid && v >> shift & TALLY_FIELD > 0).then(|| v - (1 << shift))
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
    #[inline]
    pub fn try_acquire(&self) -> Result<OwnedPermit<'r>, BulkheadRejected> {
        let entry = self.acquire(my_id())?;
        Ok(OwnedPermit {
            slot: self.slot,
            entry,
        })
    }

    /// Takes a permit from the bulkhead and counts it in the entry of `me` (this process),
    /// which it returns (`None`: untracked, the table is full of live owners).
    #[inline]
    fn acquire(&self, me: u64) -> Result<Option<usize>, BulkheadRejected> {
        self.take()?;
        let entry = self.entry(me);
        if let Some(o) = entry.and_then(|i| self.slot.owners.get(i)) {
            o.held.fetch_add(1, Ordering::Relaxed);
        }
        Ok(entry)
    }

    /// Takes a permit from the bulkhead, reaping dead owners' permits once if it is full.
    #[inline]
    fn take(&self) -> Result<(), BulkheadRejected> {
        let b = &self.slot.bulkhead;
        if b.try_acquire_raw() {
            return Ok(());
        }
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
        Ok(())
    }

    /// This process's entry (`me`): the hinted one if its id word says so, else found by a
    /// scan, claiming a free one if it has none (reaping dead owners' entries if none is
    /// free); `None` if all are taken by live owners.
    #[inline]
    fn entry(&self, me: u64) -> Option<usize> {
        let hint = Hint::of(self.slot);
        if let Some(i) = hint.get() {
            if self.is_mine(i, me) {
                return Some(i);
            }
        }
        let i = self.find_or_claim(me)?;
        hint.set(i);
        Some(i)
    }

    /// Whether entry `i` is `me`'s (one load).
    #[inline]
    fn is_mine(&self, i: usize, me: u64) -> bool {
        self.slot
            .owners
            .get(i)
            .is_some_and(|o| o.id.load(Ordering::Relaxed) == me)
    }

    #[cold]
    fn find_or_claim(&self, me: u64) -> Option<usize> {
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

    /// Takes a permit counted as this process's (as [`try_acquire`](Self::try_acquire)) and
    /// in `tally`, for bindings whose release takes no token (C's `fb_bulkhead_release`,
    /// Python's `release()`): give it back with [`release_tallied`](Self::release_tallied)
    /// and the same tally. Nothing is allocated.
    ///
    /// `tally` is a word of process memory that the binding keeps per handle, 0 at first
    /// and touched by nothing else: `pid << 32 | untracked << 16 | tracked`, where counts
    /// under another pid (inherited over `fork`) are none of this process's, so a child
    /// never gives back its parent's permits. Permits beyond `max_tracked` (at most 65535)
    /// or beyond the owner table are taken untracked (not reaped if this process dies);
    /// beyond 65535 untracked ones, the call is rejected.
    #[inline]
    pub fn try_acquire_tallied(
        &self,
        tally: &core::sync::atomic::AtomicU64,
        max_tracked: u16,
    ) -> Result<(), BulkheadRejected> {
        let me = my_id();
        let pid = (me >> 32) as u32;
        let entry = self.acquire(me)?;
        let count = |shift, max| {
            tally
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    tally_add(v, pid, shift, max)
                })
                .is_ok()
        };
        if entry.is_some() && count(0, u64::from(max_tracked)) {
            return Ok(());
        }
        if let Some(o) = entry.and_then(|i| self.slot.owners.get(i)) {
            // The tally is full: uncount the permit (it stays taken, untracked).
            decrement(&o.held);
        }
        if count(TALLY_UNTRACKED, TALLY_FIELD) {
            return Ok(());
        }
        self.slot.bulkhead.release();
        Err(BulkheadRejected::Full {
            max_concurrent: self.slot.bulkhead.max_concurrent(),
        })
    }

    /// Gives back one permit this process took with
    /// [`try_acquire_tallied`](Self::try_acquire_tallied) and `tally`: `None` if it holds
    /// none through the tally (permits held when the process forked stay the parent's),
    /// else whether the bulkhead had it out (`false`: its count in this process's entry
    /// was gone, reaped or corrupt; nothing is released then).
    #[inline]
    pub fn release_tallied(&self, tally: &core::sync::atomic::AtomicU64) -> Option<bool> {
        let me = my_id();
        let pid = (me >> 32) as u32;
        let uncount = |shift| {
            tally
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    tally_sub(v, pid, shift)
                })
                .is_ok()
        };
        if uncount(0) {
            return Some(self.release_own(me));
        }
        if uncount(TALLY_UNTRACKED) {
            return Some(self.slot.bulkhead.release());
        }
        None
    }

    /// Permits this process holds through `tally`: (tracked, untracked).
    pub fn tallied(tally: &core::sync::atomic::AtomicU64) -> (u32, u32) {
        let v = tally.load(Ordering::Relaxed);
        if v >> 32 != my_id() >> 32 {
            return (0, 0);
        }
        (
            (v & TALLY_FIELD) as u32,
            (v >> TALLY_UNTRACKED & TALLY_FIELD) as u32,
        )
    }

    /// Uncounts one permit from an entry of `me` (the hinted one first), then gives it
    /// back to the bulkhead; `false` (nothing released) if no entry of `me` counts any.
    #[inline]
    fn release_own(&self, me: u64) -> bool {
        let owners = &self.slot.owners;
        let mine = |o: &Owner| o.id.load(Ordering::Relaxed) == me && decrement(&o.held);
        let uncounted = Hint::of(self.slot)
            .get()
            .and_then(|i| owners.get(i))
            .is_some_and(mine)
            || owners.iter().any(mine);
        uncounted && self.slot.bulkhead.release()
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
    fn a_hint_is_trusted_only_once_the_entry_says_it_is_ours() {
        let slot = BulkheadSlot::new(4).unwrap();
        let owned = OwnedBulkhead::new(&slot);
        let me = my_id();
        // A hint at another process's entry (as left by a slot at the same address, or
        // inherited over fork): checked, found foreign, and replaced.
        let parent = std::os::unix::process::parent_id();
        slot.owners[0]
            .id
            .store((parent as u64) << 32, Ordering::Relaxed);
        let hint = Hint::of(&slot);
        hint.set(0);
        let p = owned.try_acquire().unwrap();
        assert_eq!(slot.owners[0].held.load(Ordering::Relaxed), 0);
        let i = hint.get().unwrap();
        assert_ne!(i, 0);
        assert_eq!(slot.owners[i].id.load(Ordering::Relaxed), me);
        assert_eq!(slot.owners[i].held.load(Ordering::Relaxed), 1);
        // A hint at a free entry is no better.
        hint.set(9);
        let q = owned.try_acquire().unwrap();
        assert_eq!(slot.owners[i].held.load(Ordering::Relaxed), 2);
        assert_eq!(slot.owners[9].id.load(Ordering::Relaxed), 0);
        assert_eq!(hint.get(), Some(i));
        drop((p, q));
        assert_eq!(slot.bulkhead.in_flight(), 0);
    }

    #[test]
    fn the_fork_hook_forgets_the_cached_id() {
        let me = my_id();
        assert_eq!(me >> 32, std::process::id() as u64);
        if HOOK.load(Ordering::Acquire) == 2 {
            assert_eq!(ME.load(Ordering::Relaxed), me);
            forget_me(); // as in a child after fork
            assert_eq!(ME.load(Ordering::Relaxed), 0);
        }
        assert_eq!(my_id(), me);
    }

    #[test]
    fn tallied_permits_need_no_token_and_stay_with_their_process() {
        use core::sync::atomic::AtomicU64 as Word;
        let slot = BulkheadSlot::new(3).unwrap();
        let owned = OwnedBulkhead::new(&slot);
        let tally = Word::new(0);
        let me = std::process::id();
        // One tracked permit at most through this tally: the second is untracked.
        owned.try_acquire_tallied(&tally, 1).unwrap();
        owned.try_acquire_tallied(&tally, 1).unwrap();
        assert_eq!(OwnedBulkhead::tallied(&tally), (1, 1));
        assert_eq!(owned.held_by_owners().collect::<Vec<_>>(), [(me, 1)]);
        assert_eq!(slot.bulkhead.in_flight(), 2);
        assert_eq!(owned.release_tallied(&tally), Some(true));
        assert_eq!(owned.release_tallied(&tally), Some(true));
        assert_eq!(owned.release_tallied(&tally), None, "none out");
        assert_eq!(owned.held_by_owners().count(), 0);
        assert_eq!(slot.bulkhead.in_flight(), 0);

        // A tally inherited over fork counts the parent's permits: not this process's.
        let parent = std::os::unix::process::parent_id();
        tally.store((parent as u64) << 32 | 2 << 16 | 3, Ordering::Relaxed);
        assert_eq!(OwnedBulkhead::tallied(&tally), (0, 0));
        assert_eq!(owned.release_tallied(&tally), None);
        owned.try_acquire_tallied(&tally, 8).unwrap();
        assert_eq!(OwnedBulkhead::tallied(&tally), (1, 0));

        // This process's count gone from its entry (reaped, corrupt): nothing is released.
        for o in &slot.owners {
            o.held.store(0, Ordering::Relaxed);
        }
        assert_eq!(owned.release_tallied(&tally), Some(false));
        assert_eq!(slot.bulkhead.in_flight(), 1);

        // Rejections leave the tally alone.
        assert!(owned.try_acquire_tallied(&tally, 8).is_ok());
        assert!(owned.try_acquire_tallied(&tally, 8).is_ok());
        assert!(owned.try_acquire_tallied(&tally, 8).is_err());
        assert_eq!(OwnedBulkhead::tallied(&tally), (2, 0));
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
