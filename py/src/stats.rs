//! Scrape-time statistics the bindings keep beside the core: a fixed-bucket histogram and a
//! matrix of state transitions. Plain relaxed atomics, read by metrics exporters; nothing
//! here is on the path of a call that does not ask for it.

use std::sync::atomic::{AtomicU64, Ordering};

use fastbreaker::State;

/// Upper bounds of the histogram buckets, in nanoseconds (Prometheus' default buckets:
/// 5 ms .. 10 s); a last, implicit bucket holds everything above.
pub const BOUNDS_NS: [u64; 14] = [
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    75_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    750_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    7_500_000_000,
    10_000_000_000,
];

/// A histogram of durations over [`BOUNDS_NS`], with the sum of all observations.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

/// A consistent-enough copy of a [`Histogram`]: per-bucket (not cumulative) counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket; the last entry is above the largest bound.
    pub counts: [u64; BOUNDS_NS.len() + 1],
    /// Sum of the observations, in nanoseconds (saturating).
    pub sum_ns: u64,
}

impl HistogramSnapshot {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl Histogram {
    /// Counts one observation of `ns` nanoseconds (a value equal to a bound falls in it).
    #[inline]
    pub fn observe(&self, ns: u64) {
        let i = BOUNDS_NS.partition_point(|&b| b < ns);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        // Saturating add: a histogram of sums past 584 years stops growing instead of wrapping.
        let _ = self
            .sum_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some(s.saturating_add(ns))
            });
    }

    /// The counts and the sum now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// Number of breaker states.
const STATES: usize = State::ALL.len();

/// How many times the breaker went from each state to each other state.
#[derive(Debug)]
pub struct Transitions {
    counts: [AtomicU64; STATES * STATES],
}

impl Default for Transitions {
    fn default() -> Self {
        Transitions {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Transitions {
    /// Counts one change `from -> to`.
    pub fn count(&self, from: State, to: State) {
        self.counts[from as usize * STATES + to as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every pair with a non-zero count, in state order.
    pub fn nonzero(&self) -> Vec<(State, State, u64)> {
        let mut out = Vec::new();
        for from in State::ALL {
            for to in State::ALL {
                let n = self.counts[from as usize * STATES + to as usize].load(Ordering::Relaxed);
                if n > 0 {
                    out.push((from, to, n));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        let h = Histogram::default();
        for ns in [
            0,
            5_000_000,
            5_000_001,
            10_000_000_000,
            10_000_000_001,
            u64::MAX,
        ] {
            h.observe(ns);
        }
        let s = h.snapshot();
        assert_eq!(s.counts[0], 2, "0 and exactly 5 ms fall in le=0.005");
        assert_eq!(s.counts[1], 1);
        assert_eq!(
            s.counts[BOUNDS_NS.len() - 1],
            1,
            "exactly 10 s falls in le=10"
        );
        assert_eq!(s.counts[BOUNDS_NS.len()], 2, "above 10 s");
        assert_eq!(s.count(), 6);
        assert_eq!(s.sum_ns, u64::MAX, "the sum saturates");
    }

    #[test]
    fn state_indexes_match_all() {
        for (i, s) in State::ALL.into_iter().enumerate() {
            assert_eq!(s as usize, i);
        }
        let t = Transitions::default();
        t.count(State::Closed, State::Open);
        t.count(State::Closed, State::Open);
        t.count(State::HalfOpen, State::Closed);
        assert_eq!(
            t.nonzero(),
            vec![
                (State::Closed, State::Open, 2),
                (State::HalfOpen, State::Closed, 1)
            ]
        );
    }
}
