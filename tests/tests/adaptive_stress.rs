//! Stress: 4 threads share one adaptive limiter (concurrency mode, both rules) for many
//! random acquires and records (successes, overloads with and without Retry-After, ignores)
//! on a manual clock they all advance, with a reconfiguring thread changing the bounds.
//!
//! Checked, whatever the interleaving: the calls held at once (a harness-side count) never
//! exceed the ceiling in force; no call is admitted before a Retry-After the harness has
//! seen recorded has passed; every limit read is within the bounds of some configuration
//! the reconfiguring thread set; at the end nothing is in flight, no record was unmatched,
//! and `admitted + rejected` equals the acquires made.
//!
//! `cargo test -p fastbreaker-tests --test adaptive_stress` (`--release`: more operations).
#![cfg(not(loom))]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use fastbreaker::{
    AdaptiveConfig, AdaptiveLimiter, AdaptiveMode, AdaptiveOutcome, AnyRule, Clock, ManualClock,
    MICROSECOND,
};

const THREADS: usize = 4;
/// The widest ceiling any configuration has.
const MAX_CEILING: u64 = 8;

fn ops() -> u64 {
    if cfg!(debug_assertions) {
        40_000
    } else {
        400_000
    }
}

fn run(rule: AnyRule) {
    let config = AdaptiveConfig {
        min_limit_milli: 1_000,
        max_limit_milli: MAX_CEILING * 1000,
        rtt_ns: 50 * MICROSECOND,
        ..AdaptiveConfig::new(AdaptiveMode::Concurrency, 4_000)
    };
    let limiter = Arc::new(AdaptiveLimiter::with_rule(config, rule).unwrap());
    let clock = Arc::new(ManualClock::new(1));
    let holding = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    // The latest end of a Retry-After pause whose record has returned.
    let paused_until = Arc::new(AtomicU64::new(0));
    let acquires = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let (limiter, clock, holding, peak, paused_until, acquires, barrier) = (
            limiter.clone(),
            clock.clone(),
            holding.clone(),
            peak.clone(),
            paused_until.clone(),
            acquires.clone(),
            barrier.clone(),
        );
        handles.push(thread::spawn(move || {
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let mut held = Vec::new();
            barrier.wait();
            for _ in 0..ops() / THREADS as u64 {
                let r = next();
                let now = if r % 8 == 0 {
                    clock.advance(r % (20 * MICROSECOND))
                } else {
                    clock.now_ns()
                };
                if r % 3 != 0 || held.is_empty() {
                    // Read before the acquire: a pause seen here must hold at `now`.
                    let pause = paused_until.load(Ordering::SeqCst);
                    acquires.fetch_add(1, Ordering::Relaxed);
                    if let Ok(p) = limiter.try_acquire(now) {
                        assert!(
                            now >= pause,
                            "admitted at {now} during a pause until {pause}"
                        );
                        let h = holding.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(h as u64 <= MAX_CEILING, "{h} calls held at once");
                        peak.fetch_max(h, Ordering::Relaxed);
                        held.push(p);
                    }
                } else {
                    let p = held.swap_remove((r >> 8) as usize % held.len());
                    holding.fetch_sub(1, Ordering::SeqCst);
                    let outcome = match (r >> 16) % 10 {
                        0..=5 => AdaptiveOutcome::Success {
                            latency_ns: 1 + (r >> 20) % 100 * MICROSECOND,
                        },
                        6 | 7 => AdaptiveOutcome::Overload {
                            retry_after_ns: None,
                        },
                        8 => AdaptiveOutcome::Overload {
                            retry_after_ns: Some((r >> 24) % (10 * MICROSECOND)),
                        },
                        _ => AdaptiveOutcome::Ignore,
                    };
                    limiter.record(p, outcome, now);
                    if let AdaptiveOutcome::Overload {
                        retry_after_ns: Some(ra),
                    } = outcome
                    {
                        paused_until.fetch_max(now + ra, Ordering::SeqCst);
                    }
                }
                let limit = limiter.limit_milli();
                assert!(
                    (1_000..=MAX_CEILING * 1000).contains(&limit),
                    "limit {limit}"
                );
            }
            let now = clock.now_ns();
            for p in held {
                holding.fetch_sub(1, Ordering::SeqCst);
                limiter.record(p, AdaptiveOutcome::Ignore, now);
            }
        }));
    }
    // The reconfiguring thread: ceilings between 2 and 8 while the others run.
    let reconf = {
        let (limiter, barrier) = (limiter.clone(), barrier.clone());
        thread::spawn(move || {
            barrier.wait();
            for i in 0..200u64 {
                let c = AdaptiveConfig {
                    max_limit_milli: (2 + i % 7) * 1000,
                    ..config
                };
                limiter.reconfigure(c).unwrap();
                thread::yield_now();
            }
        })
    };
    for h in handles {
        h.join().unwrap();
    }
    reconf.join().unwrap();
    let m = limiter.metrics(clock.now_ns());
    assert_eq!(m.in_flight, 0);
    assert_eq!(m.unmatched_records, 0);
    assert_eq!(m.admitted + m.rejected, acquires.load(Ordering::Relaxed));
    assert!(m.decreases > 0 && m.admitted > 0 && m.rejected > 0, "{m:?}");
    assert!(peak.load(Ordering::Relaxed) >= 2, "the threads overlapped");
}

#[test]
fn aimd_under_four_threads() {
    run(AnyRule::Aimd);
}

#[test]
fn gradient_under_four_threads() {
    run(AnyRule::Gradient);
}
