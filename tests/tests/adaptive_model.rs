//! Model-based property tests of the adaptive limiter and throttle.
//!
//! [`AdaptiveLimiter`] is driven single-threaded with explicit times by random sequences of
//! operations (acquire, record a held or a forged permit with any outcome, advance the
//! clock, reconfigure), in both modes and with both rules. Every operation is replayed on
//! [`Model`], a plain sequential reference written from the documented rules (it calls the
//! rule under test, [`LimitRule::next_limit`], which has its own unit tests), and after every
//! step the results, the limit, the calls in flight and the counters must agree. Beside
//! the exact comparison, the invariants are asserted on their own, from the observations
//! alone: the limit stays within the bounds in force; two decreases are at least one RTT
//! window apart; nothing is admitted before a `Retry-After` has passed; in concurrency mode
//! a call is admitted only with fewer than `floor(limit)` in flight; an overload never
//! raises the limit; the in-flight count never goes negative.
//!
//! The throttle's probability is checked exactly on random counts.
#![cfg(not(loom))]

use fastbreaker::{
    AdaptiveConfig, AdaptiveLimiter, AdaptiveMode, AdaptiveOutcome, AdaptivePermit,
    AdaptiveRejected, AdaptiveThrottle, AnyRule, LimitRule, RuleInput, Signal, ThrottleConfig,
    MILLISECOND, SECOND,
};
use proptest::prelude::*;

/// The sequential reference.
#[derive(Debug, Clone)]
struct Model {
    mode: AdaptiveMode,
    rule: AnyRule,
    config: AdaptiveConfig,
    limit: u64,
    in_flight: u32,
    tat: u64,
    paused_until: u64,
    next_decrease_at: u64,
    min_rtt: u64,
    unmatched: u64,
    decreases: u64,
    overloads: u64,
}

impl Model {
    fn new(config: AdaptiveConfig, rule: AnyRule) -> Self {
        Model {
            mode: config.mode,
            rule,
            config,
            limit: config.initial_limit_milli,
            in_flight: 0,
            tat: 0,
            paused_until: 0,
            next_decrease_at: 0,
            min_rtt: 0,
            unmatched: 0,
            decreases: 0,
            overloads: 0,
        }
    }

    fn clamp(&self, l: u64) -> u64 {
        l.clamp(self.config.min_limit_milli, self.config.max_limit_milli)
    }

    fn interval(&self) -> u64 {
        (SECOND as u128 * 1000).div_ceil(self.limit as u128) as u64
    }

    /// `Ok` or the rejection the limiter must return.
    fn acquire(&mut self, now: u64) -> Result<(), AdaptiveRejected> {
        if now < self.paused_until {
            return Err(AdaptiveRejected::Paused {
                retry_after_ns: self.paused_until - now,
            });
        }
        match self.mode {
            AdaptiveMode::Concurrency => {
                if self.in_flight as u64 >= self.limit / 1000 {
                    return Err(AdaptiveRejected::LimitReached {
                        limit_milli: self.limit,
                        in_flight: self.in_flight,
                    });
                }
            }
            AdaptiveMode::Rate => {
                // GCRA with a burst of one: admitted iff the TAT has passed.
                if self.tat > now {
                    return Err(AdaptiveRejected::RateLimited {
                        retry_after_ns: self.tat - now,
                    });
                }
                self.tat = now + self.interval();
            }
        }
        self.in_flight += 1;
        Ok(())
    }

    fn record(&mut self, outcome: AdaptiveOutcome, now: u64) {
        let before = self.in_flight;
        if self.in_flight == 0 {
            self.unmatched += 1;
        } else {
            self.in_flight -= 1;
        }
        let signal = match outcome {
            AdaptiveOutcome::Ignore => return,
            AdaptiveOutcome::Overload { retry_after_ns } => {
                if let Some(ra) = retry_after_ns {
                    let until = now + ra.min(86_400 * SECOND);
                    self.paused_until = self.paused_until.max(until);
                }
                Signal::Overload
            }
            AdaptiveOutcome::Success { latency_ns } => {
                let target = self.config.latency_target_ns;
                if target != 0 && latency_ns > target {
                    Signal::Overload
                } else {
                    if latency_ns != 0 && (self.min_rtt == 0 || latency_ns < self.min_rtt) {
                        self.min_rtt = latency_ns;
                    }
                    Signal::Success { latency_ns }
                }
            }
        };
        if signal == Signal::Overload {
            self.overloads += 1;
        }
        let c = &self.config;
        let input = RuleInput {
            limit_milli: self.limit,
            signal,
            min_rtt_ns: self.min_rtt,
            increase_milli: c.increase_milli,
            decrease_permille: c.decrease_permille,
            rtt_ns: c.rtt_ns,
            queue_milli: c.queue_milli,
            smoothing_permille: c.smoothing_permille,
            mode: self.mode,
        };
        let wanted = self.clamp(self.rule.next_limit(&input));
        if wanted > self.limit {
            let used = self.mode == AdaptiveMode::Rate || before as u64 * 2000 >= self.limit;
            // An overload never raises it; a success raises it only while it is used.
            if matches!(signal, Signal::Success { .. }) && used {
                self.limit = wanted;
            }
        } else if wanted < self.limit && now >= self.next_decrease_at {
            self.next_decrease_at = now + c.rtt_ns;
            self.decreases += 1;
            self.limit = wanted;
        }
    }

    fn reconfigure(&mut self, config: AdaptiveConfig) {
        self.config = config;
        self.limit = self.clamp(self.limit);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Acquire,
    /// Record the held permit at this index (modulo), or a forged one if none is held.
    Record(usize, AdaptiveOutcome),
    Reconfigure {
        min: u64,
        span: u64,
        decrease: u32,
        rtt: u64,
        target: u64,
    },
}

fn outcome() -> impl Strategy<Value = AdaptiveOutcome> {
    prop_oneof![
        4 => (0u64..300 * MILLISECOND).prop_map(|latency_ns| AdaptiveOutcome::Success { latency_ns }),
        2 => proptest::option::of(0u64..3 * SECOND)
            .prop_map(|retry_after_ns| AdaptiveOutcome::Overload { retry_after_ns }),
        1 => Just(AdaptiveOutcome::Ignore),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..400 * MILLISECOND).prop_map(Op::Advance),
        5 => Just(Op::Acquire),
        5 => (any::<usize>(), outcome()).prop_map(|(i, o)| Op::Record(i, o)),
        1 => (1u64..20, 0u64..50, 1u32..1000, 1u64..SECOND, prop_oneof![Just(0u64), 1u64..200 * MILLISECOND])
            .prop_map(|(min, span, decrease, rtt, target)| Op::Reconfigure {
                min: min * 1000,
                span: span * 1000,
                decrease,
                rtt,
                target,
            }),
    ]
}

fn config() -> impl Strategy<Value = (AdaptiveConfig, AnyRule)> {
    (
        prop_oneof![Just(AdaptiveMode::Concurrency), Just(AdaptiveMode::Rate)],
        prop_oneof![Just(AnyRule::Aimd), Just(AnyRule::Gradient)],
        1u64..10,
        0u64..40,
        0u64..40,
        1u32..1000,
        1u64..SECOND,
        0u64..20_000,
        prop_oneof![Just(0u64), 1u64..200 * MILLISECOND],
        0u64..8_000,
        1u32..=1000,
    )
        .prop_map(
            |(mode, rule, min, span, at, decrease, rtt, increase, target, queue, smoothing)| {
                let min = min * 1000;
                let max = min + span * 1000;
                let config = AdaptiveConfig {
                    mode,
                    initial_limit_milli: (min + at * 1000).min(max),
                    min_limit_milli: min,
                    max_limit_milli: max,
                    increase_milli: increase,
                    decrease_permille: decrease,
                    rtt_ns: rtt,
                    latency_target_ns: target,
                    queue_milli: queue,
                    smoothing_permille: smoothing,
                };
                (config, rule)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_500, ..ProptestConfig::default() })]

    /// The limiter equals the reference after every step, and the invariants hold.
    #[test]
    fn limiter_matches_reference_model(
        (config, rule) in config(),
        start in 0u64..(1 << 40),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let limiter = AdaptiveLimiter::with_rule(config, rule).unwrap();
        let mut model = Model::new(config, rule);
        let mut now = start;
        let mut held: Vec<AdaptivePermit> = Vec::new();
        let mut last_decrease: Option<(u64, u64)> = None; // (time, rtt then)
        for op in ops {
            let before = limiter.limit_milli();
            let mut was_overload = false;
            match op {
                Op::Advance(dt) => now += dt,
                Op::Acquire => {
                    let in_flight = limiter.in_flight();
                    let paused_for = limiter.metrics(now).paused_for_ns;
                    let got = limiter.try_acquire(now);
                    let want = model.acquire(now);
                    prop_assert_eq!(got.as_ref().err().copied(), want.err());
                    if let Ok(p) = got {
                        // Invariants, from observations alone.
                        prop_assert_eq!(paused_for, 0, "admitted during a Retry-After pause");
                        if config.mode == AdaptiveMode::Concurrency {
                            prop_assert!((in_flight as u64) < before / 1000,
                                "admitted with {} in flight at limit {}", in_flight, before);
                        }
                        held.push(p);
                    }
                }
                Op::Record(i, outcome) => {
                    let permit = if held.is_empty() {
                        fastbreaker::binding::adaptive_permit(now)
                    } else {
                        held.swap_remove(i % held.len())
                    };
                    was_overload = matches!(outcome, AdaptiveOutcome::Overload { .. });
                    limiter.record(permit, outcome, now);
                    model.record(outcome, now);
                    let after = limiter.limit_milli();
                    if after < before {
                        if let Some((t, rtt)) = last_decrease {
                            prop_assert!(now - t >= rtt, "two decreases {} ns apart, window {}", now - t, rtt);
                        }
                        last_decrease = Some((now, limiter.config().rtt_ns));
                    }
                }
                Op::Reconfigure { min, span, decrease, rtt, target } => {
                    let c = AdaptiveConfig {
                        min_limit_milli: min,
                        max_limit_milli: min + span,
                        decrease_permille: decrease,
                        rtt_ns: rtt,
                        latency_target_ns: target,
                        ..config
                    };
                    limiter.reconfigure(c).unwrap();
                    model.reconfigure(c);
                }
            }
            let after = limiter.limit_milli();
            let c = limiter.config();
            prop_assert!(c.min_limit_milli <= after && after <= c.max_limit_milli,
                "limit {} outside {}..={}", after, c.min_limit_milli, c.max_limit_milli);
            if was_overload {
                prop_assert!(after <= before, "an overload raised the limit {} -> {}", before, after);
            }
            prop_assert_eq!(after, model.limit);
            prop_assert_eq!(limiter.in_flight(), model.in_flight);
            let m = limiter.metrics(now);
            prop_assert_eq!(m.unmatched_records, model.unmatched);
            prop_assert_eq!(m.decreases, model.decreases);
            prop_assert_eq!(m.overloads, model.overloads);
            prop_assert_eq!(m.min_rtt_ns, model.min_rtt);
            prop_assert_eq!(m.paused_for_ns, model.paused_until.saturating_sub(now));
        }
    }

    /// The throttle's probability is `max(0, (requests - K * accepts) / (requests + 1))`
    /// exactly (in millionths, rounded down), on the counts it was fed: requests counted
    /// at `try_acquire` (admitted or not), accepts at `record(true)`.
    #[test]
    fn throttle_probability_is_exact(
        k in 1000u64..5000,
        requests in 0u64..2000,
        accept_share in 0u64..=100,
        seed in any::<u64>(),
    ) {
        let config = ThrottleConfig { k_milli: k, ..ThrottleConfig::new() };
        let throttle = AdaptiveThrottle::with_seed(config, seed).unwrap();
        let accepts = requests * accept_share / 100;
        let mut admitted = 0;
        for i in 0..requests {
            if throttle.try_acquire(0).is_ok() {
                admitted += 1;
            }
            if i < accepts {
                throttle.record(true, 0);
            }
        }
        let m = throttle.metrics(0);
        prop_assert_eq!((m.requests, m.accepts), (requests, accepts));
        prop_assert_eq!(m.admitted, admitted);
        prop_assert_eq!(m.throttled, requests - admitted);
        let num = (requests as u128 * 1000).saturating_sub(k as u128 * accepts as u128);
        let want = (num * 1_000_000 / ((requests as u128 + 1) * 1000)) as u32;
        prop_assert_eq!(m.reject_probability_ppm, want);
        prop_assert_eq!(throttle.reject_probability_ppm(0), want);
    }
}

/// Requests count before the call: calls that are all in flight at once (none recorded
/// yet) already raise the probability for the next one, and a rejected call counts too.
#[test]
fn throttle_counts_requests_before_the_call() {
    let throttle = AdaptiveThrottle::with_seed(ThrottleConfig::new(), 42).unwrap();
    // 100 accepted calls: probability 0.
    for _ in 0..100 {
        throttle.try_acquire(0).unwrap();
        throttle.record(true, 0);
    }
    assert_eq!(throttle.metrics(0).reject_probability_ppm, 0);
    // 300 calls start, none has finished: (400 - 200) / 401 before any outcome is known.
    let mut outcomes = (0, 0);
    for _ in 0..300 {
        match throttle.try_acquire(0) {
            Ok(()) => outcomes.0 += 1,
            Err(_) => outcomes.1 += 1,
        }
    }
    let m = throttle.metrics(0);
    assert_eq!(m.requests, 400, "every call counted, admitted or not");
    assert_eq!(m.reject_probability_ppm, (200u64 * 1_000_000 / 401) as u32);
    assert!(
        outcomes.1 > 0,
        "later calls of the burst are refused locally"
    );
    assert_eq!(m.throttled, outcomes.1);
    // Same seed, same calls: the same draws.
    let again = AdaptiveThrottle::with_seed(ThrottleConfig::new(), 42).unwrap();
    for _ in 0..100 {
        again.try_acquire(0).unwrap();
        again.record(true, 0);
    }
    let refused = (0..300).filter(|_| again.try_acquire(0).is_err()).count() as u64;
    assert_eq!(refused, outcomes.1);
}

/// A `Retry-After` pauses every acquire until it passes, to the nanosecond.
#[test]
fn retry_after_is_honoured() {
    for mode in [AdaptiveMode::Concurrency, AdaptiveMode::Rate] {
        let limiter = AdaptiveLimiter::new(AdaptiveConfig::new(mode, 10_000)).unwrap();
        let p = limiter.try_acquire(0).unwrap();
        limiter.record(
            p,
            AdaptiveOutcome::Overload {
                retry_after_ns: Some(3 * SECOND),
            },
            SECOND,
        );
        assert_eq!(limiter.retry_after(SECOND), 3 * SECOND);
        assert_eq!(
            limiter.try_acquire(4 * SECOND - 1),
            Err(AdaptiveRejected::Paused { retry_after_ns: 1 })
        );
        assert!(limiter.try_acquire(4 * SECOND).is_ok());
        // A shorter Retry-After does not cut a longer pause short.
        let p = limiter.try_acquire(10 * SECOND).ok();
        let q = limiter.try_acquire(10 * SECOND + SECOND).unwrap();
        limiter.record(
            q,
            AdaptiveOutcome::Overload {
                retry_after_ns: Some(5 * SECOND),
            },
            11 * SECOND,
        );
        if let Some(p) = p {
            limiter.record(
                p,
                AdaptiveOutcome::Overload {
                    retry_after_ns: Some(SECOND),
                },
                11 * SECOND,
            );
        }
        assert_eq!(limiter.retry_after(11 * SECOND), 5 * SECOND);
    }
}
