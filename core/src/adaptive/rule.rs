//! The update rules of an [`AdaptiveLimiter`](super::AdaptiveLimiter): pure functions from
//! the limiter's state and one outcome to the next limit.

/// Whether the limiter admits by calls in flight or by calls per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AdaptiveMode {
    /// Admits while fewer than `floor(limit)` calls are in flight.
    Concurrency = 0,
    /// Admits `limit` calls per second, paced by a GCRA (burst of one call).
    Rate = 1,
}

/// What a recorded outcome tells the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The call succeeded, in `latency_ns`, at or below the latency target (if any).
    Success {
        /// The call's latency.
        latency_ns: u64,
    },
    /// The backend is overloaded: a 429/503, a timeout, or a latency above the target.
    Overload,
}

/// Everything a [`LimitRule`] may look at. Limits are in thousandths
/// ([`ADAPTIVE_LIMIT_UNIT`](crate::limits::ADAPTIVE_LIMIT_UNIT)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleInput {
    /// The current limit, within the bounds.
    pub limit_milli: u64,
    /// The outcome.
    pub signal: Signal,
    /// The lowest latency seen by a success since the limiter was built (0: none yet).
    /// Learned from samples only downwards; see [`Gradient`].
    pub min_rtt_ns: u64,
    /// Additive increase per RTT window of successes.
    pub increase_milli: u64,
    /// Multiplicative decrease factor, in thousandths.
    pub decrease_permille: u32,
    /// The RTT window.
    pub rtt_ns: u64,
    /// The gradient rule's queue-size term.
    pub queue_milli: u64,
    /// The gradient rule's smoothing factor, in thousandths.
    pub smoothing_permille: u32,
    /// The limiter's mode.
    pub mode: AdaptiveMode,
}

/// An update rule: given the state and an outcome, the next limit (in thousandths).
///
/// The limiter, not the rule, enforces the invariants: the result is clamped into
/// `[min_limit, max_limit]`, an [`Signal::Overload`] never raises the limit whatever the rule
/// returns, and a result below the current limit is applied at most once per RTT window
/// (the others are dropped). A rule therefore only has to say where the limit should go.
pub trait LimitRule {
    /// The next limit.
    fn next_limit(&self, input: &RuleInput) -> u64;
}

/// `limit * permille / 1000`, rounded down.
#[inline]
fn scale(limit: u64, permille: u32) -> u64 {
    (limit as u128 * permille as u128 / 1000) as u64
}

/// Additive increase, multiplicative decrease.
///
/// A success adds `increase / limit`, so that `limit` successes add `increase` in all: in
/// concurrency mode that is one RTT of calls at the full limit, in rate mode one second of
/// calls at the full rate (the limit grows by `increase` calls per second, per second).
/// Each step is at least one thousandth. An overload multiplies the limit by `decrease`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Aimd;

impl LimitRule for Aimd {
    #[inline]
    fn next_limit(&self, input: &RuleInput) -> u64 {
        let l = input.limit_milli.max(1);
        match input.signal {
            Signal::Overload => scale(l, input.decrease_permille),
            Signal::Success { .. } => {
                let step = (input.increase_milli as u128 * 1000).div_ceil(l as u128);
                l.saturating_add(step.min(u64::MAX as u128) as u64)
            }
        }
    }
}

/// A gradient rule in the manner of Netflix's Gradient2, made safe against its two known
/// failures.
///
/// On a success of latency `rtt` (a success without one, latency 0, leaves the limit):
/// `gradient = clamp(min_rtt / rtt, 0.5, 1)`, `target =
/// limit * gradient + queue`, and the limit moves `smoothing` of the way to `target`. An
/// overload (429/503, timeout, latency above the target) multiplies it by `decrease`.
///
/// Differences from Gradient2, each closing a reported failure:
/// * The baseline is the **minimum** latency ever seen (it only moves down), not a
///   long-term average. Gradient2's average drifts up to the latency of a steady overload,
///   the gradient returns to 1 and the queue term grows the limit without bound
///   (concurrency-limits #134). Here a steady overload keeps `rtt` above `min_rtt`, the
///   gradient below 1, and the limit falls to `queue / (1 - gradient)`. The price: if the
///   backend becomes slower for good, the limit stays lower until the limiter is rebuilt.
/// * A timeout or any other overload is an [`Signal::Overload`], which never raises the
///   limit (the limiter enforces it too). Gradient2 fed timeouts in as samples whose
///   latency it ignored, and steady timeouts drove it to its maximum (#137).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gradient;

impl LimitRule for Gradient {
    #[inline]
    fn next_limit(&self, input: &RuleInput) -> u64 {
        let l = input.limit_milli;
        match input.signal {
            Signal::Overload => scale(l, input.decrease_permille),
            // A success without a latency (0) is no sample: the limit stays.
            Signal::Success { latency_ns: 0 } => l,
            Signal::Success { latency_ns } => {
                let gradient = if input.min_rtt_ns == 0 {
                    1000
                } else {
                    (input.min_rtt_ns as u128 * 1000 / latency_ns as u128).clamp(500, 1000) as u32
                };
                let target = scale(l, gradient).saturating_add(input.queue_milli);
                let s = input.smoothing_permille.min(1000) as u128;
                ((l as u128 * (1000 - s) + target as u128 * s) / 1000).min(u64::MAX as u128) as u64
            }
        }
    }
}

/// A rule chosen at run time (what the C and Python bindings use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyRule {
    /// [`Aimd`].
    Aimd,
    /// [`Gradient`].
    Gradient,
}

impl LimitRule for AnyRule {
    #[inline]
    fn next_limit(&self, input: &RuleInput) -> u64 {
        match self {
            AnyRule::Aimd => Aimd.next_limit(input),
            AnyRule::Gradient => Gradient.next_limit(input),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(limit: u64, signal: Signal, mode: AdaptiveMode) -> RuleInput {
        RuleInput {
            limit_milli: limit,
            signal,
            min_rtt_ns: 100,
            increase_milli: 1000,
            decrease_permille: 500,
            rtt_ns: crate::SECOND / 10,
            queue_milli: 4000,
            smoothing_permille: 200,
            mode,
        }
    }

    #[test]
    fn aimd_adds_increase_per_window_and_halves() {
        let ok = Signal::Success { latency_ns: 100 };
        // Concurrency, limit 10: 1/10 per success.
        assert_eq!(
            Aimd.next_limit(&input(10_000, ok, AdaptiveMode::Concurrency)),
            10_100
        );
        // Rate, limit 10/s: +1/10 per success, +1 per second at the full rate.
        assert_eq!(
            Aimd.next_limit(&input(10_000, ok, AdaptiveMode::Rate)),
            10_100
        );
        assert_eq!(
            Aimd.next_limit(&input(10_000, Signal::Overload, AdaptiveMode::Rate)),
            5_000
        );
        // The smallest step is one thousandth.
        assert_eq!(
            Aimd.next_limit(&input(u64::MAX / 2, ok, AdaptiveMode::Concurrency)),
            u64::MAX / 2 + 1
        );
    }

    #[test]
    fn gradient_grows_at_the_baseline_and_shrinks_above_it() {
        let at_base = input(
            10_000,
            Signal::Success { latency_ns: 100 },
            AdaptiveMode::Concurrency,
        );
        // target = 10 + 4 = 14; 0.8 * 10 + 0.2 * 14 = 10.8
        assert_eq!(Gradient.next_limit(&at_base), 10_800);
        let slow = input(
            10_000,
            Signal::Success { latency_ns: 400 },
            AdaptiveMode::Concurrency,
        );
        // gradient clamped to 0.5: target = 5 + 4 = 9; 8 + 1.8 = 9.8
        assert_eq!(Gradient.next_limit(&slow), 9_800);
        assert_eq!(
            Gradient.next_limit(&input(10_000, Signal::Overload, AdaptiveMode::Rate)),
            5_000
        );
    }
}
