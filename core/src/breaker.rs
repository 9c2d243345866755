//! The circuit breaker: a packed state word, a transition-time word, a window and counters.

use crate::backoff::Backoff;
use crate::clock::{Clock, LazyNow, Now};
use crate::config::BreakerConfig;
use crate::count_window::CountWindow;
use crate::error::{ConfigError, ReconfigureError};
use crate::limits::{MAX_BACKOFF_STEPS, MAX_WAIT_DURATION_NS};
use crate::state::{
    self, generation_after, Decision, Event, Limits, Outcome, Refusal, State, Word,
};
use crate::sync::{maybe_const_fn, AtomicU64, Ordering};
use crate::time_window::TimeWindow;
use crate::versioned::Versioned;
use crate::window::{Window, WindowShape, WindowStats};

pub use crate::state::PermitKind;

/// Why a breaker refused a call. Rejection is data, not an error type to unwrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejected {
    /// The breaker is open; it admits a probe in `retry_after` nanoseconds.
    Open {
        /// Nanoseconds until the wait is over.
        retry_after: u64,
    },
    /// Half-open, and every probe slot is taken.
    HalfOpenFull,
    /// Forced open by hand.
    ForcedOpen,
}

impl Rejected {
    /// The time until a retry could succeed, when known.
    pub const fn retry_after(&self) -> Option<u64> {
        match *self {
            Rejected::Open { retry_after } => Some(retry_after),
            Rejected::HalfOpenFull | Rejected::ForcedOpen => None,
        }
    }
}

impl core::fmt::Display for Rejected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Rejected::Open { retry_after } => {
                write!(f, "circuit open, retry after {retry_after} ns")
            }
            Rejected::HalfOpenFull => {
                f.write_str("circuit half-open and all probe slots are taken")
            }
            Rejected::ForcedOpen => f.write_str("circuit forced open"),
        }
    }
}

/// A committed change of state, reported to the caller that made it so that bindings can
/// notify listeners after the fact, outside any critical section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transition {
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// The generation of the new state.
    pub generation: u64,
    /// When it happened (the `now` of the call that made it).
    pub at: u64,
}

/// Leave to make one call, returned by [`CircuitBreaker::acquire`].
///
/// Hand it back with its outcome to [`CircuitBreaker::record`], which consumes it: a permit
/// counts once. It is neither `Copy` nor `Clone`, so one call cannot be recorded twice.
///
/// It carries the generation of the state that issued it: an outcome recorded after the
/// state changed moves nothing.
///
/// A permit that is dropped without being recorded counts nowhere. A dropped half-open
/// probe keeps its probe slot until the wait has passed since the latest probe was
/// admitted; then the probes out are presumed hung and a new probe is admitted, so a lost
/// permit never wedges the breaker. Record [`Outcome::Ignored`] to hand a slot back at once.
///
/// Recording one permit twice does not compile:
/// ```compile_fail,E0382
/// use fastbreaker::{BreakerConfig, CircuitBreaker, CountWindow64, Outcome};
/// let breaker = CircuitBreaker::<CountWindow64>::new(BreakerConfig::new()).unwrap();
/// let permit = breaker.acquire(0).unwrap();
/// breaker.record(permit, Outcome::Failure, 0);
/// breaker.record(permit, Outcome::Failure, 0); // error[E0382]: use of moved value
/// ```
/// and neither does copying it:
/// ```compile_fail,E0599
/// use fastbreaker::{BreakerConfig, CircuitBreaker, CountWindow64};
/// let breaker = CircuitBreaker::<CountWindow64>::new(BreakerConfig::new()).unwrap();
/// let permit = breaker.acquire(0).unwrap();
/// let copy = permit.clone(); // error[E0599]: no method named `clone`
/// ```
#[must_use = "record the permit's outcome with CircuitBreaker::record"]
#[derive(Debug, PartialEq, Eq)]
pub struct Permit {
    generation: u64,
    kind: PermitKind,
    started_at: u64,
    transition: Option<Transition>,
}

impl Permit {
    /// The kind of call admitted.
    pub const fn kind(&self) -> PermitKind {
        self.kind
    }

    /// The generation of the state that issued the permit.
    pub const fn generation(&self) -> u64 {
        self.generation
    }

    /// When the call started, if the breaker needed to know (slow-call detection); else 0.
    pub const fn started_at(&self) -> u64 {
        self.started_at
    }

    /// The state change this acquire made (Open -> HalfOpen), if any.
    pub const fn transition(&self) -> Option<Transition> {
        self.transition
    }

    /// The permit's parts, for bindings that carry permits across a language boundary
    /// (see [`binding`](crate::binding)).
    pub(crate) const fn into_parts(self) -> (u64, PermitKind, u64) {
        (self.generation, self.kind, self.started_at)
    }

    /// Rebuilds a permit from its parts (see [`binding`](crate::binding)).
    pub(crate) const fn from_parts(generation: u64, kind: PermitKind, started_at: u64) -> Self {
        Permit {
            generation,
            kind,
            started_at,
            transition: None,
        }
    }
}

/// A snapshot of a breaker's state and counters. Reading it takes only loads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// Current state.
    pub state: State,
    /// Current generation (bumped by every state change; 25 bits, wrapping).
    pub generation: u64,
    /// Calls let through (not counting the Disabled state). A closed-state call is counted
    /// when its outcome is recorded, so that a healthy breaker's call makes one shared write,
    /// not two; probes and metrics-only calls are counted when admitted.
    pub permitted: u64,
    /// Calls refused.
    pub rejected: u64,
    /// Successful outcomes recorded.
    pub succeeded: u64,
    /// Failed outcomes recorded.
    pub failed: u64,
    /// Ignored outcomes recorded.
    pub ignored: u64,
    /// Slow outcomes recorded (also counted as succeeded or failed).
    pub slow: u64,
    /// Times the breaker opened: a trip rule fired, a probe failed, or [`trip`](CircuitBreaker::trip)
    /// was called (even on an open breaker, which starts its wait again). Forcing it open
    /// is not a trip.
    pub trips: u64,
    /// Consecutive failures so far in the closed state.
    pub consecutive_failures: u32,
    /// Probes in flight (half-open only).
    pub half_open_in_flight: u16,
    /// What the window holds now.
    pub window: WindowStats,
    /// When the current state began, if the breaker has changed state at all. In
    /// half-open, when the latest probe was admitted (probes are timed from their own
    /// admission).
    pub last_transition_at: Option<u64>,
    /// Nanoseconds until an open breaker admits a probe (0 otherwise).
    pub retry_after: u64,
}

/// Lifetime counters. Relaxed: they are statistics, read as a snapshot.
#[derive(Debug)]
#[repr(C)]
struct Counters {
    /// Admitted probe and metrics-only permits not yet recorded (wrapping). The reported
    /// `permitted` is this plus every recorded outcome.
    unrecorded: AtomicU64,
    rejected: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    ignored: AtomicU64,
    slow: AtomicU64,
    trips: AtomicU64,
}

/// The configuration, compacted: what the hot path reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
struct Settings {
    wait_ns: u64,
    /// The cap of the grown wait, at most `MAX_WAIT_DURATION_NS`.
    max_wait_ns: u64,
    slow_call_ns: u64,
    /// The given seed (0 when it is drawn at random: see `random_seed`).
    jitter_seed: u64,
    backoff_factor_milli: u32,
    /// 0 = rule off.
    failure_threshold: u32,
    minimum_calls: u32,
    /// 0 = rule off.
    failure_rate: u8,
    /// 0 = rule off.
    slow_rate: u8,
    /// 1: the seed is drawn from the OS on first use (config `jitter_seed: None`); 0: given.
    /// A `u8`, not a `bool`: every field of a breaker is an integer or an atomic, so that any
    /// bit pattern is a valid breaker (the shared-memory region relies on it).
    random_seed: u8,
    half_open_max_calls: u16,
    success_threshold: u16,
    jitter_permille: u16,
    /// The backoff step at which the wait reaches its cap.
    max_step: u16,
}

impl Settings {
    /// From a validated configuration.
    const fn from_config(c: &BreakerConfig) -> Self {
        let backoff = c.backoff();
        let steps = backoff.steps_to_cap();
        Settings {
            wait_ns: c.wait_duration_ns,
            max_wait_ns: backoff.max_ns,
            slow_call_ns: c.slow_call_duration_ns,
            jitter_seed: backoff.seed,
            backoff_factor_milli: c.backoff_factor_milli,
            failure_threshold: match c.failure_threshold {
                Some(n) => n,
                None => 0,
            },
            minimum_calls: c.minimum_calls,
            failure_rate: match c.failure_rate_threshold {
                Some(p) => p,
                None => 0,
            },
            slow_rate: match c.slow_call_rate_threshold {
                Some(p) => p,
                None => 0,
            },
            random_seed: c.jitter_seed.is_none() as u8,
            half_open_max_calls: c.half_open_max_calls,
            success_threshold: c.success_threshold,
            jitter_permille: c.jitter_permille,
            max_step: if steps > MAX_BACKOFF_STEPS as u32 {
                MAX_BACKOFF_STEPS
            } else {
                steps as u16
            },
        }
    }

    /// The words the settings are kept in (see [`Versioned`]).
    const fn words(&self) -> [u64; SETTINGS_WORDS] {
        [
            self.wait_ns,
            self.max_wait_ns,
            self.slow_call_ns,
            self.jitter_seed,
            self.backoff_factor_milli as u64 | (self.failure_threshold as u64) << 32,
            self.minimum_calls as u64
                | (self.failure_rate as u64) << 32
                | (self.slow_rate as u64) << SLOW_RATE_SHIFT
                | (self.random_seed as u64) << 48,
            self.half_open_max_calls as u64
                | (self.success_threshold as u64) << 16
                | (self.jitter_permille as u64) << 32
                | (self.max_step as u64) << 48,
        ]
    }

    /// From [`words`](Self::words); any bits decode to some settings (every field is an
    /// integer that the state machine bounds where it must).
    #[inline]
    const fn decode(w: [u64; SETTINGS_WORDS]) -> Self {
        Settings {
            wait_ns: w[0],
            max_wait_ns: w[1],
            slow_call_ns: w[2],
            jitter_seed: w[3],
            backoff_factor_milli: w[4] as u32,
            failure_threshold: (w[4] >> 32) as u32,
            minimum_calls: w[5] as u32,
            failure_rate: (w[5] >> 32) as u8,
            slow_rate: (w[5] >> SLOW_RATE_SHIFT) as u8,
            random_seed: (w[5] >> 48) as u8,
            half_open_max_calls: w[6] as u16,
            success_threshold: (w[6] >> 16) as u16,
            jitter_permille: {
                // A corrupt jitter above 100 % would take more than the whole delay away.
                let j = (w[6] >> 32) as u16;
                if j > 1000 {
                    1000
                } else {
                    j
                }
            },
            max_step: (w[6] >> 48) as u16,
        }
    }

    /// The backoff, with `seed` as the jitter's seed.
    const fn backoff(&self, seed: u64) -> Backoff {
        Backoff {
            base_ns: self.wait_ns,
            factor_milli: self.backoff_factor_milli,
            max_ns: if self.max_wait_ns > MAX_WAIT_DURATION_NS {
                MAX_WAIT_DURATION_NS // a corrupt setting never makes a wait endless
            } else {
                self.max_wait_ns
            },
            jitter_permille: self.jitter_permille,
            seed,
        }
    }

    const fn limits(&self) -> Limits {
        Limits {
            half_open_max_calls: self.half_open_max_calls,
            success_threshold: self.success_threshold,
            max_step: if self.max_step > MAX_BACKOFF_STEPS {
                MAX_BACKOFF_STEPS
            } else {
                self.max_step
            },
        }
    }

    const fn detects_slow_calls(&self) -> bool {
        self.slow_rate != 0
    }
}

/// Words of a breaker's settings.
const SETTINGS_WORDS: usize = 7;
/// Where the slow-call rate sits in word 5 (the acquire path reads that word alone).
const SLOW_RATE_SHIFT: u32 = 40;

/// Bits of the transition-time word that hold the time; the top 8 hold the generation's
/// low byte as a tag.
const TIME_MASK: u64 = (1 << 56) - 1;
/// A stored time at most this far ahead of a caller's `now` (2^40 ns, about 18 minutes) is
/// another caller's later clock read, and counts as `now`; anything else is in the past. So
/// a state up to 2^56 - 2^40 ns (about 2.28 years) old reads its true age, far beyond the
/// longest wait (`MAX_WAIT_DURATION_NS`, 2^54 ns). An open breaker that nobody calls for
/// longer than that reads its age modulo 2^56 ns, and waits at most one more wait.
const AHEAD: u64 = 1 << 40;
/// The consecutive-failure word: the full generation above a 24-bit count.
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// A lock-free circuit breaker over the sliding window `W`
/// ([`CountWindow`] or [`TimeWindow`]).
///
/// Each state change is one compare-and-swap of one packed word (state, backoff step,
/// half-open probes and successes, probe-admission sequence, 25-bit generation) decided by a pure transition
/// function. The time the current state began (in half-open: the time the latest probe was
/// admitted) sits in a second word, tagged with the generation's low byte and written after
/// the change by its maker or by the first caller that needs it; until then, callers take
/// the state as having just begun. Times are kept modulo 2^56 ns: a state's age reads true
/// up to 2^56 - 2^40 ns (about 2.28 years), far beyond the longest wait (2^54 ns).
///
/// Orderings are `Relaxed` except on the time word: each word is self-contained and every
/// decision is committed by a CAS on the word it read. The time word is published with
/// Release and read with Acquire so that a caller who finds a newer generation's start there
/// also sees the newer state word and decides again on it.
///
/// A closed breaker on a count window needs no clock: [`acquire_with`](Self::acquire_with)
/// and [`record_with`](Self::record_with) read one only when the state or the configuration
/// needs time (open, half-open, slow-call detection, time window).
#[derive(Debug)]
#[repr(C)]
pub struct CircuitBreaker<W> {
    state: AtomicU64,
    time: AtomicU64,
    /// The configuration (a [`Settings`] in words), changed at run time by
    /// [`reconfigure`](CircuitBreaker::reconfigure).
    settings: Versioned<SETTINGS_WORDS>,
    consecutive_failures: AtomicU64,
    /// The jitter's seed: the configured one, or drawn at random on first use (0 = not
    /// drawn yet).
    seed: AtomicU64,
    window: W,
    counters: Counters,
}

impl<const WORDS: usize> CircuitBreaker<CountWindow<WORDS>> {
    maybe_const_fn! {
        /// A breaker on a count window of `config.window_size` outcomes (default: the
        /// window's capacity, `32 * WORDS`).
        pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
            if let Err(e) = config.validate() {
                return Err(e);
            }
            let window = match CountWindow::new(config.window_size) {
                Ok(window) => window,
                Err(e) => return Err(e),
            };
            // A rate rule that needs more outcomes than the window holds could never fire.
            let rates = config.failure_rate_threshold.is_some()
                || config.slow_call_rate_threshold.is_some();
            if rates && config.minimum_calls > window.size() {
                return Err(ConfigError::new(
                    "minimum_calls",
                    config.minimum_calls as u64,
                    "must be at most the window size when a rate rule is set",
                ));
            }
            Ok(Self::assemble(&config, window))
        }
    }
}

impl<const B: usize> CircuitBreaker<TimeWindow<B>> {
    maybe_const_fn! {
        /// A breaker on a time window of `config.window_buckets` buckets (at most `B`) of
        /// `config.bucket_duration_ns` each.
        pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
            if let Err(e) = config.validate() {
                return Err(e);
            }
            match TimeWindow::new(config.bucket_duration_ns, config.window_buckets) {
                Ok(window) => Ok(Self::assemble(&config, window)),
                Err(e) => Err(e),
            }
        }
    }
}

impl<const WORDS: usize> CircuitBreaker<CountWindow<WORDS>> {
    /// Changes the configuration at run time, keeping the state: the state, generation,
    /// backoff step, window, consecutive failures, probes and permits out all carry over,
    /// and the next decision is made on the new settings (a lowered threshold that the
    /// failures so far already reach trips at the next failure; an open breaker's wait
    /// is measured from when it opened, with the new wait).
    ///
    /// `config` is validated as [`new`](Self::new) validates it; the window cannot change
    /// (`window_size` must resolve to the current size: it holds the outcomes so far).
    /// `jitter_seed: None` keeps a seed already drawn at random, and draws one if the
    /// seed was given. Atomic: every decision reads one version of the settings (see
    /// [`reconfigure`](crate::TokenBucket::reconfigure) for how). Concurrent
    /// reconfigurations are serialised ([`ReconfigureError::Busy`] after a bounded wait).
    ///
    /// ```
    /// use fastbreaker::{BreakerConfig, CircuitBreaker, CountWindow64, Outcome, State};
    /// let breaker = CircuitBreaker::<CountWindow64>::new(BreakerConfig {
    ///     failure_threshold: Some(5),
    ///     ..BreakerConfig::new()
    /// }).unwrap();
    /// for _ in 0..3 {
    ///     let p = breaker.acquire(0).unwrap();
    ///     breaker.record(p, Outcome::Failure, 0);
    /// }
    /// breaker.reconfigure(BreakerConfig { failure_threshold: Some(4), ..breaker.config() }).unwrap();
    /// let p = breaker.acquire(0).unwrap();
    /// breaker.record(p, Outcome::Failure, 0); // the 4th consecutive failure
    /// assert_eq!(breaker.state(), State::Open);
    /// ```
    pub fn reconfigure(&self, config: BreakerConfig) -> Result<(), ReconfigureError> {
        let shape = Self::new(config)?.window.shape();
        self.apply(&config, shape, false)
    }

    /// [`reconfigure`](Self::reconfigure) for a caller that excludes other writers by its
    /// own means (a shared region, which also clears the lock of a writer that died).
    #[cfg(all(feature = "shm", unix))]
    pub(crate) fn reconfigure_exclusive(&self, config: BreakerConfig) -> Result<(), ConfigError> {
        let shape = Self::new(config)?.window.shape();
        self.apply_exclusive(&config, shape)
    }
}

impl<const B: usize> CircuitBreaker<TimeWindow<B>> {
    /// Changes the configuration at run time, keeping the state (as
    /// [`CircuitBreaker::<CountWindow<_>>::reconfigure`](CircuitBreaker::reconfigure)):
    /// `window_buckets` and `bucket_duration_ns` must resolve to the current window's.
    pub fn reconfigure(&self, config: BreakerConfig) -> Result<(), ReconfigureError> {
        let shape = Self::new(config)?.window.shape();
        self.apply(&config, shape, false)
    }

    /// [`reconfigure`](Self::reconfigure) for a caller that excludes other writers.
    #[cfg(all(feature = "shm", unix))]
    pub(crate) fn reconfigure_exclusive(&self, config: BreakerConfig) -> Result<(), ConfigError> {
        let shape = Self::new(config)?.window.shape();
        self.apply_exclusive(&config, shape)
    }
}

impl<W: Window> CircuitBreaker<W> {
    /// [`apply`](Self::apply) by a writer that excludes the others (never busy).
    #[cfg(all(feature = "shm", unix))]
    fn apply_exclusive(
        &self,
        config: &BreakerConfig,
        shape: WindowShape,
    ) -> Result<(), ConfigError> {
        self.apply(config, shape, true).map_err(|e| match e {
            ReconfigureError::Invalid(e) => e,
            ReconfigureError::Busy => unreachable!("exclusive writes do not wait"),
        })
    }

    /// Publishes `config` (validated, its window of shape `shape`) as the next settings.
    fn apply(
        &self,
        config: &BreakerConfig,
        shape: WindowShape,
        exclusive: bool,
    ) -> Result<(), ReconfigureError> {
        const FIXED: &str = "cannot change at run time (the window holds the outcomes so far): \
                             build a new breaker";
        match (shape, self.window.shape()) {
            (WindowShape::Count { size }, WindowShape::Count { size: now }) if size != now => {
                return Err(ConfigError::new("window_size", size as u64, FIXED).into());
            }
            (
                WindowShape::Time {
                    buckets,
                    bucket_duration_ns,
                },
                WindowShape::Time {
                    buckets: now_buckets,
                    bucket_duration_ns: now_duration,
                },
            ) => {
                if buckets != now_buckets {
                    return Err(ConfigError::new("window_buckets", buckets as u64, FIXED).into());
                }
                if bucket_duration_ns != now_duration {
                    return Err(
                        ConfigError::new("bucket_duration_ns", bucket_duration_ns, FIXED).into(),
                    );
                }
            }
            _ => {}
        }
        let words = Settings::from_config(config).words();
        let given_seed = config.jitter_seed;
        let make = |_, current| {
            // The seed in use: a given one replaces it; `None` keeps one drawn at random,
            // and has one drawn (0: not yet) if the seed was given.
            match given_seed {
                Some(seed) => self.seed.store(seed, Ordering::Relaxed),
                None if Settings::decode(current).random_seed == 0 => {
                    self.seed.store(0, Ordering::Relaxed)
                }
                None => {}
            }
            words
        };
        if exclusive {
            self.settings.write_exclusive(make, |_| {});
            Ok(())
        } else {
            self.settings
                .write(make, |_| {})
                .map(drop)
                .map_err(|_| ReconfigureError::Busy)
        }
    }
}

impl<W> CircuitBreaker<W> {
    maybe_const_fn! {
        fn assemble(config: &BreakerConfig, window: W) -> Self {
            CircuitBreaker {
                state: AtomicU64::new(Word::INITIAL.pack()),
                time: AtomicU64::new(0),
                settings: Versioned::new(Settings::from_config(config).words()),
                consecutive_failures: AtomicU64::new(0),
                seed: AtomicU64::new(match config.jitter_seed {
                    Some(s) => s,
                    None => 0,
                }),
                window,
                counters: Counters {
                    unrecorded: AtomicU64::new(0),
                    rejected: AtomicU64::new(0),
                    succeeded: AtomicU64::new(0),
                    failed: AtomicU64::new(0),
                    ignored: AtomicU64::new(0),
                    slow: AtomicU64::new(0),
                    trips: AtomicU64::new(0),
                },
            }
        }
    }
}

#[cfg(test)]
impl<W> CircuitBreaker<W> {
    /// Stores arbitrary bits in every atomic word but the window's (tests of corrupt
    /// shared state).
    pub(crate) fn scramble(&self, next: &mut dyn FnMut() -> u64) {
        for a in [
            &self.state,
            &self.time,
            &self.consecutive_failures,
            &self.seed,
        ] {
            a.store(next(), Ordering::Relaxed);
        }
        self.settings.scramble(next);
        let c = &self.counters;
        for a in [
            &c.unrecorded,
            &c.rejected,
            &c.succeeded,
            &c.failed,
            &c.ignored,
            &c.slow,
            &c.trips,
        ] {
            a.store(next(), Ordering::Relaxed);
        }
    }
}

#[cfg(all(feature = "shm", unix))]
impl<W: crate::window::SameSettings> crate::window::SameSettings for CircuitBreaker<W> {
    fn same_settings(&self, other: &Self) -> bool {
        self.settings.read().1 == other.settings.read().1
            && self.window.same_settings(&other.window)
    }

    fn same_shape(&self, other: &Self) -> bool {
        self.window.same_settings(&other.window)
    }
}

impl<W: Window> CircuitBreaker<W> {
    /// The current state.
    #[inline]
    pub fn state(&self) -> State {
        Word::state_of(self.state.load(Ordering::Relaxed))
    }

    /// One version of the settings.
    #[inline]
    fn settings(&self) -> Settings {
        Settings::decode(self.settings.read().1)
    }

    /// Whether slow calls are a rule (one word of the settings: its own snapshot).
    #[inline]
    fn detects_slow_calls(&self) -> bool {
        (self.settings.word(5) >> SLOW_RATE_SHIFT) as u8 != 0
    }

    /// The current generation.
    #[inline]
    pub fn generation(&self) -> u64 {
        Word::generation_of(self.state.load(Ordering::Relaxed))
    }

    /// The window this breaker records into: for tests and bindings only, through
    /// [`binding::window`](crate::binding::window) (clearing it by hand would break the
    /// breaker's counts).
    pub(crate) fn window(&self) -> &W {
        &self.window
    }

    /// The backoff of the open wait, with the jitter seed in use (0 while a random seed is
    /// yet to be drawn).
    pub fn backoff(&self) -> Backoff {
        self.settings().backoff(self.seed.load(Ordering::Relaxed))
    }

    /// Asks to make a call at time `now` (ns).
    ///
    /// `Ok` carries the permit to [`record`](Self::record) the outcome with, and the state
    /// change the acquire made, if any (Open -> HalfOpen once the wait is over).
    #[inline]
    pub fn acquire(&self, now: u64) -> Result<Permit, Rejected> {
        self.acquire_inner(&mut { now })
    }

    /// [`acquire`](Self::acquire), reading `clock` only if the state or configuration needs
    /// the time.
    #[inline]
    pub fn acquire_with<C: Clock + ?Sized>(&self, clock: &C) -> Result<Permit, Rejected> {
        self.acquire_inner(&mut LazyNow::new(clock))
    }

    /// Records the outcome of a permitted call at time `now`; the call's duration (for
    /// slow-call detection) is `now` minus the acquire's `now`.
    ///
    /// Returns the state change this outcome made, if any.
    #[inline]
    pub fn record(&self, permit: Permit, outcome: Outcome, now: u64) -> Option<Transition> {
        let duration = now.saturating_sub(permit.started_at);
        self.record_inner(permit, outcome, duration, &mut { now })
    }

    /// [`record`](Self::record) with the call's duration given by the caller.
    #[inline]
    pub fn record_with_duration(
        &self,
        permit: Permit,
        outcome: Outcome,
        duration_ns: u64,
        now: u64,
    ) -> Option<Transition> {
        self.record_inner(permit, outcome, duration_ns, &mut { now })
    }

    /// [`record`](Self::record), reading `clock` only if needed.
    #[inline]
    pub fn record_with<C: Clock + ?Sized>(
        &self,
        clock: &C,
        permit: Permit,
        outcome: Outcome,
    ) -> Option<Transition> {
        let mut now = LazyNow::new(clock);
        let duration = if self.detects_slow_calls() && outcome != Outcome::Ignored {
            now.get().saturating_sub(permit.started_at)
        } else {
            0
        };
        self.record_inner(permit, outcome, duration, &mut now)
    }

    /// Forces the breaker open: every call is rejected until [`reset`](Self::reset).
    pub fn force_open(&self, now: u64) -> Option<Transition> {
        self.manual(State::ForcedOpen, now)
    }

    /// Opens the breaker now, as if a rule had fired: calls are refused until the first
    /// open wait (`wait_duration`, backoff step 0) has passed, then probes are admitted.
    /// Starts a new generation (outstanding permits become stale) and counts as a trip.
    pub fn trip(&self, now: u64) -> Option<Transition> {
        self.manual(State::Open, now)
    }

    /// Moves the breaker to HalfOpen now: the next calls are probes (up to
    /// `half_open_max_calls`), and `success_threshold` successes close it. New generation.
    pub fn half_open(&self, now: u64) -> Option<Transition> {
        self.manual(State::HalfOpen, now)
    }

    /// Disables the breaker: every call goes through and nothing is recorded.
    pub fn disable(&self, now: u64) -> Option<Transition> {
        self.manual(State::Disabled, now)
    }

    /// Metrics-only: every call goes through, outcomes are recorded, nothing trips.
    pub fn metrics_only(&self, now: u64) -> Option<Transition> {
        self.manual(State::MetricsOnly, now)
    }

    /// Back to Closed with an empty window, a zero backoff step and a new generation
    /// (outstanding permits become stale). Lifetime counters are kept.
    pub fn reset(&self, now: u64) -> Option<Transition> {
        self.manual(State::Closed, now)
    }

    /// Nanoseconds until an open breaker admits a probe; 0 in every other state.
    pub fn retry_after(&self, now: u64) -> u64 {
        let s = self.settings();
        loop {
            let w = Word::unpack(self.state.load(Ordering::Relaxed));
            if w.state != State::Open {
                return 0;
            }
            if let Some(left) = self.wait_left(w, now, &s) {
                return left;
            }
        }
    }

    /// A snapshot of the state and counters at time `now`.
    pub fn metrics(&self, now: u64) -> Metrics {
        let w = Word::unpack(self.state.load(Ordering::Relaxed));
        let c = &self.counters;
        let succeeded = c.succeeded.load(Ordering::Relaxed);
        let failed = c.failed.load(Ordering::Relaxed);
        let ignored = c.ignored.load(Ordering::Relaxed);
        // Never negative as read: each decrement follows its increment on the same atomic,
        // so coherence shows the increment whenever it shows the decrement. Hence
        // succeeded + failed + ignored <= permitted in every snapshot.
        let unrecorded = c.unrecorded.load(Ordering::Relaxed);
        Metrics {
            state: w.state,
            generation: w.generation,
            permitted: unrecorded
                .wrapping_add(succeeded)
                .wrapping_add(failed)
                .wrapping_add(ignored),
            rejected: c.rejected.load(Ordering::Relaxed),
            succeeded,
            failed,
            ignored,
            slow: c.slow.load(Ordering::Relaxed),
            trips: c.trips.load(Ordering::Relaxed),
            consecutive_failures: self.consecutive(w.generation),
            half_open_in_flight: if w.state == State::HalfOpen {
                w.in_flight
            } else {
                0
            },
            window: self.window.stats(now),
            last_transition_at: if w.generation == 0 {
                None
            } else {
                self.read_time(w.generation, now)
            },
            retry_after: if w.state == State::Open {
                self.retry_after(now)
            } else {
                0
            },
        }
    }

    /// [`metrics`](Self::metrics) at the clock's time.
    pub fn metrics_with<C: Clock + ?Sized>(&self, clock: &C) -> Metrics {
        self.metrics(clock.now_ns())
    }

    /// The configuration the breaker was built from, read back (defaults resolved: the
    /// window's size or bucket count as built; `jitter_seed` is the seed in use, `None`
    /// while a random one is yet to be drawn).
    pub fn config(&self) -> BreakerConfig {
        let s = &self.settings();
        let nonzero32 = |v: u32| if v == 0 { None } else { Some(v) };
        let nonzero8 = |v: u8| if v == 0 { None } else { Some(v) };
        let seed = self.seed.load(Ordering::Relaxed);
        let mut c = BreakerConfig {
            failure_threshold: nonzero32(s.failure_threshold),
            failure_rate_threshold: nonzero8(s.failure_rate),
            slow_call_rate_threshold: nonzero8(s.slow_rate),
            slow_call_duration_ns: s.slow_call_ns,
            minimum_calls: s.minimum_calls,
            window_size: None,
            window_buckets: None,
            bucket_duration_ns: BreakerConfig::new().bucket_duration_ns,
            wait_duration_ns: s.wait_ns,
            backoff_factor_milli: s.backoff_factor_milli,
            max_wait_duration_ns: if s.max_wait_ns == MAX_WAIT_DURATION_NS {
                None
            } else {
                Some(s.max_wait_ns)
            },
            jitter_permille: s.jitter_permille,
            jitter_seed: if s.random_seed != 0 && seed == 0 {
                None
            } else {
                Some(seed)
            },
            half_open_max_calls: s.half_open_max_calls,
            success_threshold: s.success_threshold,
        };
        match self.window.shape() {
            WindowShape::Count { size } => c.window_size = Some(size as u16),
            WindowShape::Time {
                buckets,
                bucket_duration_ns,
            } => {
                c.window_buckets = Some(buckets as u16);
                c.bucket_duration_ns = bucket_duration_ns;
            }
        }
        c
    }

    // ----- internals -----

    #[inline]
    fn acquire_inner(&self, now: &mut impl Now) -> Result<Permit, Rejected> {
        let mut cur = self.state.load(Ordering::Relaxed);
        if let Some(kind) = state::acquire_without_change(cur) {
            // Closed, metrics-only or disabled: the word stays as it is (the shortcut decides
            // as `state::next` does; tested there).
            if kind == PermitKind::Observe {
                self.counters.unrecorded.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(Permit {
                generation: Word::generation_of(cur),
                kind,
                started_at: if self.detects_slow_calls() {
                    now.get()
                } else {
                    0
                },
                transition: None,
            });
        }
        // One version of the settings for the whole decision.
        let s = self.settings();
        let limits = s.limits();
        loop {
            let w = Word::unpack(cur);
            let needs_time = w.state == State::Open
                || (w.state == State::HalfOpen && w.in_flight >= limits.half_open_max_calls);
            let left = if needs_time {
                // Acquire: pairs with the Release CAS that took a probe slot (below). A caller
                // that finds every slot taken then also finds the probe time that the last
                // taker bumped before its CAS, so it never presumes a young probe hung.
                let seen = self.state.load(Ordering::Acquire);
                if seen != cur {
                    cur = seen;
                    continue;
                }
                match self.wait_left(w, now.get(), &s) {
                    Some(left) => left,
                    None => {
                        // The state moved on since we loaded it: decide on the new one.
                        cur = self.state.load(Ordering::Relaxed);
                        continue;
                    }
                }
            } else {
                u64::MAX
            };
            match state::next(
                w,
                Event::Acquire {
                    wait_elapsed: left == 0,
                },
                limits,
            ) {
                Decision::Permit { kind, next } => {
                    let mut transition = None;
                    if let Some(n) = next {
                        if n.generation == w.generation {
                            // Another probe of the same half-open period: restart the probe
                            // clock first, so that the probes out are presumed hung only
                            // once the youngest of them has been out as long as the wait.
                            // (Before the CAS, which publishes it: a caller that then sees
                            // the slot taken also finds the newer time. A caller that decided
                            // on the word before this admission fails its CAS, because every
                            // admission changes the word's sequence.)
                            self.bump_time(w.generation, now.get());
                        }
                    }
                    let generation = match next {
                        None => w.generation,
                        Some(n) => {
                            if let Err(actual) = self.state.compare_exchange_weak(
                                cur,
                                n.pack(),
                                // Release: pairs with the Acquire load of a caller that finds
                                // the slots full (above): it publishes the probe time bumped
                                // before this CAS. Taken only on the way out of Closed-like
                                // states, never on the closed hot path.
                                Ordering::Release,
                                Ordering::Relaxed,
                            ) {
                                cur = actual;
                                continue;
                            }
                            transition = self.committed(w, n, now.get());
                            n.generation
                        }
                    };
                    if matches!(kind, PermitKind::Probe | PermitKind::Observe) {
                        self.counters.unrecorded.fetch_add(1, Ordering::Relaxed);
                    }
                    let started_at = if s.detects_slow_calls() { now.get() } else { 0 };
                    return Ok(Permit {
                        generation,
                        kind,
                        started_at,
                        transition,
                    });
                }
                Decision::Refuse(r) => {
                    self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(match r {
                        Refusal::Open => Rejected::Open { retry_after: left },
                        Refusal::HalfOpenFull => Rejected::HalfOpenFull,
                        Refusal::ForcedOpen => Rejected::ForcedOpen,
                    });
                }
                Decision::Record { .. } | Decision::Manual { .. } => {
                    unreachable!("acquire yields permit or refusal")
                }
            }
        }
    }

    #[inline]
    fn record_inner(
        &self,
        permit: Permit,
        outcome: Outcome,
        duration: u64,
        now: &mut impl Now,
    ) -> Option<Transition> {
        if permit.kind == PermitKind::Passive {
            return None;
        }
        let s = &self.settings();
        let slow =
            s.detects_slow_calls() && outcome != Outcome::Ignored && duration > s.slow_call_ns;
        let c = &self.counters;
        match outcome {
            Outcome::Success => c.succeeded.fetch_add(1, Ordering::Relaxed),
            Outcome::Failure => c.failed.fetch_add(1, Ordering::Relaxed),
            Outcome::Ignored => c.ignored.fetch_add(1, Ordering::Relaxed),
        };
        if permit.kind != PermitKind::Normal {
            // Its admission was counted in `unrecorded`; from now on its outcome counts it.
            c.unrecorded.fetch_sub(1, Ordering::Relaxed);
        }
        if slow {
            c.slow.fetch_add(1, Ordering::Relaxed);
        }
        let mut cur = self.state.load(Ordering::Relaxed);
        if Word::generation_of(cur) != permit.generation {
            return None; // stale: counted above, moves nothing
        }
        let (outcome, trip) = match permit.kind {
            PermitKind::Normal | PermitKind::Observe => {
                if outcome == Outcome::Ignored {
                    return None;
                }
                let trip =
                    self.observe(permit.generation, outcome == Outcome::Failure, slow, now, s);
                if permit.kind == PermitKind::Observe || !trip {
                    return None;
                }
                (outcome, true)
            }
            // A slow probe is a failed probe when slow calls are a trip rule.
            PermitKind::Probe if slow => (Outcome::Failure, false),
            PermitKind::Probe | PermitKind::Passive => (outcome, false),
        };
        let event = Event::Record {
            generation: permit.generation,
            outcome,
            trip,
        };
        loop {
            let w = Word::unpack(cur);
            match state::next(w, event, s.limits()) {
                Decision::Record { next: Some(n), .. } => {
                    match self.state.compare_exchange_weak(
                        cur,
                        n.pack(),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return self.committed(w, n, now.get()),
                        Err(actual) => cur = actual,
                    }
                }
                _ => return None,
            }
        }
    }

    /// Puts an outcome of generation `gen` into the consecutive counter and the window;
    /// whether a rule fired.
    #[inline]
    fn observe(
        &self,
        gen: u64,
        failure: bool,
        slow: bool,
        now: &mut impl Now,
        s: &Settings,
    ) -> bool {
        let mut trip = false;
        if failure {
            match self.count_failure(gen) {
                Some(n) => trip = s.failure_threshold != 0 && n >= s.failure_threshold,
                None => return false, // a later generation owns the counter: stale
            }
        } else {
            self.count_success(gen);
        }
        if Word::generation_of(self.state.load(Ordering::Relaxed)) != gen {
            return false; // the state changed meanwhile: keep the outcome out of the window
        }
        let t = if W::NEEDS_TIME { now.get() } else { 0 };
        self.window.record(failure, slow, t);
        if (failure && s.failure_rate != 0) || (slow && s.slow_rate != 0) {
            let st = self.window.stats(t);
            trip |= failure
                && s.failure_rate != 0
                && st.reaches(st.failures, s.failure_rate, s.minimum_calls);
            trip |= slow && s.slow_rate != 0 && st.reaches(st.slow, s.slow_rate, s.minimum_calls);
        }
        trip
    }

    fn manual(&self, to: State, now: u64) -> Option<Transition> {
        let limits = self.settings().limits();
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            let w = Word::unpack(cur);
            let n = match state::next(w, Event::Manual(to), limits) {
                Decision::Manual { next } => next,
                _ => unreachable!("manual events yield Manual"),
            };
            match self.state.compare_exchange_weak(
                cur,
                n.pack(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return self.committed(w, n, now),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Follow-up of a committed CAS from `from` to `to`: publish the time, clear what the
    /// new state starts without, and report the change.
    fn committed(&self, from: Word, to: Word, now: u64) -> Option<Transition> {
        if to.generation == from.generation {
            return None; // a probe slot taken or handed back
        }
        self.publish_time(to.generation, now);
        let tripped = to.state == State::Open;
        if tripped {
            self.counters.trips.fetch_add(1, Ordering::Relaxed);
        }
        // The consecutive counter is tagged with its full generation, so an earlier
        // generation's count reads as 0. Every new generation also starts it at 0 (counting
        // period or not), so the counter's tag is never more than one generation behind and
        // no count can outlive its generation however many generations pass (the tag wraps
        // after 2^25). The window is cleared only while the new generation is still current,
        // so a delayed clear does not wipe a later period (up to the few instructions between
        // the check and the clear: see the README's notes on concurrency).
        self.start_count(to.generation);
        if (tripped || to.state == State::Closed)
            && Word::generation_of(self.state.load(Ordering::Relaxed)) == to.generation
        {
            self.window.clear();
        }
        (from.state != to.state).then_some(Transition {
            from: from.state,
            to: to.state,
            generation: to.generation,
            at: now,
        })
    }

    /// Nanoseconds left of the wait of the Open (or half-open probe timeout) period `w`;
    /// `None` if `w` is no longer the current state.
    fn wait_left(&self, w: Word, now: u64, s: &Settings) -> Option<u64> {
        let since = self.transition_time(w.generation, now)?;
        let step = w.step.min(s.limits().max_step);
        let wait = s
            .backoff(self.jitter_seed(s))
            .delay(step as u32, w.generation);
        Some(wait.saturating_sub(now.saturating_sub(since)))
    }

    /// When generation `gen` began; publishes `now` for it if nobody has yet. `None` if
    /// `gen` is no longer current.
    fn transition_time(&self, gen: u64, now: u64) -> Option<u64> {
        match self.read_time(gen, now) {
            Some(t) => Some(t),
            None => self.publish_time(gen, now).then_some(now),
        }
    }

    /// The seed of the jitter: the configured one, or one drawn from the OS on first use.
    fn jitter_seed(&self, s: &Settings) -> u64 {
        let seed = self.seed.load(Ordering::Relaxed);
        if seed != 0 || s.random_seed == 0 || s.jitter_permille == 0 {
            return seed;
        }
        #[cfg(feature = "std")]
        {
            let drawn = random_seed();
            // Relaxed: the seed is a self-contained value; the first draw stored wins.
            match self
                .seed
                .compare_exchange(0, drawn, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => drawn,
                Err(actual) => actual,
            }
        }
        #[cfg(not(feature = "std"))]
        {
            0 // unreachable with a validated config: without std, jitter needs a seed
        }
    }

    /// Starts generation `gen`'s run of consecutive failures at 0, unless a later
    /// generation already owns the counter.
    fn start_count(&self, gen: u64) {
        let fresh = gen << COUNT_BITS;
        let mut cur = self.consecutive_failures.load(Ordering::Relaxed);
        loop {
            let ctag = cur >> COUNT_BITS;
            if ctag == gen || generation_after(ctag, gen) {
                return;
            }
            match self.consecutive_failures.compare_exchange_weak(
                cur,
                fresh,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Adds a failure of generation `gen` to the consecutive counter (tagged with the full
    /// generation: a counter of an earlier generation counts as 0). Returns the new count,
    /// or `None` if a later generation owns the counter.
    fn count_failure(&self, gen: u64) -> Option<u32> {
        let mut cur = self.consecutive_failures.load(Ordering::Relaxed);
        loop {
            let (ctag, count) = (cur >> COUNT_BITS, cur & COUNT_MASK);
            let n = if ctag == gen {
                (count + 1).min(COUNT_MASK)
            } else if generation_after(ctag, gen) {
                return None;
            } else {
                1
            };
            let next = (gen << COUNT_BITS) | n;
            match self.consecutive_failures.compare_exchange_weak(
                cur,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(n as u32),
                Err(actual) => cur = actual,
            }
        }
    }

    /// A success of generation `gen` ends the run of failures. Reads only, unless there is
    /// a run of this generation to end.
    fn count_success(&self, gen: u64) {
        let mut cur = self.consecutive_failures.load(Ordering::Relaxed);
        while cur >> COUNT_BITS == gen && cur & COUNT_MASK != 0 {
            match self.consecutive_failures.compare_exchange_weak(
                cur,
                gen << COUNT_BITS,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// The consecutive failures of generation `gen`.
    fn consecutive(&self, gen: u64) -> u32 {
        let cur = self.consecutive_failures.load(Ordering::Relaxed);
        if cur >> COUNT_BITS == gen {
            (cur & COUNT_MASK) as u32
        } else {
            0
        }
    }

    /// Moves generation `gen`'s start forward to `now` (a new probe of the same half-open
    /// period), or publishes it if it is not stored yet.
    fn bump_time(&self, gen: u64, now: u64) {
        let tag = gen as u8;
        let new = ((tag as u64) << 56) | (now & TIME_MASK);
        // Acquire: pairs with the Release CASes of the time word (`publish_time`, below).
        let mut cur = self.time.load(Ordering::Acquire);
        loop {
            match start_in(cur, gen, now) {
                None => {
                    self.publish_time(gen, now);
                    return;
                }
                Some(t) if t < now => {}
                Some(_) => return, // already at now or later
            }
            match self.time.compare_exchange_weak(
                cur,
                new,
                // Release: pairs with the Acquire loads in `read_time`.
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// The start of generation `gen`, if the time word holds it.
    fn read_time(&self, gen: u64, now: u64) -> Option<u64> {
        // Acquire: pairs with the Release CAS in `publish_time`. Whoever sees generation g's
        // start then also sees the state word at g or later (the publisher read it there),
        // so a caller holding an older word finds out, reloads it, and does not mistake a
        // newer generation's start for a missing one of its own.
        start_in(self.time.load(Ordering::Acquire), gen, now)
    }

    /// Stores `t` as the start of generation `gen`, if `gen` is the current generation and
    /// its start is not stored yet. Returns whether `gen` is (or was, an instant ago) current.
    ///
    /// Only the current generation publishes, and it checks that after loading the time
    /// word: a CAS that succeeds therefore overwrote no later generation's start, and a
    /// late publisher cannot hide the current one's (a later generation overwrites any
    /// other tag when it publishes, and its readers publish for it if its maker is late).
    fn publish_time(&self, gen: u64, t: u64) -> bool {
        let tag = gen as u8;
        let new = ((tag as u64) << 56) | (t & TIME_MASK);
        // Acquire: pairs with the Release CAS below, made by another publisher.
        let mut cur = self.time.load(Ordering::Acquire);
        loop {
            if (cur >> 56) as u8 == tag {
                return true;
            }
            if Word::generation_of(self.state.load(Ordering::Relaxed)) != gen {
                return false;
            }
            match self.time.compare_exchange_weak(
                cur,
                new,
                // Release: pairs with the Acquire loads of the time word (see
                // `read_time`); publishes the state word this thread checked above.
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }
}

/// The start of generation `gen` held by the time word `t`, read at `now`; `None` if `t`
/// holds another generation's.
#[inline]
fn start_in(t: u64, gen: u64, now: u64) -> Option<u64> {
    if (t >> 56) as u8 != gen as u8 {
        return None;
    }
    let elapsed = (now & TIME_MASK).wrapping_sub(t & TIME_MASK) & TIME_MASK;
    // A stored time a little "ahead" of now (another caller's later clock) counts as now;
    // anything else lies in the past (see `AHEAD`).
    Some(if elapsed > TIME_MASK - AHEAD {
        now
    } else {
        now.saturating_sub(elapsed)
    })
}

/// A random seed from the operating system: std's `RandomState` keys are drawn from the
/// OS's entropy once per thread and differ for every instance.
#[cfg(feature = "std")]
fn random_seed() -> u64 {
    use core::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    match h.finish() {
        0 => 0x9E37_79B9_7F4A_7C15,
        s => s,
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
pub(crate) mod tests;
