//! Adaptive protection for outbound calls: [`AdaptiveLimiter`] (a concurrency or rate limit
//! moved by the backend's answers) and [`AdaptiveThrottle`] (Google SRE client-side
//! throttling).

mod rule;
mod throttle;

pub use rule::{AdaptiveMode, Aimd, AnyRule, Gradient, LimitRule, RuleInput, Signal};
pub use throttle::{AdaptiveThrottle, ThrottleConfig, ThrottleMetrics, ThrottleRejected};

use crate::error::{ConfigError, ReconfigureError};
use crate::limits::{
    ADAPTIVE_LIMIT_UNIT, DEFAULT_ADAPTIVE_DECREASE_PERMILLE, DEFAULT_ADAPTIVE_INCREASE_MILLI,
    DEFAULT_ADAPTIVE_MAX_LIMIT_MILLI, DEFAULT_ADAPTIVE_MIN_LIMIT_MILLI, DEFAULT_ADAPTIVE_RTT_NS,
    DEFAULT_GRADIENT_QUEUE_MILLI, DEFAULT_GRADIENT_SMOOTHING_PERMILLE,
    MAX_ADAPTIVE_DECREASE_PERMILLE, MAX_ADAPTIVE_LIMIT_MILLI, MAX_ADAPTIVE_RETRY_AFTER_NS,
    MAX_ADAPTIVE_RTT_NS, MAX_GRADIENT_SMOOTHING_PERMILLE, MIN_ADAPTIVE_CONCURRENCY_MILLI,
    MIN_ADAPTIVE_LIMIT_MILLI,
};
use crate::sync::{maybe_const_fn, AtomicU32, AtomicU64, Ordering};
use crate::token_bucket::gcra_take;
use crate::versioned::Versioned;
use crate::SECOND;

/// The configuration of an [`AdaptiveLimiter`]. Limits are in thousandths of a call (in
/// flight, or per second in rate mode): `10_000` is a limit of 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveConfig {
    /// Concurrency or rate. Fixed when the limiter is built.
    pub mode: AdaptiveMode,
    /// The limit to start from, within the bounds. Ignored by `reconfigure` (the limit
    /// in force is kept, clamped into the new bounds).
    pub initial_limit_milli: u64,
    /// The floor: at least 0.001 (rate) or 1 (concurrency). Default 1.
    pub min_limit_milli: u64,
    /// The ceiling: at least the floor, at most 1,000,000. Default 1000.
    pub max_limit_milli: u64,
    /// Additive increase per `limit` successes (per RTT at the full limit in concurrency
    /// mode, per second at the full rate in rate mode; see [`Aimd`]), at most the largest
    /// limit. Default 1.
    pub increase_milli: u64,
    /// Multiplicative decrease on overload, in thousandths, 1..=999. Default 500 (halve).
    pub decrease_permille: u32,
    /// The RTT window: at most one decrease per window, however many overloads arrive in
    /// it. Configured, not learned (the gradient rule learns its own minimum latency).
    /// 1 ns ..= 1 hour. Default 1 s.
    pub rtt_ns: u64,
    /// A success slower than this counts as an overload (0: no target). At most 1 hour.
    pub latency_target_ns: u64,
    /// The gradient rule's queue-size term, at most the largest limit. Default 4.
    pub queue_milli: u64,
    /// The gradient rule's smoothing, in thousandths, 1..=1000. Default 200.
    pub smoothing_permille: u32,
}

impl AdaptiveConfig {
    /// The defaults (from [`limits`](crate::limits)) in `mode`, starting at
    /// `initial_limit_milli`.
    pub const fn new(mode: AdaptiveMode, initial_limit_milli: u64) -> Self {
        AdaptiveConfig {
            mode,
            initial_limit_milli,
            min_limit_milli: DEFAULT_ADAPTIVE_MIN_LIMIT_MILLI,
            max_limit_milli: DEFAULT_ADAPTIVE_MAX_LIMIT_MILLI,
            increase_milli: DEFAULT_ADAPTIVE_INCREASE_MILLI,
            decrease_permille: DEFAULT_ADAPTIVE_DECREASE_PERMILLE,
            rtt_ns: DEFAULT_ADAPTIVE_RTT_NS,
            latency_target_ns: 0,
            queue_milli: DEFAULT_GRADIENT_QUEUE_MILLI,
            smoothing_permille: DEFAULT_GRADIENT_SMOOTHING_PERMILLE,
        }
    }

    /// Checks every field; the error names the first bad one, its value and the range.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        let floor = match self.mode {
            AdaptiveMode::Concurrency => MIN_ADAPTIVE_CONCURRENCY_MILLI,
            AdaptiveMode::Rate => MIN_ADAPTIVE_LIMIT_MILLI,
        };
        if self.min_limit_milli < floor || self.min_limit_milli > MAX_ADAPTIVE_LIMIT_MILLI {
            return Err(ConfigError::new(
                "min_limit_milli",
                self.min_limit_milli,
                match self.mode {
                    AdaptiveMode::Concurrency => {
                        "must be in 1000..=1000000000 (a limit of 1 to 1,000,000 calls in flight)"
                    }
                    AdaptiveMode::Rate => {
                        "must be in 1..=1000000000 (0.001 to 1,000,000 calls per second)"
                    }
                },
            ));
        }
        if self.max_limit_milli < self.min_limit_milli
            || self.max_limit_milli > MAX_ADAPTIVE_LIMIT_MILLI
        {
            return Err(ConfigError::new(
                "max_limit_milli",
                self.max_limit_milli,
                "must be in min_limit_milli..=1000000000 (at least the floor, at most 1,000,000)",
            ));
        }
        if self.initial_limit_milli < self.min_limit_milli
            || self.initial_limit_milli > self.max_limit_milli
        {
            return Err(ConfigError::new(
                "initial_limit_milli",
                self.initial_limit_milli,
                "must be in min_limit_milli..=max_limit_milli",
            ));
        }
        if self.increase_milli > MAX_ADAPTIVE_LIMIT_MILLI {
            return Err(ConfigError::new(
                "increase_milli",
                self.increase_milli,
                "must be in 0..=1000000000 (at most 1,000,000 per RTT window)",
            ));
        }
        if self.decrease_permille == 0 || self.decrease_permille > MAX_ADAPTIVE_DECREASE_PERMILLE {
            return Err(ConfigError::new(
                "decrease_permille",
                self.decrease_permille as u64,
                "must be in 1..=999 (a factor strictly between 0 and 1, in thousandths)",
            ));
        }
        if self.rtt_ns == 0 || self.rtt_ns > MAX_ADAPTIVE_RTT_NS {
            return Err(ConfigError::new(
                "rtt_ns",
                self.rtt_ns,
                "must be in 1..=3600000000000 (1 ns to 1 hour)",
            ));
        }
        if self.latency_target_ns > MAX_ADAPTIVE_RTT_NS {
            return Err(ConfigError::new(
                "latency_target_ns",
                self.latency_target_ns,
                "must be in 0..=3600000000000 (0: none; at most 1 hour)",
            ));
        }
        if self.queue_milli > MAX_ADAPTIVE_LIMIT_MILLI {
            return Err(ConfigError::new(
                "queue_milli",
                self.queue_milli,
                "must be in 0..=1000000000",
            ));
        }
        if self.smoothing_permille == 0 || self.smoothing_permille > MAX_GRADIENT_SMOOTHING_PERMILLE
        {
            return Err(ConfigError::new(
                "smoothing_permille",
                self.smoothing_permille as u64,
                "must be in 1..=1000 (a factor in (0, 1], in thousandths)",
            ));
        }
        Ok(())
    }

    const fn words(&self) -> [u64; WORDS] {
        [
            self.min_limit_milli,
            self.max_limit_milli,
            self.increase_milli,
            self.decrease_permille as u64,
            self.rtt_ns,
            self.latency_target_ns,
            self.queue_milli,
            self.smoothing_permille as u64,
        ]
    }
}

const WORDS: usize = 8;

/// One version of the settings, decoded so that any bits are safe to compute with.
#[derive(Debug, Clone, Copy)]
struct Settings {
    min: u64,
    max: u64,
    increase: u64,
    decrease: u32,
    rtt: u64,
    latency_target: u64,
    queue: u64,
    smoothing: u32,
}

impl Settings {
    /// From the words of a version; clamps what no validated configuration produces
    /// (corrupt shared memory) into range.
    #[inline]
    fn decode(w: [u64; WORDS], mode: AdaptiveMode) -> Settings {
        let floor = match mode {
            AdaptiveMode::Concurrency => MIN_ADAPTIVE_CONCURRENCY_MILLI,
            AdaptiveMode::Rate => MIN_ADAPTIVE_LIMIT_MILLI,
        };
        let min = w[0].clamp(floor, MAX_ADAPTIVE_LIMIT_MILLI);
        Settings {
            min,
            max: w[1].clamp(min, MAX_ADAPTIVE_LIMIT_MILLI),
            increase: w[2].min(MAX_ADAPTIVE_LIMIT_MILLI),
            decrease: w[3].clamp(1, MAX_ADAPTIVE_DECREASE_PERMILLE as u64) as u32,
            rtt: w[4].clamp(1, MAX_ADAPTIVE_RTT_NS),
            latency_target: w[5].min(MAX_ADAPTIVE_RTT_NS),
            queue: w[6].min(MAX_ADAPTIVE_LIMIT_MILLI),
            smoothing: w[7].clamp(1, MAX_GRADIENT_SMOOTHING_PERMILLE as u64) as u32,
        }
    }

    #[inline]
    fn clamp(&self, limit: u64) -> u64 {
        limit.clamp(self.min, self.max)
    }
}

/// What to do with a recorded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdaptiveOutcome {
    /// The backend served the call, in `latency_ns` (from the permit's admission, say).
    Success {
        /// The call's latency.
        latency_ns: u64,
    },
    /// The backend is overloaded: a 429 or 503, or a timeout. `retry_after_ns` (from a
    /// `Retry-After` header) pauses every acquire until it passes (cut to one day).
    Overload {
        /// How long the backend asked callers to wait.
        retry_after_ns: Option<u64>,
    },
    /// Neither (a 404, a cancellation): the permit is just released.
    Ignore,
}

/// Why an [`AdaptiveLimiter`] refused a call. Rejection is data, not an error to unwrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AdaptiveRejected {
    /// Concurrency mode: `floor(limit)` calls are in flight.
    LimitReached {
        /// The limit, in thousandths.
        limit_milli: u64,
        /// Calls in flight.
        in_flight: u32,
    },
    /// Rate mode: the next call is allowed in `retry_after_ns`.
    RateLimited {
        /// Nanoseconds until a call could be admitted.
        retry_after_ns: u64,
    },
    /// A `Retry-After` from the backend has not passed yet.
    Paused {
        /// Nanoseconds until it passes.
        retry_after_ns: u64,
    },
}

impl AdaptiveRejected {
    /// The time until a retry could succeed, when the limiter knows it.
    pub const fn retry_after(&self) -> Option<u64> {
        match *self {
            AdaptiveRejected::RateLimited { retry_after_ns }
            | AdaptiveRejected::Paused { retry_after_ns } => Some(retry_after_ns),
            AdaptiveRejected::LimitReached { .. } => None,
        }
    }
}

impl core::fmt::Display for AdaptiveRejected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AdaptiveRejected::LimitReached {
                limit_milli,
                in_flight,
            } => write!(
                f,
                "adaptive limit reached: {in_flight} calls in flight, limit {}.{:03}",
                limit_milli / 1000,
                limit_milli % 1000
            ),
            AdaptiveRejected::RateLimited { retry_after_ns } => {
                write!(f, "adaptive rate limit, retry after {retry_after_ns} ns")
            }
            AdaptiveRejected::Paused { retry_after_ns } => {
                write!(f, "paused by Retry-After for {retry_after_ns} ns more")
            }
        }
    }
}

/// An admitted call; give it back with [`AdaptiveLimiter::record`]. Not `Copy`: one call
/// counts once.
#[must_use = "record the permit's outcome, or the call stays in flight"]
#[derive(Debug, PartialEq, Eq)]
pub struct AdaptivePermit {
    started_at: u64,
}

impl AdaptivePermit {
    /// When the call was admitted (the `now` given to `try_acquire`).
    pub const fn started_at(&self) -> u64 {
        self.started_at
    }

    /// A permit for a call admitted at `started_at` (through
    /// [`binding::adaptive_permit`](crate::binding::adaptive_permit)).
    pub(crate) const fn from_parts(started_at: u64) -> Self {
        AdaptivePermit { started_at }
    }
}

/// Counters of an [`AdaptiveLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveMetrics {
    /// The limit now, in thousandths.
    pub limit_milli: u64,
    /// Calls in flight (admitted, not yet recorded).
    pub in_flight: u32,
    /// Calls admitted in all.
    pub admitted: u64,
    /// Calls refused in all (including those refused while paused).
    pub rejected: u64,
    /// Calls refused because a `Retry-After` had not passed.
    pub paused_rejections: u64,
    /// Overload signals recorded (429/503, timeouts, latency above the target).
    pub overloads: u64,
    /// Decreases applied (at most one per RTT window).
    pub decreases: u64,
    /// Records with no call in flight (ignored: the count never goes negative).
    pub unmatched_records: u64,
    /// The lowest latency of a success seen (0: none yet).
    pub min_rtt_ns: u64,
    /// Nanoseconds until a `Retry-After` pause ends, at the time asked (0: not paused).
    pub paused_for_ns: u64,
}

/// A concurrency or rate limit that follows the backend: it grows while calls succeed and
/// shrinks, at most once per RTT window, when the backend signals overload. See the
/// [`LimitRule`] for how it moves ([`Aimd`] by default, or [`Gradient`]).
///
/// Lock-free: the limit, the in-flight count, the rate mode's GCRA state (a TAT, decided by
/// the same function as [`TokenBucket`](crate::TokenBucket)'s), the decrease gate and the
/// pause are each one atomic word; the settings are versioned like every primitive's, so
/// [`reconfigure`](Self::reconfigure) changes them atomically while calls are in flight.
/// Every limit read is clamped into the bounds in force, so no caller ever sees a limit
/// outside them, even while a reconfiguration races a record.
///
/// ```
/// use fastbreaker::{AdaptiveConfig, AdaptiveLimiter, AdaptiveMode, AdaptiveOutcome, AdaptiveRejected, SECOND};
/// let limiter: AdaptiveLimiter = AdaptiveLimiter::new(AdaptiveConfig::new(AdaptiveMode::Concurrency, 2_000)).unwrap();
/// let a = limiter.try_acquire(0).unwrap();
/// let b = limiter.try_acquire(0).unwrap();
/// assert!(matches!(limiter.try_acquire(0), Err(AdaptiveRejected::LimitReached { .. })));
/// limiter.record(a, AdaptiveOutcome::Overload { retry_after_ns: Some(5 * SECOND) }, 0);
/// assert_eq!(limiter.limit_milli(), 1_000, "halved, at the floor");
/// assert_eq!(limiter.try_acquire(SECOND), Err(AdaptiveRejected::Paused { retry_after_ns: 4 * SECOND }));
/// limiter.record(b, AdaptiveOutcome::Ignore, SECOND);
/// assert!(limiter.try_acquire(5 * SECOND).is_ok());
/// ```
#[derive(Debug)]
#[repr(C)]
pub struct AdaptiveLimiter<R: LimitRule = Aimd> {
    /// The limit in thousandths (clamped into the bounds whenever it is read).
    limit: AtomicU64,
    in_flight: AtomicU32,
    /// The mode (fixed at construction): 0 concurrency, 1 rate.
    mode: u32,
    /// Rate mode: the GCRA's theoretical arrival time, in ns.
    tat: AtomicU64,
    /// The earliest time of the next decrease.
    next_decrease_at: AtomicU64,
    /// No admission before this time (a `Retry-After`).
    paused_until: AtomicU64,
    /// The lowest latency of a success (0: none yet).
    min_rtt: AtomicU64,
    admitted: AtomicU64,
    rejected: AtomicU64,
    paused_rejections: AtomicU64,
    overloads: AtomicU64,
    decreases: AtomicU64,
    unmatched: AtomicU64,
    settings: Versioned<WORDS>,
    rule: R,
}

impl AdaptiveLimiter<Aimd> {
    maybe_const_fn! {
        /// A limiter with the [`Aimd`] rule.
        pub fn new(config: AdaptiveConfig) -> Result<Self, ConfigError> {
            Self::with_rule(config, Aimd)
        }
    }
}

impl<R: LimitRule> AdaptiveLimiter<R> {
    maybe_const_fn! {
        /// A limiter with `rule`. Errors name the field, its value and the legal range.
        pub fn with_rule(config: AdaptiveConfig, rule: R) -> Result<Self, ConfigError>
        where
            R: Copy,
        {
            if let Err(e) = config.validate() {
                return Err(e);
            }
            Ok(AdaptiveLimiter {
                limit: AtomicU64::new(config.initial_limit_milli),
                in_flight: AtomicU32::new(0),
                mode: config.mode as u32,
                tat: AtomicU64::new(0),
                next_decrease_at: AtomicU64::new(0),
                paused_until: AtomicU64::new(0),
                min_rtt: AtomicU64::new(0),
                admitted: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                paused_rejections: AtomicU64::new(0),
                overloads: AtomicU64::new(0),
                decreases: AtomicU64::new(0),
                unmatched: AtomicU64::new(0),
                settings: Versioned::new(config.words()),
                rule,
            })
        }
    }

    /// The mode.
    #[inline]
    pub fn mode(&self) -> AdaptiveMode {
        if self.mode == AdaptiveMode::Rate as u32 {
            AdaptiveMode::Rate
        } else {
            AdaptiveMode::Concurrency
        }
    }

    #[inline]
    fn settings(&self) -> Settings {
        Settings::decode(self.settings.read().1, self.mode())
    }

    /// The configuration in force (`initial_limit_milli` reads the current limit).
    pub fn config(&self) -> AdaptiveConfig {
        let s = self.settings();
        AdaptiveConfig {
            mode: self.mode(),
            initial_limit_milli: s.clamp(self.limit.load(Ordering::Relaxed)),
            min_limit_milli: s.min,
            max_limit_milli: s.max,
            increase_milli: s.increase,
            decrease_permille: s.decrease,
            rtt_ns: s.rtt,
            latency_target_ns: s.latency_target,
            queue_milli: s.queue,
            smoothing_permille: s.smoothing,
        }
    }

    /// The limit now, in thousandths, within the bounds.
    #[inline]
    pub fn limit_milli(&self) -> u64 {
        self.settings().clamp(self.limit.load(Ordering::Relaxed))
    }

    /// Calls in flight.
    #[inline]
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Admits a call at `now`, or says why not. The caller must [`record`](Self::record)
    /// the permit once.
    #[inline]
    pub fn try_acquire(&self, now: u64) -> Result<AdaptivePermit, AdaptiveRejected> {
        match self.admit(now) {
            Ok(()) => {
                self.admitted.fetch_add(1, Ordering::Relaxed);
                Ok(AdaptivePermit { started_at: now })
            }
            Err(e) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                if matches!(e, AdaptiveRejected::Paused { .. }) {
                    self.paused_rejections.fetch_add(1, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }

    fn admit(&self, now: u64) -> Result<(), AdaptiveRejected> {
        let paused = self.paused_until.load(Ordering::Acquire);
        if now < paused {
            return Err(AdaptiveRejected::Paused {
                retry_after_ns: paused - now,
            });
        }
        // Acquire: pairs with the Release CAS of `update_limit` (see `record`).
        let limit = self.settings().clamp(self.limit.load(Ordering::Acquire));
        match self.mode() {
            AdaptiveMode::Concurrency => {
                let max = (limit / ADAPTIVE_LIMIT_UNIT).min(u32::MAX as u64) as u32;
                let mut cur = self.in_flight.load(Ordering::Relaxed);
                loop {
                    if cur >= max {
                        return Err(AdaptiveRejected::LimitReached {
                            limit_milli: limit,
                            in_flight: cur,
                        });
                    }
                    match self.in_flight.compare_exchange_weak(
                        cur,
                        cur + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return Ok(()),
                        Err(actual) => cur = actual,
                    }
                }
            }
            AdaptiveMode::Rate => {
                let interval = Self::interval_ns(limit);
                let mut tat = self.tat.load(Ordering::Relaxed);
                loop {
                    match gcra_take(tat, now, interval, interval) {
                        Err(wait) => {
                            return Err(AdaptiveRejected::RateLimited {
                                retry_after_ns: wait,
                            })
                        }
                        Ok(next) => match self.tat.compare_exchange_weak(
                            tat,
                            next,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        ) {
                            Ok(_) => break,
                            Err(actual) => tat = actual,
                        },
                    }
                }
                // In rate mode the count is informative (and keeps record() symmetric).
                let _ = self
                    .in_flight
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                        Some(c.saturating_add(1))
                    });
                Ok(())
            }
        }
    }

    /// Rate mode: nanoseconds between calls at `limit_milli` thousandths of a call per
    /// second (rounded up, so the rate is never exceeded).
    #[inline]
    fn interval_ns(limit_milli: u64) -> u64 {
        (SECOND as u128 * ADAPTIVE_LIMIT_UNIT as u128)
            .div_ceil(limit_milli.max(1) as u128)
            .min(u64::MAX as u128) as u64
    }

    /// Nanoseconds from `now` until [`try_acquire`](Self::try_acquire) could admit a call
    /// as far as time goes (a `Retry-After` pause, the rate mode's pacing); 0 if now. In
    /// concurrency mode a full limit waits for a record, not for time: that reads 0.
    pub fn retry_after(&self, now: u64) -> u64 {
        let paused = self
            .paused_until
            .load(Ordering::Acquire)
            .saturating_sub(now);
        let paced = match self.mode() {
            AdaptiveMode::Concurrency => 0,
            AdaptiveMode::Rate => {
                let interval = Self::interval_ns(self.limit_milli());
                gcra_take(self.tat.load(Ordering::Relaxed), now, interval, interval)
                    .err()
                    .unwrap_or(0)
            }
        };
        paused.max(paced)
    }

    /// Records the outcome of an admitted call at `now`, releasing it, and moves the limit.
    pub fn record(&self, permit: AdaptivePermit, outcome: AdaptiveOutcome, now: u64) {
        let _ = permit;
        // Release: a caller that sees a limit this record stores next (Acquire in `admit`)
        // sees this release too, so it never judges the new limit by a stale count.
        let released = self
            .in_flight
            .fetch_update(Ordering::Release, Ordering::Relaxed, |c| c.checked_sub(1));
        let in_flight_before = match released {
            Ok(before) => before,
            Err(_) => {
                self.unmatched.fetch_add(1, Ordering::Relaxed);
                0
            }
        };
        let s = self.settings();
        let signal = match outcome {
            AdaptiveOutcome::Ignore => return,
            AdaptiveOutcome::Overload { retry_after_ns } => {
                if let Some(wait) = retry_after_ns {
                    let until = now.saturating_add(wait.min(MAX_ADAPTIVE_RETRY_AFTER_NS));
                    // Release: pairs with the Acquire in `admit`.
                    self.paused_until.fetch_max(until, Ordering::Release);
                }
                Signal::Overload
            }
            AdaptiveOutcome::Success { latency_ns } => {
                if s.latency_target != 0 && latency_ns > s.latency_target {
                    Signal::Overload
                } else {
                    self.learn_min_rtt(latency_ns);
                    Signal::Success { latency_ns }
                }
            }
        };
        if signal == Signal::Overload {
            self.overloads.fetch_add(1, Ordering::Relaxed);
        }
        let min_rtt = self.min_rtt.load(Ordering::Relaxed);
        let input = |s: &Settings, limit: u64| RuleInput {
            limit_milli: limit,
            signal,
            min_rtt_ns: min_rtt,
            increase_milli: s.increase,
            decrease_permille: s.decrease,
            rtt_ns: s.rtt,
            queue_milli: s.queue,
            smoothing_permille: s.smoothing,
            mode: self.mode(),
        };
        let limit = s.clamp(self.limit.load(Ordering::Relaxed));
        let wanted = s.clamp(self.rule.next_limit(&input(&s, limit)));
        if wanted > limit {
            if signal == Signal::Overload {
                return; // an overload never raises the limit, whatever the rule says
            }
            // The limit grows only while it is used: in concurrency mode, while at least
            // half of it was in flight (an idle client must not inflate it).
            if self.mode() == AdaptiveMode::Concurrency
                && (in_flight_before as u64).saturating_mul(2 * ADAPTIVE_LIMIT_UNIT) < limit
            {
                return;
            }
            self.update_limit(|s, cur| {
                let next = s.clamp(self.rule.next_limit(&input(s, cur)));
                (next > cur).then_some(next)
            });
        } else if wanted < limit {
            // At most one decrease per RTT window: whoever moves the gate decreases.
            let gate = self.next_decrease_at.load(Ordering::Relaxed);
            if now < gate
                || self
                    .next_decrease_at
                    .compare_exchange(
                        gate,
                        now.saturating_add(s.rtt),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_err()
            {
                return;
            }
            self.decreases.fetch_add(1, Ordering::Relaxed);
            self.update_limit(|s, cur| {
                let next = s.clamp(self.rule.next_limit(&input(s, cur)));
                (next < cur).then_some(next)
            });
        }
    }

    /// Moves the limit word by `step` (given the settings and the current, clamped limit;
    /// `None`: leave it), retrying on contention.
    fn update_limit(&self, step: impl Fn(&Settings, u64) -> Option<u64>) {
        let mut word = self.limit.load(Ordering::Relaxed);
        loop {
            let s = self.settings();
            let Some(next) = step(&s, s.clamp(word)) else {
                return;
            };
            match self
                .limit
                .compare_exchange_weak(word, next, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => word = actual,
            }
        }
    }

    fn learn_min_rtt(&self, latency_ns: u64) {
        if latency_ns == 0 {
            return;
        }
        let _ = self
            .min_rtt
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                (m == 0 || latency_ns < m).then_some(latency_ns)
            });
    }

    /// Changes the bounds, increase, decrease, RTT window, latency target and the gradient
    /// terms at run time. The limit in force is kept (clamped into the new bounds), and so
    /// are the calls in flight, the pause and the rate mode's pacing; `initial_limit_milli`
    /// is ignored and `mode` cannot change (an error naming `mode`). Atomic: every decision
    /// reads one version of the settings.
    pub fn reconfigure(&self, config: AdaptiveConfig) -> Result<(), ReconfigureError> {
        if config.mode != self.mode() {
            return Err(ReconfigureError::Invalid(ConfigError::new(
                "mode",
                config.mode as u64,
                "cannot change at run time (build a new limiter)",
            )));
        }
        // The initial limit is not checked against the new bounds: it is not used.
        let checked = AdaptiveConfig {
            initial_limit_milli: config.min_limit_milli,
            ..config
        };
        checked.validate()?;
        self.settings
            .write(
                |_, _| checked.words(),
                |_| {
                    // Stores the limit in force, clamped into the new bounds (reads clamp
                    // already; this keeps a later widening from bringing back the old one).
                    let s = self.settings();
                    let mut word = self.limit.load(Ordering::Relaxed);
                    while s.clamp(word) != word {
                        match self.limit.compare_exchange_weak(
                            word,
                            s.clamp(word),
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        ) {
                            Ok(_) => break,
                            Err(actual) => word = actual,
                        }
                    }
                },
            )
            .map(drop)
            .map_err(|_| ReconfigureError::Busy)
    }

    /// A snapshot of the counters at `now`.
    pub fn metrics(&self, now: u64) -> AdaptiveMetrics {
        AdaptiveMetrics {
            limit_milli: self.limit_milli(),
            in_flight: self.in_flight(),
            admitted: self.admitted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            paused_rejections: self.paused_rejections.load(Ordering::Relaxed),
            overloads: self.overloads.load(Ordering::Relaxed),
            decreases: self.decreases.load(Ordering::Relaxed),
            unmatched_records: self.unmatched.load(Ordering::Relaxed),
            min_rtt_ns: self.min_rtt.load(Ordering::Relaxed),
            paused_for_ns: self
                .paused_until
                .load(Ordering::Acquire)
                .saturating_sub(now),
        }
    }
}

#[cfg(test)]
impl<R: LimitRule> AdaptiveLimiter<R> {
    /// Stores arbitrary bits in every atomic word (tests of corrupt shared state).
    pub(crate) fn scramble(&self, next: &mut dyn FnMut() -> u64) {
        self.limit.store(next(), Ordering::Relaxed);
        self.in_flight.store(next() as u32, Ordering::Relaxed);
        self.tat.store(next(), Ordering::Relaxed);
        self.next_decrease_at.store(next(), Ordering::Relaxed);
        self.paused_until.store(next(), Ordering::Relaxed);
        self.min_rtt.store(next(), Ordering::Relaxed);
        self.settings.scramble(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MILLISECOND;

    fn conc(initial: u64) -> AdaptiveConfig {
        AdaptiveConfig::new(AdaptiveMode::Concurrency, initial)
    }

    #[test]
    fn validation_names_the_field() {
        let bad = |c: AdaptiveConfig| AdaptiveLimiter::new(c).unwrap_err().field;
        assert_eq!(
            bad(AdaptiveConfig {
                min_limit_milli: 500,
                ..conc(1000)
            }),
            "min_limit_milli"
        );
        assert_eq!(
            bad(AdaptiveConfig {
                max_limit_milli: 10,
                ..conc(1000)
            }),
            "max_limit_milli"
        );
        assert_eq!(bad(conc(2_000_000)), "initial_limit_milli");
        assert_eq!(
            bad(AdaptiveConfig {
                decrease_permille: 1000,
                ..conc(1000)
            }),
            "decrease_permille"
        );
        assert_eq!(
            bad(AdaptiveConfig {
                rtt_ns: 0,
                ..conc(1000)
            }),
            "rtt_ns"
        );
        assert_eq!(
            bad(AdaptiveConfig {
                smoothing_permille: 0,
                ..conc(1000)
            }),
            "smoothing_permille"
        );
        let rate = AdaptiveConfig {
            min_limit_milli: 1,
            ..AdaptiveConfig::new(AdaptiveMode::Rate, 500)
        };
        assert!(
            AdaptiveLimiter::new(rate).is_ok(),
            "rate mode goes down to 0.001/s"
        );
        let e = AdaptiveLimiter::new(AdaptiveConfig {
            rtt_ns: 0,
            ..conc(1000)
        })
        .unwrap_err();
        assert_eq!(
            (e.value, e.reason),
            (0, "must be in 1..=3600000000000 (1 ns to 1 hour)")
        );
    }

    #[test]
    fn one_decrease_per_rtt_window() {
        let l = AdaptiveLimiter::new(AdaptiveConfig {
            rtt_ns: 100 * MILLISECOND,
            ..conc(64_000)
        })
        .unwrap();
        let permits: [_; 10] = core::array::from_fn(|_| l.try_acquire(0).unwrap());
        for (i, p) in permits.into_iter().enumerate() {
            l.record(
                p,
                AdaptiveOutcome::Overload {
                    retry_after_ns: None,
                },
                i as u64 * MILLISECOND,
            );
        }
        assert_eq!(
            l.limit_milli(),
            32_000,
            "ten 429s in one window: one halving"
        );
        let p = l.try_acquire(100 * MILLISECOND).unwrap();
        l.record(
            p,
            AdaptiveOutcome::Overload {
                retry_after_ns: None,
            },
            100 * MILLISECOND,
        );
        assert_eq!(l.limit_milli(), 16_000);
        let m = l.metrics(0);
        assert_eq!((m.decreases, m.overloads, m.in_flight), (2, 11, 0));
    }

    #[test]
    fn latency_above_the_target_is_an_overload() {
        let l = AdaptiveLimiter::new(AdaptiveConfig {
            latency_target_ns: 50,
            ..conc(8_000)
        })
        .unwrap();
        let p = l.try_acquire(0).unwrap();
        l.record(p, AdaptiveOutcome::Success { latency_ns: 51 }, 51);
        assert_eq!(l.limit_milli(), 4_000);
        assert_eq!(l.metrics(0).overloads, 1);
    }

    #[test]
    fn unmatched_records_saturate() {
        let l = AdaptiveLimiter::new(conc(1000)).unwrap();
        l.record(AdaptivePermit::from_parts(0), AdaptiveOutcome::Ignore, 0);
        assert_eq!(l.in_flight(), 0);
        assert_eq!(l.metrics(0).unmatched_records, 1);
    }

    #[test]
    fn rate_mode_paces_at_the_limit() {
        let l = AdaptiveLimiter::new(AdaptiveConfig::new(AdaptiveMode::Rate, 10_000)).unwrap();
        let p = l.try_acquire(0).unwrap();
        assert_eq!(
            l.try_acquire(0),
            Err(AdaptiveRejected::RateLimited {
                retry_after_ns: 100 * MILLISECOND
            })
        );
        assert_eq!(l.retry_after(0), 100 * MILLISECOND);
        l.record(p, AdaptiveOutcome::Success { latency_ns: 1 }, 0);
        assert!(l.try_acquire(100 * MILLISECOND).is_ok());
    }

    #[test]
    fn reconfigure_clamps_and_keeps_calls_in_flight() {
        let l = AdaptiveLimiter::new(conc(10_000)).unwrap();
        let held: [_; 5] = core::array::from_fn(|_| l.try_acquire(0).unwrap());
        l.reconfigure(AdaptiveConfig {
            max_limit_milli: 3_000,
            ..conc(0)
        })
        .unwrap();
        assert_eq!(l.limit_milli(), 3_000);
        assert_eq!(l.in_flight(), 5);
        assert!(l.try_acquire(0).is_err());
        assert!(matches!(
            l.reconfigure(AdaptiveConfig::new(AdaptiveMode::Rate, 1000)),
            Err(ReconfigureError::Invalid(e)) if e.field == "mode"
        ));
        assert!(matches!(
            l.reconfigure(AdaptiveConfig { decrease_permille: 0, ..conc(0) }),
            Err(ReconfigureError::Invalid(e)) if e.field == "decrease_permille"
        ));
        for p in held {
            l.record(p, AdaptiveOutcome::Ignore, 0);
        }
        assert_eq!(l.in_flight(), 0);
        assert_eq!(l.config().max_limit_milli, 3_000);
    }

    #[test]
    fn any_bit_pattern_is_survivable() {
        let mut next = crate::breaker::tests::arbitrary_words(0x1234_5678_9ABC_DEF1);
        for mode in [AdaptiveMode::Concurrency, AdaptiveMode::Rate] {
            let l = AdaptiveLimiter::with_rule(AdaptiveConfig::new(mode, 5_000), AnyRule::Gradient)
                .unwrap();
            for i in 0..3_000u64 {
                l.scramble(&mut next);
                let now = next() >> 2;
                let limit = l.limit_milli();
                let s = l.settings();
                assert!(s.min <= limit && limit <= s.max);
                let before = l.in_flight();
                if let Ok(p) = l.try_acquire(now) {
                    if mode == AdaptiveMode::Concurrency {
                        assert!((before as u64) < limit / 1000);
                    }
                    let outcome = match i % 3 {
                        0 => AdaptiveOutcome::Success { latency_ns: next() },
                        1 => AdaptiveOutcome::Overload {
                            retry_after_ns: Some(next()),
                        },
                        _ => AdaptiveOutcome::Ignore,
                    };
                    l.record(p, outcome, now);
                }
                let _ = l.retry_after(now);
                let _ = l.metrics(now);
            }
        }
    }
}
