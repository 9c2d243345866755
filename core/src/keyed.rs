//! Keyed GCRA: one token bucket per key (a client address, an API key, a user), in a table of
//! fixed capacity that never allocates once built.
//!
//! ## The table
//! Each [`KeySlot`] holds a key (its bytes, whole: at most [`MAX_KEY_LEN`]), a tag (the key's
//! seeded 47-bit hash and a 16-bit reuse counter) and the key's theoretical arrival time
//! (TAT). A key lives in one of the [`KEY_PROBE_WINDOW`] slots from its home slot (the hash
//! scaled to the capacity) on. A key whose TAT has passed holds no tokens: it answers as an absent key
//! does, and [`KEY_REUSE_GRACE_NS`] later its slot is free for another key, so the table
//! needs no sweeper. (The grace is for callers whose clocks lag: one that lags by less still
//! finds the key, so the per-key GCRA bound holds for callers whose `now`s agree within it.)
//!
//! ## What is lock-free, and what is not
//! - Finding a key and taking its tokens are lock-free: a scan of at most
//!   [`KEY_PROBE_WINDOW`] slots (stopping at the first never-used one), then a CAS on the
//!   key's TAT, exactly as [`TokenBucket::try_acquire`](crate::TokenBucket::try_acquire)
//!   does. So are [`retry_after`](KeyedBuckets::retry_after), [`state`](KeyedBuckets::state)
//!   and [`reset`](KeyedBuckets::reset) (which never claim).
//! - Claiming a slot for a new key is **not** lock-free: claims of keys that share a home
//!   slot take that slot's claim lock (a spin lock holding the claimer's time), so that two
//!   callers never give one key two slots. Claims with other homes do not wait for it. A
//!   lock held longer than [`KEY_CLAIM_LEASE_NS`] (by the caller's clock: a claimer that
//!   died, in a shared table) is taken over; a caller that cannot take it within a bounded
//!   spin gets [`KeyedRejected::Busy`].
//! - Reusing an expired key's slot first swaps its TAT for a sentinel (a CAS on the value
//!   the claimer found expired), so that a caller still holding the old key fails its CAS
//!   and looks again; the tag's reuse counter changes with every claim, so a caller that
//!   read the old key's tag sees the change before it commits.
//!
//! When a new key finds every slot of its window holding a live key, the table is full for
//! it: the caller's [`WhenFull`] says whether it is refused ([`KeyedRejected::TableFull`]) or
//! let through untracked; both are counted in [`KeyedMetrics`]. A live key is never evicted.
//!
//! ```
//! use fastbreaker::{BucketConfig, KeyedBuckets, KeyedRejected, WhenFull, SECOND};
//! let table = KeyedBuckets::with_capacity(BucketConfig::per_second(1, 2), WhenFull::Reject, 7, 1024).unwrap();
//! assert!(table.try_acquire(b"10.0.0.1", 1, 0).is_ok());
//! assert!(table.try_acquire(b"10.0.0.1", 1, 0).is_ok());
//! assert_eq!(table.try_acquire(b"10.0.0.1", 1, 0), Err(KeyedRejected::RateLimited { retry_after: SECOND }));
//! assert!(table.try_acquire(b"10.0.0.2", 1, 0).is_ok(), "another client has its own bucket");
//! assert_eq!(table.live_keys(0), 2);
//! assert_eq!(table.live_keys(2 * SECOND), 0, "both full again: absent");
//! ```

use crate::limits::{
    KEY_CLAIM_LEASE_NS, KEY_PROBE_WINDOW, KEY_REUSE_GRACE_NS, MAX_KEYED_CAPACITY, MAX_KEY_LEN,
};
use crate::sync::{AtomicU64, Ordering};
use crate::token_bucket::{state_of, units, wait_ns};
use crate::{BucketConfig, BucketState, ConfigError, TokenBucket};

const KEY_WORDS: usize = MAX_KEY_LEN / 8;
/// Tag bit: the slot is being claimed (its key and TAT are being written).
const CLAIMING: u64 = 1 << 63;
/// Tag bits of the hash (47 bits, above the reuse counter).
const HASH_MASK: u64 = ((1 << 47) - 1) << 16;
/// Tag bits of the reuse counter (never 0 in a used slot, so a used tag is never 0).
const EPOCH_MASK: u64 = 0xFFFF;
/// The TAT of a slot changing hands.
const RECLAIMING: u64 = u64::MAX;
/// Attempts at a decision before giving up with [`KeyedRejected::Busy`] (each failed
/// attempt means another caller changed the slot: lock-free progress, bounded here).
#[cfg(not(loom))]
const ATTEMPTS: u32 = 1 << 10;
/// Spins on a claim lock before [`KeyedRejected::Busy`].
#[cfg(not(loom))]
const LOCK_SPINS: u32 = 1 << 14;
// Under loom, short bounds (a spinning thread multiplies the interleavings): the models
// take `Busy` as "try again", as callers do.
#[cfg(loom)]
const ATTEMPTS: u32 = 4;
#[cfg(loom)]
const LOCK_SPINS: u32 = 2;

/// What a keyed table does with a new key when every slot of its window holds a live key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WhenFull {
    /// Refuse it: [`KeyedRejected::TableFull`].
    Reject,
    /// Let it through without tracking it (it is not limited until it finds a slot).
    Admit,
}

/// Why a [`KeyedBuckets`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyedRejected {
    /// The key has not enough tokens now; they are there in `retry_after` ns.
    RateLimited {
        /// Nanoseconds until the request could succeed.
        retry_after: u64,
    },
    /// More tokens asked at once than a key's bucket holds.
    ExceedsCapacity {
        /// Tokens asked for.
        requested: u64,
        /// The burst.
        capacity: u64,
    },
    /// A new key found no free slot in its window, and the table refuses such keys.
    TableFull,
    /// The key is longer than [`MAX_KEY_LEN`] bytes.
    KeyTooLong {
        /// Its length.
        len: usize,
    },
    /// The key's claim lock stayed taken (a claim of another key with the same home slot)
    /// for longer than a bounded spin, or the key's slot kept changing: try again.
    Busy,
}

impl core::fmt::Display for KeyedRejected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KeyedRejected::RateLimited { retry_after } => {
                write!(f, "rate limited, retry after {retry_after} ns")
            }
            KeyedRejected::ExceedsCapacity {
                requested,
                capacity,
            } => write!(
                f,
                "{requested} tokens requested, more than a key's capacity of {capacity}"
            ),
            KeyedRejected::TableFull => f.write_str("the keyed table has no room for a new key"),
            KeyedRejected::KeyTooLong { len } => {
                write!(f, "key of {len} bytes: at most {MAX_KEY_LEN} allowed")
            }
            KeyedRejected::Busy => f.write_str("the key's slot is busy: try again"),
        }
    }
}

/// Counters of a [`KeyedBuckets`] (relaxed: statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyedMetrics {
    /// Slots in the table.
    pub capacity: usize,
    /// Requests granted (tracked keys).
    pub allowed: u64,
    /// Requests refused for want of tokens.
    pub limited: u64,
    /// New keys refused because their window was full ([`WhenFull::Reject`]).
    pub full_rejected: u64,
    /// New keys let through untracked because their window was full ([`WhenFull::Admit`]).
    pub full_admitted: u64,
}

/// One slot of a keyed table. Build tables from [`KeySlot::new`] (every bit 0: a zeroed
/// shared mapping is an empty table too).
///
/// A slot is aligned to a cache line (64 bytes) and 128 bytes long, so that its tag, TAT,
/// length, lock and the first 32 bytes of its key share one line: finding a key of at most
/// 32 bytes (an address, most API keys) and taking its tokens touch one cache line.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct KeySlot {
    /// 0: never used; else `CLAIMING? | hash (47 bits) << 16 | reuse counter (16 bits)`.
    tag: AtomicU64,
    /// The key's TAT in units; `RECLAIMING` while the slot changes hands.
    tat: AtomicU64,
    /// The key's length in bytes.
    len: AtomicU64,
    /// Claim lock of the keys whose home is this slot: 0 free, else the taker's `now + 1`.
    lock: AtomicU64,
    /// The key's bytes, zero-padded, in host order words.
    key: [AtomicU64; KEY_WORDS],
}

impl Default for KeySlot {
    fn default() -> Self {
        Self::new()
    }
}

impl KeySlot {
    crate::sync::maybe_const_fn! {
        /// An empty slot (`[const { KeySlot::new() }; N]` makes a static table).
        pub fn new() -> KeySlot {
            KeySlot {
                tag: AtomicU64::new(0),
                tat: AtomicU64::new(0),
                len: AtomicU64::new(0),
                lock: AtomicU64::new(0),
                key: crate::sync::zeroed_u64s(),
            }
        }
    }

    /// Whether the slot holds `key`: its length, then only the words the key fills (a
    /// claim writes those, zero-padded, and a key's length fixes how many there are).
    fn holds(&self, key: &Key<'_>) -> bool {
        if self.len.load(Ordering::Relaxed) != key.bytes.len() as u64 {
            return false;
        }
        let mut same = true;
        key.each_word(|i, v| {
            same = same && self.key.get(i).map(|w| w.load(Ordering::Relaxed)) == Some(v);
        });
        same
    }

    fn write_key(&self, key: &Key<'_>) {
        self.len.store(key.bytes.len() as u64, Ordering::Relaxed);
        key.each_word(|i, v| {
            if let Some(w) = self.key.get(i) {
                w.store(v, Ordering::Relaxed);
            }
        });
    }

    /// Stores arbitrary bits in every word (tests of corrupt shared state).
    #[cfg(test)]
    pub(crate) fn scramble(&self, next: &mut dyn FnMut() -> u64) {
        for w in [&self.tag, &self.tat, &self.len, &self.lock]
            .into_iter()
            .chain(self.key.iter())
        {
            w.store(next(), Ordering::Relaxed);
        }
    }
}

/// A key as the table reads it: its bytes (at most [`MAX_KEY_LEN`]) and its tag bits
/// (hashed once a call).
struct Key<'a> {
    bytes: &'a [u8],
    /// The tag bits of the key's hash ([`KeyedBuckets::hash`]).
    hash: u64,
}

impl Key<'_> {
    /// Calls `f(i, word)` for each word the key fills, in order: its bytes as host-order
    /// words, the last one zero-padded (none for the empty key).
    #[inline(always)]
    fn each_word(&self, mut f: impl FnMut(usize, u64)) {
        let mut chunks = self.bytes.chunks_exact(8);
        let mut i = 0;
        for chunk in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            f(i, u64::from_ne_bytes(b));
            i += 1;
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            f(i, tail_word(rest));
        }
    }
}

/// `rest` (1 to 7 bytes) as a host-order word, zero-padded: what `u64::from_ne_bytes` makes
/// of them followed by zeros, read in pieces of fixed size (a copy of a run-time length
/// would be a call to memcpy).
#[inline(always)]
fn tail_word(rest: &[u8]) -> u64 {
    let mut w = 0u64; // little-endian: byte j at bits 8j
    let mut j = 0;
    if let Some(&[a, b, c, d]) = rest.get(..4) {
        w = u64::from(u32::from_le_bytes([a, b, c, d]));
        j = 4;
    }
    if let Some(&[a, b]) = rest.get(j..j + 2) {
        w |= u64::from(u16::from_le_bytes([a, b])) << (8 * j);
        j += 2;
    }
    if let Some(&a) = rest.get(j) {
        w |= u64::from(a) << (8 * j);
    }
    u64::from_le(w)
}

/// The high and low halves of `a * b` xored (the mixing step of foldhash and wyhash).
fn folded_mul(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// The counters of a keyed table, as atomic words (relaxed: statistics). A table keeps its
/// own unless its storage provides them ([`KeyStorage::counters`]: a table in shared memory
/// keeps them beside its slots, so that every process counts in the same words). All-zero
/// is a fresh set; any bits are survivable.
#[derive(Debug)]
#[repr(C)]
pub struct KeyCounters {
    allowed: AtomicU64,
    limited: AtomicU64,
    full_rejected: AtomicU64,
    full_admitted: AtomicU64,
}

impl Default for KeyCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyCounters {
    crate::sync::maybe_const_fn! {
        /// Counters at 0.
        pub fn new() -> KeyCounters {
            KeyCounters {
                allowed: AtomicU64::new(0),
                limited: AtomicU64::new(0),
                full_rejected: AtomicU64::new(0),
                full_admitted: AtomicU64::new(0),
            }
        }
    }
}

/// The storage of a [`KeyedBuckets`]: its slots, and optionally its counters. Every
/// `AsRef<[KeySlot]>` (an array, a boxed slice) is one, with the table's own counters.
pub trait KeyStorage {
    /// The slots (their number must not change).
    fn slots(&self) -> &[KeySlot];
    /// Counters kept with the slots; `None` (the default): the table keeps its own.
    fn counters(&self) -> Option<&KeyCounters> {
        None
    }
}

impl<T: AsRef<[KeySlot]>> KeyStorage for T {
    fn slots(&self) -> &[KeySlot] {
        self.as_ref()
    }
}

/// A table of token buckets, one per key, over the slots `S` (an array, a boxed slice, or
/// slots in a shared mapping: any [`KeyStorage`]). See the module docs.
#[derive(Debug)]
pub struct KeyedBuckets<S> {
    interval: u64,
    tolerance: u64,
    burst: u64,
    shift: u32,
    config: BucketConfig,
    when_full: WhenFull,
    seed: u64,
    own: KeyCounters,
    slots: S,
}

/// Where a key is, or where it could go.
enum Found<'a> {
    /// In this slot, under this tag.
    At(&'a KeySlot, u64),
    Absent,
}

impl<S: KeyStorage> KeyedBuckets<S> {
    /// A table over `slots` (1..=[`MAX_KEYED_CAPACITY`] of them, all empty), each key a
    /// bucket of `config`, new keys of a full window handled as `when_full`. `seed` keys
    /// the hash (give a random one, so that clients cannot choose keys that share a window).
    pub fn new(
        config: BucketConfig,
        when_full: WhenFull,
        seed: u64,
        slots: S,
    ) -> Result<Self, ConfigError> {
        let n = slots.slots().len();
        if n == 0 || n > MAX_KEYED_CAPACITY {
            return Err(ConfigError::new(
                "capacity",
                n as u64,
                "must be in 1..=2^24 slots",
            ));
        }
        let (interval, tolerance, burst, shift) = TokenBucket::new(config)?.params();
        Ok(KeyedBuckets {
            interval,
            tolerance,
            burst,
            shift,
            config,
            when_full,
            seed,
            own: KeyCounters::new(),
            slots,
        })
    }

    /// The configuration of every key's bucket, and the policy for new keys of a full window.
    pub fn config(&self) -> (BucketConfig, WhenFull) {
        (self.config, self.when_full)
    }

    /// The seed of the key hash.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The storage of the slots (and of the counters, if it keeps them).
    pub fn storage(&self) -> &S {
        &self.slots
    }

    /// Slots in the table.
    pub fn capacity(&self) -> usize {
        self.slots.slots().len()
    }

    /// The counters.
    pub fn metrics(&self) -> KeyedMetrics {
        let c = self.counters();
        KeyedMetrics {
            capacity: self.capacity(),
            allowed: c.allowed.load(Ordering::Relaxed),
            limited: c.limited.load(Ordering::Relaxed),
            full_rejected: c.full_rejected.load(Ordering::Relaxed),
            full_admitted: c.full_admitted.load(Ordering::Relaxed),
        }
    }

    /// Keys holding tokens at `now` (a scan of the whole table: for metrics, not hot paths).
    pub fn live_keys(&self, now: u64) -> usize {
        let t = self.units(now);
        self.slots
            .slots()
            .iter()
            .filter(|s| {
                let tag = s.tag.load(Ordering::Acquire);
                let tat = s.tat.load(Ordering::Relaxed);
                tag != 0 && tag & CLAIMING == 0 && tat != RECLAIMING && tat > t
            })
            .count()
    }

    /// Takes `n` tokens of `key`'s bucket at `now`, claiming a slot for a key not in the
    /// table (see the module docs for what that may wait on).
    pub fn try_acquire(&self, key: &[u8], n: u64, now: u64) -> Result<(), KeyedRejected> {
        let cost = self.cost(key, n)?;
        if n == 0 {
            return Ok(());
        }
        let t = self.units(now);
        let key = self.key(key);
        for _ in 0..ATTEMPTS {
            match self.find(&key) {
                Found::At(slot, tag) => {
                    // Acquire: pairs with the Release stores of a claim (below).
                    let tat = slot.tat.load(Ordering::Acquire);
                    if tat == RECLAIMING || slot.tag.load(Ordering::Acquire) != tag {
                        continue; // changing hands: look again
                    }
                    let next = tat.max(t).saturating_add(cost);
                    let limit = t.saturating_add(self.tolerance);
                    if next > limit {
                        self.counters().limited.fetch_add(1, Ordering::Relaxed);
                        return Err(KeyedRejected::RateLimited {
                            retry_after: self.wait_ns(now, next - limit),
                        });
                    }
                    if slot
                        .tat
                        .compare_exchange(tat, next, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                    {
                        self.counters().allowed.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                }
                Found::Absent => match self.claim(&key, t, now, t.saturating_add(cost)) {
                    Claim::Done => {
                        self.counters().allowed.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    Claim::Exists => {}
                    Claim::Full => {
                        return match self.when_full {
                            WhenFull::Reject => {
                                self.counters()
                                    .full_rejected
                                    .fetch_add(1, Ordering::Relaxed);
                                Err(KeyedRejected::TableFull)
                            }
                            WhenFull::Admit => {
                                self.counters()
                                    .full_admitted
                                    .fetch_add(1, Ordering::Relaxed);
                                Ok(())
                            }
                        };
                    }
                    Claim::Busy => return Err(KeyedRejected::Busy),
                },
            }
        }
        Err(KeyedRejected::Busy)
    }

    /// Nanoseconds until `n` tokens of `key` could be taken (0: now; an absent key is full).
    pub fn retry_after(&self, key: &[u8], n: u64, now: u64) -> Result<u64, KeyedRejected> {
        let cost = self.cost(key, n)?;
        if n == 0 {
            return Ok(0);
        }
        let t = self.units(now);
        let tat = self.tat_of(key, t);
        let wait = tat
            .max(t)
            .saturating_add(cost)
            .saturating_sub(t.saturating_add(self.tolerance));
        Ok(self.wait_ns(now, wait))
    }

    /// Limit, remaining, reset and retry-after of `key` at `now` (for `RateLimit` headers).
    pub fn state(&self, key: &[u8], now: u64) -> Result<BucketState, KeyedRejected> {
        self.cost(key, 0)?;
        let tat = self.tat_of(key, self.units(now));
        Ok(state_of(
            tat,
            now,
            self.shift,
            self.interval,
            self.tolerance,
            self.burst,
        ))
    }

    /// Refills `key`'s bucket (its slot becomes free for reuse). `false` if it was absent.
    pub fn reset(&self, key: &[u8]) -> Result<bool, KeyedRejected> {
        self.cost(key, 0)?;
        let key = self.key(key);
        for _ in 0..ATTEMPTS {
            match self.find(&key) {
                Found::Absent => return Ok(false),
                Found::At(slot, tag) => {
                    let tat = slot.tat.load(Ordering::Acquire);
                    if tat == RECLAIMING || slot.tag.load(Ordering::Acquire) != tag {
                        continue;
                    }
                    if slot
                        .tat
                        .compare_exchange(tat, 0, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                    {
                        return Ok(true);
                    }
                }
            }
        }
        Err(KeyedRejected::Busy)
    }

    // ----- internals -----

    fn counters(&self) -> &KeyCounters {
        self.slots.counters().unwrap_or(&self.own)
    }

    fn cost(&self, key: &[u8], n: u64) -> Result<u64, KeyedRejected> {
        if key.len() > MAX_KEY_LEN {
            return Err(KeyedRejected::KeyTooLong { len: key.len() });
        }
        if n > self.burst {
            return Err(KeyedRejected::ExceedsCapacity {
                requested: n,
                capacity: self.burst,
            });
        }
        Ok(self.interval.saturating_mul(n))
    }

    fn units(&self, now: u64) -> u64 {
        units(now, self.shift)
    }

    fn wait_ns(&self, now: u64, wait: u64) -> u64 {
        wait_ns(now, wait, self.shift)
    }

    /// `key` (at most [`MAX_KEY_LEN`] bytes, checked by [`cost`](Self::cost)) as words,
    /// with its hash.
    fn key<'k>(&self, key: &'k [u8]) -> Key<'k> {
        Key {
            bytes: key,
            hash: self.hash(key),
        }
    }

    /// The tag bits of `key`'s hash: its words, a word at a time, through a seeded folded
    /// multiply (as foldhash and wyhash mix), finished with SplitMix64. The length enters
    /// first, so keys that differ only in trailing zero bytes differ.
    fn hash(&self, key: &[u8]) -> u64 {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut h = folded_mul(self.seed ^ key.len() as u64, K ^ 0xA076_1D64_78BD_642F);
        Key {
            bytes: key,
            hash: 0,
        }
        .each_word(|_, w| h = folded_mul(h ^ w, K));
        crate::backoff::splitmix64(h) & HASH_MASK
    }

    /// The home slot of tag bits `h`: the top 32 bits of the hash scaled to the capacity
    /// (a multiply and a shift, not a division).
    fn home(&self, h: u64) -> usize {
        let top = (h >> 31) & 0xFFFF_FFFF;
        ((top * self.capacity() as u64) >> 32) as usize
    }

    /// The slots of `h`'s window, in probe order.
    fn window(&self, h: u64) -> impl Iterator<Item = &KeySlot> {
        let slots = self.slots.slots();
        let home = self.home(h);
        (0..KEY_PROBE_WINDOW.min(slots.len())).map(move |i| {
            let at = home + i;
            &slots[if at >= slots.len() {
                at - slots.len()
            } else {
                at
            }]
        })
    }

    /// Where `key` is: a published slot holding it, or absent.
    fn find(&self, key: &Key<'_>) -> Found<'_> {
        let h = key.hash;
        for slot in self.window(h) {
            // Acquire: pairs with the Release store that publishes a claim.
            let tag = slot.tag.load(Ordering::Acquire);
            if tag == 0 {
                break; // never used: no key lies beyond it on this path
            }
            if tag & (CLAIMING | HASH_MASK) == h && slot.holds(key) {
                return Found::At(slot, tag);
            }
        }
        Found::Absent
    }

    /// `key`'s TAT (0 if absent), without claiming.
    fn tat_of(&self, key: &[u8], t: u64) -> u64 {
        let key = self.key(key);
        for _ in 0..ATTEMPTS {
            match self.find(&key) {
                Found::Absent => return 0,
                Found::At(slot, tag) => {
                    let tat = slot.tat.load(Ordering::Acquire);
                    if tat != RECLAIMING && slot.tag.load(Ordering::Acquire) == tag {
                        return tat;
                    }
                }
            }
        }
        t // kept changing hands: report it as full, as an absent key is
    }

    /// Claims a slot for `key` (absent when looked for) with TAT `first`, under the claim
    /// lock of its home slot.
    fn claim(&self, key: &Key<'_>, t: u64, now: u64, first: u64) -> Claim {
        let lock = &self.slots.slots()[self.home(key.hash)].lock;
        let mine = now.saturating_add(1);
        let mut spins = 0;
        loop {
            let held = lock.load(Ordering::Relaxed);
            // Free, or a lease that has run out (or that lies in the future: corrupt).
            let free = held == 0
                || now.saturating_sub(held) > KEY_CLAIM_LEASE_NS
                || held > mine.saturating_add(KEY_CLAIM_LEASE_NS);
            if free
                && lock
                    .compare_exchange(held, mine, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break;
            }
            spins += 1;
            if spins >= LOCK_SPINS {
                return Claim::Busy;
            }
            core::hint::spin_loop();
            #[cfg(loom)]
            loom::thread::yield_now();
        }
        let result = self.claim_locked(key, t, first);
        // Release: the next claimer of this home sees this claim published. A CAS, so that
        // a claimer whose lease was taken over does not free its successor's lock.
        let _ = lock.compare_exchange(mine, 0, Ordering::Release, Ordering::Relaxed);
        result
    }

    fn claim_locked(&self, key: &Key<'_>, t: u64, first: u64) -> Claim {
        let h = key.hash;
        for _ in 0..ATTEMPTS {
            // Under the lock no other caller claims this key; look again for a claim that
            // finished before we took it.
            if let Found::At(..) = self.find(key) {
                return Claim::Exists;
            }
            let mut candidate = None;
            for slot in self.window(h) {
                let tag = slot.tag.load(Ordering::Acquire);
                if tag == 0 {
                    candidate = Some((slot, tag, None));
                    break;
                }
                if tag & CLAIMING != 0 {
                    continue; // another home's claim under way
                }
                let tat = slot.tat.load(Ordering::Acquire);
                let grace = KEY_REUSE_GRACE_NS.wrapping_shr(self.shift);
                if tat != RECLAIMING && tat.saturating_add(grace) <= t {
                    candidate = Some((slot, tag, Some(tat)));
                    break;
                }
            }
            let Some((slot, tag, expired)) = candidate else {
                return Claim::Full;
            };
            let epoch = match (tag & EPOCH_MASK) + 1 {
                e if e > EPOCH_MASK => 1,
                e => e,
            };
            let claiming = CLAIMING | h | epoch;
            let taken = match expired {
                // A never-used slot: take its tag (claimers of other homes race for it).
                None => slot
                    .tag
                    .compare_exchange(0, claiming, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok(),
                // An expired key's slot: first its TAT, so that the old key's callers fail
                // their CAS and look again; then the tag.
                Some(old) => {
                    slot.tat
                        .compare_exchange(old, RECLAIMING, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                        && slot
                            .tag
                            .compare_exchange(tag, claiming, Ordering::AcqRel, Ordering::Relaxed)
                            .is_ok()
                }
            };
            if !taken {
                if expired.is_some() {
                    // The TAT was ours but the tag moved (corrupt shared state): put it back.
                    let _ = slot.tat.compare_exchange(
                        RECLAIMING,
                        expired.unwrap_or(0),
                        Ordering::Release,
                        Ordering::Relaxed,
                    );
                }
                continue;
            }
            slot.write_key(key);
            // Release: a caller of the old key that loads this TAT (Acquire) then sees the
            // tag changed above, and looks again instead of granting into this key's bucket
            // (found by the loom model of a reclaimed slot).
            slot.tat.store(first, Ordering::Release);
            // Release: a finder that loads this tag (Acquire) sees the key and the TAT.
            slot.tag.store(h | epoch, Ordering::Release);
            return Claim::Done;
        }
        Claim::Busy
    }
}

enum Claim {
    /// Claimed, with the first grant in it.
    Done,
    /// Someone else's claim of the key finished first: use it.
    Exists,
    /// No room in the key's window.
    Full,
    Busy,
}

#[cfg(feature = "std")]
impl KeyedBuckets<std::boxed::Box<[KeySlot]>> {
    /// A table of `capacity` slots on the heap (see [`new`](KeyedBuckets::new)).
    pub fn with_capacity(
        config: BucketConfig,
        when_full: WhenFull,
        seed: u64,
        capacity: usize,
    ) -> Result<Self, ConfigError> {
        if capacity == 0 || capacity > MAX_KEYED_CAPACITY {
            return Err(ConfigError::new(
                "capacity",
                capacity as u64,
                "must be in 1..=2^24 slots",
            ));
        }
        let slots: std::vec::Vec<KeySlot> = (0..capacity).map(|_| KeySlot::new()).collect();
        Self::new(config, when_full, seed, slots.into_boxed_slice())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::SECOND;

    fn table(capacity: usize, when_full: WhenFull) -> KeyedBuckets<std::boxed::Box<[KeySlot]>> {
        KeyedBuckets::with_capacity(BucketConfig::per_second(1, 2), when_full, 42, capacity)
            .unwrap()
    }

    #[test]
    fn keys_have_their_own_buckets_and_expired_keys_are_absent() {
        let t = table(64, WhenFull::Reject);
        assert!(t.try_acquire(b"a", 2, 0).is_ok());
        assert_eq!(
            t.try_acquire(b"a", 1, 0),
            Err(KeyedRejected::RateLimited {
                retry_after: SECOND
            })
        );
        assert!(t.try_acquire(b"b", 2, 0).is_ok());
        assert_eq!(t.retry_after(b"a", 1, 0), Ok(SECOND));
        assert_eq!(t.retry_after(b"zzz", 1, 0), Ok(0));
        assert_eq!(t.state(b"a", 0).unwrap().remaining, 0);
        assert_eq!(t.state(b"zzz", 0).unwrap().remaining, 2);
        assert_eq!(t.live_keys(0), 2);
        assert_eq!(t.live_keys(2 * SECOND), 0);
        assert_eq!(t.reset(b"a"), Ok(true));
        assert_eq!(t.reset(b"nope"), Ok(false));
        assert!(t.try_acquire(b"a", 2, 0).is_ok());
        let m = t.metrics();
        assert_eq!((m.allowed, m.limited, m.capacity), (3, 1, 64));
        assert_eq!(
            t.try_acquire(&[0; 65], 1, 0),
            Err(KeyedRejected::KeyTooLong { len: 65 })
        );
        assert_eq!(
            t.try_acquire(b"a", 3, 0),
            Err(KeyedRejected::ExceedsCapacity {
                requested: 3,
                capacity: 2
            })
        );
        // Keys differing only in length or trailing zeros are different keys.
        assert!(t.try_acquire(b"c", 2, 0).is_ok());
        assert!(t.try_acquire(b"c\0", 2, 0).is_ok());
    }

    #[test]
    fn a_full_window_rejects_or_admits_new_keys_and_never_evicts_live_ones() {
        for policy in [WhenFull::Reject, WhenFull::Admit] {
            let t = table(4, policy);
            for k in 0..4u8 {
                assert!(t.try_acquire(&[k], 2, 0).is_ok());
            }
            let r = t.try_acquire(b"new", 1, 0);
            match policy {
                WhenFull::Reject => assert_eq!(r, Err(KeyedRejected::TableFull)),
                WhenFull::Admit => assert_eq!(r, Ok(())),
            }
            for k in 0..4u8 {
                assert!(
                    t.try_acquire(&[k], 1, 0).is_err(),
                    "live key {k} kept its state"
                );
            }
            let m = t.metrics();
            assert_eq!(m.full_rejected + m.full_admitted, 1);
            // Once a key's tokens are back (at 2 s), and the reuse grace has passed, its
            // slot is reused.
            let back = 2 * SECOND;
            let r = t.try_acquire(b"new", 1, back + KEY_REUSE_GRACE_NS - 1);
            match policy {
                WhenFull::Reject => assert_eq!(r, Err(KeyedRejected::TableFull)),
                WhenFull::Admit => assert_eq!(r, Ok(())),
            }
            assert!(t.try_acquire(b"new", 1, back + KEY_REUSE_GRACE_NS).is_ok());
            assert_eq!(t.live_keys(back + KEY_REUSE_GRACE_NS), 1);
        }
    }

    #[test]
    fn any_bits_in_the_slots_are_survivable() {
        let mut next = crate::breaker::tests::arbitrary_words(0x1234_5678_9ABC_DEF1);
        let t = table(8, WhenFull::Admit);
        for i in 0..5_000u64 {
            for s in t.slots.iter() {
                if next() % 3 == 0 {
                    s.scramble(&mut next);
                }
            }
            let key = [(i % 7) as u8; 3];
            let now = next() >> (i % 64);
            let _ = t.try_acquire(&key, next() % 4, now);
            let _ = t.retry_after(&key, 1, now);
            let _ = t.state(&key, now);
            let _ = t.reset(&key);
            let _ = t.live_keys(now);
        }
    }
}
