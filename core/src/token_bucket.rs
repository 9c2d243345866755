//! Token bucket as GCRA: one atomic word holding the theoretical arrival time.

use crate::clock::Clock;
use crate::error::ConfigError;
use crate::limits::{DEFAULT_PERIOD_NS, MAX_BURST};

/// Why a [`TokenBucket`] refused tokens. Rejection is data, not an error type to unwrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BucketRejected {
    /// Not enough tokens now: they are available again in `retry_after` nanoseconds.
    RateLimited {
        /// Nanoseconds until the request could succeed.
        retry_after: u64,
    },
    /// More tokens asked at once than the bucket can ever hold (its burst): no wait helps.
    /// Every binding reports this as its own error, never as a plain "no".
    ExceedsCapacity {
        /// Tokens asked for.
        requested: u64,
        /// The bucket's burst.
        capacity: u64,
    },
}

impl BucketRejected {
    /// The time until a retry could succeed, when a wait helps.
    pub const fn retry_after(&self) -> Option<u64> {
        match *self {
            BucketRejected::RateLimited { retry_after } => Some(retry_after),
            BucketRejected::ExceedsCapacity { .. } => None,
        }
    }
}

impl core::fmt::Display for BucketRejected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BucketRejected::RateLimited { retry_after } => {
                write!(f, "rate limited, retry after {retry_after} ns")
            }
            BucketRejected::ExceedsCapacity {
                requested,
                capacity,
            } => write!(
                f,
                "{requested} tokens requested, more than the bucket's capacity of {capacity}"
            ),
        }
    }
}
use crate::sync::{maybe_const_fn, AtomicU64, Ordering};

/// How a [`TokenBucket`] refills: `rate` tokens every `period_ns`, holding at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketConfig {
    /// Tokens added per period. At least 1, at most one per nanosecond of the period.
    pub rate: u64,
    /// The period in nanoseconds. At least 1. Default 1 s.
    pub period_ns: u64,
    /// Capacity: the most tokens that can be taken at once. 1..=2^32.
    pub burst: u64,
}

impl BucketConfig {
    /// `rate` tokens per second, holding at most `burst`.
    pub const fn per_second(rate: u64, burst: u64) -> Self {
        BucketConfig {
            rate,
            period_ns: DEFAULT_PERIOD_NS,
            burst,
        }
    }
}

/// What a caller needs to answer `X-RateLimit-*` and `Retry-After` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketState {
    /// The capacity (`X-RateLimit-Limit`).
    pub limit: u64,
    /// Tokens that can be taken now (`X-RateLimit-Remaining`).
    pub remaining: u64,
    /// Nanoseconds until the bucket is full again (`X-RateLimit-Reset`, relative).
    pub reset_after: u64,
    /// Nanoseconds until one token is available (0 if one is; `Retry-After`).
    pub retry_after: u64,
}

/// A lock-free token bucket implemented as GCRA (generic cell rate algorithm).
///
/// The whole state is one `u64`, the *theoretical arrival time* (TAT): the time at which the
/// bucket would be full again. Taking `n` tokens at `now` moves it to
/// `max(TAT, now) + n * T`, where `T = ceil(period / rate)` is the emission interval; it is
/// allowed when that is at most `now + burst * T`. Rounding `T` up means the bucket never
/// grants more than `burst + rate * t / period` tokens over any interval `t` (when `rate`
/// does not divide `period`, it grants up to one nanosecond per token less).
///
/// Budgets that do not fit in 2^62 ns (`burst * T`, e.g. 2^32 tokens of one a day) are
/// kept in units of 2^k ns, the smallest power of two that fits; only such buckets see their
/// time rounded to those units. Times passed in must stay below 2^63 ns (292 years of
/// monotonic time); within that, no arithmetic overflows.
///
/// The one ordering is `Relaxed`: the TAT is the entire state and every grant is a CAS on it.
///
/// ```
/// use fastbreaker::{BucketConfig, BucketRejected, TokenBucket, MILLISECOND};
/// let bucket = TokenBucket::new(BucketConfig::per_second(100, 10)).unwrap();
/// for _ in 0..10 {
///     bucket.try_acquire(1, 0).unwrap();          // the burst
/// }
/// assert_eq!(bucket.try_acquire(1, 0), Err(BucketRejected::RateLimited { retry_after: 10 * MILLISECOND }));
/// assert!(bucket.try_acquire(1, 10 * MILLISECOND).is_ok());
/// ```
#[derive(Debug)]
#[repr(C)]
pub struct TokenBucket {
    /// Theoretical arrival time, in units of 2^shift ns.
    tat: AtomicU64,
    /// Emission interval in units.
    interval: u64,
    /// `burst * interval` in units, at most 2^62.
    tolerance: u64,
    burst: u64,
    shift: u32,
}

impl TokenBucket {
    /// The largest supported burst.
    pub const MAX_BURST: u64 = MAX_BURST;
    /// The largest budget, in the bucket's units.
    const HORIZON: u64 = 1 << 62;

    maybe_const_fn! {
        /// A full bucket. Errors name the field: zero rate or period, a rate above one token
        /// per nanosecond, a burst outside 1..=2^32.
        pub fn new(config: BucketConfig) -> Result<Self, ConfigError> {
            if config.rate == 0 {
                return Err(ConfigError::new("rate", 0, "must be at least 1"));
            }
            if config.period_ns == 0 {
                return Err(ConfigError::new("period_ns", 0, "must be greater than 0"));
            }
            if config.rate > config.period_ns {
                return Err(ConfigError::new("rate", config.rate, "must be at most one token per nanosecond of the period"));
            }
            if config.burst == 0 || config.burst > Self::MAX_BURST {
                return Err(ConfigError::new("burst", config.burst, "must be in 1..=2^32"));
            }
            let ns_per_token = config.period_ns.div_ceil(config.rate);
            let mut shift = 0;
            loop {
                let interval = ns_per_token.div_ceil(1 << shift);
                match interval.checked_mul(config.burst) {
                    Some(tolerance) if tolerance <= Self::HORIZON => {
                        return Ok(TokenBucket { tat: AtomicU64::new(0), interval, tolerance, burst: config.burst, shift });
                    }
                    _ => shift += 1,
                }
            }
        }
    }

    /// The capacity.
    pub const fn burst(&self) -> u64 {
        self.burst
    }

    /// Nanoseconds per token (rounded up).
    pub const fn interval_ns(&self) -> u64 {
        if self.shift >= 64 || self.interval > u64::MAX >> self.shift {
            u64::MAX // saturate: one token per 2^64 - 1 ns is "never", not 0
        } else {
            self.interval << self.shift
        }
    }

    #[inline]
    fn cost(&self, n: u64) -> Result<u64, BucketRejected> {
        if n > self.burst {
            Err(BucketRejected::ExceedsCapacity {
                requested: n,
                capacity: self.burst,
            })
        } else {
            Ok(self.interval * n)
        }
    }

    /// `now` in units.
    #[inline]
    fn units(&self, now: u64) -> u64 {
        now >> self.shift
    }

    /// Nanoseconds from `now` until the unit clock reads `units_now + wait` (saturating).
    #[inline]
    fn wait_ns(&self, now: u64, wait: u64) -> u64 {
        if wait == 0 {
            return 0;
        }
        let end = self.units(now).saturating_add(wait);
        let end_ns = if end > u64::MAX >> self.shift {
            u64::MAX
        } else {
            end << self.shift
        };
        end_ns.saturating_sub(now)
    }

    /// Takes `n` tokens at `now` if they are all there; otherwise takes nothing and says how
    /// long until they would be. `n` above the burst can never succeed:
    /// [`BucketRejected::ExceedsCapacity`]. `n = 0` always succeeds and takes nothing (as do
    /// `reserve(0)` and `retry_after(0)`, which answer 0).
    #[inline]
    pub fn try_acquire(&self, n: u64, now: u64) -> Result<(), BucketRejected> {
        let cost = self.cost(n)?;
        if n == 0 {
            return Ok(());
        }
        let t = self.units(now);
        let limit = t + self.tolerance;
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            // Saturating: queued reservations may have pushed the TAT to the end of time.
            let next = tat.max(t).saturating_add(cost);
            if next > limit {
                return Err(BucketRejected::RateLimited {
                    retry_after: self.wait_ns(now, next - limit),
                });
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => tat = actual,
            }
        }
    }

    /// [`try_acquire`](Self::try_acquire) at the clock's time.
    #[inline]
    pub fn try_acquire_with<C: Clock + ?Sized>(
        &self,
        n: u64,
        clock: &C,
    ) -> Result<(), BucketRejected> {
        self.try_acquire(n, clock.now_ns())
    }

    /// Takes `n` tokens now, in the queue's order, and returns how long the caller must wait
    /// before using them (0: use them now). This is what fair blocking and async waiters are
    /// built on: each waiter sleeps for its own reservation.
    pub fn reserve(&self, n: u64, now: u64) -> Result<u64, BucketRejected> {
        self.reserve_within(n, now, u64::MAX)
    }

    /// [`reserve`](Self::reserve), but only if the wait would be at most `max_wait_ns`;
    /// otherwise takes nothing and returns [`BucketRejected::RateLimited`] with the wait.
    pub fn reserve_within(
        &self,
        n: u64,
        now: u64,
        max_wait_ns: u64,
    ) -> Result<u64, BucketRejected> {
        let cost = self.cost(n)?;
        if n == 0 {
            return Ok(0);
        }
        let t = self.units(now);
        let limit = t + self.tolerance;
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            // Queued reservations may push the TAT past the 2^62 budget: saturate there.
            let next = tat.max(t).saturating_add(cost);
            let wait = self.wait_ns(now, next.saturating_sub(limit));
            if wait > max_wait_ns {
                return Err(BucketRejected::RateLimited { retry_after: wait });
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(wait),
                Err(actual) => tat = actual,
            }
        }
    }

    /// Gives back `n` tokens of a reservation that will not be used (a waiter that gave up).
    /// Never makes the bucket fuller than full at `now`.
    pub fn refund(&self, n: u64, now: u64) {
        let cost = self.interval.saturating_mul(n);
        let t = self.units(now);
        let mut tat = self.tat.load(Ordering::Relaxed);
        while tat > t {
            let next = tat.saturating_sub(cost).max(t);
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => tat = actual,
            }
        }
    }

    /// Tokens that could be taken at `now`.
    #[inline]
    pub fn available(&self, now: u64) -> u64 {
        let t = self.units(now);
        let tat = self.tat.load(Ordering::Relaxed).max(t);
        ((t + self.tolerance).saturating_sub(tat) / self.interval).min(self.burst)
    }

    /// Nanoseconds until `n` tokens could be taken (0 if now).
    pub fn retry_after(&self, n: u64, now: u64) -> Result<u64, BucketRejected> {
        let cost = self.cost(n)?;
        if n == 0 {
            return Ok(0);
        }
        let t = self.units(now);
        let tat = self.tat.load(Ordering::Relaxed).max(t);
        let wait = tat.saturating_add(cost).saturating_sub(t + self.tolerance);
        Ok(self.wait_ns(now, wait))
    }

    /// Limit, remaining, reset and retry-after at `now`, from one read of the state.
    pub fn state(&self, now: u64) -> BucketState {
        let t = self.units(now);
        let tat = self.tat.load(Ordering::Relaxed).max(t);
        let limit = t + self.tolerance;
        BucketState {
            limit: self.burst,
            remaining: (limit.saturating_sub(tat) / self.interval).min(self.burst),
            reset_after: self.wait_ns(now, tat - t),
            retry_after: self.wait_ns(now, tat.saturating_add(self.interval).saturating_sub(limit)),
        }
    }

    /// Refills the bucket completely.
    pub fn reset(&self) {
        self.tat.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
impl TokenBucket {
    /// Stores arbitrary bits in every atomic word (tests of corrupt shared state).
    pub(crate) fn scramble(&self, next: &mut dyn FnMut() -> u64) {
        self.tat.store(next(), Ordering::Relaxed);
    }
}

#[cfg(all(feature = "shm", unix))]
impl crate::window::SameSettings for TokenBucket {
    fn same_settings(&self, other: &Self) -> bool {
        self.interval == other.interval
            && self.tolerance == other.tolerance
            && self.burst == other.burst
            && self.shift == other.shift
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const S: u64 = 1_000_000_000;

    #[test]
    fn burst_then_rate() {
        let b = TokenBucket::new(BucketConfig::per_second(10, 5)).unwrap();
        assert_eq!(b.available(0), 5);
        assert!(b.try_acquire(5, 0).is_ok());
        assert_eq!(
            b.try_acquire(1, 0),
            Err(BucketRejected::RateLimited {
                retry_after: S / 10
            })
        );
        assert_eq!(b.available(S / 10), 1);
        assert_eq!(
            b.try_acquire(2, S / 10),
            Err(BucketRejected::RateLimited {
                retry_after: S / 10
            })
        );
        assert!(b.try_acquire(1, S / 10).is_ok());
        assert_eq!(b.available(10 * S), 5, "never more than the burst");
        assert_eq!(
            b.try_acquire(6, 10 * S),
            Err(BucketRejected::ExceedsCapacity {
                requested: 6,
                capacity: 5
            })
        );
    }

    #[test]
    fn reserve_queues_fairly_and_within_takes_nothing_on_refusal() {
        let b = TokenBucket::new(BucketConfig::per_second(1, 1)).unwrap();
        assert_eq!(b.reserve(1, 0), Ok(0));
        assert_eq!(b.reserve(1, 0), Ok(S));
        assert_eq!(b.reserve(1, 0), Ok(2 * S));
        assert_eq!(
            b.reserve_within(1, 0, 2 * S),
            Err(BucketRejected::RateLimited { retry_after: 3 * S })
        );
        assert_eq!(
            b.retry_after(1, 0),
            Ok(3 * S),
            "the refused reservation took nothing"
        );
        b.refund(1, 0);
        assert_eq!(b.retry_after(1, 0), Ok(2 * S));
        b.refund(1, 0);
        b.refund(1, 0);
        assert_eq!(b.available(0), 1);
        b.refund(100, 0);
        assert_eq!(b.available(0), 1, "a refund never overfills");
        assert_eq!(b.reserve(1, 0), Ok(0));
    }

    #[test]
    fn headers() {
        let b = TokenBucket::new(BucketConfig::per_second(2, 4)).unwrap();
        b.try_acquire(3, 0).unwrap();
        assert_eq!(
            b.state(0),
            BucketState {
                limit: 4,
                remaining: 1,
                reset_after: 3 * S / 2,
                retry_after: 0
            }
        );
        b.try_acquire(1, 0).unwrap();
        assert_eq!(b.state(0).retry_after, S / 2);
        b.reset();
        assert_eq!(b.available(0), 4);
    }

    #[test]
    fn extreme_configurations() {
        let day = 86_400 * S;
        let slow = TokenBucket::new(BucketConfig {
            rate: 1,
            period_ns: day,
            burst: 1,
        })
        .unwrap();
        assert!(slow.try_acquire(1, 0).is_ok());
        assert_eq!(
            slow.try_acquire(1, 1),
            Err(BucketRejected::RateLimited {
                retry_after: day - 1
            })
        );
        let huge = TokenBucket::new(BucketConfig {
            rate: 1,
            period_ns: day,
            burst: 1 << 32,
        })
        .unwrap();
        assert_eq!(huge.available(0), 1 << 32);
        let late = (1u64 << 63) - 1;
        assert!(huge.try_acquire(1 << 32, late).is_ok());
        // 2^32 days do not fit in 2^62 ns: this bucket counts in units of 2^17 ns.
        let wait = huge
            .try_acquire(1, late)
            .unwrap_err()
            .retry_after()
            .unwrap();
        assert!(wait.abs_diff(day) < 1 << 18, "{wait}");
        assert!(huge.try_acquire(1, late + wait - 1).is_err());
        assert!(huge.try_acquire(1, late + wait).is_ok());
        let fast = TokenBucket::new(BucketConfig::per_second(1_000_000_000, 1 << 32)).unwrap();
        assert_eq!(fast.interval_ns(), 1);
        assert!(fast.try_acquire(1 << 32, late).is_ok());
        assert_eq!(fast.available(late), 0);
        assert_eq!(
            fast.try_acquire(1, late),
            Err(BucketRejected::RateLimited { retry_after: 1 })
        );
        assert_eq!(fast.available(late + 1000), 1000);
    }

    /// The TAT, the one atomic word (shared with other processes in a region), may hold any
    /// bits: no panic, no hang, and never more than the burst available.
    #[test]
    fn any_bit_pattern_in_the_tat_is_survivable() {
        let mut next = crate::breaker::tests::arbitrary_words(0x9E37_79B9_7F4A_7C15);
        let configs = [
            BucketConfig::per_second(10, 5),
            BucketConfig::per_second(1_000_000_000, 1 << 32),
            BucketConfig {
                rate: 1,
                period_ns: 86_400 * S,
                burst: 1 << 32,
            },
        ];
        for config in configs {
            let b = TokenBucket::new(config).unwrap();
            for i in 0..5_000u64 {
                b.scramble(&mut next);
                let now = (next() >> 1) >> (i % 64);
                let n = next() % (config.burst + 2);
                let _ = b.try_acquire(n, now);
                let _ = b.reserve_within(n, now, next());
                let _ = b.retry_after(n, now);
                let state = b.state(now);
                assert!(state.remaining <= config.burst && b.available(now) <= config.burst);
                b.refund(next(), now);
            }
        }
    }

    #[test]
    fn errors_name_the_field() {
        let err = |c| TokenBucket::new(c).unwrap_err();
        assert_eq!(err(BucketConfig::per_second(0, 1)).field, "rate");
        assert_eq!(
            err(BucketConfig {
                rate: 1,
                period_ns: 0,
                burst: 1
            })
            .field,
            "period_ns"
        );
        assert_eq!(
            err(BucketConfig::per_second(2_000_000_000, 1)).value,
            2_000_000_000
        );
        assert_eq!(err(BucketConfig::per_second(1, 0)).field, "burst");
        assert_eq!(
            err(BucketConfig::per_second(1, (1 << 32) + 1)).value,
            (1 << 32) + 1
        );
    }
}
