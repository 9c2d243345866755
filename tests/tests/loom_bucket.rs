//! Loom models of the token bucket and the bulkhead: every interleaving (up to a preemption
//! bound) of a few threads on one primitive, with loom's atomics swapped in by
//! `core/src/sync.rs`.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p fastbreaker-tests --test loom_bucket --release
//! ```
//!
//! `LOOM_MAX_PREEMPTIONS` overrides each model's default bound (3, or 2 for the largest);
//! `make loom` sets it to 2, so what these models check there is **checked by loom within
//! bound 2**.
//!
//! * Token bucket, exactness: threads take tokens at equal or differing `now`s. Whatever the
//!   interleaving, the tokens granted never exceed `burst + floor((max_now - min_now) / T)`
//!   (the GCRA bound over the times the granted calls used); at one `now` exactly `burst`
//!   are granted when demand exceeds it, and a refused request always asked for more than
//!   was left.
//! * Token bucket, reservations: concurrent reservations on a drained bucket get disjoint
//!   slots that tile the queue with no gap (even with stale `now`s), a refused
//!   `reserve_within` takes nothing, and the final TAT is exactly the sum of what was
//!   granted.
//! * Every bucket model also checks linearizability: the results (every wait included) and
//!   the final TAT are those of some sequential order of the same calls, replayed on a
//!   sequential GCRA. Reservations, takes and refunds racing are checked that way.
//! * Token bucket, reconfiguration: a reconfiguration racing grants leaves the bucket
//!   holding exactly the tokens granted, counted at the new interval (so every grant was
//!   decided on one version of the settings, with the state converted to it; the model
//!   fails if callers skip the conversion), and two reconfigurations racing a grant are
//!   serialised, the last winning whole. This model found a writer's follow-up (the
//!   state's conversion) running after it had released the writers' lock, fixed since.
//! * Bulkhead: concurrent acquire/release (guarded permits, and raw slots through the
//!   bindings' `fastbreaker::binding` hooks) never lets more than `max` callers hold a slot
//!   (a harness-side count), the peak never exceeds `max`, and at the end nothing is in
//!   flight and `acquired + rejected == attempts`.
#![cfg(loom)]

use fastbreaker::{BucketConfig, BucketRejected, Bulkhead, TokenBucket};
use loom::sync::atomic::{fence, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

/// Interval of the buckets under test: one token per 10 ns.
const T: u64 = 10;

/// Checks `f` under every interleaving with at most 3 preemptions (or `LOOM_MAX_PREEMPTIONS`).
fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    model_bounded(3, f);
}

/// Checks `f` with at most `bound` preemptions (or `LOOM_MAX_PREEMPTIONS`).
fn model_bounded<F>(bound: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    builder.check(f);
}

fn bucket(burst: u64) -> Arc<TokenBucket> {
    let config = BucketConfig {
        rate: 1,
        period_ns: T,
        burst,
    };
    let bucket = TokenBucket::new(config).unwrap();
    assert_eq!(bucket.interval_ns(), T);
    Arc::new(bucket)
}

/// One request a thread makes at `now`: take `n` tokens, reserve them (with a bound on the
/// wait, `u64::MAX` for `reserve`), or refund them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Take { n: u64, now: u64 },
    Reserve { n: u64, now: u64, max_wait: u64 },
    Refund { n: u64, now: u64 },
}

use Op::{Refund, Reserve, Take};

impl Op {
    fn n(self) -> u64 {
        match self {
            Take { n, .. } | Reserve { n, .. } | Refund { n, .. } => n,
        }
    }

    fn now(self) -> u64 {
        match self {
            Take { now, .. } | Reserve { now, .. } | Refund { now, .. } => now,
        }
    }

    /// Runs on the bucket under test: `Ok(wait)` (0 for a take) or `Err(retry_after)`.
    fn run(self, bucket: &TokenBucket) -> Result<u64, u64> {
        let result = match self {
            Take { n, now } => bucket.try_acquire(n, now).map(|()| 0),
            Reserve { n, now, max_wait } if max_wait == u64::MAX => bucket.reserve(n, now),
            Reserve { n, now, max_wait } => bucket.reserve_within(n, now, max_wait),
            Refund { n, now } => {
                bucket.refund(n, now);
                Ok(0)
            }
        };
        result.map_err(|e| match e {
            BucketRejected::RateLimited { retry_after } => retry_after,
            e => panic!("{self:?}: {e:?}"),
        })
    }

    /// Runs on a sequential GCRA (`tat`, tolerance `burst * T`), written from the definition.
    fn run_sequentially(self, tat: &mut u64, burst: u64) -> Result<u64, u64> {
        if let Refund { n, now } = self {
            // Back by n*T, but never fuller than full at `now`.
            if *tat > now {
                *tat = tat.saturating_sub(n * T).max(now);
            }
            return Ok(0);
        }
        let end = (*tat).max(self.now()) + self.n() * T;
        let late = end.saturating_sub(self.now() + burst * T);
        let allowed = match self {
            Reserve { max_wait, .. } => max_wait,
            _ => 0,
        };
        if late > allowed {
            return Err(late);
        }
        *tat = end;
        Ok(late)
    }

    /// Whether this op was a take that was granted.
    fn granted(self, result: Result<u64, u64>) -> bool {
        matches!(self, Take { .. }) && result.is_ok()
    }
}

/// Results, thread by thread and op by op, and the final TAT.
type Outcome = (Vec<Vec<Result<u64, u64>>>, u64);

/// Runs each thread's ops in order on `bucket`, all threads concurrently.
fn run_concurrently(bucket: &Arc<TokenBucket>, plan: &'static [&'static [Op]]) -> Outcome {
    let handles: Vec<_> = plan
        .iter()
        .map(|&ops| {
            let bucket = bucket.clone();
            thread::spawn(move || ops.iter().map(|op| op.run(&bucket)).collect::<Vec<_>>())
        })
        .collect();
    let results = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // `state(0).reset_after` is `max(TAT, 0) - 0`: the TAT itself.
    (results, bucket.state(0).reset_after)
}

/// Every outcome a sequential execution of `plan` can have, from TAT `tat`: one per
/// interleaving of the threads' op lists.
fn sequential_outcomes(plan: &[&[Op]], burst: u64, tat: u64) -> Vec<Outcome> {
    fn go(
        plan: &[&[Op]],
        burst: u64,
        tat: u64,
        done: &mut Vec<Vec<Result<u64, u64>>>,
        all: &mut Vec<Outcome>,
    ) {
        let mut any = false;
        for i in 0..plan.len() {
            if let Some(&op) = plan[i].get(done[i].len()) {
                any = true;
                let mut next = tat;
                done[i].push(op.run_sequentially(&mut next, burst));
                go(plan, burst, next, done, all);
                done[i].pop();
            }
        }
        if !any {
            all.push((done.clone(), tat));
        }
    }
    let mut all = Vec::new();
    go(
        plan,
        burst,
        tat,
        &mut vec![Vec::new(); plan.len()],
        &mut all,
    );
    all
}

/// Linearizability: the concurrent outcome (every result, every wait, the final TAT) is
/// that of some sequential order of the same ops.
fn assert_linearizable(plan: &[&[Op]], burst: u64, initial_tat: u64, outcome: &Outcome) {
    let sequential = sequential_outcomes(plan, burst, initial_tat);
    assert!(
        sequential.contains(outcome),
        "no sequential order gives {outcome:?}; the possible ones: {sequential:?}"
    );
}

/// The GCRA bound over the granted takes: tokens <= burst + floor((max now - min now) / T),
/// whatever order their compare-and-swaps landed in. Returns the tokens granted.
fn assert_gcra_bound(plan: &[&[Op]], outcome: &Outcome, burst: u64) -> u64 {
    let granted: Vec<Op> = plan
        .iter()
        .zip(&outcome.0)
        .flat_map(|(ops, results)| ops.iter().zip(results))
        .filter(|(op, result)| op.granted(**result))
        .map(|(op, _)| *op)
        .collect();
    let total: u64 = granted.iter().map(|op| op.n()).sum();
    if let (Some(lo), Some(hi)) = (
        granted.iter().map(|op| op.now()).min(),
        granted.iter().map(|op| op.now()).max(),
    ) {
        let bound = burst + (hi - lo) / T;
        assert!(
            total <= bound,
            "{total} tokens granted over [{lo}, {hi}], bound {bound}: {outcome:?}"
        );
    }
    total
}

/// Takes on a fresh bucket of `burst`: linearizable, within the GCRA bound; returns the
/// outcome and the tokens granted.
fn take_and_check(burst: u64, plan: &'static [&'static [Op]]) -> (Outcome, u64) {
    let bucket = bucket(burst);
    let outcome = run_concurrently(&bucket, plan);
    for result in outcome.0.iter().flatten() {
        assert!(
            matches!(result, Ok(0) | Err(1..)),
            "a take has no wait, a refusal one: {outcome:?}"
        );
    }
    let total = assert_gcra_bound(plan, &outcome, burst);
    assert_linearizable(plan, burst, 0, &outcome);
    (outcome, total)
}

/// Same `now` everywhere, one token a request, demand 4 over a burst of 2: exactly 2 are
/// granted in every interleaving.
#[test]
fn bucket_same_now_grants_exactly_the_burst() {
    model(|| {
        const ONE: Op = Take { n: 1, now: 1_000 };
        let (outcome, total) = take_and_check(2, &[&[ONE, ONE], &[ONE], &[ONE]]);
        assert_eq!(total, 2, "{outcome:?}");
        assert_eq!(outcome.1, 1_000 + 2 * T, "the TAT: full use of the burst");
    });
}

/// Same `now`, requests of 1, 2, 1 and 1 tokens over a burst of 3: at most the burst is
/// granted, and every refused request asked for more than was left at the end (at one
/// instant tokens only run out, so what was left when it was refused was at least that).
#[test]
fn bucket_same_now_mixed_sizes_refuse_only_what_does_not_fit() {
    model(|| {
        const NOW: u64 = 50;
        const PLAN: &[&[Op]] = &[
            &[Take { n: 1, now: NOW }],
            &[Take { n: 2, now: NOW }],
            &[Take { n: 1, now: NOW }, Take { n: 1, now: NOW }],
        ];
        let (outcome, total) = take_and_check(3, PLAN);
        assert!(total <= 3);
        assert_eq!(outcome.1, NOW + total * T);
        for (ops, results) in PLAN.iter().zip(&outcome.0) {
            for (op, result) in ops.iter().zip(results) {
                if let Err(wait) = result {
                    let left = 3 - total;
                    assert!(op.n() > left, "{op:?} refused with {left} left");
                    assert!(*wait <= (op.n() - left) * T, "{op:?}: {wait}");
                }
            }
        }
    });
}

/// Differing `now`s (threads reading the clock at different moments, their CASes landing in
/// any order): linearizable, and the GCRA bound over the granted requests' times holds; it
/// is reached in some interleavings (`[0, 10]`, burst 2: 3 tokens).
#[test]
fn bucket_differing_nows_respect_the_gcra_bound() {
    model(|| {
        take_and_check(
            2,
            &[
                &[Take { n: 1, now: 0 }, Take { n: 1, now: 0 }],
                &[Take { n: 1, now: 10 }, Take { n: 1, now: 10 }],
                &[Take { n: 2, now: 5 }],
            ],
        );
    });
}

/// A stale `now` far behind fresh ones: the outcome is one of the four sequential ones
/// (`{A}`, `{C}`, `{B, A}`, `{B, C}` granted): never all three, never A and C together.
#[test]
fn bucket_stale_now_does_not_double_grant() {
    model(|| {
        const A: Op = Take { n: 2, now: 100 };
        const B: Op = Take { n: 2, now: 0 };
        const C: Op = Take { n: 1, now: 95 };
        let (outcome, total) = take_and_check(2, &[&[A], &[B], &[C]]);
        let granted: Vec<bool> = outcome.0.iter().map(|r| r[0].is_ok()).collect();
        let (tat, expected_total) = match granted[..] {
            [true, false, false] => (120, 2),
            [false, false, true] => (105, 1),
            [true, true, false] => (120, 4),
            [false, true, true] => (105, 3),
            _ => panic!("{outcome:?}"),
        };
        assert_eq!((outcome.1, total), (tat, expected_total), "{outcome:?}");
    });
}

/// Drains a bucket of burst 2 at `DRAINED_AT`, then runs the reservations concurrently (each
/// thread its list, in order). Checks linearizability, that the granted reservations occupy
/// disjoint slots tiling `[DRAINED_AT + 2T, final TAT)` with no gap, that every refused
/// `reserve_within` took nothing and was told a wait beyond its bound, and that the final
/// TAT is exactly the drain plus what was granted.
fn reserve_and_check(plan: &'static [&'static [Op]]) {
    const DRAINED_AT: u64 = 100;
    const BURST: u64 = 2;
    let tolerance = BURST * T;
    let bucket = bucket(BURST);
    assert_eq!(bucket.try_acquire(BURST, DRAINED_AT), Ok(()));
    let outcome = run_concurrently(&bucket, plan);
    assert_linearizable(plan, BURST, DRAINED_AT + tolerance, &outcome);

    // Each granted reservation ends its slot at `now + wait + tolerance` (every `now` here is
    // at or before the drain, so every reservation queued): slot = [end - n*T, end).
    let mut slots: Vec<(u64, u64)> = Vec::new();
    let mut reserved = 0;
    for (ops, results) in plan.iter().zip(&outcome.0) {
        for (&op, &result) in ops.iter().zip(results) {
            let Reserve { n, now, max_wait } = op else {
                panic!("{op:?}")
            };
            match result {
                Ok(wait) => {
                    assert!(
                        wait > 0 && wait <= max_wait,
                        "{op:?} granted a wait of {wait}"
                    );
                    let end = now + wait + tolerance;
                    slots.push((end - n * T, end));
                    reserved += n;
                }
                Err(retry_after) => {
                    assert!(max_wait < u64::MAX, "an unbounded reserve is never refused");
                    assert!(retry_after > max_wait, "{op:?} refused, wait {retry_after}");
                }
            }
        }
    }
    slots.sort_unstable();
    let mut next_free = DRAINED_AT + tolerance;
    for &(start, end) in &slots {
        assert_eq!(
            start, next_free,
            "overlap or gap: {slots:?} from {outcome:?}"
        );
        next_free = end;
    }
    // The TAT is exactly where the last slot ends: refusals took nothing.
    assert_eq!(outcome.1, next_free, "{outcome:?}");
    assert_eq!(outcome.1, DRAINED_AT + tolerance + reserved * T);
}

/// Reservations of 1 and 2 tokens and a bounded one, all at the drain time.
#[test]
fn reserve_slots_are_disjoint_and_refusals_take_nothing() {
    model(|| {
        reserve_and_check(&[
            &[Reserve {
                n: 1,
                now: 100,
                max_wait: u64::MAX,
            }],
            &[Reserve {
                n: 2,
                now: 100,
                max_wait: u64::MAX,
            }],
            &[Reserve {
                n: 1,
                now: 100,
                max_wait: 2 * T,
            }],
        ]);
    });
}

/// The same with stale `now`s (read before the drain) and a thread making two
/// reservations, the second bounded.
#[test]
fn reserve_slots_with_stale_nows() {
    model(|| {
        reserve_and_check(&[
            &[
                Reserve {
                    n: 1,
                    now: 93,
                    max_wait: u64::MAX,
                },
                Reserve {
                    n: 2,
                    now: 97,
                    max_wait: 4 * T,
                },
            ],
            &[Reserve {
                n: 2,
                now: 100,
                max_wait: 3 * T,
            }],
            &[Reserve {
                n: 1,
                now: 88,
                max_wait: u64::MAX,
            }],
        ]);
    });
}

/// Reservations, takes and refunds (a waiter giving up) racing on a drained bucket, at
/// differing `now`s: the outcome, every wait included, and the final TAT are those of
/// some sequential order, so a refund never gives back more than the bucket's fullness at
/// its `now` allows, whatever it races with.
#[test]
fn reserve_take_refund_linearizable() {
    model(|| {
        const PLAN: &[&[Op]] = &[
            &[
                Reserve {
                    n: 2,
                    now: 100,
                    max_wait: u64::MAX,
                },
                Refund { n: 2, now: 105 },
            ],
            &[Take { n: 1, now: 110 }, Take { n: 1, now: 120 }],
            &[Reserve {
                n: 1,
                now: 102,
                max_wait: 3 * T,
            }],
        ];
        let bucket = bucket(2);
        assert_eq!(bucket.try_acquire(2, 100), Ok(()));
        let outcome = run_concurrently(&bucket, PLAN);
        assert_linearizable(PLAN, 2, 100 + 2 * T, &outcome);
    });
}

/// What one bulkhead thread saw: its grants and refusals, and the most holders it counted
/// (itself included) while holding a slot.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    acquired: u64,
    rejected: u64,
    most: usize,
}

/// One attempt: acquire, count ourselves in the harness's holder count while holding, count
/// out, release.
///
/// The bulkhead's count is `Relaxed` and publishes nothing, so the harness pairs its own
/// fences with it: an acquire fence after a successful acquire and a release fence before
/// releasing make each release happen-before the acquire that reuses its slot, and so order
/// the holder count's decrement before the next holder's increment.
fn attempt(bulkhead: &Bulkhead, holders: &AtomicUsize, raw: bool, seen: &mut Seen) {
    let permit = if raw {
        fastbreaker::binding::bulkhead_try_acquire(bulkhead).then_some(None)
    } else {
        bulkhead.try_acquire().ok().map(Some)
    };
    let Some(permit) = permit else {
        seen.rejected += 1;
        return;
    };
    fence(Ordering::Acquire);
    seen.acquired += 1;
    let holding = holders.fetch_add(1, Ordering::Relaxed) + 1;
    seen.most = seen.most.max(holding);
    holders.fetch_sub(1, Ordering::Relaxed);
    fence(Ordering::Release);
    match permit {
        Some(permit) => drop(permit),
        None => assert!(
            fastbreaker::binding::bulkhead_release(bulkhead),
            "a slot was out"
        ),
    }
}

/// `threads[i]` attempts, alternately raw and guarded, on a bulkhead of `max`.
fn bulkhead_run(max: u32, threads: &'static [usize]) {
    let bulkhead = Arc::new(Bulkhead::new(max).unwrap());
    let holders = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = threads
        .iter()
        .enumerate()
        .map(|(i, &attempts)| {
            let (bulkhead, holders) = (bulkhead.clone(), holders.clone());
            thread::spawn(move || {
                let mut seen = Seen::default();
                for k in 0..attempts {
                    attempt(&bulkhead, &holders, (i + k) % 2 == 0, &mut seen);
                }
                seen
            })
        })
        .collect();
    let seen: Vec<Seen> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let attempts: usize = threads.iter().sum();
    let most = seen.iter().map(|s| s.most).max().unwrap_or(0);
    let metrics = bulkhead.metrics();
    assert!(most <= max as usize, "{most} holders at once, max {max}");
    assert!(metrics.peak <= max, "{metrics:?}");
    assert!(metrics.peak as usize >= most, "{metrics:?}, {most} seen");
    assert_eq!(metrics.in_flight, 0, "{metrics:?}");
    assert_eq!(bulkhead.in_flight(), 0);
    assert_eq!(metrics.acquired + metrics.rejected, attempts as u64);
    assert_eq!(
        metrics.acquired,
        seen.iter().map(|s| s.acquired).sum::<u64>()
    );
    assert_eq!(
        metrics.rejected,
        seen.iter().map(|s| s.rejected).sum::<u64>()
    );
    if threads.len() <= max as usize {
        assert_eq!(metrics.rejected, 0, "room for everyone: {metrics:?}");
    }
}

/// A single slot, three threads: never two holders.
#[test]
fn bulkhead_single_slot_is_exclusive() {
    model(|| bulkhead_run(1, &[1, 1, 1]));
}

/// Two slots, three threads (bound 2: at 3 this model takes minutes).
#[test]
fn bulkhead_two_slots_three_threads() {
    model_bounded(2, || bulkhead_run(2, &[1, 1, 1]));
}

/// Two slots, two threads trying twice each: never refused.
#[test]
fn bulkhead_never_refuses_with_room() {
    model(|| bulkhead_run(2, &[2, 2]));
}

/// Reconfiguration racing grants: a bucket of burst 2 at one token per 10 ns is changed to
/// burst 4 at one per 20 ns while another thread takes tokens. Every grant is decided on one
/// version of the settings, with the state converted to it: at the end the bucket holds
/// exactly the tokens granted, counted at the new interval (a grant decided on torn settings,
/// or on the old interval against a converted state, would leave it holding fewer), and no
/// more were granted than either configuration allows.
#[test]
fn reconfigure_racing_grants_decides_each_on_one_version() {
    model(|| {
        let bucket = Arc::new(
            TokenBucket::new(BucketConfig {
                rate: 1,
                period_ns: T,
                burst: 2,
            })
            .unwrap(),
        );
        let taker = {
            let bucket = Arc::clone(&bucket);
            thread::spawn(move || (0..3).filter(|_| bucket.try_acquire(1, 0).is_ok()).count())
        };
        bucket
            .reconfigure(
                BucketConfig {
                    rate: 1,
                    period_ns: 2 * T,
                    burst: 4,
                },
                0,
            )
            .unwrap();
        let granted = taker.join().unwrap() as u64;
        assert!((1..=3).contains(&granted), "granted {granted} of 3");
        assert_eq!(bucket.config().burst, 4);
        assert_eq!(
            bucket.available(0),
            4 - granted,
            "the state must hold every grant at the new interval"
        );
        assert_eq!(
            bucket.retry_after(1, 0).unwrap(),
            if granted == 4 { 2 * T } else { 0 }
        );
    });
}

/// Two reconfigurations racing each other and a grant: serialised, the last one wins whole
/// (never a mix of the two), and the grant is counted in it.
#[test]
fn racing_reconfigurations_are_serialised() {
    model_bounded(2, || {
        let bucket = Arc::new(TokenBucket::new(BucketConfig::per_second(10, 2)).unwrap());
        let other = {
            let bucket = Arc::clone(&bucket);
            thread::spawn(move || {
                bucket
                    .reconfigure(
                        BucketConfig {
                            rate: 1,
                            period_ns: 3 * T,
                            burst: 3,
                        },
                        0,
                    )
                    .unwrap()
            })
        };
        let took = bucket.try_acquire(1, 0).is_ok();
        bucket
            .reconfigure(
                BucketConfig {
                    rate: 1,
                    period_ns: 5 * T,
                    burst: 5,
                },
                0,
            )
            .unwrap();
        other.join().unwrap();
        let c = bucket.config();
        assert!(
            c == BucketConfig {
                rate: 1,
                period_ns: 3 * T,
                burst: 3
            } || c
                == BucketConfig {
                    rate: 1,
                    period_ns: 5 * T,
                    burst: 5
                },
            "{c:?}"
        );
        assert!(took);
        assert_eq!(bucket.available(0), c.burst - 1);
    });
}
