//! Token bucket (GCRA) and bulkhead scenarios, explicit times; the same rules as the core's
//! unit tests, run on the target (64-bit arithmetic and atomics on a 32-bit core).

use fastbreaker::binding::{bulkhead_release, bulkhead_try_acquire};
use fastbreaker::{
    BucketConfig, BucketRejected, BucketState, Bulkhead, BulkheadMetrics, BulkheadRejected,
    TokenBucket,
};

use crate::harness::TestResult;

const S: u64 = 1_000_000_000;

pub fn burst_then_rate() -> TestResult {
    let b = TokenBucket::new(BucketConfig::per_second(10, 5)).unwrap();
    check_eq!(b.available(0), 5);
    check!(b.try_acquire(5, 0).is_ok(), "the burst");
    check_eq!(
        b.try_acquire(1, 0),
        Err(BucketRejected::RateLimited {
            retry_after: S / 10
        })
    );
    check_eq!(b.available(S / 10), 1);
    check_eq!(
        b.try_acquire(2, S / 10),
        Err(BucketRejected::RateLimited {
            retry_after: S / 10
        }),
        "weighted: both tokens or none"
    );
    check!(b.try_acquire(1, S / 10).is_ok());
    check_eq!(b.available(10 * S), 5, "never more than the burst");
    check_eq!(
        b.try_acquire(6, 10 * S),
        Err(BucketRejected::ExceedsCapacity {
            requested: 6,
            capacity: 5
        })
    );
    check_eq!(b.try_acquire(0, 10 * S), Ok(()), "n = 0 takes nothing");
    Ok(())
}

pub fn reserve_queues_and_refunds() -> TestResult {
    let b = TokenBucket::new(BucketConfig::per_second(1, 1)).unwrap();
    check_eq!(b.reserve(1, 0), Ok(0));
    check_eq!(b.reserve(1, 0), Ok(S));
    check_eq!(b.reserve(1, 0), Ok(2 * S));
    check_eq!(
        b.reserve_within(1, 0, 2 * S),
        Err(BucketRejected::RateLimited { retry_after: 3 * S })
    );
    check_eq!(
        b.retry_after(1, 0),
        Ok(3 * S),
        "the refused reservation took nothing"
    );
    b.refund(1, 0);
    check_eq!(b.retry_after(1, 0), Ok(2 * S));
    b.refund(1, 0);
    b.refund(1, 0);
    check_eq!(b.available(0), 1);
    b.refund(100, 0);
    check_eq!(b.available(0), 1, "a refund never overfills");
    Ok(())
}

pub fn headers() -> TestResult {
    let b = TokenBucket::new(BucketConfig::per_second(2, 4)).unwrap();
    b.try_acquire(3, 0).unwrap();
    check_eq!(
        b.state(0),
        BucketState {
            limit: 4,
            remaining: 1,
            reset_after: 3 * S / 2,
            retry_after: 0
        }
    );
    b.try_acquire(1, 0).unwrap();
    check_eq!(b.state(0).retry_after, S / 2);
    b.reset();
    check_eq!(b.available(0), 4);
    Ok(())
}

pub fn extreme_configurations() -> TestResult {
    let day = 86_400 * S;
    let huge = TokenBucket::new(BucketConfig {
        rate: 1,
        period_ns: day,
        burst: 1 << 32,
    })
    .unwrap();
    check_eq!(huge.available(0), 1 << 32);
    let late = (1u64 << 62) - 1;
    check!(huge.try_acquire(1 << 32, late).is_ok());
    // 2^32 days do not fit in 2^62 ns: this bucket counts in units of 2^17 ns.
    let wait = huge
        .try_acquire(1, late)
        .unwrap_err()
        .retry_after()
        .unwrap();
    check!(wait.abs_diff(day) < 1 << 18, "{wait}");
    check!(huge.try_acquire(1, late + wait - 1).is_err());
    check!(huge.try_acquire(1, late + wait).is_ok());
    let fast = TokenBucket::new(BucketConfig::per_second(1_000_000_000, 1 << 32)).unwrap();
    check_eq!(fast.interval_ns(), 1);
    check!(fast.try_acquire(1 << 32, late).is_ok());
    check_eq!(
        fast.try_acquire(1, late),
        Err(BucketRejected::RateLimited { retry_after: 1 })
    );
    check_eq!(fast.available(late + 1000), 1000);
    check_eq!(
        TokenBucket::new(BucketConfig::per_second(0, 1))
            .unwrap_err()
            .field,
        "rate"
    );
    check_eq!(
        TokenBucket::new(BucketConfig::per_second(1, 0))
            .unwrap_err()
            .field,
        "burst"
    );
    Ok(())
}

pub fn bulkhead_limits_and_releases() -> TestResult {
    let b = Bulkhead::new(2).unwrap();
    let first = b.try_acquire().unwrap();
    let second = b.try_acquire().unwrap();
    check_eq!(
        b.try_acquire().err(),
        Some(BulkheadRejected::Full { max_concurrent: 2 })
    );
    drop(first);
    check!(
        bulkhead_try_acquire(&b),
        "a dropped permit gives its slot back"
    );
    check!(!bulkhead_try_acquire(&b));
    check!(bulkhead_release(&b));
    drop(second);
    check!(!bulkhead_release(&b), "one more than taken: ignored");
    check_eq!(
        b.metrics(),
        BulkheadMetrics {
            max_concurrent: 2,
            in_flight: 0,
            peak: 2,
            acquired: 3,
            rejected: 2
        }
    );
    Ok(())
}
