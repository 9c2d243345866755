//! Regression tests of the breaker's rules that live in more than the transition function:
//! generations of the consecutive counter, probe timing, backoff saturation, the longest
//! wait, random jitter seeds and corrupt state words.

use super::*;
use crate::limits::MAX_WAIT_DURATION_NS;
use crate::{CountWindow64, SECOND};

type B = CircuitBreaker<CountWindow64>;

fn breaker(config: BreakerConfig) -> B {
    B::new(config).expect("valid config")
}

fn call(b: &B, outcome: Outcome, now: u64) -> Option<Transition> {
    let p = b.acquire(now).expect("permitted");
    b.record(p, outcome, now)
}

#[test]
fn no_failure_count_outlives_its_generation_across_256_resets() {
    let b = breaker(BreakerConfig {
        failure_threshold: Some(3),
        ..BreakerConfig::new()
    });
    call(&b, Outcome::Failure, 0);
    call(&b, Outcome::Failure, 0);
    assert_eq!(b.metrics(0).consecutive_failures, 2);
    for i in 0..256 {
        b.reset(i);
        assert_eq!(b.metrics(i).consecutive_failures, 0, "after reset {i}");
    }
    assert_eq!(
        call(&b, Outcome::Failure, 300),
        None,
        "one failure must not trip"
    );
    assert_eq!(b.metrics(300).consecutive_failures, 1);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn a_long_run_of_failed_probes_leaves_no_count_behind() {
    let wait = 100;
    let b = breaker(BreakerConfig {
        failure_threshold: Some(3),
        wait_duration_ns: wait,
        ..BreakerConfig::new()
    });
    let mut now = 0;
    call(&b, Outcome::Failure, now);
    call(&b, Outcome::Failure, now);
    assert!(call(&b, Outcome::Failure, now).is_some(), "trips");
    // One hung probe: dropped, never recorded.
    now += wait;
    drop(b.acquire(now).expect("first probe"));
    // 126 failed probes, each admitted once the previous wait is over.
    for _ in 0..126 {
        now += wait;
        let t = call(&b, Outcome::Failure, now).expect("the probe reopens");
        assert_eq!((t.from, t.to), (State::HalfOpen, State::Open));
    }
    now += wait;
    let t = call(&b, Outcome::Success, now).expect("recovers");
    assert_eq!(t.to, State::Closed);
    assert_eq!(b.metrics(now).consecutive_failures, 0);
    assert_eq!(
        call(&b, Outcome::Failure, now),
        None,
        "the first failure must not trip"
    );
}

#[test]
fn each_probe_is_timed_from_its_own_admission() {
    let b = breaker(BreakerConfig {
        failure_threshold: Some(1),
        wait_duration_ns: 100,
        success_threshold: 2,
        ..BreakerConfig::new()
    });
    call(&b, Outcome::Failure, 0);
    let a = b.acquire(100).expect("probe A");
    assert_eq!(b.record(a, Outcome::Success, 100), None);
    let probe_b = b.acquire(199).expect("probe B");
    assert_eq!(b.acquire(200).unwrap_err(), Rejected::HalfOpenFull);
    let t = b
        .record(probe_b, Outcome::Success, 250)
        .expect("B's success closes: A's success still counts");
    assert_eq!((t.from, t.to), (State::HalfOpen, State::Closed));
}

#[test]
fn a_dropped_probe_does_not_wedge_the_breaker_and_earlier_successes_count() {
    let b = breaker(BreakerConfig {
        failure_threshold: Some(1),
        wait_duration_ns: 100,
        success_threshold: 2,
        ..BreakerConfig::new()
    });
    call(&b, Outcome::Failure, 0);
    let a = b.acquire(100).expect("probe A");
    b.record(a, Outcome::Success, 110);
    drop(b.acquire(120).expect("probe B, then lost"));
    assert_eq!(b.acquire(219).unwrap_err(), Rejected::HalfOpenFull);
    let c = b.acquire(220).expect("B presumed hung after the wait");
    assert_eq!(c.kind(), PermitKind::Probe);
    let t = b.record(c, Outcome::Success, 230).expect("closes");
    assert_eq!(t.to, State::Closed);
}

#[test]
fn backoff_grows_to_its_cap_and_stays_there() {
    let s = SECOND;
    let b = breaker(BreakerConfig {
        failure_threshold: Some(1),
        wait_duration_ns: s,
        backoff_factor_milli: 1100,
        max_wait_duration_ns: Some(100 * s),
        ..BreakerConfig::new()
    });
    let mut now = 0;
    call(&b, Outcome::Failure, now);
    let mut waits = [0u64; 60];
    for w in waits.iter_mut() {
        *w = b.retry_after(now);
        now += *w;
        call(&b, Outcome::Failure, now);
    }
    assert_eq!(waits[0], s);
    assert!(waits[48] < 100 * s);
    assert_eq!(
        waits[49],
        100 * s,
        "reaches the cap (the old 5-bit step stopped at 19.2x)"
    );
    assert!(waits[49..].iter().all(|&w| w == 100 * s));
    assert!(waits.windows(2).all(|p| p[0] <= p[1]));
}

#[test]
fn a_factor_that_cannot_reach_its_cap_is_refused() {
    let e = B::new(BreakerConfig {
        wait_duration_ns: SECOND,
        backoff_factor_milli: 1001,
        max_wait_duration_ns: Some(1_000_000 * SECOND),
        ..BreakerConfig::new()
    })
    .unwrap_err();
    assert_eq!((e.field, e.value), ("backoff_factor_milli", 1001));
}

#[test]
fn every_wait_ends_even_doubling_without_a_cap() {
    let b = breaker(BreakerConfig {
        failure_threshold: Some(1),
        wait_duration_ns: 60 * SECOND,
        backoff_factor_milli: 2000,
        ..BreakerConfig::new()
    });
    let mut now = 1_000;
    call(&b, Outcome::Failure, now);
    for trip in 1..=30 {
        let wait = b.retry_after(now);
        assert!(wait <= MAX_WAIT_DURATION_NS, "trip {trip}: {wait}");
        assert!(b.acquire(now + wait - 1).is_err(), "trip {trip}: too early");
        assert_eq!(
            b.retry_after(now + wait - 1),
            1,
            "trip {trip}: 1 ns before the end"
        );
        now += wait;
        let t = call(&b, Outcome::Failure, now).expect("a probe is admitted and reopens");
        assert_eq!(t.to, State::Open);
    }
    assert_eq!(b.retry_after(now), MAX_WAIT_DURATION_NS);
}

#[test]
fn the_longest_wait_is_accepted_and_ends() {
    let b = breaker(BreakerConfig {
        failure_threshold: Some(1),
        wait_duration_ns: MAX_WAIT_DURATION_NS,
        ..BreakerConfig::new()
    });
    let start = 5 * SECOND;
    call(&b, Outcome::Failure, start);
    assert_eq!(
        b.acquire(start + MAX_WAIT_DURATION_NS - 1).unwrap_err(),
        Rejected::Open { retry_after: 1 }
    );
    assert!(b.acquire(start + MAX_WAIT_DURATION_NS).is_ok());
    for bad in [MAX_WAIT_DURATION_NS + 1, u64::MAX] {
        let e = B::new(BreakerConfig {
            wait_duration_ns: bad,
            ..BreakerConfig::new()
        })
        .unwrap_err();
        assert_eq!((e.field, e.value), ("wait_duration_ns", bad));
        let e = B::new(BreakerConfig {
            max_wait_duration_ns: Some(bad),
            ..BreakerConfig::new()
        })
        .unwrap_err();
        assert_eq!(e.field, "max_wait_duration_ns");
    }
}

#[test]
fn an_open_breaker_left_alone_for_a_year_admits_a_probe() {
    let b = breaker(BreakerConfig {
        failure_threshold: Some(1),
        wait_duration_ns: 60 * SECOND,
        ..BreakerConfig::new()
    });
    call(&b, Outcome::Failure, 0);
    let year = 365 * 24 * 3600 * SECOND;
    for t in [year, 2 * year] {
        let b2 = breaker(b.config());
        call(&b2, Outcome::Failure, 0);
        assert!(b2.acquire(t).is_ok(), "after {t} ns");
    }
    // Past 2^56 ns the age wraps: at worst one more wait.
    for t in [(1 << 56) + 5, 3 * year, 10 * year] {
        let b2 = breaker(b.config());
        call(&b2, Outcome::Failure, 0);
        assert!(
            b2.acquire(t).is_ok() || b2.acquire(t + 60 * SECOND).is_ok(),
            "after {t} ns"
        );
    }
}

#[test]
fn jitter_seeds_are_random_per_instance_unless_given() {
    let config = BreakerConfig {
        failure_threshold: Some(1),
        wait_duration_ns: 1 << 40,
        jitter_permille: 1000,
        ..BreakerConfig::new()
    };
    let waits: [u64; 4] = core::array::from_fn(|_| {
        let b = breaker(config);
        assert_eq!(
            b.config().jitter_seed,
            None,
            "not drawn before it is needed"
        );
        call(&b, Outcome::Failure, 0);
        let w = b.retry_after(0);
        assert!(b.config().jitter_seed.is_some(), "drawn when first used");
        w
    });
    assert!(
        waits.windows(2).any(|p| p[0] != p[1]),
        "unseeded instances jitter alike: {waits:?}"
    );
    let seeded = |seed| {
        let b = breaker(BreakerConfig {
            jitter_seed: Some(seed),
            ..config
        });
        call(&b, Outcome::Failure, 0);
        b.retry_after(0)
    };
    assert_eq!(seeded(7), seeded(7));
}

#[test]
fn config_reads_back_as_built() {
    let config = BreakerConfig {
        failure_threshold: None,
        failure_rate_threshold: Some(40),
        minimum_calls: 20,
        window_size: Some(50),
        wait_duration_ns: 3 * SECOND,
        backoff_factor_milli: 1500,
        max_wait_duration_ns: Some(30 * SECOND),
        jitter_permille: 100,
        jitter_seed: Some(11),
        half_open_max_calls: 3,
        success_threshold: 2,
        ..BreakerConfig::new()
    };
    assert_eq!(breaker(config).config(), config);
    let defaults = breaker(BreakerConfig::new()).config();
    assert_eq!(defaults.window_size, Some(64), "CountWindow64's capacity");
    assert_eq!(
        CircuitBreaker::<crate::CountWindow1024>::new(BreakerConfig::new())
            .unwrap()
            .config()
            .window_size,
        Some(100)
    );
    let timed = CircuitBreaker::<crate::TimeWindow64>::new(BreakerConfig {
        window_buckets: Some(7),
        bucket_duration_ns: 2 * SECOND,
        ..BreakerConfig::new()
    })
    .unwrap()
    .config();
    assert_eq!(
        (timed.window_buckets, timed.bucket_duration_ns),
        (Some(7), 2 * SECOND)
    );
}

#[test]
fn any_bit_pattern_in_the_words_is_survivable() {
    let b = breaker(BreakerConfig {
        failure_threshold: Some(2),
        failure_rate_threshold: Some(50),
        slow_call_rate_threshold: Some(50),
        slow_call_duration_ns: 10,
        minimum_calls: 4,
        wait_duration_ns: 100,
        backoff_factor_milli: 2000,
        half_open_max_calls: 3,
        success_threshold: 2,
        ..BreakerConfig::new()
    });
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..20_000u64 {
        b.state.store(next(), Ordering::Relaxed);
        b.time.store(next(), Ordering::Relaxed);
        b.consecutive_failures.store(next(), Ordering::Relaxed);
        let now = next() >> (i % 64);
        let _ = b.metrics(now);
        let _ = b.retry_after(now);
        let _ = b.config();
        if let Ok(p) = b.acquire(now) {
            let outcome = [Outcome::Success, Outcome::Failure, Outcome::Ignored][(i % 3) as usize];
            let _ = b.record(p, outcome, now.saturating_add(i));
        }
        if i % 97 == 0 {
            b.reset(now);
            assert_eq!(b.state(), State::Closed);
        }
    }
}

/// A xorshift generator of arbitrary words.
pub(crate) fn arbitrary_words(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn exercise<W: Window>(b: &CircuitBreaker<W>, next: &mut dyn FnMut() -> u64, i: u64) {
    let now = (next() >> 1) >> (i % 64);
    let _ = b.metrics(now);
    let _ = b.retry_after(now);
    let _ = b.config();
    if let Ok(p) = b.acquire(now) {
        let outcome = [Outcome::Success, Outcome::Failure, Outcome::Ignored][(i % 3) as usize];
        let _ = b.record(p, outcome, now.saturating_add(next() % 100));
    }
    match i % 11 {
        0 => drop(b.trip(now)),
        1 => drop(b.half_open(now)),
        2 => drop(b.reset(now)),
        _ => {}
    }
}

/// Every atomic word of a breaker and of its window (state, time, counters, seed, bit
/// rings, counts, tagged buckets), which a shared-memory region exposes to other
/// processes, may hold any bits: no panic, no hang.
#[test]
fn any_bit_pattern_in_every_atomic_word_is_survivable() {
    let config = BreakerConfig {
        failure_threshold: Some(2),
        failure_rate_threshold: Some(50),
        slow_call_rate_threshold: Some(50),
        slow_call_duration_ns: 10,
        minimum_calls: 4,
        window_size: Some(100),
        window_buckets: Some(7),
        bucket_duration_ns: 1000,
        wait_duration_ns: 100,
        backoff_factor_milli: 2000,
        jitter_permille: 500,
        half_open_max_calls: 3,
        success_threshold: 2,
        ..BreakerConfig::new()
    };
    let count = CircuitBreaker::<crate::CountWindow1024>::new(config).unwrap();
    let time = CircuitBreaker::<crate::TimeWindow64>::new(config).unwrap();
    let mut next = arbitrary_words(0x2545_F491_4F6C_DD1D);
    for i in 0..5_000u64 {
        count.scramble(&mut next);
        count.window.scramble(&mut next);
        exercise(&count, &mut next, i);
        time.scramble(&mut next);
        time.window.scramble(&mut next);
        exercise(&time, &mut next, i);
    }
    count.reset(0);
    assert_eq!(count.state(), State::Closed);
}
