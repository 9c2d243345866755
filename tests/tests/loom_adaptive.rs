//! Loom models of the adaptive limiter and throttle: every interleaving (up to a preemption
//! bound) of two threads on one primitive, with loom's atomics swapped in by
//! `core/src/sync.rs`.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p fastbreaker-tests --test loom_adaptive --release
//! ```
//!
//! `LOOM_MAX_PREEMPTIONS` overrides the default bound of 2 (`make loom` sets 2).
//!
//! * Acquire/record: two threads each acquire and record an overload on a concurrency
//!   limiter of limit 2, at one `now`. Nothing is left in flight, both are admitted, and the
//!   two overloads, racing in one RTT window, make exactly one decrease.
//! * A success and an overload racing: the limit ends at one of the two sequential results
//!   (the success's CAS recomputes from the limit it finds), with exactly one decrease.
//! * Reconfigure racing a record: one thread lowers the ceiling while the other records an
//!   outcome that raises the limit. Whatever the interleaving, the limit read afterwards is
//!   within the new bounds, the permit is released (nothing in flight), and the
//!   configuration read back is the new one, whole.
//! * Throttle: two threads counting requests and accepts: none is lost.
#![cfg(loom)]

use fastbreaker::{
    AdaptiveConfig, AdaptiveLimiter, AdaptiveMode, AdaptiveOutcome, AdaptiveThrottle,
    ThrottleConfig,
};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

#[test]
fn two_threads_acquire_and_record() {
    model(|| {
        let config = AdaptiveConfig {
            min_limit_milli: 1_000,
            max_limit_milli: 4_000,
            ..AdaptiveConfig::new(AdaptiveMode::Concurrency, 2_000)
        };
        let limiter = Arc::new(AdaptiveLimiter::new(config).unwrap());
        let holding = Arc::new(AtomicUsize::new(0));
        let run = || {
            let (limiter, holding) = (limiter.clone(), holding.clone());
            thread::spawn(move || {
                if let Ok(p) = limiter.try_acquire(0) {
                    let before = holding.fetch_add(1, Ordering::SeqCst);
                    assert!(before < 2, "three permits out at limit 2");
                    holding.fetch_sub(1, Ordering::SeqCst);
                    limiter.record(
                        p,
                        AdaptiveOutcome::Overload {
                            retry_after_ns: None,
                        },
                        0,
                    );
                }
            })
        };
        let a = run();
        let b = run();
        a.join().unwrap();
        b.join().unwrap();
        let m = limiter.metrics(0);
        assert_eq!(m.in_flight, 0);
        // At limit 2 (or 1 after the first overload, with nothing in flight) both get in.
        assert_eq!((m.admitted, m.rejected), (2, 0));
        // Two overloads in one RTT window, racing: exactly one decrease.
        assert_eq!(m.decreases, 1);
        assert_eq!(m.overloads, 2);
        assert_eq!(m.limit_milli, 1_000);
    });
}

#[test]
fn success_and_overload_race() {
    model(|| {
        let config = AdaptiveConfig {
            min_limit_milli: 1_000,
            max_limit_milli: 4_000,
            ..AdaptiveConfig::new(AdaptiveMode::Concurrency, 2_000)
        };
        let limiter = Arc::new(AdaptiveLimiter::new(config).unwrap());
        let p1 = limiter.try_acquire(0).unwrap();
        let p2 = limiter.try_acquire(0).unwrap();
        let l1 = limiter.clone();
        let a = thread::spawn(move || l1.record(p1, AdaptiveOutcome::Success { latency_ns: 5 }, 0));
        limiter.record(
            p2,
            AdaptiveOutcome::Overload {
                retry_after_ns: None,
            },
            0,
        );
        a.join().unwrap();
        let limit = limiter.limit_milli();
        // The success first: 2 -> 2.5 (+1/2) -> 1.25 (halved). The overload first, or
        // between the success's read and its write (which then recomputes from the
        // current limit): 2 -> 1 -> 2 (+1/1). Nothing else.
        assert!(limit == 1_250 || limit == 2_000, "limit {limit}");
        assert_eq!(limiter.in_flight(), 0);
        assert_eq!(limiter.metrics(0).decreases, 1);
    });
}

#[test]
fn reconfigure_races_a_record() {
    model(|| {
        let config = AdaptiveConfig {
            min_limit_milli: 1_000,
            max_limit_milli: 10_000,
            increase_milli: 8_000,
            ..AdaptiveConfig::new(AdaptiveMode::Concurrency, 2_000)
        };
        let limiter = Arc::new(AdaptiveLimiter::new(config).unwrap());
        let p1 = limiter.try_acquire(0).unwrap();
        let _p2 = limiter.try_acquire(0).unwrap();
        let l1 = limiter.clone();
        let a = thread::spawn(move || l1.record(p1, AdaptiveOutcome::Success { latency_ns: 5 }, 0));
        let lowered = AdaptiveConfig {
            max_limit_milli: 3_000,
            rtt_ns: 7,
            ..config
        };
        limiter.reconfigure(lowered).unwrap();
        a.join().unwrap();
        let limit = limiter.limit_milli();
        assert!(
            (1_000..=3_000).contains(&limit),
            "limit {limit} outside the new bounds"
        );
        assert_eq!(limiter.in_flight(), 1, "the other permit is still out");
        let c = limiter.config();
        assert_eq!((c.max_limit_milli, c.rtt_ns), (3_000, 7));
    });
}

#[test]
fn throttle_loses_no_count() {
    model(|| {
        let config = ThrottleConfig {
            window_ns: 10,
            buckets: 2,
            ..ThrottleConfig::new()
        };
        let throttle = Arc::new(AdaptiveThrottle::with_seed(config, 1).unwrap());
        let t1 = throttle.clone();
        let a = thread::spawn(move || {
            let _ = t1.try_acquire(0);
            t1.record(true, 0);
        });
        let _ = throttle.try_acquire(0);
        a.join().unwrap();
        let m = throttle.metrics(0);
        assert_eq!(m.requests, 2);
        assert_eq!(m.accepts, 1);
        assert_eq!(m.admitted + m.throttled, 2);
    });
}
