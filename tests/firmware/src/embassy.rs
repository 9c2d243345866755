//! Time from embassy-time: [`EmbassyClock`] reads `embassy_time::Instant::now()`, which the
//! test driver ([`crate::test_driver`]) lets the tests move.

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use embassy_time::{Duration, Instant, Timer};
use fastbreaker::{
    BreakerConfig, BucketConfig, BucketRejected, CircuitBreaker, Clock, CountWindow64,
    EmbassyClock, Outcome, PermitKind, Rejected, State, TokenBucket, MILLISECOND, SECOND,
};

use crate::harness::TestResult;
use crate::test_driver::advance;

type Breaker = CircuitBreaker<CountWindow64>;

pub fn clock_follows_the_driver() -> TestResult {
    let t0 = EmbassyClock.now_ns();
    check_eq!(t0, Instant::now().as_micros() * 1_000);
    advance(Duration::from_millis(1_500));
    check_eq!(EmbassyClock.now_ns() - t0, 1_500 * MILLISECOND);
    advance(Duration::from_micros(7));
    check_eq!(EmbassyClock.now_ns() - t0, 1_500 * MILLISECOND + 7_000);
    Ok(())
}

pub fn breaker_opens_half_opens_and_closes_on_embassy_time() -> TestResult {
    let b = Breaker::new(BreakerConfig {
        failure_threshold: Some(2),
        wait_duration_ns: 5 * SECOND,
        ..BreakerConfig::new()
    })
    .unwrap();
    let clock = EmbassyClock;
    for expect_trip in [false, true] {
        let p = b.acquire_with(&clock).unwrap();
        let t = b.record_with(&clock, p, Outcome::Failure);
        check_eq!(t.is_some(), expect_trip);
        if let Some(t) = t {
            check_eq!(
                (t.from, t.to, t.at),
                (State::Closed, State::Open, clock.now_ns())
            );
        }
    }
    check_eq!(
        b.acquire_with(&clock).err(),
        Some(Rejected::Open {
            retry_after: 5 * SECOND
        })
    );
    advance(Duration::from_secs(2));
    check_eq!(
        b.acquire_with(&clock).err(),
        Some(Rejected::Open {
            retry_after: 3 * SECOND
        })
    );
    advance(Duration::from_secs(3));
    let probe = b.acquire_with(&clock).unwrap();
    check_eq!(probe.kind(), PermitKind::Probe);
    check_eq!(
        probe.transition().map(|t| (t.from, t.to)),
        Some((State::Open, State::HalfOpen))
    );
    check_eq!(b.acquire_with(&clock).err(), Some(Rejected::HalfOpenFull));
    let t = b.record_with(&clock, probe, Outcome::Success);
    check_eq!(
        t.map(|t| (t.from, t.to)),
        Some((State::HalfOpen, State::Closed))
    );
    let m = b.metrics_with(&clock);
    check_eq!(
        (m.state, m.trips, m.failed, m.succeeded, m.rejected),
        (State::Closed, 1, 2, 1, 3)
    );
    Ok(())
}

pub fn bucket_refills_on_embassy_time() -> TestResult {
    let clock = EmbassyClock;
    // A bucket starts full at any time: the clock is already well past zero here.
    let bucket = TokenBucket::new(BucketConfig::per_second(10, 5)).unwrap();
    check_eq!(bucket.try_acquire_with(5, &clock), Ok(()));
    check_eq!(
        bucket.try_acquire_with(1, &clock),
        Err(BucketRejected::RateLimited {
            retry_after: 100 * MILLISECOND
        })
    );
    advance(Duration::from_millis(60));
    check_eq!(
        bucket.try_acquire_with(1, &clock),
        Err(BucketRejected::RateLimited {
            retry_after: 40 * MILLISECOND
        })
    );
    advance(Duration::from_millis(40));
    check_eq!(
        bucket.try_acquire_with(1, &clock),
        Ok(()),
        "one token back after 100 ms"
    );
    check!(bucket.try_acquire_with(1, &clock).is_err());
    advance(Duration::from_secs(10));
    check_eq!(
        bucket.available(clock.now_ns()),
        5,
        "refilled, never past the burst"
    );
    Ok(())
}

pub fn timer_waits_out_retry_after() -> TestResult {
    // How a task waits for an open breaker: sleep for `retry_after` with embassy-time.
    let b = Breaker::new(BreakerConfig {
        failure_threshold: Some(1),
        wait_duration_ns: 250 * MILLISECOND,
        ..BreakerConfig::new()
    })
    .unwrap();
    let p = b.acquire_with(&EmbassyClock).unwrap();
    b.record_with(&EmbassyClock, p, Outcome::Failure);
    let start = Instant::now();
    let probe = block_on(async {
        loop {
            match b.acquire_with(&EmbassyClock) {
                Ok(permit) => break permit,
                Err(rejected) => {
                    let wait = rejected.retry_after().unwrap();
                    Timer::after(Duration::from_nanos(wait)).await;
                }
            }
        }
    });
    check_eq!(probe.kind(), PermitKind::Probe);
    check_eq!(Instant::now() - start, Duration::from_millis(250));
    check_eq!(
        b.record_with(&EmbassyClock, probe, Outcome::Success)
            .map(|t| t.to),
        Some(State::Closed)
    );
    Ok(())
}

/// Polls `future` to completion. The test driver wakes at once and moves time to the alarm,
/// so a busy loop is enough.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}
