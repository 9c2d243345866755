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
use crate::error::ReconfigureError;
use crate::sync::{maybe_const_fn, AtomicU64, Ordering};
use crate::versioned::Versioned;

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
/// time rounded to those units. Times passed in must stay below 2^62 ns (146 years of
/// monotonic time); within that, no arithmetic overflows. The TAT is kept in 63 bits (the
/// 64th tags it with its settings' version: see [`reconfigure`](Self::reconfigure)), so a
/// reservation queue saturates at 2^63 - 1 units, the end of time.
///
/// The TAT is the entire state and every grant is a CAS on it. The settings are read as one
/// version ([`reconfigure`](Self::reconfigure) changes them at run time); the TAT is loaded
/// with `Acquire` and stored with `Release` so that a caller never decides on settings older
/// than the TAT it read.
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
    /// Theoretical arrival time, in units of 2^shift ns (low 63 bits), tagged in bit 63
    /// with the parity of the settings' version it is counted in (see
    /// [`reconfigure`](Self::reconfigure)).
    tat: AtomicU64,
    /// Interval, tolerance, burst, the previous version's interval, and the configuration's
    /// rate and period (see [`Rates`]).
    settings: Versioned<6>,
    /// The time unit, 2^shift ns: fixed when the bucket is built.
    shift: u32,
}

/// The tag bit of the TAT word.
const TAG: u64 = 1 << 63;
/// The largest TAT: the end of time (queued reservations saturate there).
const TAT_MAX: u64 = TAG - 1;

/// One version of a bucket's settings, decoded so that any bits are safe to compute with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rates {
    /// Emission interval in units (at least 1).
    interval: u64,
    /// `burst * interval` in units, at most 2^62.
    tolerance: u64,
    /// The capacity, 1..=2^32.
    burst: u64,
    /// The previous version's interval: a TAT still counted in that version is converted
    /// by `interval / prev_interval`.
    prev_interval: u64,
    /// The configuration's rate and period, as given (for [`TokenBucket::config`]).
    rate: u64,
    period_ns: u64,
}

impl Rates {
    const fn words(&self) -> [u64; 6] {
        [
            self.interval,
            self.tolerance,
            self.burst,
            self.prev_interval,
            self.rate,
            self.period_ns,
        ]
    }

    /// From the words of a version; clamps what no validated configuration produces
    /// (corrupt shared memory) into range, so that no operation can panic or divide by 0.
    #[inline]
    fn decode(w: [u64; 6]) -> Rates {
        let clamp = |v: u64, lo: u64, hi: u64| v.clamp(lo, hi);
        Rates {
            interval: clamp(w[0], 1, TokenBucket::HORIZON),
            tolerance: clamp(w[1], 0, TokenBucket::HORIZON),
            burst: clamp(w[2], 1, MAX_BURST),
            prev_interval: clamp(w[3], 1, TokenBucket::HORIZON),
            rate: w[4],
            period_ns: w[5],
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
            Ok(self.interval.saturating_mul(n))
        }
    }
}

/// A TAT counted at the old interval, counted at the new one: the tokens it holds stay
/// held (rounded up). A TAT at or before `t` holds none and stays as it is.
#[inline]
fn convert(tat: u64, t: u64, from_interval: u64, to_interval: u64) -> u64 {
    if tat <= t || from_interval == to_interval {
        return tat;
    }
    let debt = (tat - t) as u128 * to_interval as u128;
    let scaled = debt.div_ceil(from_interval as u128);
    let room = (TAT_MAX - t) as u128;
    t + (if scaled > room { room } else { scaled }) as u64
}

/// One GCRA decision: taking `cost` units at unit time `t` from a bucket whose TAT is
/// `tat` and whose tolerance (burst times interval) is `tolerance`. `Ok(next TAT)` if it is
/// allowed, else `Err(units to wait)`. Shared by [`TokenBucket`] and the adaptive limiter's
/// rate mode, so that the two never disagree.
#[inline]
pub(crate) fn gcra_take(tat: u64, t: u64, cost: u64, tolerance: u64) -> Result<u64, u64> {
    let limit = t.saturating_add(tolerance);
    // Saturating: queued reservations may have pushed the TAT to the end of time.
    // Within the documented times (below 2^62 ns) the limit is below `TAT_MAX`, so
    // a granted TAT fits its 63 bits.
    let next = (tat & TAT_MAX).max(t).saturating_add(cost);
    if next > limit || next > TAT_MAX {
        Err(next - limit.min(TAT_MAX))
    } else {
        Ok(next)
    }
}

/// `now` in units of 2^`shift` ns.
#[inline]
pub(crate) fn units(now: u64, shift: u32) -> u64 {
    now.wrapping_shr(shift)
}

/// Nanoseconds from `now` until the unit clock (units of 2^`shift` ns) reads `units(now) +
/// wait` (saturating).
#[inline]
pub(crate) fn wait_ns(now: u64, wait: u64, shift: u32) -> u64 {
    if wait == 0 {
        return 0;
    }
    let shift = shift & 63;
    let end = units(now, shift).saturating_add(wait);
    let end_ns = if end > u64::MAX >> shift {
        u64::MAX
    } else {
        end << shift
    };
    end_ns.saturating_sub(now)
}

/// A GCRA bucket's [`BucketState`] at `now`, from its TAT and settings (in units of
/// 2^`shift` ns); shared by [`TokenBucket`] and the keyed table.
pub(crate) fn state_of(
    tat: u64,
    now: u64,
    shift: u32,
    interval: u64,
    tolerance: u64,
    burst: u64,
) -> BucketState {
    let t = units(now, shift);
    let tat = tat.max(t);
    let limit = t.saturating_add(tolerance);
    BucketState {
        limit: burst,
        remaining: (limit.saturating_sub(tat) / interval).min(burst),
        reset_after: wait_ns(now, tat - t, shift),
        retry_after: wait_ns(
            now,
            tat.saturating_add(interval).saturating_sub(limit),
            shift,
        ),
    }
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
            let ns_per_token = match Self::ns_per_token(&config) {
                Ok(v) => v,
                Err(e) => return Err(e),
            };
            let mut shift = 0;
            loop {
                let interval = ns_per_token.div_ceil(1 << shift);
                match interval.checked_mul(config.burst) {
                    Some(tolerance) if tolerance <= Self::HORIZON => {
                        let rates = Rates { interval, tolerance, burst: config.burst, prev_interval: interval, rate: config.rate, period_ns: config.period_ns };
                        return Ok(TokenBucket { tat: AtomicU64::new(0), settings: Versioned::new(rates.words()), shift });
                    }
                    _ => shift += 1,
                }
            }
        }
    }

    /// Validates `config`; its nanoseconds per token (rounded up).
    const fn ns_per_token(config: &BucketConfig) -> Result<u64, ConfigError> {
        if config.rate == 0 {
            return Err(ConfigError::new("rate", 0, "must be at least 1"));
        }
        if config.period_ns == 0 {
            return Err(ConfigError::new("period_ns", 0, "must be greater than 0"));
        }
        if config.rate > config.period_ns {
            return Err(ConfigError::new(
                "rate",
                config.rate,
                "must be at most one token per nanosecond of the period",
            ));
        }
        if config.burst == 0 || config.burst > Self::MAX_BURST {
            return Err(ConfigError::new(
                "burst",
                config.burst,
                "must be in 1..=2^32",
            ));
        }
        Ok(config.period_ns.div_ceil(config.rate))
    }

    /// The current settings and the TAT word, consistent with each other: a TAT still
    /// counted in the previous version is converted (and stored) first. Returns the
    /// settings, the tag of their version and the TAT word as stored.
    #[inline]
    fn load(&self, t: u64) -> (Rates, u64, u64) {
        loop {
            // Acquire: pairs with the Release CASes below and in `reconfigure` (see
            // `Versioned::read_with`): a TAT stored under a newer version than the one read
            // makes the read retry.
            let (version, words, word) =
                self.settings.read_with(|| self.tat.load(Ordering::Acquire));
            let rates = Rates::decode(words);
            let tag = (version & 1) << 63;
            if word & TAG == tag {
                return (rates, tag, word);
            }
            let converted = tag | convert(word & TAT_MAX, t, rates.prev_interval, rates.interval);
            if self
                .tat
                .compare_exchange(word, converted, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                return (rates, tag, converted);
            }
        }
    }

    /// Stores `next` (with `tag`) if the TAT word is still `word`.
    #[inline]
    fn commit(&self, word: u64, tag: u64, next: u64) -> bool {
        // Release: see `load`.
        self.tat
            .compare_exchange_weak(word, tag | next, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// The configuration in force, as given to [`new`](Self::new) or to the latest
    /// [`reconfigure`](Self::reconfigure).
    pub fn config(&self) -> BucketConfig {
        let rates = Rates::decode(self.settings.read().1);
        BucketConfig {
            rate: rates.rate,
            period_ns: rates.period_ns,
            burst: rates.burst,
        }
    }

    /// The GCRA parameters of the settings in force: interval and tolerance in units,
    /// burst, and the unit's shift (for the keyed table, which shares this validation).
    pub(crate) fn params(&self) -> (u64, u64, u64, u32) {
        let r = Rates::decode(self.settings.read().1);
        (r.interval, r.tolerance, r.burst, self.shift & 63)
    }

    /// The capacity.
    pub fn burst(&self) -> u64 {
        Rates::decode(self.settings.read().1).burst
    }

    /// Nanoseconds per token (rounded up).
    pub fn interval_ns(&self) -> u64 {
        let interval = Rates::decode(self.settings.read().1).interval;
        if self.shift >= 64 || interval > u64::MAX >> self.shift {
            u64::MAX // saturate: one token per 2^64 - 1 ns is "never", not 0
        } else {
            interval << self.shift
        }
    }

    /// `now` in units.
    #[inline]
    fn units(&self, now: u64) -> u64 {
        units(now, self.shift)
    }

    #[inline]
    fn wait_ns(&self, now: u64, wait: u64) -> u64 {
        wait_ns(now, wait, self.shift)
    }

    /// Takes `n` tokens at `now` if they are all there; otherwise takes nothing and says how
    /// long until they would be. `n` above the burst can never succeed:
    /// [`BucketRejected::ExceedsCapacity`]. `n = 0` always succeeds and takes nothing (as do
    /// `reserve(0)` and `retry_after(0)`, which answer 0).
    #[inline]
    pub fn try_acquire(&self, n: u64, now: u64) -> Result<(), BucketRejected> {
        let t = self.units(now);
        loop {
            let (rates, tag, word) = self.load(t);
            let cost = rates.cost(n)?;
            if n == 0 {
                return Ok(());
            }
            match gcra_take(word & TAT_MAX, t, cost, rates.tolerance) {
                Err(wait) => {
                    return Err(BucketRejected::RateLimited {
                        retry_after: self.wait_ns(now, wait),
                    })
                }
                Ok(next) => {
                    if self.commit(word, tag, next) {
                        return Ok(());
                    }
                }
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
        let t = self.units(now);
        loop {
            let (rates, tag, word) = self.load(t);
            let cost = rates.cost(n)?;
            if n == 0 {
                return Ok(0);
            }
            let limit = t.saturating_add(rates.tolerance);
            // The wait is that of the true end; queued reservations may push the stored
            // TAT to the end of time: saturate it there.
            let end = (word & TAT_MAX).max(t).saturating_add(cost);
            let wait = self.wait_ns(now, end.saturating_sub(limit));
            if wait > max_wait_ns {
                return Err(BucketRejected::RateLimited { retry_after: wait });
            }
            if self.commit(word, tag, end.min(TAT_MAX)) {
                return Ok(wait);
            }
        }
    }

    /// Gives back `n` tokens of a reservation that will not be used (a waiter that gave up).
    /// Never makes the bucket fuller than full at `now`.
    pub fn refund(&self, n: u64, now: u64) {
        let t = self.units(now);
        loop {
            let (rates, tag, word) = self.load(t);
            let tat = word & TAT_MAX;
            if tat <= t {
                return;
            }
            let next = tat.saturating_sub(rates.interval.saturating_mul(n)).max(t);
            if self.commit(word, tag, next) {
                return;
            }
        }
    }

    /// Tokens that could be taken at `now`.
    #[inline]
    pub fn available(&self, now: u64) -> u64 {
        let t = self.units(now);
        let (rates, _, word) = self.load(t);
        let tat = (word & TAT_MAX).max(t);
        (t.saturating_add(rates.tolerance).saturating_sub(tat) / rates.interval).min(rates.burst)
    }

    /// Nanoseconds until `n` tokens could be taken (0 if now).
    pub fn retry_after(&self, n: u64, now: u64) -> Result<u64, BucketRejected> {
        let t = self.units(now);
        let (rates, _, word) = self.load(t);
        let cost = rates.cost(n)?;
        if n == 0 {
            return Ok(0);
        }
        let tat = (word & TAT_MAX).max(t);
        let wait = tat
            .saturating_add(cost)
            .saturating_sub(t.saturating_add(rates.tolerance));
        Ok(self.wait_ns(now, wait))
    }

    /// Limit, remaining, reset and retry-after at `now`, from one read of the state.
    pub fn state(&self, now: u64) -> BucketState {
        let t = self.units(now);
        let (rates, _, word) = self.load(t);
        state_of(
            word & TAT_MAX,
            now,
            self.shift,
            rates.interval,
            rates.tolerance,
            rates.burst,
        )
    }

    /// Refills the bucket completely.
    pub fn reset(&self) {
        // Tagged with the current version. Should a reconfiguration publish the next one
        // meanwhile, a TAT of 0 converts to 0: it holds no tokens in any version.
        let tag = (self.settings.version() & 1) << 63;
        self.tat.store(tag, Ordering::Release);
    }

    /// Changes the rate and burst at run time, keeping the state: the tokens in use stay in
    /// use (counted at the new interval, rounded up), so lowering the rate never hands out a
    /// burst, and raising it frees nothing early. A burst lowered below the tokens in use
    /// leaves the bucket over its limit until they drain.
    ///
    /// Atomic: every grant is decided on one version of the settings and a state counted in
    /// that version (the state word carries the version's parity, and a caller that meets a
    /// state of the previous version converts it first). A grant decided before the change
    /// and committed after it is refused and decided again, except in one case: a caller
    /// that read the settings, then saw two reconfigurations complete while it computed,
    /// on a bucket that held no tokens throughout, may take its tokens at the older rate.
    ///
    /// The bucket's time unit is fixed when it is built (1 ns unless `burst * period /
    /// rate` exceeds 2^62 ns, about 146 years): a configuration that needs a coarser one is
    /// [`ReconfigureError::Invalid`], naming `burst`. Concurrent reconfigurations are
    /// serialised; one that waits on another for too long returns
    /// [`ReconfigureError::Busy`].
    ///
    /// ```
    /// use fastbreaker::{BucketConfig, TokenBucket, SECOND};
    /// let bucket = TokenBucket::new(BucketConfig::per_second(10, 10)).unwrap();
    /// for _ in 0..5 {
    ///     bucket.try_acquire(1, 0).unwrap();
    /// }
    /// bucket.reconfigure(BucketConfig::per_second(1, 10), 0).unwrap();
    /// assert_eq!(bucket.available(0), 5, "the 5 tokens in use stay in use");
    /// assert_eq!(bucket.available(SECOND), 6, "and drain at the new rate");
    /// ```
    pub fn reconfigure(&self, config: BucketConfig, now: u64) -> Result<(), ReconfigureError> {
        let next = self.rates_for(&config)?;
        self.settings
            .write(
                |v, cur| self.prepare(v, cur, next, now),
                |v| self.catch_up(v, now),
            )
            .map(drop)
            .map_err(|_| ReconfigureError::Busy)
    }

    /// [`reconfigure`](Self::reconfigure) for a caller that excludes other writers by its
    /// own means (a shared region, which also clears the lock of a writer that died).
    #[cfg(all(feature = "shm", unix))]
    pub(crate) fn reconfigure_exclusive(
        &self,
        config: BucketConfig,
        now: u64,
    ) -> Result<(), ConfigError> {
        let next = self.rates_for(&config)?;
        self.settings.write_exclusive(
            |v, cur| self.prepare(v, cur, next, now),
            |v| self.catch_up(v, now),
        );
        Ok(())
    }

    /// `config`'s settings in this bucket's time unit.
    fn rates_for(&self, config: &BucketConfig) -> Result<Rates, ConfigError> {
        let ns_per_token = Self::ns_per_token(config)?;
        let shift = self.shift & 63;
        let interval = ns_per_token.div_ceil(1 << shift);
        match interval.checked_mul(config.burst) {
            Some(tolerance) if tolerance <= Self::HORIZON => Ok(Rates {
                interval,
                tolerance,
                burst: config.burst,
                prev_interval: interval,
                rate: config.rate,
                period_ns: config.period_ns,
            }),
            _ => Err(ConfigError::new(
                "burst",
                config.burst,
                "times the period per token exceeds the time unit this bucket was built with \
                 (2^62 units): build a new bucket",
            )),
        }
    }

    /// Under the writers' lock, before version `version + 1` is published: brings the TAT
    /// to `version` (a writer that died may have left it in the one before), and returns
    /// the next version's words.
    fn prepare(&self, version: u64, current: [u64; 6], next: Rates, now: u64) -> [u64; 6] {
        let cur = Rates::decode(current);
        self.convert_to(version, cur.prev_interval, cur.interval, now);
        Rates {
            prev_interval: cur.interval,
            ..next
        }
        .words()
    }

    /// Once version `version` is published: converts the TAT to it (callers may have
    /// already).
    fn catch_up(&self, version: u64, now: u64) {
        let rates = Rates::decode(self.settings.read().1);
        self.convert_to(version, rates.prev_interval, rates.interval, now);
    }

    fn convert_to(&self, version: u64, from: u64, to: u64, now: u64) {
        let t = self.units(now);
        let tag = (version & 1) << 63;
        let mut word = self.tat.load(Ordering::Acquire);
        while word & TAG != tag {
            let converted = tag | convert(word & TAT_MAX, t, from, to);
            match self.tat.compare_exchange_weak(
                word,
                converted,
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => word = actual,
            }
        }
    }
}

#[cfg(test)]
impl TokenBucket {
    /// Stores arbitrary bits in every atomic word (tests of corrupt shared state).
    pub(crate) fn scramble(&self, next: &mut dyn FnMut() -> u64) {
        self.tat.store(next(), Ordering::Relaxed);
    }

    /// Stores arbitrary bits in the settings words too.
    pub(crate) fn scramble_settings(&self, next: &mut dyn FnMut() -> u64) {
        self.settings.scramble(next);
    }
}

#[cfg(all(feature = "shm", unix))]
impl crate::window::SameSettings for TokenBucket {
    fn same_settings(&self, other: &Self) -> bool {
        let (a, b) = (self.settings.read().1, other.settings.read().1);
        // The previous interval (`[3]`) is history, not configuration; rate and period
        // (`[4]`, `[5]`) are how the configuration was said (10 per second and 1 per
        // 100 ms build the same bucket).
        a[..3] == b[..3] && self.shift == other.shift
    }

    fn same_shape(&self, other: &Self) -> bool {
        self.shift == other.shift
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
        let late = (1u64 << 62) - 1;
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
            // The settings words too (a corrupt region): no panic, no hang, and never more
            // than the burst that the settings say, whatever they say.
            for i in 0..5_000u64 {
                b.scramble(&mut next);
                b.scramble_settings(&mut next);
                let now = (next() >> 1) >> (i % 64);
                let n = next() % (config.burst + 2);
                let _ = b.try_acquire(n, now);
                let _ = b.reserve_within(n, now, next());
                let _ = b.retry_after(n, now);
                let state = b.state(now);
                assert!(state.remaining <= state.limit && b.available(now) <= b.burst());
                b.refund(next(), now);
                let _ = b.interval_ns();
                let _ = b.reconfigure(config, now);
                b.reset();
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
