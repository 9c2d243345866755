//! Deterministic simulation of an [`AdaptiveLimiter`] (rate mode) in front of a server whose
//! capacity drops from 100/s to 20/s and back, on simulated time (no clock is read).
//!
//! The server is a FIFO queue served at `capacity` calls per second, holding at most
//! 200 ms of work; a call that finds it full is answered 429 at once (after the network
//! time), others after the network time plus their wait in the queue. The client calls as
//! fast as its limiter admits. Every test states what it asserts; run with `--nocapture`
//! to see the figures (the report quotes them).

use fastbreaker::{
    AdaptiveConfig, AdaptiveLimiter, AdaptiveMode, AdaptiveOutcome, AnyRule, Gradient, LimitRule,
    MILLISECOND, SECOND,
};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Network round trip of every call.
const BASE_NS: u64 = 20 * MILLISECOND;
/// The server's queue holds at most this much work.
const QUEUE_NS: u64 = 200 * MILLISECOND;
/// The limiter's RTT window.
const RTT_NS: u64 = 100 * MILLISECOND;
/// Simulation step.
const TICK_NS: u64 = MILLISECOND;

/// Each worker serves one call at a time, in this long.
const SERVICE_NS: u64 = 100 * MILLISECOND;

/// `workers` workers of [`SERVICE_NS`] each: a capacity of `10 * workers` calls per second.
/// A drop in capacity is a loss of workers: the latency of an idle server does not change.
struct Server {
    free_at: Vec<u64>,
}

impl Server {
    /// The answer to a call arriving at `t` with `capacity / 10` workers up:
    /// (latency, overloaded).
    fn call(&mut self, t: u64, capacity: u64) -> (u64, bool) {
        let workers = (capacity * SERVICE_NS / SECOND) as usize;
        self.free_at.resize(workers, t);
        let (i, &free) = self
            .free_at
            .iter()
            .enumerate()
            .min_by_key(|&(_, f)| *f)
            .unwrap();
        let wait = free.saturating_sub(t);
        if wait > QUEUE_NS {
            return (BASE_NS, true);
        }
        self.free_at[i] = free.max(t) + SERVICE_NS;
        (BASE_NS + wait + SERVICE_NS, false)
    }
}

/// Figures of one phase, over its last `tail_ns`.
#[derive(Debug, Clone, Copy)]
struct Phase {
    capacity: u64,
    /// Time from the phase's start until the limit first came within 20 % of capacity and
    /// stayed there to the end of the phase (None: never settled).
    settled_after_ns: Option<u64>,
    /// The limit's lowest and highest value over the tail, per second.
    tail_min: f64,
    tail_max: f64,
    /// Successes per second over the tail.
    goodput: f64,
    /// Share of the calls sent over the tail that were answered 429.
    overload_rate: f64,
}

struct Outcome {
    t: u64,
    latency: u64,
    overloaded: bool,
}

impl PartialEq for Outcome {
    fn eq(&self, o: &Self) -> bool {
        self.t == o.t
    }
}
impl Eq for Outcome {}
impl PartialOrd for Outcome {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Outcome {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.t.cmp(&o.t)
    }
}

/// Runs the phases (capacity, duration) through a limiter and returns each phase's figures.
fn simulate<R: LimitRule + Copy>(
    rule: R,
    config: AdaptiveConfig,
    phases: &[(u64, u64)],
    tail_ns: u64,
) -> Vec<Phase> {
    let limiter = AdaptiveLimiter::with_rule(config, rule).unwrap();
    let mut server = Server {
        free_at: Vec::new(),
    };
    let mut pending: BinaryHeap<Reverse<Outcome>> = BinaryHeap::new();
    let mut out = Vec::new();
    let mut t = 0;
    for &(capacity, duration) in phases {
        let start = t;
        let end = start + duration;
        let tail_start = end - tail_ns;
        let within = |limit: f64| (limit - capacity as f64).abs() <= 0.2 * capacity as f64;
        let mut settled_at: Option<u64> = None;
        let (mut tail_min, mut tail_max) = (f64::MAX, 0f64);
        let (mut ok, mut sent, mut overloads) = (0u64, 0u64, 0u64);
        while t < end {
            while pending.peek().is_some_and(|Reverse(o)| o.t <= t) {
                let Reverse(o) = pending.pop().unwrap();
                let outcome = if o.overloaded {
                    AdaptiveOutcome::Overload {
                        retry_after_ns: None,
                    }
                } else {
                    AdaptiveOutcome::Success {
                        latency_ns: o.latency,
                    }
                };
                if o.t >= tail_start {
                    if o.overloaded {
                        overloads += 1;
                    } else {
                        ok += 1;
                    }
                }
                limiter.record(
                    fastbreaker::binding::adaptive_permit(o.t - o.latency),
                    outcome,
                    o.t,
                );
            }
            while limiter.try_acquire(t).is_ok() {
                let (latency, overloaded) = server.call(t, capacity);
                if t >= tail_start {
                    sent += 1;
                }
                pending.push(Reverse(Outcome {
                    t: t + latency,
                    latency,
                    overloaded,
                }));
            }
            let limit = limiter.limit_milli() as f64 / 1000.0;
            if within(limit) {
                settled_at.get_or_insert(t);
            } else {
                settled_at = None;
            }
            if t >= tail_start {
                tail_min = tail_min.min(limit);
                tail_max = tail_max.max(limit);
            }
            t += TICK_NS;
        }
        let secs = tail_ns as f64 / SECOND as f64;
        out.push(Phase {
            capacity,
            settled_after_ns: settled_at.map(|s| s - start),
            tail_min,
            tail_max,
            goodput: ok as f64 / secs,
            overload_rate: overloads as f64 / sent.max(1) as f64,
        });
    }
    out
}

const PHASES: [(u64, u64); 3] = [(100, 60 * SECOND), (20, 60 * SECOND), (100, 60 * SECOND)];
const TAIL_NS: u64 = 20 * SECOND;

fn config(decrease_permille: u32, increase_milli: u64) -> AdaptiveConfig {
    AdaptiveConfig {
        min_limit_milli: 1_000,
        max_limit_milli: 1_000_000,
        rtt_ns: RTT_NS,
        decrease_permille,
        increase_milli,
        ..AdaptiveConfig::new(AdaptiveMode::Rate, 50_000)
    }
}

fn report(name: &str, phases: &[Phase]) {
    for p in phases {
        println!(
            "{name}: capacity {}/s: within 20% for good after {:?} RTTs; last {} s: limit {:.1}..{:.1}/s, goodput {:.1}/s, 429 rate {:.2}%",
            p.capacity,
            p.settled_after_ns.map(|n| n / RTT_NS),
            TAIL_NS / SECOND,
            p.tail_min,
            p.tail_max,
            p.goodput,
            p.overload_rate * 100.0
        );
    }
}

/// The checks both rules must pass: in every phase the limit comes within 20 % of the
/// capacity within `max_rtts` RTT windows of the change and stays there to the end of the
/// phase (so over the last 20 s it ranges within [0.8, 1.2] x capacity: the oscillation is
/// bounded), the goodput over those 20 s is at least `min_goodput` x capacity, and at most
/// `max_429` of the calls sent in them are answered 429.
fn check(name: &str, phases: &[Phase], max_rtts: u64, min_goodput: f64, max_429: f64) {
    report(name, phases);
    for p in phases {
        let c = p.capacity as f64;
        let settled = p.settled_after_ns.map(|n| n / RTT_NS);
        assert!(
            settled.is_some_and(|r| r <= max_rtts),
            "{name} at {c}/s: settled after {settled:?} RTTs, want <= {max_rtts}"
        );
        assert!(
            p.tail_min >= 0.8 * c && p.tail_max <= 1.2 * c,
            "{name} at {c}/s: limit {}..{}",
            p.tail_min,
            p.tail_max
        );
        assert!(
            p.goodput >= min_goodput * c,
            "{name} at {c}/s: goodput {}",
            p.goodput
        );
        assert!(
            p.overload_rate <= max_429,
            "{name} at {c}/s: 429 rate {}",
            p.overload_rate
        );
    }
}

/// AIMD with decrease 0.8 and increase 5 (calls per second, per second), RTT window 100 ms.
/// Measured: settles in 63, 10 and 116 RTTs; 429 rate 0.2 %, 4.8 %, 0.2 %.
#[test]
fn aimd_follows_a_capacity_drop_and_recovery() {
    let phases = simulate(AnyRule::Aimd, config(800, 5_000), &PHASES, TAIL_NS);
    check("aimd", &phases, 150, 0.9, 0.06);
}

/// The gradient rule with queue 2, smoothing 0.1, decrease 0.8, RTT window 100 ms.
/// Measured: settles in 25, 45 and 76 RTTs; no 429 at all (it backs off on the queueing
/// latency before the server's queue overflows).
#[test]
fn gradient_follows_a_capacity_drop_and_recovery() {
    let c = AdaptiveConfig {
        queue_milli: 2_000,
        smoothing_permille: 100,
        ..config(800, 1_000)
    };
    let phases = simulate(AnyRule::Gradient, c, &PHASES, TAIL_NS);
    check("gradient", &phases, 100, 0.85, 0.01);
}

fn gradient(initial_milli: u64) -> AdaptiveLimiter<Gradient> {
    let config = AdaptiveConfig {
        rtt_ns: RTT_NS,
        ..AdaptiveConfig::new(AdaptiveMode::Concurrency, initial_milli)
    };
    AdaptiveLimiter::with_rule(config, Gradient).unwrap()
}

/// Runs `calls` calls through `limiter`, keeping it full, each answered by `answer(i)`;
/// returns the limit after every record. Calls end 10 ms apart, from `start_ns`; the calls
/// still in flight at the end are recorded as ignored.
fn drive<R: LimitRule>(
    limiter: &AdaptiveLimiter<R>,
    start_ns: u64,
    calls: u64,
    answer: impl Fn(u64) -> AdaptiveOutcome,
) -> Vec<u64> {
    let mut limits = Vec::new();
    let mut held = std::collections::VecDeque::new();
    for i in 0..calls {
        let now = start_ns + i * 10 * MILLISECOND;
        while let Ok(p) = limiter.try_acquire(now) {
            held.push_back(p);
        }
        if let Some(p) = held.pop_front() {
            limiter.record(p, answer(i), now);
        }
        limits.push(limiter.limit_milli());
    }
    for p in held {
        limiter.record(
            p,
            AdaptiveOutcome::Ignore,
            start_ns + calls * 10 * MILLISECOND,
        );
    }
    limits
}

/// concurrency-limits #134: under a steady modest overload (every call 20 % slower than the
/// baseline, none failing) Gradient2's long-term average drifts up to the slow latency and
/// the limit grows to its maximum. Here the limit never rises above where it started and
/// settles at the fixed point of `limit = limit * gradient + queue`, i.e. `queue / (1 -
/// 1/1.2) = 24`.
#[test]
fn gradient_does_not_grow_under_steady_overload() {
    let limiter = gradient(100_000);
    let base = 50 * MILLISECOND;
    // The baseline, then 10,000 calls (1,000 RTT windows) at 1.2 x the baseline.
    drive(&limiter, 0, 1, |_| AdaptiveOutcome::Success {
        latency_ns: base,
    });
    let start = limiter.limit_milli();
    let limits = drive(&limiter, SECOND, 10_000, |_| AdaptiveOutcome::Success {
        latency_ns: base * 6 / 5,
    });
    let max = *limits.iter().max().unwrap();
    let last = *limits.last().unwrap();
    println!("steady overload: start {start}, max {max}, last {last} (thousandths)");
    assert!(max <= start, "grew from {start} to {max}");
    assert!(
        (22_000..=26_000).contains(&last),
        "settled at {last}, want about 24"
    );
    // From below the fixed point it rises to it, and no further.
    let low = gradient(5_000);
    drive(&low, 0, 1, |_| AdaptiveOutcome::Success {
        latency_ns: base,
    });
    let limits = drive(&low, SECOND, 10_000, |_| AdaptiveOutcome::Success {
        latency_ns: base * 6 / 5,
    });
    let max = *limits.iter().max().unwrap();
    assert!(max <= 26_000, "grew past the fixed point: {max}");
}

/// concurrency-limits #137: steady timeouts drove Gradient2 to its maximum. Here every
/// timeout is an overload: the limit never rises, falls by the decrease once per RTT
/// window, and ends at the floor.
#[test]
fn gradient_does_not_grow_under_steady_timeouts() {
    let limiter = gradient(500_000);
    let limits = drive(&limiter, 0, 2_000, |_| AdaptiveOutcome::Overload {
        retry_after_ns: None,
    });
    assert!(
        limits.windows(2).all(|w| w[1] <= w[0]),
        "a timeout raised the limit"
    );
    assert_eq!(*limits.last().unwrap(), 1_000, "ends at the floor");
    let m = limiter.metrics(0);
    // 2,000 calls 10 ms apart span 200 RTT windows of 100 ms: at most 200 decreases.
    assert!(
        m.decreases <= 200 && m.decreases >= 9,
        "decreases: {}",
        m.decreases
    );
    // Mixed with a few successes at the baseline (1 in 10), it still does not grow.
    let mixed = gradient(500_000);
    let limits = drive(&mixed, 0, 2_000, |i| {
        if i % 10 == 0 {
            AdaptiveOutcome::Success {
                latency_ns: 50 * MILLISECOND,
            }
        } else {
            AdaptiveOutcome::Overload {
                retry_after_ns: None,
            }
        }
    });
    // Sampled every 100 calls (10 RTT windows), the limit never rises.
    let sampled: Vec<u64> = limits.iter().step_by(100).copied().collect();
    assert!(
        sampled.windows(2).all(|w| w[1] <= w[0]),
        "grew: {sampled:?}"
    );
    assert!(
        *limits.last().unwrap() < 20_000,
        "ends near the floor: {}",
        limits.last().unwrap()
    );
}
