//! The token bucket against an exact GCRA written from the definition in 128-bit
//! arithmetic (as in `tests/tests/bucket_model.rs`): every result and the full state after
//! every operation must agree, for buckets whose budget fits in 2^62 ns (kept in
//! nanoseconds). Buckets kept in coarser units (a budget above 2^62 ns) are checked for
//! their invariants: no panic, `available <= burst`, queries that agree with each other,
//! and an exact `retry_after` (refused one nanosecond earlier, let through at it).
//!
//! Every time passed in stays in the core's documented range, below 2^62 ns: the clock
//! stops at `HORIZON`, a reservation is only granted if its wait ends by then, and a wait
//! is only checked at its end when that end is in range. The TAT then never saturates (it
//! stays below `HORIZON` + the budget, under 2^63 units), so the model needs no saturation.
#![no_main]

use arbitrary::Arbitrary;
use fastbreaker::{BucketConfig, BucketRejected, BucketState, TokenBucket};
use fastbreaker_fuzz::{Num, TIME_EDGES};
use libfuzzer_sys::fuzz_target;

/// Times stay at or below this: the core's documented range is below 2^62 ns.
const HORIZON: u64 = (1 << 62) - 1;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum At {
    Now,
    Behind(Num),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Advance(Num),
    TryAcquire(Num, At),
    Reserve(Num, At),
    ReserveWithin(Num, Num, At),
    Refund(Num, At),
    Available(At),
    RetryAfter(Num, At),
    State(At),
    Reset,
}

#[derive(Arbitrary, Debug)]
struct Input {
    rate: Num,
    period: Num,
    burst: Num,
    start: Num,
    ops: Vec<Op>,
}

/// Exact GCRA: `tat` is when the bucket is full again; `n` tokens at `now` conform when
/// `max(tat, now) + n*T <= now + burst*T`.
struct Gcra {
    interval: u128,
    burst: u128,
    tat: u128,
}

impl Gcra {
    fn tolerance(&self) -> u128 {
        self.burst * self.interval
    }

    fn too_many(&self, n: u64) -> Result<(), BucketRejected> {
        if u128::from(n) > self.burst {
            Err(BucketRejected::ExceedsCapacity {
                requested: n,
                capacity: self.burst as u64,
            })
        } else {
            Ok(())
        }
    }

    /// Where the TAT would move, and how far past the tolerance that lies.
    fn probe(&self, n: u64, now: u64) -> (u128, u128) {
        let now = u128::from(now);
        let end = self.tat.max(now) + u128::from(n) * self.interval;
        (end, end.saturating_sub(now + self.tolerance()))
    }

    fn try_acquire(&mut self, n: u64, now: u64) -> Result<(), BucketRejected> {
        self.too_many(n)?;
        if n == 0 {
            return Ok(());
        }
        let (end, late) = self.probe(n, now);
        if late > 0 {
            return Err(BucketRejected::RateLimited {
                retry_after: late as u64,
            });
        }
        self.tat = end;
        Ok(())
    }

    fn reserve_within(&mut self, n: u64, now: u64, max_wait: u64) -> Result<u64, BucketRejected> {
        self.too_many(n)?;
        if n == 0 {
            return Ok(0);
        }
        let (end, wait) = self.probe(n, now);
        let wait = wait as u64;
        if wait > max_wait {
            return Err(BucketRejected::RateLimited { retry_after: wait });
        }
        self.tat = end;
        Ok(wait)
    }

    fn refund(&mut self, n: u64, now: u64) {
        let now = u128::from(now);
        if self.tat > now {
            self.tat = self
                .tat
                .saturating_sub(u128::from(n) * self.interval)
                .max(now);
        }
    }

    fn available(&self, now: u64) -> u64 {
        let now = u128::from(now);
        let slack = (now + self.tolerance()).saturating_sub(self.tat.max(now));
        (slack / self.interval).min(self.burst) as u64
    }

    fn retry_after(&self, n: u64, now: u64) -> Result<u64, BucketRejected> {
        self.too_many(n)?;
        if n == 0 {
            return Ok(0);
        }
        Ok(self.probe(n, now).1 as u64)
    }

    fn state(&self, now: u64) -> BucketState {
        BucketState {
            limit: self.burst as u64,
            remaining: self.available(now),
            reset_after: (self.tat.max(u128::from(now)) - u128::from(now)) as u64,
            retry_after: self.probe(1, now).1 as u64,
        }
    }
}

fn amount(n: Num, burst: u64) -> u64 {
    n.get(burst.saturating_add(2), &[0, 1, burst, burst + 1, u64::MAX])
}

fn span(n: Num, interval: u64) -> u64 {
    n.get(interval.saturating_mul(4).max(4), TIME_EDGES)
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
            .get(64, &[1, 2, (1 << 32) - 1, 1 << 32])
            .clamp(1, 1 << 32),
    };
    let config = BucketConfig {
        rate: config.rate.min(config.period_ns),
        ..config
    };
    let bucket = TokenBucket::new(config).expect("a valid config");
    let exact = config.period_ns.div_ceil(config.rate);
    let unscaled = u128::from(exact) * u128::from(config.burst) <= 1 << 62;
    let interval = bucket.interval_ns();
    let burst = config.burst;
    let mut model = Gcra {
        interval: u128::from(exact),
        burst: u128::from(burst),
        tat: 0,
    };
    let mut now = input.start.get(1 << 40, TIME_EDGES).min(HORIZON);
    for op in input.ops.iter().take(300) {
        let time = |at: At| match at {
            At::Now => now,
            At::Behind(d) => now.saturating_sub(span(d, interval)),
        };
        match *op {
            Op::Advance(d) => now = now.saturating_add(span(d, interval)).min(HORIZON),
            Op::TryAcquire(n, at) => {
                let (n, t) = (amount(n, burst), time(at));
                let got = bucket.try_acquire(n, t);
                if unscaled {
                    assert_eq!(got, model.try_acquire(n, t), "try_acquire({n}, {t})");
                }
            }
            Op::Reserve(n, at) | Op::ReserveWithin(n, _, at) => {
                let (n, t) = (amount(n, burst), time(at));
                let max_wait = match *op {
                    Op::ReserveWithin(_, m, _) => span(m, interval),
                    _ => u64::MAX,
                };
                // Keep the queue within the times the core supports: no reservation granted
                // with a wait that ends past `HORIZON` (on any bucket, unit-scaled ones
                // included). Refusals, which take nothing, are made at any wait.
                if bucket.retry_after(n, t).is_ok_and(|wait| {
                    wait <= max_wait && t.checked_add(wait).is_none_or(|end| end > HORIZON)
                }) {
                    continue;
                }
                let got = bucket.reserve_within(n, t, max_wait);
                if unscaled {
                    assert_eq!(
                        got,
                        model.reserve_within(n, t, max_wait),
                        "reserve({n}, {t}, {max_wait})"
                    );
                }
            }
            Op::Refund(n, at) => {
                let (n, t) = (amount(n, burst), time(at));
                bucket.refund(n, t);
                model.refund(n, t);
            }
            Op::Available(at) => {
                let t = time(at);
                let got = bucket.available(t);
                assert!(got <= burst);
                if unscaled {
                    assert_eq!(got, model.available(t), "available({t})");
                }
            }
            Op::RetryAfter(n, at) => {
                let (n, t) = (amount(n, burst), time(at));
                let got = bucket.retry_after(n, t);
                if unscaled {
                    assert_eq!(got, model.retry_after(n, t), "retry_after({n}, {t})");
                }
                // Exact: refused one nanosecond before the wait ends (when there is one, and
                // it ends within the documented range).
                if let Ok(wait) = got {
                    let end = t.checked_add(wait).filter(|&end| end <= HORIZON);
                    if let (true, Some(end)) = (wait > 0 && n > 0, end) {
                        assert!(
                            bucket.retry_after(n, end - 1).is_ok_and(|w| w > 0),
                            "early at {}",
                            end - 1
                        );
                        assert_eq!(bucket.retry_after(n, end), Ok(0), "at {t} + {wait}");
                    }
                }
            }
            Op::State(at) => {
                let t = time(at);
                let got = bucket.state(t);
                assert!(got.remaining <= burst && got.limit == burst, "{got:?}");
                assert_eq!(got.remaining, bucket.available(t));
                assert_eq!(Ok(got.retry_after), bucket.retry_after(1, t));
                if unscaled {
                    assert_eq!(got, model.state(t), "state({t})");
                }
            }
            Op::Reset => {
                bucket.reset();
                model.tat = 0;
            }
        }
        if unscaled {
            assert_eq!(
                bucket.state(now),
                model.state(now),
                "state after {op:?} at {now}"
            );
        }
    }
});
