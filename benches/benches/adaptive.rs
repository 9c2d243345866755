//! The adaptive primitives' hot path beside a token bucket's: `adaptive/*`.
//!
//! `cargo bench -p fastbreaker-benches --bench adaptive`. Each iteration is one admission
//! plus one record (a success, in a steady state where the limit does not move much), at a
//! fixed `now`, so no clock read is measured:
//!
//! * `bucket_try_acquire`: `TokenBucket::try_acquire` alone (the reference: one CAS);
//! * `aimd_concurrency`, `gradient_concurrency`: `AdaptiveLimiter::try_acquire` + `record`;
//! * `aimd_rate`: the rate mode (a GCRA admission) + `record`;
//! * `throttle`: `AdaptiveThrottle::try_acquire` + `record(true)`.
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use fastbreaker::{
    AdaptiveConfig, AdaptiveLimiter, AdaptiveMode, AdaptiveOutcome, AdaptiveThrottle, AnyRule,
    BucketConfig, LimitRule, ThrottleConfig, TokenBucket,
};

/// A limiter at `initial_milli` thousandths, with room to grow to the largest limit.
fn limiter<R: LimitRule + Copy>(
    mode: AdaptiveMode,
    rule: R,
    initial_milli: u64,
) -> AdaptiveLimiter<R> {
    let config = AdaptiveConfig {
        max_limit_milli: 1_000_000_000,
        ..AdaptiveConfig::new(mode, initial_milli)
    };
    AdaptiveLimiter::with_rule(config, rule).unwrap()
}

fn cycle<R: LimitRule>(l: &AdaptiveLimiter<R>, now: u64) {
    if let Ok(p) = l.try_acquire(black_box(now)) {
        l.record(p, AdaptiveOutcome::Success { latency_ns: 1_000 }, now);
    }
}

fn adaptive(c: &mut Criterion) {
    let mut g = c.benchmark_group("adaptive");
    let bucket = TokenBucket::new(BucketConfig::per_second(1_000_000_000, 1 << 32)).unwrap();
    g.bench_function("bucket_try_acquire", |b| {
        b.iter(|| black_box(bucket.try_acquire(1, black_box(1 << 40))).ok())
    });
    let aimd = limiter(AdaptiveMode::Concurrency, AnyRule::Aimd, 1_000_000);
    g.bench_function("aimd_concurrency", |b| b.iter(|| cycle(&aimd, 0)));
    let gradient = limiter(AdaptiveMode::Concurrency, AnyRule::Gradient, 1_000_000);
    g.bench_function("gradient_concurrency", |b| b.iter(|| cycle(&gradient, 0)));
    // Rate mode at 10^6 per second (the largest limit): `now` moves 1 µs per call, so
    // every call is admitted.
    let rate = limiter(AdaptiveMode::Rate, AnyRule::Aimd, 1_000_000_000);
    assert!(rate.try_acquire(0).is_ok());
    let mut now = 0u64;
    assert!(
        rate.try_acquire(now + 1_000).is_ok(),
        "one call per microsecond"
    );
    now += 1_000;
    g.bench_function("aimd_rate", |b| {
        b.iter(|| {
            now += 1_000;
            cycle(&rate, now)
        })
    });
    for l in [&aimd, &rate] {
        assert_eq!(
            l.metrics(now).rejected,
            0,
            "every measured call was admitted"
        );
    }
    assert_eq!(gradient.metrics(0).rejected, 0);
    let throttle = AdaptiveThrottle::with_seed(ThrottleConfig::new(), 1).unwrap();
    g.bench_function("throttle", |b| {
        b.iter(|| {
            if throttle.try_acquire(black_box(0)).is_ok() {
                throttle.record(true, 0);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, adaptive);
criterion_main!(benches);
