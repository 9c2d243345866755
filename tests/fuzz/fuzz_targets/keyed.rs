//! The keyed table (`KeyedBuckets`) against a map from key to exact GCRA TAT in 128-bit
//! nanoseconds (as `tests/tests/keyed_model.rs`), then with arbitrary bits in its slots.
//!
//! 1. Arbitrary operations (`try_acquire`, `retry_after`, `state`, `reset`, `live_keys`, the
//!    clock moving forwards) on arbitrary keys (deduplicated; any bytes, too long ones
//!    included) in a table of 1..=32 slots. While a key is live its every result is the
//!    model's; a new key is refused or admitted untracked only when the live keys fill its
//!    window: in a table of at most 16 slots (the window is the whole table) exactly when
//!    every slot holds a live key, in a larger one only when at least 16 keys are live.
//!    After every operation every key's state, the live keys and the metrics are the
//!    model's. Buckets kept in coarser units (a budget above 2^62 ns) are not compared.
//! 2. Arbitrary words written into the slots, then more operations at any times (past the
//!    documented 2^62 ns too): no panic (debug assertions on: no overflow), a state within
//!    the burst, no more live keys than slots.
//!
//! The slots are corrupted through the layout the core documents for tables in shared
//! mappings (`#[repr(C, align(64))]`, every field an `AtomicU64`: any bits are a valid slot): the
//! table is built over `AtomicU64` words viewed as `KeySlot`s.
#![no_main]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::Arbitrary;
use fastbreaker::limits::{KEY_PROBE_WINDOW, KEY_REUSE_GRACE_NS, MAX_KEY_LEN};
use fastbreaker::{BucketConfig, BucketState, KeySlot, KeyedBuckets, KeyedRejected, WhenFull};
use fastbreaker_fuzz::{Num, TIME_EDGES};
use libfuzzer_sys::fuzz_target;

/// Times of the model phase stay at or below this: the core's documented range.
const HORIZON: u64 = (1 << 62) - 1;
/// Cache lines (64 bytes, 8 `AtomicU64` words) of one `KeySlot`.
const SLOT_LINES: usize = std::mem::size_of::<KeySlot>() / 64;

/// `AtomicU64` fields of one `KeySlot`: tag, TAT, length, lock and the key's words.
const FIELD_WORDS: usize = 4 + MAX_KEY_LEN / 8;

/// One cache line of atomic words, aligned as a `KeySlot` is.
#[repr(C, align(64))]
struct Line([AtomicU64; 8]);

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Advance(Num),
    TryAcquire(u8, Num),
    RetryAfter(u8, Num),
    State(u8),
    Reset(u8),
    LiveKeys,
}

#[derive(Arbitrary, Debug)]
struct Input {
    rate: Num,
    period: Num,
    burst: Num,
    capacity: u8,
    admit: bool,
    seed: u64,
    keys: Vec<Vec<u8>>,
    start: Num,
    ops: Vec<Op>,
    writes: Vec<(u16, u64)>,
    after: Vec<Op>,
}

/// Exact GCRA per key: `n` tokens at `now` conform when `max(tat, now) + n*T <= now +
/// burst*T`; a key with `tat <= now` is absent.
struct Model {
    interval: u128,
    burst: u128,
    tat: HashMap<usize, u128>,
}

impl Model {
    fn tat(&self, k: usize) -> u128 {
        self.tat.get(&k).copied().unwrap_or(0)
    }

    fn live(&self, k: usize, now: u64) -> bool {
        self.tat(k) > u128::from(now)
    }

    fn live_keys(&self, now: u64) -> usize {
        self.tat.keys().filter(|&&k| self.live(k, now)).count()
    }

    /// Whether key `k` holds a slot no new key may take at `now`: granted (tracked) with a
    /// TAT less than the reuse grace before `now` (the clock never goes back here).
    fn holds_slot(&self, k: usize, now: u64) -> bool {
        self.tat
            .get(&k)
            .is_some_and(|&t| t + u128::from(KEY_REUSE_GRACE_NS) > u128::from(now))
    }

    /// Keys holding such slots.
    fn slot_holders(&self, now: u64) -> usize {
        self.tat
            .keys()
            .filter(|&&k| self.holds_slot(k, now))
            .count()
    }

    fn check(&self, key: &[u8], n: u64) -> Result<(), KeyedRejected> {
        if key.len() > MAX_KEY_LEN {
            return Err(KeyedRejected::KeyTooLong { len: key.len() });
        }
        if u128::from(n) > self.burst {
            return Err(KeyedRejected::ExceedsCapacity {
                requested: n,
                capacity: self.burst as u64,
            });
        }
        Ok(())
    }

    fn probe(&self, k: usize, n: u64, now: u64) -> (u128, u128) {
        let now = u128::from(now);
        let end = self.tat(k).max(now) + u128::from(n) * self.interval;
        (end, end.saturating_sub(now + self.burst * self.interval))
    }

    fn state(&self, k: usize, key: &[u8], now: u64) -> Result<BucketState, KeyedRejected> {
        self.check(key, 0)?;
        let t = u128::from(now);
        let tat = self.tat(k).max(t);
        let slack = (t + self.burst * self.interval).saturating_sub(tat);
        Ok(BucketState {
            limit: self.burst as u64,
            remaining: (slack / self.interval).min(self.burst) as u64,
            reset_after: (tat - t) as u64,
            retry_after: self.probe(k, 1, now).1 as u64,
        })
    }
}

fuzz_target!(|input: Input| {
    let config = BucketConfig {
        rate: input.rate.get(1_000, &[1, 3, 7, 1_000_000_000]).max(1),
        period_ns: input
            .period
            .get(10_000, &[1, 1_000, 1_000_000_000, 86_400_000_000_000])
            .max(1),
        burst: input
            .burst
            .get(16, &[1, 2, (1 << 32) - 1, 1 << 32])
            .clamp(1, 1 << 32),
    };
    let config = BucketConfig {
        rate: config.rate.min(config.period_ns),
        ..config
    };
    let capacity = usize::from(input.capacity % 32) + 1;
    let when_full = if input.admit {
        WhenFull::Admit
    } else {
        WhenFull::Reject
    };
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for key in input.keys.iter().take(40) {
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    if keys.is_empty() {
        keys.push(b"k".to_vec());
    }

    // The table over plain words, viewed as slots.
    assert_eq!(std::mem::size_of::<KeySlot>(), SLOT_LINES * 64);
    assert_eq!(
        std::mem::align_of::<KeySlot>(),
        std::mem::align_of::<Line>()
    );
    let words: Vec<Line> = (0..capacity * SLOT_LINES)
        .map(|_| Line(std::array::from_fn(|_| AtomicU64::new(0))))
        .collect();
    // SAFETY: `KeySlot` is `#[repr(C, align(64))]` with only `AtomicU64` fields and padding
    // (its size and alignment are checked above): `capacity * SLOT_LINES` zeroed, 64-byte
    // aligned lines are `capacity` empty slots (the layout the core documents for tables in
    // shared mappings). Both views are shared references to atomics (the padding is never
    // read), and `words` outlives `slots`.
    let slots: &[KeySlot] =
        unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<KeySlot>(), capacity) };
    let table = KeyedBuckets::new(config, when_full, input.seed, slots).expect("a valid table");
    assert_eq!(table.capacity(), capacity);

    let exact = config.period_ns.div_ceil(config.rate);
    let unscaled = u128::from(exact) * u128::from(config.burst) <= 1 << 62;
    let burst = config.burst;
    let interval = exact;
    let amount = |n: Num| n.get(burst.saturating_add(2), &[0, 1, burst, burst + 1, u64::MAX]);
    let mut model = Model {
        interval: u128::from(exact),
        burst: u128::from(burst),
        tat: HashMap::new(),
    };
    let (mut allowed, mut limited, mut full_rejected, mut full_admitted) = (0u64, 0, 0, 0);
    let window = KEY_PROBE_WINDOW.min(capacity);

    let mut now = input.start.get(1 << 40, TIME_EDGES).min(HORIZON);
    for op in input.ops.iter().take(200) {
        match *op {
            Op::Advance(d) => {
                now = now
                    .saturating_add(d.get(interval.saturating_mul(4).max(4), TIME_EDGES))
                    .min(HORIZON)
            }
            Op::TryAcquire(k, n) => {
                let k = usize::from(k) % keys.len();
                let (key, n) = (&keys[k][..], amount(n));
                let before = table.metrics();
                let live = model.slot_holders(now);
                let got = table.try_acquire(key, n, now);
                let after = table.metrics();
                if !unscaled {
                    continue;
                }
                if let Err(e) = model.check(key, n) {
                    assert_eq!(got, Err(e), "try_acquire({key:?}, {n}, {now})");
                } else if n == 0 {
                    assert_eq!(got, Ok(()));
                } else if model.live(k, now) || model.holds_slot(k, now) {
                    // Live, or still in its slot (no new key may take it yet): exact GCRA.
                    let (end, late) = model.probe(k, n, now);
                    if late > 0 {
                        let retry_after = late as u64;
                        assert_eq!(got, Err(KeyedRejected::RateLimited { retry_after }));
                        limited += 1;
                    } else {
                        assert_eq!(got, Ok(()), "live key {key:?}: {n} at {now}");
                        model.tat.insert(k, end);
                        allowed += 1;
                    }
                } else {
                    let full = match (got, when_full) {
                        (Ok(()), WhenFull::Admit) => after.full_admitted > before.full_admitted,
                        (Ok(()), WhenFull::Reject) => false,
                        (Err(KeyedRejected::TableFull), WhenFull::Reject) => true,
                        _ => panic!("new key {key:?}: {n} at {now}: {got:?}"),
                    };
                    if capacity <= KEY_PROBE_WINDOW {
                        assert_eq!(full, live == capacity, "{live} slot holders of {capacity}");
                    } else if full {
                        assert!(live >= window, "full with {live} slot holders");
                    }
                    if !full {
                        let first = u128::from(now) + u128::from(n) * model.interval;
                        model.tat.insert(k, first);
                        allowed += 1;
                    } else if when_full == WhenFull::Reject {
                        full_rejected += 1;
                    } else {
                        full_admitted += 1;
                    }
                }
            }
            Op::RetryAfter(k, n) => {
                let k = usize::from(k) % keys.len();
                let (key, n) = (&keys[k][..], amount(n));
                let got = table.retry_after(key, n, now);
                if unscaled {
                    let want = model.check(key, n).map(|()| {
                        if n == 0 {
                            0
                        } else {
                            model.probe(k, n, now).1 as u64
                        }
                    });
                    assert_eq!(got, want, "retry_after({key:?}, {n}, {now})");
                }
            }
            Op::State(k) => {
                let k = usize::from(k) % keys.len();
                let _ = table.state(&keys[k], now);
            }
            Op::Reset(k) => {
                let k = usize::from(k) % keys.len();
                let key = &keys[k][..];
                let got = table.reset(key);
                if unscaled {
                    match model.check(key, 0) {
                        Err(e) => assert_eq!(got, Err(e)),
                        Ok(()) if model.live(k, now) => assert_eq!(got, Ok(true)),
                        Ok(()) if !model.tat.contains_key(&k) => assert_eq!(got, Ok(false)),
                        Ok(()) => assert!(got.is_ok()),
                    }
                }
                if model.tat.contains_key(&k) {
                    model.tat.insert(k, 0);
                }
            }
            Op::LiveKeys => {
                let _ = table.live_keys(now);
            }
        }
        if unscaled {
            for (k, key) in keys.iter().enumerate() {
                assert_eq!(
                    table.state(key, now),
                    model.state(k, key, now),
                    "after {op:?} at {now}: key {key:?}"
                );
            }
            assert_eq!(table.live_keys(now), model.live_keys(now), "after {op:?}");
            let m = table.metrics();
            assert_eq!(
                (m.allowed, m.limited, m.full_rejected, m.full_admitted),
                (allowed, limited, full_rejected, full_admitted),
                "after {op:?}"
            );
        }
    }

    // Arbitrary bits in the slots: anything may happen but a panic.
    if input.writes.is_empty() {
        return;
    }
    // The slots' field words (the padding after them is never read: left alone).
    let fields: Vec<&AtomicU64> = words
        .chunks(SLOT_LINES)
        .flat_map(|slot| slot.iter().flat_map(|line| line.0.iter()).take(FIELD_WORDS))
        .collect();
    for &(i, v) in input.writes.iter().take(64) {
        fields[usize::from(i) % fields.len()].store(v, Ordering::Relaxed);
    }
    for op in input.after.iter().take(100) {
        match *op {
            Op::Advance(d) => now = d.get(u64::MAX, TIME_EDGES),
            Op::TryAcquire(k, n) => {
                let _ = table.try_acquire(&keys[usize::from(k) % keys.len()], amount(n), now);
            }
            Op::RetryAfter(k, n) => {
                let _ = table.retry_after(&keys[usize::from(k) % keys.len()], amount(n), now);
            }
            Op::State(k) => {
                if let Ok(s) = table.state(&keys[usize::from(k) % keys.len()], now) {
                    assert!(s.remaining <= burst && s.limit == burst, "{s:?}");
                }
            }
            Op::Reset(k) => {
                let _ = table.reset(&keys[usize::from(k) % keys.len()]);
            }
            Op::LiveKeys => assert!(table.live_keys(now) <= capacity),
        }
    }
});
