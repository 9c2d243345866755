//! Stress tests of the token bucket and the bulkhead with real threads.
//!
//! * Token bucket on a shared [`ManualClock`] that the threads themselves move forward by
//!   small random steps, 2 and 4 threads: the tokens granted never exceed the GCRA bound
//!   `burst + floor((t_max - t_min) / T)`, where `t_min`/`t_max` are the least and greatest
//!   `now` any granted call used. Threads read the clock at different moments and their
//!   compare-and-swaps land in any order, so no narrower window is valid: each grant moves
//!   the TAT to at least its `now` plus its cost, and never beyond its `now` plus the
//!   tolerance, so the first grant (in CAS order) starts the TAT at `>= t_min`, every grant
//!   adds its cost, and the last leaves it at `<= t_max + burst * T`.
//! * The same on [`MonotonicClock`] for 2 x 100 ms of real time (the bound is exact for any
//!   set of times; nothing is asserted about how fast anything ran).
//! * Reservations at one `now` on a drained bucket, 4 threads: every reservation gets its
//!   own slot, and the slots tile the queue with no gap or overlap.
//! * Bulkhead, 4 threads acquiring and releasing (raw and guarded): a harness count of
//!   concurrent holders never exceeds the limit, nor does `metrics().peak`; at the end
//!   nothing is in flight and `acquired + rejected == attempts`.

// Loom atomics only work inside a loom model.
#![cfg(not(loom))]

use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::thread;

use fastbreaker::{BucketConfig, Bulkhead, Clock, ManualClock, MonotonicClock, TokenBucket};

/// A small xorshift generator: each thread its own, seeded per thread.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What one thread saw: tokens granted, and the least and greatest `now` of its grants.
#[derive(Debug, Clone, Copy)]
struct Grants {
    tokens: u64,
    min_now: u64,
    max_now: u64,
    refused: u64,
}

impl Grants {
    const NONE: Grants = Grants {
        tokens: 0,
        min_now: u64::MAX,
        max_now: 0,
        refused: 0,
    };

    fn record(&mut self, n: u64, now: u64, granted: bool) {
        if granted {
            self.tokens += n;
            self.min_now = self.min_now.min(now);
            self.max_now = self.max_now.max(now);
        } else {
            self.refused += 1;
        }
    }

    fn merge(self, other: Grants) -> Grants {
        Grants {
            tokens: self.tokens + other.tokens,
            min_now: self.min_now.min(other.min_now),
            max_now: self.max_now.max(other.max_now),
            refused: self.refused + other.refused,
        }
    }
}

/// Asserts the GCRA bound over all threads' grants; returns the total.
fn assert_gcra_bound(per_thread: &[Grants], bucket: &TokenBucket) -> Grants {
    let all = per_thread.iter().fold(Grants::NONE, |a, &g| a.merge(g));
    assert!(
        all.tokens > 0,
        "the first grant on a full bucket cannot fail"
    );
    let span = all.max_now - all.min_now;
    let bound = bucket.burst() + span / bucket.interval_ns();
    assert!(
        all.tokens <= bound,
        "{} tokens over {span} ns: bound {bound} (burst {}, interval {} ns); {per_thread:?}",
        all.tokens,
        bucket.burst(),
        bucket.interval_ns()
    );
    all
}

/// `threads` threads, each `iterations` times: sometimes move the shared clock forward by
/// 0..300 ns (a third of an interval) and use the new time, otherwise read it; then take
/// 1..=3 tokens at that time.
fn manual_clock_run(threads: usize, iterations: usize) {
    let bucket = TokenBucket::new(BucketConfig {
        rate: 1,
        period_ns: 1_000,
        burst: 8,
    })
    .unwrap();
    let clock = ManualClock::new(5_000_000);
    let start = Barrier::new(threads);
    let per_thread: Vec<Grants> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (bucket, clock, start) = (&bucket, &clock, &start);
                s.spawn(move || {
                    let mut rng = Rng::new(i as u64 + 1);
                    let mut grants = Grants::NONE;
                    start.wait();
                    for _ in 0..iterations {
                        let now = if rng.below(4) == 0 {
                            clock.advance(rng.below(300))
                        } else {
                            clock.now_ns()
                        };
                        let n = 1 + rng.below(3);
                        grants.record(n, now, bucket.try_acquire(n, now).is_ok());
                    }
                    grants
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all = assert_gcra_bound(&per_thread, &bucket);
    assert!(all.refused > 0, "demand outran the clock: {per_thread:?}");
    // The bucket's own account: its TAT is at most the last grant's now plus the tolerance.
    let state = bucket.state(all.max_now);
    assert!(state.reset_after <= bucket.burst() * bucket.interval_ns());
}

#[test]
fn bucket_manual_clock_two_threads() {
    manual_clock_run(2, 500_000);
}

#[test]
fn bucket_manual_clock_four_threads() {
    manual_clock_run(4, 250_000);
}

/// `threads` threads take 1 or 2 tokens at the real monotonic time for `duration_ns`.
fn monotonic_clock_run(threads: usize, duration_ns: u64) {
    // One token per 20 µs, burst 16: a few thousand tokens per 100 ms, far below demand.
    let bucket = TokenBucket::new(BucketConfig {
        rate: 50_000,
        period_ns: 1_000_000_000,
        burst: 16,
    })
    .unwrap();
    let start = Barrier::new(threads);
    let per_thread: Vec<Grants> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (bucket, start) = (&bucket, &start);
                s.spawn(move || {
                    let mut rng = Rng::new(100 + i as u64);
                    let mut grants = Grants::NONE;
                    start.wait();
                    let begin = MonotonicClock.now_ns();
                    loop {
                        let now = MonotonicClock.now_ns();
                        if now - begin >= duration_ns {
                            break grants;
                        }
                        let n = 1 + rng.below(2);
                        grants.record(n, now, bucket.try_acquire(n, now).is_ok());
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_gcra_bound(&per_thread, &bucket);
}

#[test]
fn bucket_monotonic_clock() {
    for threads in [2, 4] {
        monotonic_clock_run(threads, 100_000_000);
    }
}

/// 4 threads reserve 1 or 2 tokens each, many times, at one `now` on a drained bucket: the
/// waits are the ends of disjoint slots that, sorted, tile the queue exactly.
#[test]
fn bucket_concurrent_reservations_get_distinct_slots() {
    const THREADS: usize = 4;
    const EACH: usize = 20_000;
    const NOW: u64 = 1 << 40;
    let bucket = TokenBucket::new(BucketConfig {
        rate: 1,
        period_ns: 1_000,
        burst: 4,
    })
    .unwrap();
    let interval = bucket.interval_ns();
    assert_eq!(bucket.try_acquire(4, NOW), Ok(()));
    let start = Barrier::new(THREADS);
    let mut slots: Vec<(u64, u64)> = thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (bucket, start) = (&bucket, &start);
                s.spawn(move || {
                    let mut rng = Rng::new(7 + i as u64);
                    start.wait();
                    (0..EACH)
                        .map(|_| {
                            let n = 1 + rng.below(2);
                            let wait = bucket.reserve(n, NOW).unwrap();
                            // The tokens are usable at NOW + wait: this reservation's slot
                            // in the queue is the n intervals before that.
                            (wait - n * interval, wait)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    slots.sort_unstable();
    let mut next_free = 0;
    for &(from, to) in &slots {
        assert_eq!(from, next_free, "gap or overlap at {from}..{to}");
        next_free = to;
    }
    assert_eq!(bucket.state(NOW).reset_after, next_free + 4 * interval);
}

/// Bulkhead stress: `threads` threads, `attempts` each, alternately raw and guarded, holding
/// a slot for a few spins; a harness count of holders (ordered with the bulkhead's own by
/// fences, as the bulkhead's count is `Relaxed`) and its high-water mark.
fn bulkhead_run(max: u32, threads: usize, attempts: usize) {
    let bulkhead = Bulkhead::new(max).unwrap();
    let holders = AtomicUsize::new(0);
    let most = AtomicUsize::new(0);
    let acquired = AtomicU64::new(0);
    let start = Barrier::new(threads);
    thread::scope(|s| {
        for i in 0..threads {
            let (bulkhead, holders, most, acquired, start) =
                (&bulkhead, &holders, &most, &acquired, &start);
            s.spawn(move || {
                let mut rng = Rng::new(1_000 + i as u64);
                start.wait();
                for k in 0..attempts {
                    let raw = k % 2 == 0;
                    let permit = if raw {
                        fastbreaker::binding::bulkhead_try_acquire(bulkhead).then_some(None)
                    } else {
                        bulkhead.try_acquire().ok().map(Some)
                    };
                    let Some(permit) = permit else { continue };
                    fence(Ordering::Acquire);
                    acquired.fetch_add(1, Ordering::Relaxed);
                    let now = holders.fetch_add(1, Ordering::Relaxed) + 1;
                    most.fetch_max(now, Ordering::Relaxed);
                    for _ in 0..rng.below(16) {
                        std::hint::spin_loop();
                    }
                    holders.fetch_sub(1, Ordering::Relaxed);
                    fence(Ordering::Release);
                    match permit {
                        Some(permit) => drop(permit),
                        None => assert!(fastbreaker::binding::bulkhead_release(bulkhead)),
                    }
                }
            });
        }
    });
    let metrics = bulkhead.metrics();
    let most = most.load(Ordering::Relaxed);
    assert!(most <= max as usize, "{most} holders at once, max {max}");
    assert!(metrics.peak <= max, "{metrics:?}");
    assert!(metrics.peak as usize >= most, "{metrics:?}, {most} seen");
    assert_eq!(metrics.in_flight, 0, "{metrics:?}");
    assert_eq!(holders.load(Ordering::Relaxed), 0);
    assert_eq!(
        metrics.acquired + metrics.rejected,
        (threads * attempts) as u64
    );
    assert_eq!(metrics.acquired, acquired.load(Ordering::Relaxed));
}

#[test]
fn bulkhead_stress_four_threads() {
    bulkhead_run(1, 4, 200_000);
    bulkhead_run(3, 4, 200_000);
}
