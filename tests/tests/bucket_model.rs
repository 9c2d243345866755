//! Model-based property tests of the token bucket.
//!
//! * [`matches_reference_model`]: a [`TokenBucket`] is driven single-threaded, with explicit
//!   times, by random sequences of operations (take, reserve, reserve within a bound, refund,
//!   reset, the read-only queries, the clock moving forwards by random amounts and stale reads
//!   behind it), and every result is compared with [`Reference`], an exact GCRA written from
//!   the definition in 128-bit arithmetic. After every operation the full [`BucketState`] must
//!   agree too, which pins down the hidden theoretical arrival time (TAT).
//! * [`extreme_configurations_stay_in_range`]: from one token a day to 10^9 a second, bursts
//!   up to 2^32 (buckets whose budget exceeds 2^62 ns are kept in units of 2^k ns), at times
//!   anywhere in the documented range, below 2^62 ns: no operation panics (debug builds
//!   check every overflow), `available <= burst`, the queries agree with each other, and
//!   every refusal's `retry_after` is exact: one nanosecond earlier is refused, at it the
//!   request goes through. Every time passed in, waits included, stays below 2^62 ns.
//! * [`drained_bucket_refills_after_retry_after`]: an emptied bucket reports a wait in
//!   `1..=interval_ns()` that, once waited, lets exactly one more token through.
//! * [`extreme_configurations_out_of_range`]: the same at the same times, without keeping
//!   requests in range: unbounded reservation queues (up to a saturated TAT: it is kept in 63
//!   bits and saturates at 2^63 - 1 units, the end of time) and requests of any size, whose
//!   waits must saturate consistently across `try_acquire`, `reserve_within`, `retry_after`
//!   and `state`.
//!
//! Cases: 8 000 + 2 000 + 2 000 + 2 000. The tests at the end reproduce core bugs these found
//! (unsaturated waits and TAT after deep reservation queues, unclamped waits on unit-scaled
//! buckets, reservations at the end of time), since fixed. Failing cases are persisted in
//! `tests/proptest-regressions/bucket_model.txt` and replayed first on every run.

// Loom atomics only work inside a loom model.
#![cfg(not(loom))]

use fastbreaker::{BucketConfig, BucketRejected, BucketState, TokenBucket, SECOND};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngAlgorithm};

/// Where proptest keeps the failing cases it found (committed, replayed first).
const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/proptest-regressions/bucket_model.txt"
);

const DAY: u64 = 86_400 * SECOND;
/// The documented limit: times passed in must stay below 2^62 ns (146 years).
const LAST_TIME: u64 = (1 << 62) - 1;
/// The latest time the model test moves its clock to.
const MODEL_HORIZON: u64 = LAST_TIME;
/// The extreme tests start at or below this (or in the last day before `LAST_TIME`) and move
/// their clock no further; waiting for tokens may take them up to `LAST_TIME`, never past it.
const EXTREME_HORIZON: u64 = 1 << 61;
/// The TAT is kept in 63 bits: a reservation queue saturates at 2^63 - 1 units.
const TAT_MAX: u64 = (1 << 63) - 1;

fn persisted(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        // ChaCha, the default, dominates the run time of unoptimised builds.
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------

/// Exact GCRA, in nanoseconds and 128-bit arithmetic, written from the definition.
///
/// `tat` is the time at which the bucket is full again. With `T = ceil(period / rate)` and
/// tolerance `tau = burst * T`, a request for `n` tokens at `now` conforms when
/// `max(tat, now) + n*T <= now + tau`; it then moves `tat` there. A reservation moves `tat`
/// the same way but always (or if its wait fits), and its wait is how far `max(tat, now) +
/// n*T` lies beyond `now + tau`. A refund moves `tat` back by `n*T`, never before `now`.
#[derive(Debug)]
struct Reference {
    interval: u128,
    burst: u128,
    tat: u128,
}

/// Checks a configuration as the docs describe: `Err((field, value))` if invalid.
fn reference_config(config: BucketConfig) -> Result<Reference, (&'static str, u64)> {
    if config.rate == 0 {
        return Err(("rate", 0));
    }
    if config.period_ns == 0 {
        return Err(("period_ns", 0));
    }
    if config.rate > config.period_ns {
        return Err(("rate", config.rate));
    }
    if config.burst == 0 || config.burst > 1 << 32 {
        return Err(("burst", config.burst));
    }
    let (period, rate) = (u128::from(config.period_ns), u128::from(config.rate));
    Ok(Reference {
        interval: period.div_ceil(rate),
        burst: u128::from(config.burst),
        tat: 0,
    })
}

fn to_u64(x: u128) -> u64 {
    u64::try_from(x).expect("the reference model left u64 in a case the test keeps in range")
}

impl Reference {
    fn tolerance(&self) -> u128 {
        self.burst * self.interval
    }

    fn too_many(&self, n: u64) -> Option<BucketRejected> {
        (u128::from(n) > self.burst).then_some(BucketRejected::ExceedsCapacity {
            requested: n,
            capacity: to_u64(self.burst),
        })
    }

    /// Where the TAT would move if `n` tokens were taken at `now`, and how long past the
    /// tolerance that lies (0 if within it).
    fn probe(&self, n: u64, now: u64) -> (u128, u128) {
        let now = u128::from(now);
        let end = self.tat.max(now) + u128::from(n) * self.interval;
        (end, end.saturating_sub(now + self.tolerance()))
    }

    fn try_acquire(&mut self, n: u64, now: u64) -> Result<(), BucketRejected> {
        if let Some(e) = self.too_many(n) {
            return Err(e);
        }
        if n == 0 {
            return Ok(()); // documented: n = 0 always succeeds and takes nothing
        }
        let (end, late) = self.probe(n, now);
        if late > 0 {
            return Err(BucketRejected::RateLimited {
                retry_after: to_u64(late),
            });
        }
        self.tat = end;
        Ok(())
    }

    fn reserve_within(&mut self, n: u64, now: u64, max_wait: u64) -> Result<u64, BucketRejected> {
        if let Some(e) = self.too_many(n) {
            return Err(e);
        }
        if n == 0 {
            return Ok(0);
        }
        let (end, wait) = self.probe(n, now);
        let wait = to_u64(wait);
        if wait > max_wait {
            return Err(BucketRejected::RateLimited { retry_after: wait });
        }
        self.tat = end;
        Ok(wait)
    }

    fn refund(&mut self, n: u64, now: u64) {
        let now = u128::from(now);
        if self.tat > now {
            let back = u128::from(n) * self.interval;
            self.tat = self.tat.saturating_sub(back).max(now);
        }
    }

    fn available(&self, now: u64) -> u64 {
        let now = u128::from(now);
        let slack = (now + self.tolerance()).saturating_sub(self.tat.max(now));
        to_u64((slack / self.interval).min(self.burst))
    }

    fn retry_after(&self, n: u64, now: u64) -> Result<u64, BucketRejected> {
        if let Some(e) = self.too_many(n) {
            return Err(e);
        }
        if n == 0 {
            return Ok(0);
        }
        Ok(to_u64(self.probe(n, now).1))
    }

    fn state(&self, now: u64) -> BucketState {
        BucketState {
            limit: to_u64(self.burst),
            remaining: self.available(now),
            reset_after: to_u64(self.tat.max(u128::from(now)) - u128::from(now)),
            retry_after: to_u64(self.probe(1, now).1),
        }
    }

    fn reset(&mut self) {
        self.tat = 0;
    }
}

// ---------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------

/// A token count, scaled to the bucket: `Small(x)` is `x % (burst + 2)` (0 through one above
/// the burst), `Huge` is `u64::MAX`.
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

/// A duration, scaled to the bucket's interval `T` and burst `B`.
#[derive(Debug, Clone, Copy)]
enum Span {
    Zero,
    /// Below one interval.
    Fraction(u64),
    /// Up to twice the time to refill the whole burst.
    Refill(u64),
    /// Up to 2^40 ns (18 minutes).
    Long(u64),
    /// `u64::MAX`: as a bound, no bound.
    Max,
}

impl Span {
    fn resolve(self, interval: u64, burst: u64) -> u64 {
        match self {
            Span::Zero => 0,
            Span::Fraction(x) => x % interval,
            Span::Refill(x) => x % (2 * interval * (burst + 1)),
            Span::Long(x) => x % (1 << 40),
            Span::Max => u64::MAX,
        }
    }
}

/// The time an operation uses: the clock, or a stale read behind it (another thread's
/// older `now`).
#[derive(Debug, Clone, Copy)]
enum At {
    Now,
    Behind(Span),
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Advance(Span),
    TryAcquire(Amount, At),
    Reserve(Amount, At),
    ReserveWithin(Amount, Span, At),
    Refund(Amount, At),
    Available(At),
    RetryAfter(Amount, At),
    State(At),
    Reset,
}

fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        12 => any::<u64>().prop_map(Amount::Small),
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

fn bound() -> impl Strategy<Value = Span> {
    prop_oneof![
        4 => span(),
        1 => Just(Span::Max),
    ]
}

fn at() -> impl Strategy<Value = At> {
    prop_oneof![
        6 => Just(At::Now),
        1 => span().prop_map(At::Behind),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => span().prop_map(Op::Advance),
        6 => (amount(), at()).prop_map(|(n, t)| Op::TryAcquire(n, t)),
        3 => (amount(), at()).prop_map(|(n, t)| Op::Reserve(n, t)),
        3 => (amount(), bound(), at()).prop_map(|(n, w, t)| Op::ReserveWithin(n, w, t)),
        2 => (amount(), at()).prop_map(|(n, t)| Op::Refund(n, t)),
        1 => at().prop_map(Op::Available),
        1 => (amount(), at()).prop_map(|(n, t)| Op::RetryAfter(n, t)),
        1 => at().prop_map(Op::State),
        1 => Just(Op::Reset),
    ]
}

/// Configurations of the model test: rate 1..=1000, period 1..=10^10 ns (now and then below
/// the rate: invalid), burst 1..=100 (now and then 0: invalid).
fn model_config() -> impl Strategy<Value = BucketConfig> {
    let rate = prop_oneof![1 => Just(1u64), 6 => 1u64..=1000];
    let period = prop_oneof![
        6 => 1u64..=10_000_000_000,
        2 => 1u64..=3_000,
        1 => Just(SECOND),
    ];
    let burst = prop_oneof![1 => Just(1u64), 24 => 1u64..=100, 1 => Just(0u64)];
    (rate, period, burst).prop_map(|(rate, period_ns, burst)| BucketConfig {
        rate,
        period_ns,
        burst,
    })
}

// ---------------------------------------------------------------------------------------
// Model test
// ---------------------------------------------------------------------------------------

fn run_model(config: BucketConfig, start: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let bucket = TokenBucket::new(config);
    let mut model = match (reference_config(config), bucket) {
        (Err((field, value)), Err(e)) => {
            prop_assert_eq!((e.field, e.value), (field, value));
            return Ok(());
        }
        (Ok(model), Ok(bucket)) => (model, bucket),
        (m, b) => {
            return Err(TestCaseError::fail(format!(
                "{config:?}: model {m:?}, bucket {b:?}"
            )))
        }
    };
    let (model, bucket) = (&mut model.0, &model.1);
    let (interval, burst) = (to_u64(model.interval), config.burst);
    prop_assert_eq!(bucket.interval_ns(), interval);
    prop_assert_eq!(bucket.burst(), burst);

    let mut now = start;
    let time = |now: u64, at: At| match at {
        At::Now => now,
        At::Behind(span) => now.saturating_sub(span.resolve(interval, burst)),
    };
    for (step, &op) in ops.iter().enumerate() {
        let mut seen = now;
        match op {
            Op::Advance(span) => {
                now = now
                    .saturating_add(span.resolve(interval, burst))
                    .min(MODEL_HORIZON);
                seen = now;
            }
            Op::TryAcquire(n, at) => {
                let (n, t) = (n.resolve(burst), time(now, at));
                seen = t;
                prop_assert_eq!(
                    bucket.try_acquire(n, t),
                    model.try_acquire(n, t),
                    "step {}: try_acquire({}, {})",
                    step,
                    n,
                    t
                );
            }
            Op::Reserve(n, at) => {
                let (n, t) = (n.resolve(burst), time(now, at));
                seen = t;
                prop_assert_eq!(
                    bucket.reserve(n, t),
                    model.reserve_within(n, t, u64::MAX),
                    "step {}: reserve({}, {})",
                    step,
                    n,
                    t
                );
            }
            Op::ReserveWithin(n, max_wait, at) => {
                let (n, t) = (n.resolve(burst), time(now, at));
                let max_wait = max_wait.resolve(interval, burst);
                seen = t;
                prop_assert_eq!(
                    bucket.reserve_within(n, t, max_wait),
                    model.reserve_within(n, t, max_wait),
                    "step {}: reserve_within({}, {}, {})",
                    step,
                    n,
                    t,
                    max_wait
                );
            }
            Op::Refund(n, at) => {
                let (n, t) = (n.resolve(burst), time(now, at));
                seen = t;
                bucket.refund(n, t);
                model.refund(n, t);
            }
            Op::Available(at) => {
                let t = time(now, at);
                seen = t;
                prop_assert_eq!(bucket.available(t), model.available(t), "step {}", step);
            }
            Op::RetryAfter(n, at) => {
                let (n, t) = (n.resolve(burst), time(now, at));
                seen = t;
                prop_assert_eq!(
                    bucket.retry_after(n, t),
                    model.retry_after(n, t),
                    "step {}: retry_after({}, {})",
                    step,
                    n,
                    t
                );
            }
            Op::State(at) => {
                let t = time(now, at);
                seen = t;
                prop_assert_eq!(bucket.state(t), model.state(t), "step {}", step);
            }
            Op::Reset => {
                bucket.reset();
                model.reset();
            }
        }
        // The whole observable state, at the time the operation used and at the clock.
        for t in [seen, now] {
            prop_assert_eq!(
                bucket.state(t),
                model.state(t),
                "after step {} ({:?}), at {}",
                step,
                op,
                t
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(persisted(8_000))]

    /// Every result of every operation, and the full state after each, equals the exact
    /// GCRA reference.
    #[test]
    fn matches_reference_model(
        config in model_config(),
        start in prop_oneof![1 => Just(0u64), 3 => 0u64..(1 << 40)],
        ops in prop::collection::vec(op(), 1..48),
    ) {
        run_model(config, start, &ops)?;
    }
}

// ---------------------------------------------------------------------------------------
// Extreme configurations
// ---------------------------------------------------------------------------------------

/// From one token per day to one per nanosecond (10^9 a second), bursts 1..=2^32.
fn extreme_config() -> impl Strategy<Value = BucketConfig> {
    let period = prop_oneof![
        1 => Just(1u64),
        2 => Just(SECOND),
        3 => Just(DAY),
        4 => 1u64..=DAY,
    ];
    let config = period.prop_flat_map(|period_ns| {
        let rate = prop_oneof![
            3 => Just(1u64),
            2 => Just(period_ns),
            1 => Just(period_ns.div_ceil(2)),
            4 => 1u64..=period_ns,
        ];
        let burst = prop_oneof![
            2 => Just(1u64),
            3 => Just(1u64 << 32),
            2 => (1u64 << 31)..=(1 << 32),
            3 => 1u64..=(1 << 32),
            2 => 1u64..=100,
        ];
        (Just(period_ns), rate, burst)
    });
    config.prop_map(|(period_ns, rate, burst)| BucketConfig {
        rate,
        period_ns,
        burst,
    })
}

/// A start for the extreme tests that do not move the clock on their own: with a day or up
/// to 2^60 ns later and a wait of at most a day, it stays below 2^62 ns.
fn extreme_time() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0u64),
        1 => Just(EXTREME_HORIZON),
        1 => (EXTREME_HORIZON - DAY)..=EXTREME_HORIZON,
        3 => 0u64..=EXTREME_HORIZON,
    ]
}

/// A start for [`run_extreme`], which keeps every time it uses at or below `LAST_TIME`:
/// [`extreme_time`], or the last day of the documented range.
fn extreme_start() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => extreme_time(),
        1 => Just(LAST_TIME),
        1 => (LAST_TIME - DAY)..=LAST_TIME,
    ]
}

/// The bucket's time unit as documented: 2^k ns for the smallest `k` in which the budget,
/// `burst` times the interval (`ceil(period / rate)` ns rounded up to units), fits in 2^62.
fn unit_shift(config: BucketConfig) -> u32 {
    let per_token = config.period_ns.div_ceil(config.rate);
    (0..64)
        .find(|&k| u128::from(per_token.div_ceil(1 << k)) * u128::from(config.burst) <= 1 << 62)
        .expect("a valid configuration fits in some unit")
}

/// The end of time of a bucket kept in units of 2^`shift` ns, in nanoseconds (saturating):
/// where its TAT saturates.
fn end_of_time_ns(shift: u32) -> u64 {
    u64::try_from(u128::from(TAT_MAX) << shift).unwrap_or(u64::MAX)
}

/// A token count for an extreme bucket: anything up to one above the burst, or the burst.
#[derive(Debug, Clone, Copy)]
enum BigAmount {
    Any(u64),
    Few(u64),
    Burst,
    Huge,
}

impl BigAmount {
    fn resolve(self, burst: u64) -> u64 {
        match self {
            BigAmount::Any(x) => x % (burst + 2),
            BigAmount::Few(x) => x % 4,
            BigAmount::Burst => burst,
            BigAmount::Huge => u64::MAX,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum ExtremeOp {
    /// Move the clock by `x % 2^k` ns, capped at the horizon.
    Advance(u64, u8),
    /// Take tokens; if refused, check that the wait is exact, then wait it (when that stays
    /// below 2^62 ns) and take them.
    TakeOrWait(BigAmount),
    /// A reservation. In range, only if its wait ends by `LAST_TIME`
    /// (`reserve_within(n, now, LAST_TIME - now)`).
    Reserve(BigAmount),
    Refund(BigAmount),
    Reset,
}

fn big_amount() -> impl Strategy<Value = BigAmount> {
    prop_oneof![
        4 => any::<u64>().prop_map(BigAmount::Any),
        4 => any::<u64>().prop_map(BigAmount::Few),
        2 => Just(BigAmount::Burst),
        1 => Just(BigAmount::Huge),
    ]
}

fn extreme_op() -> impl Strategy<Value = ExtremeOp> {
    prop_oneof![
        4 => (any::<u64>(), 0u8..=62).prop_map(|(x, k)| ExtremeOp::Advance(x, k)),
        6 => big_amount().prop_map(ExtremeOp::TakeOrWait),
        3 => big_amount().prop_map(ExtremeOp::Reserve),
        2 => big_amount().prop_map(ExtremeOp::Refund),
        1 => Just(ExtremeOp::Reset),
    ]
}

/// The queries agree with each other at `now`, `available <= burst`, and the TAT (when the
/// bucket is full again) is at most the end of time, `end_of_time` ns.
fn check_queries(bucket: &TokenBucket, now: u64, end_of_time: u64) -> Result<(), TestCaseError> {
    let burst = bucket.burst();
    let available = bucket.available(now);
    prop_assert!(
        available <= burst,
        "available {} > burst {}",
        available,
        burst
    );
    let state = bucket.state(now);
    prop_assert_eq!(state.limit, burst);
    prop_assert_eq!(state.remaining, available);
    prop_assert_eq!(Ok(state.retry_after), bucket.retry_after(1, now));
    prop_assert_eq!(state.retry_after == 0, available >= 1, "{:?}", state);
    if available > 0 {
        prop_assert_eq!(bucket.retry_after(available, now), Ok(0));
    }
    if available < burst {
        let more = bucket.retry_after(available + 1, now).unwrap();
        prop_assert!(
            more > 0,
            "{} tokens available but {} need no wait",
            available,
            available + 1
        );
    }
    prop_assert!(state.retry_after <= state.reset_after, "{:?}", state);
    prop_assert!(
        now.checked_add(state.reset_after)
            .is_some_and(|full| full <= end_of_time),
        "full again at {} + {} ns, past the end of time {}",
        now,
        state.reset_after,
        end_of_time
    );
    Ok(())
}

/// Runs `ops` on an extreme bucket, checking [`check_queries`] after each, and that every
/// refusal's wait is exact.
///
/// Either way, every time passed in stays at or below [`LAST_TIME`] (below 2^62 ns): a refusal
/// is waited out (and checked one nanosecond early) only when its wait ends by then.
///
/// With `in_range`, requests stay in range too: reservations only if their wait ends by
/// `LAST_TIME` (`reserve_within(n, now, LAST_TIME - now)`), and `try_acquire` is only asked
/// for tokens that `retry_after` says arrive by `LAST_TIME`. Without it, reservations are
/// unbounded (queues far past 2^62 ns, up to a TAT saturated at 2^63 - 1 units) and any
/// request is made.
fn run_extreme(
    config: BucketConfig,
    start: u64,
    ops: &[ExtremeOp],
    in_range: bool,
) -> Result<(), TestCaseError> {
    let bucket = TokenBucket::new(config).unwrap();
    let burst = config.burst;
    let end_of_time = end_of_time_ns(unit_shift(config));
    let mut now = start;
    prop_assert!(now <= LAST_TIME);
    prop_assert_eq!(bucket.available(now), burst, "a new bucket is full");
    check_queries(&bucket, now, end_of_time)?;
    for (step, &op) in ops.iter().enumerate() {
        match op {
            ExtremeOp::Advance(x, k) => {
                now = now
                    .saturating_add(x % (1 << k))
                    .min(EXTREME_HORIZON.max(now));
            }
            ExtremeOp::TakeOrWait(n) => {
                let n = n.resolve(burst);
                let before = bucket.retry_after(n, now);
                let representable = match before {
                    Ok(wait) => now.checked_add(wait).is_some_and(|t| t <= LAST_TIME),
                    Err(_) => true,
                };
                if in_range && !representable {
                    continue;
                }
                match bucket.try_acquire(n, now) {
                    Ok(()) => prop_assert_eq!(before, Ok(0), "step {}", step),
                    Err(BucketRejected::ExceedsCapacity {
                        requested,
                        capacity,
                    }) => {
                        prop_assert!(n > burst);
                        prop_assert_eq!((requested, capacity), (n, burst));
                    }
                    Err(BucketRejected::RateLimited { retry_after: wait }) => {
                        prop_assert!(wait > 0, "step {}: refused with no wait", step);
                        prop_assert_eq!(before, Ok(wait), "step {}: try_acquire({})", step, n);
                        if representable {
                            let early = bucket.try_acquire(n, now + wait - 1);
                            prop_assert!(early.is_err(), "step {}: 1 ns early went through", step);
                            now += wait;
                            prop_assert_eq!(bucket.try_acquire(n, now), Ok(()), "step {}", step);
                        }
                    }
                    Err(other) => prop_assert!(false, "step {}: {:?}", step, other),
                }
            }
            ExtremeOp::Reserve(n) => {
                let n = n.resolve(burst);
                let bound = if in_range { LAST_TIME - now } else { u64::MAX };
                let expected = bucket.retry_after(n, now);
                match bucket.reserve_within(n, now, bound) {
                    Ok(wait) => prop_assert_eq!(expected, Ok(wait), "step {}", step),
                    Err(BucketRejected::RateLimited { retry_after }) => {
                        prop_assert!(retry_after > bound);
                        prop_assert_eq!(expected, Ok(retry_after), "step {}", step);
                    }
                    Err(e) => prop_assert!(n > burst, "step {}: {:?}", step, e),
                }
            }
            ExtremeOp::Refund(n) => bucket.refund(n.resolve(burst), now),
            ExtremeOp::Reset => bucket.reset(),
        }
        prop_assert!(now <= LAST_TIME);
        check_queries(&bucket, now, end_of_time)?;
    }
    Ok(())
}

/// Empties the bucket at `now` (after taking `first` tokens at `start`) and checks that
/// the refusal's wait lets exactly one token through.
fn drain_and_refill(
    config: BucketConfig,
    start: u64,
    first: u64,
    later: u64,
) -> Result<(), TestCaseError> {
    let bucket = TokenBucket::new(config).unwrap();
    let burst = config.burst;
    prop_assert_eq!(bucket.available(start), burst);
    prop_assert_eq!(bucket.try_acquire(first % (burst + 1), start), Ok(()));
    let now = start + later;
    prop_assert!(
        now + bucket.interval_ns() <= LAST_TIME,
        "the test stays in range"
    );
    let left = bucket.available(now);
    prop_assert_eq!(
        bucket.try_acquire(left, now),
        Ok(()),
        "all that is available"
    );
    prop_assert_eq!(bucket.available(now), 0);
    let wait = match bucket.try_acquire(1, now) {
        Err(BucketRejected::RateLimited { retry_after }) => retry_after,
        other => return Err(TestCaseError::fail(format!("drained, yet {other:?}"))),
    };
    prop_assert!(wait > 0);
    prop_assert!(
        wait <= bucket.interval_ns(),
        "wait {} beyond one interval {}",
        wait,
        bucket.interval_ns()
    );
    prop_assert_eq!(bucket.retry_after(1, now), Ok(wait));
    let state = bucket.state(now);
    prop_assert_eq!((state.remaining, state.retry_after), (0, wait));
    prop_assert!(bucket.try_acquire(1, now + wait - 1).is_err());
    prop_assert_eq!(bucket.available(now + wait), 1);
    prop_assert_eq!(bucket.try_acquire(1, now + wait), Ok(()));
    prop_assert!(bucket.try_acquire(1, now + wait).is_err(), "only one");
    Ok(())
}

proptest! {
    #![proptest_config(persisted(2_000))]

    /// No panic or overflow over random operations on extreme buckets; `available <=
    /// burst`; the queries agree; every refusal's wait is exact.
    #[test]
    fn extreme_configurations_stay_in_range(
        config in extreme_config(),
        start in extreme_start(),
        ops in prop::collection::vec(extreme_op(), 1..24),
    ) {
        run_extreme(config, start, &ops, true)?;
    }

    /// A drained bucket reports a wait in `1..=interval_ns()`; waited, it lets one token
    /// through (and one nanosecond earlier, none).
    #[test]
    fn drained_bucket_refills_after_retry_after(
        config in extreme_config(),
        start in extreme_time(),
        first in any::<u64>(),
        later in prop_oneof![1 => Just(0u64), 2 => 0u64..=DAY, 1 => 0u64..=(1 << 60)],
    ) {
        drain_and_refill(config, start, first, later)?;
    }
}

// ---------------------------------------------------------------------------------------
// Regressions: core bugs these tests found (fixed in fe26241, and the last one since)
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(persisted(2_000))]

    /// As `extreme_configurations_stay_in_range`, at the same times, without keeping requests
    /// in range: unbounded `reserve` (queues past 2^62 ns, a TAT saturated at 2^63 - 1
    /// units) and `try_acquire` of any size on any state.
    #[test]
    fn extreme_configurations_out_of_range(
        config in extreme_config(),
        start in extreme_start(),
        ops in prop::collection::vec(extreme_op(), 1..24),
    ) {
        run_extreme(config, start, &ops, false)?;
    }
}

/// Was: `try_acquire` added the cost to the TAT without saturating: after two reservations
/// at the latest documented time the TAT had saturated (then at `u64::MAX`, with times below
/// 2^63 ns; now at 2^63 - 1 units, with times below 2^62 ns), and the next `try_acquire`
/// overflowed (a panic in debug builds; in release it wrapped, succeeded and erased the
/// queue, so a bucket of burst 1 handed out 4 tokens at one instant). `state` overflowed the
/// same way (`tat + interval`).
#[test]
fn try_acquire_after_deep_reservations() {
    let bucket = TokenBucket::new(BucketConfig {
        rate: 1,
        period_ns: 1 << 62,
        burst: 1,
    })
    .unwrap();
    let now = LAST_TIME;
    assert_eq!(bucket.reserve(1, now), Ok(0));
    assert_eq!(bucket.reserve(1, now), Ok(1 << 62));
    let wait = bucket.retry_after(1, now).unwrap();
    assert_eq!(bucket.state(now).retry_after, wait);
    assert_eq!(
        bucket.try_acquire(1, now),
        Err(BucketRejected::RateLimited { retry_after: wait })
    );
    assert!(bucket.try_acquire(1, now).is_err(), "burst 1, two reserved");
}

/// Was: with the TAT kept in 63 bits, `reserve_within` computed its wait from the end of the
/// queue clamped to 2^63 - 1 units, where `try_acquire`, `retry_after` and `state` use the
/// unclamped end. At the latest documented time, 2^62 - 1 ns, a bucket of burst 1 and one
/// token per 2^62 ns granted every reservation after the first with a wait of 0 (as many
/// tokens as asked, at one instant); and, found by `extreme_configurations_stay_in_range`, a
/// bucket of one token a second and burst 3_646_026_529, drained at 1_931_318_979 s, refused
/// a reservation of its burst with a wait 145_224_193 ns shorter than `retry_after`'s.
#[test]
fn reserve_waits_at_the_end_of_time() {
    let bucket = TokenBucket::new(BucketConfig {
        rate: 1,
        period_ns: 1 << 62,
        burst: 1,
    })
    .unwrap();
    let now = LAST_TIME;
    assert_eq!(bucket.reserve(1, now), Ok(0));
    for _ in 0..3 {
        // The TAT has saturated: every further reservation waits until the end of time.
        assert_eq!(bucket.reserve(1, now), Ok(1 << 62));
        assert_eq!(bucket.retry_after(1, now), Ok(1 << 62));
        assert_eq!(bucket.available(now), 0);
    }

    let burst = 3_646_026_529;
    let bucket = TokenBucket::new(BucketConfig {
        rate: 1,
        period_ns: SECOND,
        burst,
    })
    .unwrap();
    let now = 1_931_318_979 * SECOND;
    assert_eq!(bucket.try_acquire(burst, now), Ok(()));
    let wait = burst * SECOND;
    assert_eq!(bucket.retry_after(burst, now), Ok(wait));
    assert_eq!(
        bucket.reserve_within(burst, now, wait - 1),
        Err(BucketRejected::RateLimited { retry_after: wait })
    );
    assert_eq!(bucket.reserve_within(burst, now, wait), Ok(wait));
    // Queued past the end of time: the TAT saturated, and the queries agree.
    let state = bucket.state(now);
    assert_eq!(now + state.reset_after, TAT_MAX);
    assert_eq!(bucket.retry_after(1, now), Ok(state.retry_after));
    assert_eq!(
        bucket.try_acquire(1, now),
        Err(BucketRejected::RateLimited {
            retry_after: state.retry_after
        })
    );
}

/// Was: on a bucket kept in units of 2^17 ns (one token a day, burst 2^32), `try_acquire`'s
/// refusal did not clamp its wait as `retry_after`, `reserve_within` and `state` did: the
/// wait in units was shifted back to nanoseconds past 64 bits and wrapped. Drained, and asked
/// for 2_814_409_493 tokens (2_814_409_493 days away), it answered "retry after 5.83 s".
#[test]
fn try_acquire_wait_on_unit_scaled_bucket() {
    let bucket = TokenBucket::new(BucketConfig {
        rate: 1,
        period_ns: DAY,
        burst: 1 << 32,
    })
    .unwrap();
    assert_eq!(bucket.try_acquire(1 << 32, 0), Ok(()));
    let n = 2_814_409_493;
    let wait = bucket.try_acquire(n, 0).unwrap_err().retry_after().unwrap();
    assert_eq!(Ok(wait), bucket.retry_after(n, 0), "what retry_after says");
    assert!(
        wait >= DAY,
        "{n} tokens of one a day cannot come in {wait} ns"
    );
}

/// Was: the same unclamped wait, where the wrapped nanoseconds fell below `now`: drained at
/// 2^62 ns and asked for 373_632 tokens (a thousand years away), `try_acquire` panicked on
/// `... - now` in `wait_ns` (debug builds; release returned a wrapped wait).
#[test]
fn try_acquire_wait_underflows_on_unit_scaled_bucket() {
    let bucket = TokenBucket::new(BucketConfig {
        rate: 1,
        period_ns: DAY,
        burst: 1 << 32,
    })
    .unwrap();
    let now = 1 << 62;
    assert_eq!(bucket.try_acquire(1 << 32, now), Ok(()));
    let wait = bucket.try_acquire(373_632, now).unwrap_err().retry_after();
    assert_eq!(wait, bucket.retry_after(373_632, now).ok());
}

/// Found by the `config` fuzz target: one token per 2^64 - 1 ns (any emission interval above
/// 2^63 ns) is kept in units of 4 ns, and `interval_ns()` shifted the interval in units
/// (2^62) back to nanoseconds past 64 bits: it returned 0 (a binding dividing by it
/// panicked). It saturates now.
#[test]
fn interval_ns_does_not_wrap() {
    let bucket = TokenBucket::new(BucketConfig {
        rate: 1,
        period_ns: u64::MAX,
        burst: 1,
    })
    .expect("a valid config");
    // The interval is 2^64 - 1 ns (exactly, or rounded up to the units): it saturates.
    assert_eq!(bucket.interval_ns(), u64::MAX);
}
