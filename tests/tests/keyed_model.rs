//! Model-based property tests of the keyed table (`KeyedBuckets`).
//!
//! The reference is written from the module's definition: a map from key to the exact GCRA
//! theoretical arrival time (TAT) in 128-bit nanoseconds (the GCRA of `bucket_model.rs`'s
//! `Reference`), where a key whose TAT has passed is the same as an absent key. The table is
//! driven single-threaded with a clock that only moves forwards (no stale times: once an expired
//! key's slot is reused, a caller with a time before that key's TAT finds it absent, hence
//! full, where the GCRA of one bucket would not), by random sequences
//! of `try_acquire`, `retry_after`, `state`, `reset` and `live_keys` on keys from a small
//! alphabet (empty, one zero byte, trailing zeros, 64-byte keys differing in their last byte,
//! too long ones). After every operation the state of every key at the clock, the number of
//! live keys and the metrics must equal the model's.
//!
//! * [`roomy_table_matches_model`]: at most 12 storable keys in a table of at least 16 slots
//!   per key: no key's window can fill (it would take 16 live keys), so every result is the
//!   model's, exactly.
//! * [`small_table_never_forgets_live_keys`]: 1..=24 slots and 40 keys, `WhenFull::Reject` or
//!   `Admit`. A live key is never forgotten (every result and state of it is the model's);
//!   a new key is refused or admitted untracked only when the live keys fill its window: for
//!   a table of at most 16 slots the window is the whole table, so that is *exactly* when
//!   every slot holds a live key; for a larger one, only when at least 16 keys are live. The
//!   metrics add up to the calls that returned each outcome.
//!
//! Cases: 2 000 + 2 000. Failing cases are persisted in
//! `tests/proptest-regressions/keyed_model.txt` and replayed first on every run.

// Loom atomics only work inside a loom model.
#![cfg(not(loom))]

use std::collections::HashMap;

use fastbreaker::limits::{KEY_PROBE_WINDOW, KEY_REUSE_GRACE_NS, MAX_KEY_LEN};
use fastbreaker::{
    BucketConfig, BucketState, KeySlot, KeyedBuckets, KeyedMetrics, KeyedRejected, WhenFull, SECOND,
};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngAlgorithm};

/// Where proptest keeps the failing cases it found (committed, replayed first).
const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/proptest-regressions/keyed_model.txt"
);

/// Times passed in stay below 2^62 ns, the documented range.
const HORIZON: u64 = (1 << 62) - 1;

fn persisted(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        // ChaCha, the default, dominates the run time of unoptimised builds.
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}

type Table = KeyedBuckets<Box<[KeySlot]>>;

// ---------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------

/// Exact GCRA per key, in nanoseconds and 128-bit arithmetic (as `bucket_model.rs`'s
/// `Reference`): with `T = ceil(period / rate)` and `tau = burst * T`, `n` tokens at `now`
/// conform when `max(tat, now) + n*T <= now + tau`, and then move `tat` there. A key whose
/// `tat <= now` holds no tokens: it is absent.
#[derive(Debug)]
struct Model {
    interval: u128,
    burst: u128,
    /// TAT of every key that ever had a tracked grant (absent keys: 0 or passed).
    tat: HashMap<usize, u128>,
    metrics: KeyedMetrics,
}

fn to_u64(x: u128) -> u64 {
    u64::try_from(x).expect("the model left u64 in a case the test keeps in range")
}

impl Model {
    fn new(config: BucketConfig, capacity: usize) -> Model {
        let (period, rate) = (u128::from(config.period_ns), u128::from(config.rate));
        Model {
            interval: period.div_ceil(rate),
            burst: u128::from(config.burst),
            tat: HashMap::new(),
            metrics: KeyedMetrics {
                capacity,
                ..KeyedMetrics::default()
            },
        }
    }

    fn tolerance(&self) -> u128 {
        self.burst * self.interval
    }

    fn tat(&self, k: usize) -> u128 {
        self.tat.get(&k).copied().unwrap_or(0)
    }

    fn live(&self, k: usize, now: u64) -> bool {
        self.tat(k) > u128::from(now)
    }

    fn live_keys(&self, now: u64) -> usize {
        self.tat.keys().filter(|&&k| self.live(k, now)).count()
    }

    /// Whether key `k` holds a slot no new key may take at `now` (see `slot_holders`).
    fn holds_slot(&self, k: usize, now: u64) -> bool {
        self.tat
            .get(&k)
            .is_some_and(|&t| t + u128::from(KEY_REUSE_GRACE_NS) > u128::from(now))
    }

    /// Keys that hold a slot no new key may take at `now`: granted (tracked) at some time,
    /// with a TAT less than the reuse grace before `now`. (A key's slot can only be taken
    /// once its TAT is a grace behind, and the clock here never goes back, so such a key is
    /// certainly still in the table.)
    fn slot_holders(&self, now: u64) -> usize {
        self.tat
            .values()
            .filter(|&&t| t + u128::from(KEY_REUSE_GRACE_NS) > u128::from(now))
            .count()
    }

    /// The refusals every operation checks first: the key's length, then the count.
    fn check(&self, key: &[u8], n: u64) -> Result<(), KeyedRejected> {
        if key.len() > MAX_KEY_LEN {
            return Err(KeyedRejected::KeyTooLong { len: key.len() });
        }
        if u128::from(n) > self.burst {
            return Err(KeyedRejected::ExceedsCapacity {
                requested: n,
                capacity: to_u64(self.burst),
            });
        }
        Ok(())
    }

    /// Where `k`'s TAT would move if `n` tokens were taken at `now`, and how far past the
    /// tolerance that lies (0 if within it).
    fn probe(&self, k: usize, n: u64, now: u64) -> (u128, u128) {
        let now = u128::from(now);
        let end = self.tat(k).max(now) + u128::from(n) * self.interval;
        (end, end.saturating_sub(now + self.tolerance()))
    }

    fn retry_after(&self, k: usize, key: &[u8], n: u64, now: u64) -> Result<u64, KeyedRejected> {
        self.check(key, n)?;
        if n == 0 {
            return Ok(0);
        }
        Ok(to_u64(self.probe(k, n, now).1))
    }

    fn state(&self, k: usize, key: &[u8], now: u64) -> Result<BucketState, KeyedRejected> {
        self.check(key, 0)?;
        let t = u128::from(now);
        let tat = self.tat(k).max(t);
        let slack = (t + self.tolerance()).saturating_sub(tat);
        Ok(BucketState {
            limit: to_u64(self.burst),
            remaining: to_u64((slack / self.interval).min(self.burst)),
            reset_after: to_u64(tat - t),
            retry_after: to_u64(self.probe(k, 1, now).1),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Keys and operations
// ---------------------------------------------------------------------------------------

/// The alphabet of the roomy table: 12 storable keys (fewer than a window's 16 slots, so no
/// window ever fills) and two too long.
fn alphabet() -> Vec<Vec<u8>> {
    let mut long = vec![0xA5u8; MAX_KEY_LEN];
    let mut keys = vec![
        b"".to_vec(),
        vec![0],
        vec![0; 8],
        vec![0; 9],
        b"a".to_vec(),
        b"a\0".to_vec(),
        b"b".to_vec(),
        b"10.0.0.1".to_vec(),
        long[..MAX_KEY_LEN - 1].to_vec(),
        long.clone(),
    ];
    long[MAX_KEY_LEN - 1] ^= 1;
    keys.push(long);
    keys.push(vec![0; MAX_KEY_LEN]);
    keys.push(vec![7; MAX_KEY_LEN + 1]);
    keys.push(vec![1; 200]);
    keys
}

/// The 40 keys of the small table: a number in 1..=8 bytes, zero-padded to various lengths
/// up to 64 (and one too long).
fn many_keys() -> Vec<Vec<u8>> {
    (0u64..40)
        .map(|i| {
            let len = match i % 5 {
                0 => 1,
                1 => 8,
                2 => 13,
                3 => MAX_KEY_LEN,
                _ => 3 + (i as usize % 9),
            };
            let mut key = i.to_le_bytes().to_vec();
            key.resize(len.max(1), (i % 3) as u8);
            if i == 39 {
                key.resize(MAX_KEY_LEN + 3, 9);
            }
            key
        })
        .collect()
}

/// A token count: `Small(x)` is `x % (burst + 2)` (0 through one above the burst).
#[derive(Debug, Clone, Copy)]
enum Amount {
    Small(u64),
    Huge,
}

impl Amount {
    fn resolve(self, burst: u64) -> u64 {
        match self {
            Amount::Small(x) => x % (burst + 2),
            Amount::Huge => u64::MAX,
        }
    }
}

/// A step of the clock, scaled to the interval `T` and burst `B`.
#[derive(Debug, Clone, Copy)]
enum Span {
    Zero,
    /// Below one interval.
    Fraction(u64),
    /// Up to twice the time to refill the whole burst.
    Refill(u64),
    /// Up to 2^40 ns.
    Long(u64),
}

impl Span {
    fn resolve(self, interval: u64, burst: u64) -> u64 {
        match self {
            Span::Zero => 0,
            Span::Fraction(x) => x % interval,
            Span::Refill(x) => x % (2 * interval * (burst + 1)),
            Span::Long(x) => x % (1 << 40),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Advance(Span),
    TryAcquire(usize, Amount),
    RetryAfter(usize, Amount),
    State(usize),
    Reset(usize),
    LiveKeys,
}

fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        16 => any::<u64>().prop_map(Amount::Small),
        1 => Just(Amount::Huge),
    ]
}

fn span() -> impl Strategy<Value = Span> {
    prop_oneof![
        1 => Just(Span::Zero),
        4 => any::<u64>().prop_map(Span::Fraction),
        4 => any::<u64>().prop_map(Span::Refill),
        1 => any::<u64>().prop_map(Span::Long),
    ]
}

fn op(keys: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => span().prop_map(Op::Advance),
        12 => (0..keys, amount()).prop_map(|(k, n)| Op::TryAcquire(k, n)),
        1 => (0..keys, amount()).prop_map(|(k, n)| Op::RetryAfter(k, n)),
        1 => (0..keys).prop_map(Op::State),
        1 => (0..keys).prop_map(Op::Reset),
        1 => Just(Op::LiveKeys),
    ]
}

/// Valid configurations whose budget fits in 2^62 ns (kept in nanoseconds, exactly): rate
/// 1..=1000, period 1..=10^10 ns (at least the rate), burst 1..=100.
fn model_config() -> impl Strategy<Value = BucketConfig> {
    let rate = prop_oneof![1 => Just(1u64), 6 => 1u64..=1000];
    let period = prop_oneof![
        6 => 1u64..=10_000_000_000,
        2 => 1u64..=3_000,
        1 => Just(SECOND),
    ];
    let burst = prop_oneof![1 => Just(1u64), 2 => 1u64..=4, 6 => 1u64..=100];
    (rate, period, burst).prop_map(|(rate, period_ns, burst)| BucketConfig {
        rate: rate.min(period_ns),
        period_ns,
        burst,
    })
}

fn when_full() -> impl Strategy<Value = WhenFull> {
    prop_oneof![Just(WhenFull::Reject), Just(WhenFull::Admit)]
}

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

/// One case: a table of `capacity` slots and its model, driven by `ops` on `keys`. With
/// `roomy`, no key's window can fill and every result is the model's; otherwise a new key
/// may find its window full, which must agree with the live keys.
#[allow(clippy::too_many_arguments)]
fn run(
    config: BucketConfig,
    when_full: WhenFull,
    seed: u64,
    capacity: usize,
    keys: &[Vec<u8>],
    start: u64,
    ops: &[Op],
    roomy: bool,
) -> Result<(), TestCaseError> {
    let table: Table = KeyedBuckets::with_capacity(config, when_full, seed, capacity).unwrap();
    prop_assert_eq!(table.capacity(), capacity);
    prop_assert_eq!(table.config(), (config, when_full));
    let mut model = Model::new(config, capacity);
    let (interval, burst) = (to_u64(model.interval), config.burst);
    // The slots a new key's window spans: all of them in a table of at most 16.
    let window = KEY_PROBE_WINDOW.min(capacity);

    let mut now = start;
    for (step, &op) in ops.iter().enumerate() {
        match op {
            Op::Advance(span) => {
                now = now
                    .saturating_add(span.resolve(interval, burst))
                    .min(HORIZON);
            }
            Op::TryAcquire(k, n) => {
                let (key, n) = (&keys[k][..], n.resolve(burst));
                let before = table.metrics();
                let live = model.slot_holders(now);
                let got = table.try_acquire(key, n, now);
                let after = table.metrics();
                let what = format!("step {step}: try_acquire({key:?}, {n}, {now}): {got:?}");
                if let Err(e) = model.check(key, n) {
                    prop_assert_eq!(got, Err(e), "{}", what);
                } else if n == 0 {
                    prop_assert_eq!(got, Ok(()), "{}", what);
                } else if model.live(k, now) || model.holds_slot(k, now) {
                    // A live key, or one whose slot no new key may take yet (so it is still
                    // in the table): exact GCRA, never forgotten.
                    let (end, late) = model.probe(k, n, now);
                    if late > 0 {
                        let retry_after = to_u64(late);
                        prop_assert_eq!(got, Err(KeyedRejected::RateLimited { retry_after }));
                        model.metrics.limited += 1;
                    } else {
                        prop_assert_eq!(got, Ok(()), "{}", what);
                        model.tat.insert(k, end);
                        model.metrics.allowed += 1;
                    }
                } else {
                    // An absent key: claimed with its first grant, or its window is full.
                    let full = match (got, when_full) {
                        (Ok(()), WhenFull::Admit) => after.full_admitted > before.full_admitted,
                        (Ok(()), WhenFull::Reject) => false,
                        (Err(KeyedRejected::TableFull), WhenFull::Reject) => true,
                        _ => return Err(TestCaseError::fail(format!("{what}: unexpected"))),
                    };
                    if roomy {
                        prop_assert!(!full, "{}: fewer slot holders than a window holds", what);
                    } else if capacity <= KEY_PROBE_WINDOW {
                        // The window is the whole table: full exactly when every slot is held
                        // (by a key whose tokens are not back for a reuse grace yet).
                        prop_assert_eq!(
                            full,
                            live == capacity,
                            "{}: {} slot holders in {} slots",
                            what,
                            live,
                            capacity
                        );
                    } else if full {
                        prop_assert!(live >= window, "{}: full with {} slot holders", what, live);
                    }
                    if full {
                        match when_full {
                            WhenFull::Reject => model.metrics.full_rejected += 1,
                            WhenFull::Admit => model.metrics.full_admitted += 1,
                        }
                    } else {
                        model
                            .tat
                            .insert(k, u128::from(now) + u128::from(n) * model.interval);
                        model.metrics.allowed += 1;
                    }
                }
                prop_assert_eq!(after, model.metrics, "{}", what);
            }
            Op::RetryAfter(k, n) => {
                let (key, n) = (&keys[k][..], n.resolve(burst));
                prop_assert_eq!(
                    table.retry_after(key, n, now),
                    model.retry_after(k, key, n, now),
                    "step {}: retry_after({:?}, {}, {})",
                    step,
                    key,
                    n,
                    now
                );
            }
            Op::State(k) => {
                let key = &keys[k][..];
                prop_assert_eq!(table.state(key, now), model.state(k, key, now));
            }
            Op::Reset(k) => {
                let key = &keys[k][..];
                let got = table.reset(key);
                let what = format!("step {step}: reset({key:?}) at {now}: {got:?}");
                match model.check(key, 0) {
                    Err(e) => prop_assert_eq!(got, Err(e), "{}", what),
                    // A live key is in the table; a key never granted is not. An expired one
                    // may be still there or its slot reused: either answer.
                    Ok(()) if model.live(k, now) => prop_assert_eq!(got, Ok(true), "{}", what),
                    Ok(()) if !model.tat.contains_key(&k) => {
                        prop_assert_eq!(got, Ok(false), "{}", what)
                    }
                    Ok(()) => prop_assert!(got.is_ok(), "{}", what),
                }
                if model.tat.contains_key(&k) {
                    model.tat.insert(k, 0);
                }
            }
            Op::LiveKeys => {}
        }
        // The whole observable state at the clock: every key's bucket, the live keys.
        for (k, key) in keys.iter().enumerate() {
            prop_assert_eq!(
                table.state(key, now),
                model.state(k, key, now),
                "after step {} ({:?}) at {}: key {:?}",
                step,
                op,
                now,
                key
            );
        }
        prop_assert_eq!(
            table.live_keys(now),
            model.live_keys(now),
            "after step {} ({:?}) at {}",
            step,
            op,
            now
        );
        prop_assert_eq!(table.metrics(), model.metrics, "after step {}", step);
    }
    Ok(())
}

fn start() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => Just(0u64),
        4 => 0u64..(1 << 40),
        1 => (HORIZON - (1 << 41))..=HORIZON,
    ]
}

proptest! {
    #![proptest_config(persisted(2_000))]

    /// A table that never fills (at least 16 slots per key, fewer keys than a window holds):
    /// every result, every key's state, the live keys and the metrics equal the model's.
    #[test]
    fn roomy_table_matches_model(
        config in model_config(),
        when_full in when_full(),
        seed in any::<u64>(),
        extra in 0usize..200,
        start in start(),
        ops in prop::collection::vec(op(alphabet().len()), 1..64),
    ) {
        let keys = alphabet();
        let storable = keys.iter().filter(|k| k.len() <= MAX_KEY_LEN).count();
        prop_assert!(storable < KEY_PROBE_WINDOW);
        run(config, when_full, seed, 16 * storable + extra, &keys, start, &ops, true)?;
    }

    /// A small table and many keys: live keys are never forgotten, new keys are refused or
    /// admitted untracked only when live keys fill their window (exactly: when every slot is
    /// live, in a table of at most 16 slots), and the metrics add up.
    #[test]
    fn small_table_never_forgets_live_keys(
        config in model_config(),
        when_full in when_full(),
        seed in any::<u64>(),
        capacity in prop_oneof![1 => 1usize..4, 6 => 4usize..=16, 2 => 17usize..=24],
        start in start(),
        ops in prop::collection::vec(op(many_keys().len()), 1..96),
    ) {
        run(config, when_full, seed, capacity, &many_keys(), start, &ops, false)?;
    }
}
