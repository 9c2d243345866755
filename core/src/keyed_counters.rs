//! Keyed counters and moving-window logs: the state of the `limits` strategies (fixed
//! window, moving window, sliding-window counter) per key, in a table of fixed capacity
//! that never allocates once built (the storage behind the Python `fastbreaker://` and
//! `fastbreaker+shm://` schemes of `limits`).
//!
//! ## The table
//! Each [`CounterSlot`] holds a key (its bytes, whole: at most [`MAX_KEY_LEN`]), a tag (the
//! key's seeded 47-bit hash and a 16-bit reuse counter), a counter with its expiry time,
//! and the head and length of the key's moving-window log: the newest
//! [`entries`](KeyedCounters::window_entries) timestamps of the key's hits, `M` per key,
//! fixed when the table is built (a moving-window limit above `M` is refused:
//! [`CountersRejected::LimitTooLarge`]). Keys are found as in
//! [`KeyedBuckets`](crate::KeyedBuckets): in one of the [`KEY_PROBE_WINDOW`] slots from
//! the key's home slot (`hash % capacity`) on. Times are `u64` nanoseconds of the caller's
//! clock (for `limits`: the wall clock, `time.time()`, which every process shares).
//!
//! A key whose counter has expired and whose newest log entry has left its window holds
//! nothing: it answers as an absent key does, and [`KEY_REUSE_GRACE_NS`] later its slot is
//! free for another key, so the table needs no sweeper. A new key that finds every slot of
//! its window holding a live key gets the [`WhenFull`] policy of the table:
//! [`CountersRejected::TableFull`], or (admit) a result as if it were alone and untracked:
//! [`incr`](KeyedCounters::incr) answers `amount`, [`acquire_entry`](KeyedCounters::acquire_entry)
//! `true`. A live key is never evicted.
//!
//! ## What is lock-free, and what is not
//! - Lock-free: finding a key, [`get`](KeyedCounters::get),
//!   [`expiry`](KeyedCounters::expiry), [`decr`](KeyedCounters::decr), and
//!   [`incr`](KeyedCounters::incr) of a key whose window is open with a count above 0 (a
//!   CAS on the count).
//! - Under the key's **slot lock**: `incr` that opens a window (it writes the count and the
//!   expiry, two words), everything touching the moving-window log
//!   ([`acquire_entry`](KeyedCounters::acquire_entry),
//!   [`moving_window`](KeyedCounters::moving_window)), [`clear`](KeyedCounters::clear),
//!   [`clear_all`](KeyedCounters::clear_all), and the reuse of an expired key's slot.
//!   Claiming a slot for a new key takes its home slot's claim lock, as `KeyedBuckets` does.
//! - Both locks are **leases**: the word holds the holder's `now + 1`; a lock held longer
//!   than [`COUNTER_LOCK_LEASE_NS`] (500 ms) by the taker's clock (a holder that died: a SIGKILLed
//!   process of a shared table) is taken over, and a lock word from the future (corrupt, or
//!   a clock stepped back) is taken at once. A live holder's critical section is a few
//!   dozen atomic operations with no system call, far within the lease. A caller that
//!   cannot take a lock within a bounded spin gets [`CountersRejected::Busy`] (try again:
//!   the Python binding retries, sleeping, for longer than a lease).
//! - A lock-free `incr` of a key racing with the reuse of its slot would count into the new
//!   key only if the callers' clocks disagreed by more than [`KEY_REUSE_GRACE_NS`], as in
//!   `KeyedBuckets`.
//!
//! Any bits in a slot, a lock word or the log are survivable: no panic, no hang; at worst
//! a key reads as absent. A claimer holds the claimed slot's lock until the slot is
//! published, so a slot left marked by a claimer that died is claimed again once that
//! lock's lease has run out.
//!
//! ```
//! use fastbreaker::{KeyedCounters, WhenFull, SECOND};
//! let t = KeyedCounters::with_capacity(WhenFull::Reject, 7, 1024, 10).unwrap();
//! assert_eq!(t.incr(b"ip", 60 * SECOND, 1, 0), Ok(1));
//! assert_eq!(t.incr(b"ip", 60 * SECOND, 2, SECOND), Ok(3));
//! assert_eq!(t.get(b"ip", 59 * SECOND), Ok(3));
//! assert_eq!(t.get(b"ip", 60 * SECOND), Ok(0), "the window has expired");
//! assert_eq!(t.acquire_entry(b"mw", 2, 10 * SECOND, 1, 0), Ok(true));
//! assert_eq!(t.acquire_entry(b"mw", 2, 10 * SECOND, 1, 1), Ok(true));
//! assert_eq!(t.acquire_entry(b"mw", 2, 10 * SECOND, 1, 2), Ok(false));
//! assert_eq!(t.moving_window(b"mw", 10 * SECOND, 5), Ok((0, 2)));
//! assert_eq!(t.acquire_entry(b"mw", 2, 10 * SECOND, 1, 10 * SECOND), Ok(true));
//! ```

use crate::limits::{KEY_PROBE_WINDOW, KEY_REUSE_GRACE_NS, MAX_KEY_LEN};
use crate::sync::{AtomicU64, Ordering};
use crate::{ConfigError, WhenFull};

const KEY_WORDS: usize = MAX_KEY_LEN / 8;
/// Tag bit: the slot is being claimed (its key and state are being written).
const CLAIMING: u64 = 1 << 63;
/// Tag bits of the hash (47 bits, above the reuse counter).
const HASH_MASK: u64 = ((1 << 47) - 1) << 16;
/// Tag bits of the reuse counter (never 0 in a used slot).
const EPOCH_MASK: u64 = 0xFFFF;
/// How long a holder may keep a slot lock or a claim lock of a [`KeyedCounters`] before
/// another caller takes it over (a holder that died): 500 ms by the taker's clock. Longer
/// than `KeyedBuckets`' claim lease, so that a live holder descheduled on a loaded machine
/// keeps its lock: two holders of one key's lock could both grant its last entry.
pub const COUNTER_LOCK_LEASE_NS: u64 = 500 * crate::MILLISECOND;
/// Largest table, in slots.
pub const MAX_COUNTER_CAPACITY: usize = 1 << 24;
/// Largest moving-window log of a key, in entries (the largest moving-window limit a
/// table can be built for).
pub const MAX_WINDOW_ENTRIES: usize = 1 << 16;
#[cfg(not(loom))]
const ATTEMPTS: u32 = 1 << 10;
#[cfg(not(loom))]
const LOCK_SPINS: u32 = 1 << 14;
#[cfg(loom)]
const ATTEMPTS: u32 = 4;
#[cfg(loom)]
const LOCK_SPINS: u32 = 2;

/// Why a [`KeyedCounters`] operation did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CountersRejected {
    /// A new key found no free slot in its window, and the table refuses such keys.
    TableFull,
    /// The key is longer than [`MAX_KEY_LEN`] bytes.
    KeyTooLong {
        /// Its length.
        len: usize,
    },
    /// A moving-window limit above the table's log length.
    LimitTooLarge {
        /// The limit asked for.
        limit: u64,
        /// The table's entries per key (the largest limit).
        max: u64,
    },
    /// A lock stayed taken for longer than a bounded spin: try again.
    Busy,
}

impl core::fmt::Display for CountersRejected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CountersRejected::TableFull => {
                f.write_str("the keyed counter table has no room for a new key")
            }
            CountersRejected::KeyTooLong { len } => {
                write!(f, "key of {len} bytes: at most {MAX_KEY_LEN} allowed")
            }
            CountersRejected::LimitTooLarge { limit, max } => write!(
                f,
                "limit={limit}: a moving-window limit must be in 0..={max} (the table's window_entries)"
            ),
            CountersRejected::Busy => f.write_str("the key's slot is busy: try again"),
        }
    }
}

/// One slot of a [`KeyedCounters`] table. All-zero bits are an empty slot (a zeroed shared
/// mapping is an empty table).
#[derive(Debug)]
#[repr(C)]
pub struct CounterSlot {
    /// 0: never used; else `CLAIMING? | hash (47 bits) << 16 | reuse counter (16 bits)`.
    tag: AtomicU64,
    /// The key's length in bytes.
    len: AtomicU64,
    /// Claim lock of the keys whose home is this slot: 0 free, else the taker's `now + 1`.
    claim: AtomicU64,
    /// The slot lock (see the module docs): 0 free, else the taker's `now + 1`.
    lock: AtomicU64,
    /// The fixed-window counter.
    count: AtomicU64,
    /// When the counter expires (it counts while `now < expires`).
    expires: AtomicU64,
    /// Index of the newest log entry.
    head: AtomicU64,
    /// Entries in the log (at most the table's entries per key).
    entries: AtomicU64,
    /// The latest `time + expiry` of the log's entries: the log holds nothing from then on.
    log_until: AtomicU64,
    /// The key's bytes, zero-padded, in host order words.
    key: [AtomicU64; KEY_WORDS],
}

impl Default for CounterSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl CounterSlot {
    crate::sync::maybe_const_fn! {
        /// An empty slot.
        pub fn new() -> CounterSlot {
            CounterSlot {
                tag: AtomicU64::new(0),
                len: AtomicU64::new(0),
                claim: AtomicU64::new(0),
                lock: AtomicU64::new(0),
                count: AtomicU64::new(0),
                expires: AtomicU64::new(0),
                head: AtomicU64::new(0),
                entries: AtomicU64::new(0),
                log_until: AtomicU64::new(0),
                key: crate::sync::zeroed_u64s(),
            }
        }
    }

    fn holds(&self, key: &[u8]) -> bool {
        if self.len.load(Ordering::Relaxed) != key.len() as u64 {
            return false;
        }
        self.key
            .iter()
            .zip(words_of(key))
            .all(|(w, v)| w.load(Ordering::Relaxed) == v)
    }

    fn write_key(&self, key: &[u8]) {
        self.len.store(key.len() as u64, Ordering::Relaxed);
        for (w, v) in self.key.iter().zip(words_of(key)) {
            w.store(v, Ordering::Relaxed);
        }
    }

    /// Whether the slot holds nothing at `now` (counter expired, log out of its window).
    fn empty_at(&self, now: u64) -> bool {
        self.expires.load(Ordering::Acquire) <= now && self.log_until.load(Ordering::Acquire) <= now
    }

    /// Every word of the slot, for tests that store arbitrary bits.
    #[doc(hidden)]
    pub fn words(&self) -> impl Iterator<Item = &AtomicU64> {
        [
            &self.tag,
            &self.len,
            &self.claim,
            &self.lock,
            &self.count,
            &self.expires,
            &self.head,
            &self.entries,
            &self.log_until,
        ]
        .into_iter()
        .chain(self.key.iter())
    }
}

fn words_of(key: &[u8]) -> [u64; KEY_WORDS] {
    let mut out = [0u64; KEY_WORDS];
    for (i, chunk) in key.chunks(8).enumerate().take(KEY_WORDS) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        out[i] = u64::from_ne_bytes(b);
    }
    out
}

/// The storage of a [`KeyedCounters`]: its slots and its log words (`entries` per slot,
/// slot `i`'s at `i * entries..(i + 1) * entries`).
pub trait CounterStorage {
    /// The slots (their number must not change).
    fn slots(&self) -> &[CounterSlot];
    /// The log words: at least `slots().len() * entries` of them.
    fn log(&self) -> &[AtomicU64];
}

/// Heap storage: slots and log in boxed slices.
#[cfg(feature = "std")]
#[derive(Debug)]
pub struct HeapCounters {
    slots: std::boxed::Box<[CounterSlot]>,
    log: std::boxed::Box<[AtomicU64]>,
}

#[cfg(feature = "std")]
impl CounterStorage for HeapCounters {
    fn slots(&self) -> &[CounterSlot] {
        &self.slots
    }
    fn log(&self) -> &[AtomicU64] {
        &self.log
    }
}

/// A table of fixed-window counters and moving-window logs, one per key, over the storage
/// `S`. See the module docs.
#[derive(Debug)]
pub struct KeyedCounters<S> {
    when_full: WhenFull,
    seed: u64,
    entries: usize,
    storage: S,
}

/// Where a key is.
enum Found<'a> {
    At(&'a CounterSlot, usize, u64),
    Absent,
}

/// A slot lock taken (released on drop, by a CAS: a holder whose lease was taken over does
/// not free its successor's lock).
struct Held<'a> {
    word: &'a AtomicU64,
    mine: u64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Release: the next holder sees what this one wrote.
        let _ = self
            .word
            .compare_exchange(self.mine, 0, Ordering::Release, Ordering::Relaxed);
    }
}

/// Takes the leased lock `word` at `now` (see the module docs), spinning at most `spins`.
fn lock(word: &AtomicU64, now: u64, spins: u32) -> Option<Held<'_>> {
    let mine = now.saturating_add(1);
    for _ in 0..spins.max(1) {
        let held = word.load(Ordering::Relaxed);
        let free = held == 0
            || now.saturating_sub(held) > COUNTER_LOCK_LEASE_NS
            || held > mine.saturating_add(COUNTER_LOCK_LEASE_NS);
        if free
            && word
                .compare_exchange(held, mine, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return Some(Held { word, mine });
        }
        core::hint::spin_loop();
        #[cfg(loom)]
        loom::thread::yield_now();
    }
    None
}

impl<S: CounterStorage> KeyedCounters<S> {
    /// A table over `storage` (1..=[`MAX_COUNTER_CAPACITY`] slots, all empty), each key with
    /// a log of `entries` (1..=[`MAX_WINDOW_ENTRIES`]) moving-window entries, new keys of a
    /// full window handled as `when_full`. `seed` keys the hash (give a random one).
    pub fn new(
        when_full: WhenFull,
        seed: u64,
        entries: usize,
        storage: S,
    ) -> Result<Self, ConfigError> {
        let n = storage.slots().len();
        if n == 0 || n > MAX_COUNTER_CAPACITY {
            return Err(ConfigError::new(
                "capacity",
                n as u64,
                "must be in 1..=2^24 keys",
            ));
        }
        if entries == 0 || entries > MAX_WINDOW_ENTRIES {
            return Err(ConfigError::new(
                "window_entries",
                entries as u64,
                "must be in 1..=65536 entries per key",
            ));
        }
        if storage.log().len() < n * entries {
            return Err(ConfigError::new(
                "log",
                storage.log().len() as u64,
                "must hold capacity * window_entries words",
            ));
        }
        Ok(KeyedCounters {
            when_full,
            seed,
            entries,
            storage,
        })
    }

    /// Slots in the table (the most keys it tracks at once).
    pub fn capacity(&self) -> usize {
        self.storage.slots().len()
    }

    /// Moving-window entries per key (the largest moving-window limit).
    pub fn window_entries(&self) -> usize {
        self.entries
    }

    /// The policy for new keys of a full window.
    pub fn when_full(&self) -> WhenFull {
        self.when_full
    }

    /// The seed of the key hash.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Keys holding a live counter or log entry at `now` (a scan of the whole table).
    pub fn live_keys(&self, now: u64) -> usize {
        self.storage
            .slots()
            .iter()
            .filter(|s| {
                let tag = s.tag.load(Ordering::Acquire);
                tag != 0 && tag & CLAIMING == 0 && !s.empty_at(now)
            })
            .count()
    }

    /// Adds `amount` to `key`'s counter at `now` and returns the count. A key whose counter
    /// has expired (or is absent) starts a window of `expiry` ns at `now`; so does a count
    /// at 0 (as `limits`' memory storage: a window emptied by [`decr`](Self::decr) restarts).
    pub fn incr(
        &self,
        key: &[u8],
        expiry: u64,
        amount: u64,
        now: u64,
    ) -> Result<u64, CountersRejected> {
        check_key(key)?;
        let h = self.hash(key);
        for _ in 0..ATTEMPTS {
            let (slot, tag) = match self.find(key, h) {
                Found::At(slot, _, tag) => (slot, tag),
                Found::Absent => match self.claim(key, h, now)? {
                    Claim::Done | Claim::Exists => continue,
                    Claim::Full => {
                        return match self.when_full {
                            WhenFull::Reject => Err(CountersRejected::TableFull),
                            WhenFull::Admit => Ok(amount),
                        }
                    }
                },
            };
            // Lock-free: an open window with a count above 0.
            let expires = slot.expires.load(Ordering::Acquire);
            let count = slot.count.load(Ordering::Acquire);
            if slot.tag.load(Ordering::Acquire) != tag {
                continue;
            }
            if expires > now && count != 0 {
                if slot
                    .count
                    .compare_exchange(
                        count,
                        count.saturating_add(amount),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    return Ok(count.saturating_add(amount));
                }
                continue;
            }
            let Some(_held) = lock(&slot.lock, now, LOCK_SPINS) else {
                return Err(CountersRejected::Busy);
            };
            if slot.tag.load(Ordering::Acquire) != tag {
                continue;
            }
            let expires = slot.expires.load(Ordering::Acquire);
            let count = if expires > now {
                slot.count.load(Ordering::Acquire)
            } else {
                0
            };
            let next = count.saturating_add(amount);
            slot.count.store(next, Ordering::Release);
            if count == 0 {
                // Release: a reader that sees this expiry (Acquire) sees the count above.
                slot.expires
                    .store(now.saturating_add(expiry), Ordering::Release);
            }
            return Ok(next);
        }
        Err(CountersRejected::Busy)
    }

    /// Takes `amount` from `key`'s counter (not below 0) and returns the count; 0 for an
    /// absent or expired key (which stays absent).
    pub fn decr(&self, key: &[u8], amount: u64, now: u64) -> Result<u64, CountersRejected> {
        check_key(key)?;
        let h = self.hash(key);
        for _ in 0..ATTEMPTS {
            let Found::At(slot, _, tag) = self.find(key, h) else {
                return Ok(0);
            };
            let expires = slot.expires.load(Ordering::Acquire);
            let count = slot.count.load(Ordering::Acquire);
            if slot.tag.load(Ordering::Acquire) != tag {
                continue;
            }
            if expires <= now {
                return Ok(0);
            }
            let next = count.saturating_sub(amount);
            if slot
                .count
                .compare_exchange(count, next, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(next);
            }
        }
        Err(CountersRejected::Busy)
    }

    /// `key`'s count at `now` (0: absent or expired).
    pub fn get(&self, key: &[u8], now: u64) -> Result<u64, CountersRejected> {
        Ok(self.counter(key, now)?.map_or(0, |(count, _)| count))
    }

    /// When `key`'s counter expires, if it is live at `now`.
    pub fn expiry(&self, key: &[u8], now: u64) -> Result<Option<u64>, CountersRejected> {
        Ok(self.counter(key, now)?.map(|(_, expires)| expires))
    }

    /// `(count, expires)` of `key` if its counter is live at `now`.
    fn counter(&self, key: &[u8], now: u64) -> Result<Option<(u64, u64)>, CountersRejected> {
        check_key(key)?;
        let h = self.hash(key);
        for _ in 0..ATTEMPTS {
            let Found::At(slot, _, tag) = self.find(key, h) else {
                return Ok(None);
            };
            let expires = slot.expires.load(Ordering::Acquire);
            let count = slot.count.load(Ordering::Acquire);
            if slot.tag.load(Ordering::Acquire) != tag {
                continue;
            }
            return Ok((expires > now).then_some((count, expires)));
        }
        Err(CountersRejected::Busy)
    }

    /// The moving window: adds `amount` entries at `now` to `key`'s log if fewer than
    /// `limit - amount + 1` of its entries lie within the last `expiry` ns (an entry at `t`
    /// counts while `t + expiry > now`); whether it did. `amount > limit`: `false`;
    /// `limit` above [`window_entries`](Self::window_entries): [`CountersRejected::LimitTooLarge`].
    pub fn acquire_entry(
        &self,
        key: &[u8],
        limit: u64,
        expiry: u64,
        amount: u64,
        now: u64,
    ) -> Result<bool, CountersRejected> {
        check_key(key)?;
        if limit > self.entries as u64 {
            return Err(CountersRejected::LimitTooLarge {
                limit,
                max: self.entries as u64,
            });
        }
        if amount > limit {
            return Ok(false);
        }
        let h = self.hash(key);
        for _ in 0..ATTEMPTS {
            let (slot, index, tag) = match self.find(key, h) {
                Found::At(slot, index, tag) => (slot, index, tag),
                Found::Absent if amount == 0 => return Ok(true),
                Found::Absent => match self.claim(key, h, now)? {
                    Claim::Done | Claim::Exists => continue,
                    Claim::Full => {
                        return match self.when_full {
                            WhenFull::Reject => Err(CountersRejected::TableFull),
                            WhenFull::Admit => Ok(true),
                        }
                    }
                },
            };
            let Some(_held) = lock(&slot.lock, now, LOCK_SPINS) else {
                return Err(CountersRejected::Busy);
            };
            if slot.tag.load(Ordering::Acquire) != tag {
                continue;
            }
            let log = self.log_of(index);
            let m = self.entries as u64;
            let head = slot.head.load(Ordering::Relaxed) % m;
            let len = slot.entries.load(Ordering::Relaxed).min(m);
            let at = |i: u64| &log[((head + m - i) % m) as usize];
            let i = limit - amount;
            if i < len && at(i).load(Ordering::Relaxed).saturating_add(expiry) > now {
                return Ok(false);
            }
            let mut head = head;
            for _ in 0..amount {
                head = (head + 1) % m;
                log[head as usize].store(now, Ordering::Relaxed);
            }
            slot.head.store(head, Ordering::Relaxed);
            slot.entries.store((len + amount).min(m), Ordering::Relaxed);
            let until = now.saturating_add(expiry);
            if amount > 0 && slot.log_until.load(Ordering::Relaxed) < until {
                slot.log_until.store(until, Ordering::Release);
            }
            return Ok(true);
        }
        Err(CountersRejected::Busy)
    }

    /// `(start, count)` of `key`'s moving window at `now`: the entries within the last
    /// `expiry` ns (newest first, up to the first older one), and the time of the oldest
    /// of them; `(now, 0)` if there are none.
    pub fn moving_window(
        &self,
        key: &[u8],
        expiry: u64,
        now: u64,
    ) -> Result<(u64, u64), CountersRejected> {
        check_key(key)?;
        let h = self.hash(key);
        for _ in 0..ATTEMPTS {
            let Found::At(slot, index, tag) = self.find(key, h) else {
                return Ok((now, 0));
            };
            let Some(_held) = lock(&slot.lock, now, LOCK_SPINS) else {
                return Err(CountersRejected::Busy);
            };
            if slot.tag.load(Ordering::Acquire) != tag {
                continue;
            }
            let log = self.log_of(index);
            let m = self.entries as u64;
            let head = slot.head.load(Ordering::Relaxed) % m;
            let len = slot.entries.load(Ordering::Relaxed).min(m);
            let mut start = now;
            let mut count = 0;
            for i in 0..len {
                let t = log[((head + m - i) % m) as usize].load(Ordering::Relaxed);
                if t.saturating_add(expiry) <= now {
                    break;
                }
                start = t;
                count += 1;
            }
            return Ok((if count == 0 { now } else { start }, count));
        }
        Err(CountersRejected::Busy)
    }

    /// Empties `key`'s counter and log; whether the key was in the table.
    pub fn clear(&self, key: &[u8], now: u64) -> Result<bool, CountersRejected> {
        check_key(key)?;
        let h = self.hash(key);
        for _ in 0..ATTEMPTS {
            let Found::At(slot, _, tag) = self.find(key, h) else {
                return Ok(false);
            };
            let Some(_held) = lock(&slot.lock, now, LOCK_SPINS) else {
                return Err(CountersRejected::Busy);
            };
            if slot.tag.load(Ordering::Acquire) != tag {
                continue;
            }
            empty(slot);
            return Ok(true);
        }
        Err(CountersRejected::Busy)
    }

    /// Empties every key; how many were live at `now`. A slot whose lock stays taken is
    /// left as it is, and `Err(Busy)` says so after the others are emptied.
    pub fn clear_all(&self, now: u64) -> Result<usize, CountersRejected> {
        let mut live = 0;
        let mut busy = false;
        for slot in self.storage.slots() {
            let tag = slot.tag.load(Ordering::Acquire);
            if tag == 0 || tag & CLAIMING != 0 {
                continue;
            }
            let Some(_held) = lock(&slot.lock, now, LOCK_SPINS) else {
                busy = true;
                continue;
            };
            if !slot.empty_at(now) {
                live += 1;
            }
            empty(slot);
        }
        if busy {
            Err(CountersRejected::Busy)
        } else {
            Ok(live)
        }
    }

    // ----- internals -----

    fn log_of(&self, index: usize) -> &[AtomicU64] {
        let start = index * self.entries;
        &self.storage.log()[start..start + self.entries]
    }

    /// The tag bits of `key`'s hash (seeded FNV-1a, finished with SplitMix64), as
    /// `KeyedBuckets` computes them.
    fn hash(&self, key: &[u8]) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ self.seed;
        for &b in key {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        crate::backoff::splitmix64(h ^ key.len() as u64) & HASH_MASK
    }

    fn home(&self, h: u64) -> usize {
        ((h >> 16) % self.capacity() as u64) as usize
    }

    /// The indices of `h`'s window, in probe order.
    fn window(&self, h: u64) -> impl Iterator<Item = usize> {
        let n = self.capacity();
        let home = self.home(h);
        (0..KEY_PROBE_WINDOW.min(n)).map(move |i| (home + i) % n)
    }

    fn find(&self, key: &[u8], h: u64) -> Found<'_> {
        let slots = self.storage.slots();
        for i in self.window(h) {
            let slot = &slots[i];
            // Acquire: pairs with the Release store that publishes a claim.
            let tag = slot.tag.load(Ordering::Acquire);
            if tag == 0 {
                break;
            }
            if tag & (CLAIMING | HASH_MASK) == h && slot.holds(key) {
                return Found::At(slot, i, tag);
            }
        }
        Found::Absent
    }

    /// Claims a slot for `key` (absent when looked for), empty, under its home's claim lock.
    fn claim(&self, key: &[u8], h: u64, now: u64) -> Result<Claim, CountersRejected> {
        let slots = self.storage.slots();
        let Some(_held) = lock(&slots[self.home(h)].claim, now, LOCK_SPINS) else {
            return Err(CountersRejected::Busy);
        };
        if let Found::At(..) = self.find(key, h) {
            return Ok(Claim::Exists);
        }
        let grace = KEY_REUSE_GRACE_NS;
        // A slot is free for the key if it was never used, if its key holds nothing since
        // the reuse grace, or if a claim of it was left unfinished: claimers hold the slot's
        // lock from before they mark its tag until they publish it, so a tag still marked
        // with the lock free (or its lease run out) is a claimer that died.
        let free = |slot: &CounterSlot, tag: u64| {
            tag == 0 || tag & CLAIMING != 0 || slot.empty_at(now.saturating_sub(grace))
        };
        for i in self.window(h) {
            let slot = &slots[i];
            let tag = slot.tag.load(Ordering::Acquire);
            if !free(slot, tag) {
                continue;
            }
            // Under the slot's lock: no locked operation of an old key is under way, and no
            // other claim of this slot (a claim under way holds it: the slot is skipped).
            let Some(_slot_held) = lock(&slot.lock, now, 1) else {
                continue;
            };
            let epoch = match (tag & EPOCH_MASK) + 1 {
                e if e > EPOCH_MASK => 1,
                e => e,
            };
            // Taken by a CAS of its tag (claimers of other homes race for it).
            if !free(slot, tag)
                || slot
                    .tag
                    .compare_exchange(
                        tag,
                        CLAIMING | h | epoch,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_err()
            {
                continue;
            }
            publish(slot, key, h | epoch, now);
            return Ok(Claim::Done);
        }
        Ok(Claim::Full)
    }
}

/// Writes a claimed slot's key and empty state (reserved until `now`, so that it is not
/// reused before its claimer's operation), then publishes its tag.
fn publish(slot: &CounterSlot, key: &[u8], tag: u64, now: u64) {
    slot.write_key(key);
    slot.count.store(0, Ordering::Relaxed);
    slot.expires.store(now, Ordering::Relaxed);
    slot.head.store(0, Ordering::Relaxed);
    slot.entries.store(0, Ordering::Relaxed);
    slot.log_until.store(now, Ordering::Relaxed);
    // Release: a finder that loads this tag (Acquire) sees the key and the state.
    slot.tag.store(tag, Ordering::Release);
}

fn empty(slot: &CounterSlot) {
    slot.count.store(0, Ordering::Relaxed);
    slot.expires.store(0, Ordering::Release);
    slot.entries.store(0, Ordering::Relaxed);
    slot.log_until.store(0, Ordering::Release);
}

fn check_key(key: &[u8]) -> Result<(), CountersRejected> {
    if key.len() > MAX_KEY_LEN {
        return Err(CountersRejected::KeyTooLong { len: key.len() });
    }
    Ok(())
}

enum Claim {
    Done,
    Exists,
    Full,
}

#[cfg(feature = "std")]
impl KeyedCounters<HeapCounters> {
    /// A table of `capacity` keys with logs of `entries` on the heap (see
    /// [`new`](KeyedCounters::new)).
    pub fn with_capacity(
        when_full: WhenFull,
        seed: u64,
        capacity: usize,
        entries: usize,
    ) -> Result<Self, ConfigError> {
        if capacity == 0 || capacity > MAX_COUNTER_CAPACITY {
            return Err(ConfigError::new(
                "capacity",
                capacity as u64,
                "must be in 1..=2^24 keys",
            ));
        }
        if entries == 0 || entries > MAX_WINDOW_ENTRIES {
            return Err(ConfigError::new(
                "window_entries",
                entries as u64,
                "must be in 1..=65536 entries per key",
            ));
        }
        let slots: std::vec::Vec<CounterSlot> = (0..capacity).map(|_| CounterSlot::new()).collect();
        let log: std::vec::Vec<AtomicU64> =
            (0..capacity * entries).map(|_| AtomicU64::new(0)).collect();
        Self::new(
            when_full,
            seed,
            entries,
            HeapCounters {
                slots: slots.into_boxed_slice(),
                log: log.into_boxed_slice(),
            },
        )
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::SECOND;

    fn table(capacity: usize, when_full: WhenFull) -> KeyedCounters<HeapCounters> {
        KeyedCounters::with_capacity(when_full, 42, capacity, 8).unwrap()
    }

    #[test]
    fn counters_expire_and_restart_at_zero() {
        let t = table(64, WhenFull::Reject);
        assert_eq!(t.incr(b"a", 10, 2, 100), Ok(2));
        assert_eq!(t.expiry(b"a", 100), Ok(Some(110)));
        assert_eq!(t.incr(b"a", 10, 1, 105), Ok(3));
        assert_eq!(
            t.expiry(b"a", 105),
            Ok(Some(110)),
            "the window keeps its start"
        );
        assert_eq!(t.decr(b"a", 5, 106), Ok(0));
        assert_eq!(t.incr(b"a", 10, 1, 107), Ok(1));
        assert_eq!(
            t.expiry(b"a", 107),
            Ok(Some(117)),
            "a count at 0 restarts the window"
        );
        assert_eq!(t.get(b"a", 116), Ok(1));
        assert_eq!(t.get(b"a", 117), Ok(0));
        assert_eq!(t.expiry(b"a", 117), Ok(None));
        assert_eq!(t.decr(b"zz", 1, 0), Ok(0));
        assert_eq!(t.live_keys(100), 1);
        assert_eq!(t.clear(b"a", 0), Ok(true));
        assert_eq!(t.clear(b"zz", 0), Ok(false));
        assert_eq!(t.get(b"a", 108), Ok(0));
        assert_eq!(
            t.incr(&[0; 65], 1, 1, 0),
            Err(CountersRejected::KeyTooLong { len: 65 })
        );
    }

    #[test]
    fn moving_window_limits_and_bounds() {
        let t = table(64, WhenFull::Reject);
        assert_eq!(
            t.acquire_entry(b"k", 9, SECOND, 1, 0),
            Err(CountersRejected::LimitTooLarge { limit: 9, max: 8 })
        );
        assert_eq!(t.acquire_entry(b"k", 8, SECOND, 9, 0), Ok(false));
        assert_eq!(t.acquire_entry(b"k", 8, SECOND, 8, 0), Ok(true));
        assert_eq!(t.acquire_entry(b"k", 8, SECOND, 1, 1), Ok(false));
        assert_eq!(t.moving_window(b"k", SECOND, 10), Ok((0, 8)));
        assert_eq!(t.moving_window(b"k", SECOND, SECOND), Ok((SECOND, 0)));
        assert_eq!(t.acquire_entry(b"k", 8, SECOND, 3, SECOND), Ok(true));
        assert_eq!(t.moving_window(b"k", SECOND, SECOND), Ok((SECOND, 3)));
    }

    #[test]
    fn a_full_window_rejects_or_admits_and_never_evicts() {
        for policy in [WhenFull::Reject, WhenFull::Admit] {
            let t = table(4, policy);
            for k in 0..4u8 {
                assert_eq!(t.incr(&[k], SECOND, 1, 0), Ok(1));
            }
            let r = t.incr(b"new", SECOND, 1, 0);
            let a = t.acquire_entry(b"new", 1, SECOND, 1, 0);
            match policy {
                WhenFull::Reject => {
                    assert_eq!(r, Err(CountersRejected::TableFull));
                    assert_eq!(a, Err(CountersRejected::TableFull));
                }
                WhenFull::Admit => {
                    assert_eq!(r, Ok(1));
                    assert_eq!(a, Ok(true));
                }
            }
            for k in 0..4u8 {
                assert_eq!(t.get(&[k], 1), Ok(1), "live key {k} kept");
            }
            // Expired at 1 s; free after the grace.
            let early = t.incr(b"new", SECOND, 1, SECOND + KEY_REUSE_GRACE_NS - 1);
            match policy {
                WhenFull::Reject => assert_eq!(early, Err(CountersRejected::TableFull)),
                WhenFull::Admit => assert_eq!(early, Ok(1), "admitted untracked"),
            }
            assert_eq!(
                t.incr(b"new", SECOND, 1, SECOND + KEY_REUSE_GRACE_NS),
                Ok(1)
            );
        }
    }

    #[test]
    fn a_claim_left_unfinished_is_taken_over_after_its_lease() {
        let t = table(1, WhenFull::Reject);
        let slot = &t.storage.slots[0];
        // A claimer that died after marking the slot's tag, holding its lock since 10.
        slot.tag
            .store(CLAIMING | 0x1234 << 16 | 7, Ordering::Relaxed);
        slot.lock.store(10 + 1, Ordering::Relaxed);
        assert_eq!(
            t.incr(b"k", SECOND, 1, 10),
            Err(CountersRejected::TableFull)
        );
        assert_eq!(
            t.incr(b"k", SECOND, 1, 11 + COUNTER_LOCK_LEASE_NS),
            Err(CountersRejected::TableFull),
            "still within the lease"
        );
        assert_eq!(t.incr(b"k", SECOND, 1, 12 + COUNTER_LOCK_LEASE_NS), Ok(1));
        assert_eq!(t.live_keys(12 + COUNTER_LOCK_LEASE_NS), 1);
    }

    #[test]
    fn any_bits_are_survivable() {
        let mut next = crate::breaker::tests::arbitrary_words(0x5EED_0FC0_FFEE);
        let t = table(8, WhenFull::Admit);
        for i in 0..5_000u64 {
            for s in t.storage.slots.iter() {
                if next() % 3 == 0 {
                    for w in s.words() {
                        w.store(next(), Ordering::Relaxed);
                    }
                }
            }
            for w in t.storage.log.iter() {
                if next() % 5 == 0 {
                    w.store(next(), Ordering::Relaxed);
                }
            }
            let key = [(i % 7) as u8; 3];
            let now = next() >> (i % 64);
            let e = next() >> (i % 64);
            let _ = t.incr(&key, e, next() % 4, now);
            let _ = t.decr(&key, next() % 4, now);
            let _ = t.get(&key, now);
            let _ = t.expiry(&key, now);
            let _ = t.acquire_entry(&key, next() % 9, e, next() % 9, now);
            let _ = t.moving_window(&key, e, now);
            let _ = t.clear(&key, now);
            let _ = t.live_keys(now);
            if i % 100 == 0 {
                let _ = t.clear_all(now);
            }
        }
    }
}
