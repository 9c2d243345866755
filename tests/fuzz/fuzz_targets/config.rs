//! Configuration construction: any breaker, bucket or bulkhead configuration either builds
//! or is refused, never panics; it builds iff the reference model's validation says it is
//! valid (a refusal names the same field and value); a built breaker reads its
//! configuration back consistently (defaults resolved), and the read-back builds the same
//! breaker again.
#![no_main]

use arbitrary::Arbitrary;
use fastbreaker::{
    BreakerConfig, BucketConfig, Bulkhead, CircuitBreaker, ConfigError, CountWindow1024,
    CountWindow64, TimeWindow, TimeWindow64, TokenBucket, Window,
};
use fastbreaker_fuzz::breaker_model::{validate, Model, WindowSpec};
use fastbreaker_fuzz::{Num, RawBreakerConfig, TIME_EDGES};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    breaker: RawBreakerConfig,
    bucket: (Num, Num, Num),
    max_concurrent: Num,
}

fn check_breaker<W: Window>(
    built: Result<CircuitBreaker<W>, ConfigError>,
    config: BreakerConfig,
    spec: WindowSpec,
    rebuild: impl Fn(BreakerConfig) -> Result<CircuitBreaker<W>, ConfigError>,
) {
    match (validate(&config, spec), built) {
        (Ok(()), Ok(breaker)) => {
            let read = breaker.config();
            assert_eq!(read, Model::new(config, spec, 0).read_back(), "{config:?}");
            // The read-back is itself a valid configuration describing the same breaker.
            let again = rebuild(read).unwrap_or_else(|e| panic!("read-back refused: {e}"));
            assert_eq!(again.config(), read);
            assert_eq!(breaker.backoff(), again.backoff());
        }
        (Err((field, value)), Err(e)) => {
            assert_eq!((e.field, e.value), (field, value), "{config:?}: {e}");
            let text = e.to_string();
            assert!(
                text.contains(field) && text.contains(&value.to_string()),
                "{text}"
            );
        }
        (Ok(()), Err(e)) => panic!("valid config refused: {e}: {config:?}"),
        (Err(why), Ok(_)) => panic!("invalid config built ({why:?}): {config:?}"),
    }
}

/// The documented bucket rules: rate >= 1, period >= 1, rate <= period, burst in 1..=2^32.
fn bucket_valid(c: &BucketConfig) -> Result<(), (&'static str, u64)> {
    if c.rate == 0 {
        return Err(("rate", 0));
    }
    if c.period_ns == 0 {
        return Err(("period_ns", 0));
    }
    if c.rate > c.period_ns {
        return Err(("rate", c.rate));
    }
    if c.burst == 0 || c.burst > 1 << 32 {
        return Err(("burst", c.burst));
    }
    Ok(())
}

fuzz_target!(|input: Input| {
    let config = input.breaker.build();
    check_breaker(
        CircuitBreaker::<CountWindow64>::new(config),
        config,
        WindowSpec::Count { capacity: 64 },
        CircuitBreaker::<CountWindow64>::new,
    );
    check_breaker(
        CircuitBreaker::<CountWindow1024>::new(config),
        config,
        WindowSpec::Count { capacity: 1024 },
        CircuitBreaker::<CountWindow1024>::new,
    );
    check_breaker(
        CircuitBreaker::<TimeWindow<4>>::new(config),
        config,
        WindowSpec::Time { capacity: 4 },
        CircuitBreaker::<TimeWindow<4>>::new,
    );
    check_breaker(
        CircuitBreaker::<TimeWindow64>::new(config),
        config,
        WindowSpec::Time { capacity: 64 },
        CircuitBreaker::<TimeWindow64>::new,
    );

    let (rate, period, burst) = input.bucket;
    let bucket = BucketConfig {
        rate: rate.get(100, &[0, 1, 1_000_000_000, 1_000_000_001, u64::MAX]),
        period_ns: period.get(2_000, TIME_EDGES),
        burst: burst.get(
            100,
            &[0, 1, (1 << 32) - 1, 1 << 32, (1 << 32) + 1, u64::MAX],
        ),
    };
    match (bucket_valid(&bucket), TokenBucket::new(bucket)) {
        (Ok(()), Ok(b)) => {
            assert_eq!(b.burst(), bucket.burst);
            let exact = bucket.period_ns.div_ceil(bucket.rate);
            // At least the exact interval (rounded up to the bucket's units, saturating).
            assert!(b.interval_ns() >= exact, "{bucket:?}: {}", b.interval_ns());
            if u128::from(exact) * u128::from(bucket.burst) <= 1 << 62 {
                assert_eq!(b.interval_ns(), exact, "{bucket:?}");
            }
            assert_eq!(b.available(0), bucket.burst, "a new bucket is full");
        }
        (Err((field, value)), Err(e)) => assert_eq!((e.field, e.value), (field, value)),
        (Ok(()), Err(e)) => panic!("valid bucket refused: {e}: {bucket:?}"),
        (Err(why), Ok(_)) => panic!("invalid bucket built ({why:?}): {bucket:?}"),
    }

    let n = u32::try_from(input.max_concurrent.get(4, &[0, 1, u32::MAX.into()])).unwrap_or(0);
    match Bulkhead::new(n) {
        Ok(b) => {
            assert!(n >= 1);
            assert_eq!(b.metrics().max_concurrent, n);
        }
        Err(e) => {
            assert_eq!((n, e.field), (0, "max_concurrent"));
        }
    }
});
