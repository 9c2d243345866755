//! The sequential reference model of the circuit breaker, written from the README and the
//! docs, not from the core's code: a `VecDeque` for the count window, a list of timestamped
//! outcomes for the time window, an explicit state, explicit counters, and plain 128-bit
//! arithmetic for the backoff.
//!
//! Shared by the property tests (`tests/tests/proptest_model.rs`) and the fuzz targets
//! (`tests/fuzz/`), which include this file with `#[path]`. It uses nothing but `std` and
//! `fastbreaker`'s public types; its own checks are `assert!`s (a broken model panics).
//!
//! The rules it implements (one per defect of issue 13 marked *):
//! - Configurations are valid as [`validate`] says (field by field, in the core's order).
//! - A consecutive-failure run belongs to one closed or metrics-only period: a new period
//!   starts at 0, however many periods pass (*).
//! - A half-open probe is timed from its own admission: a full half-open breaker admits a
//!   new probe (new generation, the successes so far kept) only once the youngest probe out
//!   has been out for the wait (*).
//! - The wait grows by the factor at each reopening from half-open and saturates at its
//!   cap; the cap must be reachable within `MAX_BACKOFF_STEPS` reopenings (*).
//! - Every wait is at most `MAX_WAIT_DURATION_NS` (2^54 ns) and ends (*): the breaker keeps
//!   times modulo 2^56 ns, a stored time up to `AHEAD` ahead of `now` counts as `now`, any
//!   other as past (so a state older than 2^56 - `AHEAD` ns reads its age modulo 2^56).
#![allow(dead_code)]

use std::collections::VecDeque;

use fastbreaker::limits::{MAX_BACKOFF_STEPS, MAX_WAIT_DURATION_NS};
use fastbreaker::{
    Backoff, BreakerConfig, Metrics, Outcome, PermitKind, Rejected, State, Transition, WindowStats,
};

/// The breaker keeps the start of its current state modulo 2^56 ns.
pub const TIME_MASK: u64 = (1 << 56) - 1;
/// A stored time at most this far ahead of `now` is another caller's later clock read and
/// counts as `now` (the core's documented tolerance).
pub const AHEAD: u64 = 1 << 40;
/// The largest failure threshold (the counter has 24 bits).
pub const MAX_FAILURE_THRESHOLD: u32 = (1 << 24) - 1;

/// When a stored start `since` reads at `now`: its age is taken modulo 2^56 ns, and a time
/// a little ahead of `now` reads as `now`.
pub fn observed_since(since: u64, now: u64) -> u64 {
    let elapsed = now.wrapping_sub(since) & TIME_MASK;
    if elapsed > TIME_MASK - AHEAD {
        now
    } else {
        now.saturating_sub(elapsed)
    }
}

/// The cap of the grown wait: the configured one, or the longest wait of all.
pub fn cap(config: &BreakerConfig) -> u64 {
    config.max_wait_duration_ns.unwrap_or(MAX_WAIT_DURATION_NS)
}

/// One growth step, `d * factor / 1000` rounded down, at most `cap`.
fn grow(d: u128, factor_milli: u32, cap: u128) -> u128 {
    (d * u128::from(factor_milli) / 1000).min(cap)
}

/// `base * factor^step` (factor in thousandths), rounded down at each step and capped:
/// written independently of `Backoff::delay`, in 128-bit arithmetic.
pub fn plain_delay(config: &BreakerConfig, step: u32) -> u64 {
    let cap = u128::from(cap(config));
    let mut d = u128::from(config.wait_duration_ns).min(cap);
    for _ in 0..step {
        if d >= cap {
            break;
        }
        let next = grow(d, config.backoff_factor_milli, cap);
        if next == d {
            break; // rounding keeps it here for good
        }
        d = next;
    }
    u64::try_from(d).expect("capped below u64::MAX")
}

/// Reopenings until the wait reaches its cap: `Some(0)` if it never grows, `None` if it
/// cannot reach the cap within `MAX_BACKOFF_STEPS` (such a configuration is refused).
pub fn steps_to_cap(config: &BreakerConfig) -> Option<u32> {
    let cap = u128::from(cap(config));
    let mut d = u128::from(config.wait_duration_ns);
    if config.backoff_factor_milli <= 1000 || d >= cap {
        return Some(0);
    }
    for steps in 1..=u32::from(MAX_BACKOFF_STEPS) {
        d = grow(d, config.backoff_factor_milli, cap);
        if d >= cap {
            return Some(steps);
        }
    }
    None
}

/// The window type a breaker is built on, by its capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// A count window of up to `capacity` outcomes.
    Count { capacity: u16 },
    /// A time window of up to `capacity` buckets.
    Time { capacity: u16 },
}

impl WindowSpec {
    /// The window's size (count) or bucket count (time) that `config` resolves to: the
    /// given one, or the default (100 outcomes, 10 buckets) if the capacity allows it.
    pub fn resolved(self, config: &BreakerConfig) -> u16 {
        match self {
            WindowSpec::Count { capacity } => config.window_size.unwrap_or(capacity.min(100)),
            WindowSpec::Time { capacity } => config.window_buckets.unwrap_or(capacity.min(10)),
        }
    }
}

/// The documented validation, in the core's order: `Err((field, value))` for the first
/// field that is out of range.
pub fn validate(config: &BreakerConfig, window: WindowSpec) -> Result<(), (&'static str, u64)> {
    let c = config;
    if let Some(n) = c.failure_threshold {
        if n == 0 || n > MAX_FAILURE_THRESHOLD {
            return Err(("failure_threshold", n.into()));
        }
    }
    for (field, rate) in [
        ("failure_rate_threshold", c.failure_rate_threshold),
        ("slow_call_rate_threshold", c.slow_call_rate_threshold),
    ] {
        if let Some(p) = rate {
            if p == 0 || p > 100 {
                return Err((field, p.into()));
            }
        }
    }
    if c.slow_call_duration_ns == 0 {
        return Err(("slow_call_duration_ns", 0));
    }
    if c.minimum_calls == 0 {
        return Err(("minimum_calls", 0));
    }
    if c.wait_duration_ns == 0 || c.wait_duration_ns > MAX_WAIT_DURATION_NS {
        return Err(("wait_duration_ns", c.wait_duration_ns));
    }
    if c.backoff_factor_milli < 1000 {
        return Err(("backoff_factor_milli", c.backoff_factor_milli.into()));
    }
    if let Some(m) = c.max_wait_duration_ns {
        if m < c.wait_duration_ns || m > MAX_WAIT_DURATION_NS {
            return Err(("max_wait_duration_ns", m));
        }
    }
    if steps_to_cap(c).is_none() {
        return Err(("backoff_factor_milli", c.backoff_factor_milli.into()));
    }
    if c.jitter_permille > 1000 {
        return Err(("jitter_permille", c.jitter_permille.into()));
    }
    if c.half_open_max_calls == 0 || c.half_open_max_calls > 1023 {
        return Err(("half_open_max_calls", c.half_open_max_calls.into()));
    }
    if c.success_threshold == 0 || c.success_threshold > 1023 {
        return Err(("success_threshold", c.success_threshold.into()));
    }
    match window {
        WindowSpec::Count { capacity } => {
            let size = window.resolved(c);
            if size == 0 || size > capacity {
                return Err(("window_size", size.into()));
            }
            let rates = c.failure_rate_threshold.is_some() || c.slow_call_rate_threshold.is_some();
            if rates && c.minimum_calls > u32::from(size) {
                return Err(("minimum_calls", c.minimum_calls.into()));
            }
        }
        WindowSpec::Time { capacity } => {
            if c.bucket_duration_ns == 0 {
                return Err(("bucket_duration_ns", 0));
            }
            let buckets = window.resolved(c);
            if buckets == 0 || buckets > capacity {
                return Err(("window_buckets", buckets.into()));
            }
        }
    }
    Ok(())
}

/// Whether `part` of the window's samples reaches `percent` %, once `minimum` are in.
pub fn reaches(stats: WindowStats, part: u64, percent: u8, minimum: u32) -> bool {
    stats.samples > 0
        && stats.samples >= u64::from(minimum)
        && u128::from(part) * 100 >= u128::from(percent) * u128::from(stats.samples)
}

#[derive(Debug, Clone)]
pub enum ModelWindow {
    /// The last `size` outcomes, oldest first: (failure, slow).
    Count {
        size: usize,
        outcomes: VecDeque<(bool, bool)>,
    },
    /// Outcomes with their bucket number: (epoch, failure, slow), over `buckets` buckets.
    Time {
        bucket_ns: u64,
        buckets: u64,
        outcomes: Vec<(u64, bool, bool)>,
    },
}

impl ModelWindow {
    /// The window `config` describes on a window type of `spec` (a valid config).
    pub fn new(config: &BreakerConfig, spec: WindowSpec) -> Self {
        match spec {
            WindowSpec::Count { .. } => ModelWindow::Count {
                size: usize::from(spec.resolved(config)),
                outcomes: VecDeque::new(),
            },
            WindowSpec::Time { .. } => ModelWindow::Time {
                bucket_ns: config.bucket_duration_ns,
                buckets: u64::from(spec.resolved(config)),
                outcomes: Vec::new(),
            },
        }
    }

    pub fn push(&mut self, failure: bool, slow: bool, now: u64) {
        match self {
            ModelWindow::Count { size, outcomes } => {
                outcomes.push_back((failure, slow));
                while outcomes.len() > *size {
                    outcomes.pop_front();
                }
            }
            ModelWindow::Time {
                bucket_ns,
                buckets,
                outcomes,
            } => {
                let epoch = now / *bucket_ns;
                outcomes.retain(|&(e, _, _)| e + *buckets > epoch);
                outcomes.push((epoch, failure, slow));
            }
        }
    }

    pub fn stats(&self, now: u64) -> WindowStats {
        let mut s = WindowStats::default();
        let mut add = |failure: bool, slow: bool| {
            s.samples += 1;
            s.failures += u64::from(failure);
            s.slow += u64::from(slow);
        };
        match self {
            ModelWindow::Count { outcomes, .. } => {
                for &(failure, slow) in outcomes {
                    add(failure, slow);
                }
            }
            ModelWindow::Time {
                bucket_ns,
                buckets,
                outcomes,
            } => {
                let epoch = now / *bucket_ns;
                for &(e, failure, slow) in outcomes {
                    assert!(e <= epoch, "time went backwards in the model");
                    if epoch - e < *buckets {
                        add(failure, slow);
                    }
                }
            }
        }
        s
    }

    pub fn clear(&mut self) {
        match self {
            ModelWindow::Count { outcomes, .. } => outcomes.clear(),
            ModelWindow::Time { outcomes, .. } => outcomes.clear(),
        }
    }
}

/// What the model remembers of a permit it handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPermit {
    pub generation: u64,
    pub kind: PermitKind,
    pub started_at: u64,
}

/// The sequential reference: the same rules as the breaker, written plainly.
#[derive(Debug, Clone)]
pub struct Model {
    pub config: BreakerConfig,
    pub window: ModelWindow,
    pub state: State,
    pub generation: u64,
    /// Reopenings from half-open since the breaker last closed, at most `max_step`.
    pub step: u32,
    /// The reopening at which the wait reaches its cap.
    pub max_step: u32,
    /// Half-open probes of the current generation not yet recorded (dropped ones included).
    pub in_flight: u16,
    /// Half-open probe successes since the breaker went half-open (kept across a new
    /// probing period that frees hung probes' slots).
    pub successes: u16,
    /// The time the breaker stores for the current state: when it began, or in half-open
    /// when the latest probe was admitted.
    pub since: u64,
    /// The jitter's seed: the configured one, or the one the breaker drew (`None` until
    /// then; see [`Model::adopt_seed`]).
    pub seed: Option<u64>,
    pub consecutive: u32,
    pub permitted: u64,
    pub rejected: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub ignored: u64,
    pub slow: u64,
    pub trips: u64,
}

impl Model {
    /// A fresh breaker for a valid `config` on `spec`, created at `origin`.
    pub fn new(config: BreakerConfig, spec: WindowSpec, origin: u64) -> Self {
        validate(&config, spec).expect("the model is built on valid configurations");
        Model {
            config,
            window: ModelWindow::new(&config, spec),
            state: State::Closed,
            generation: 0,
            step: 0,
            max_step: steps_to_cap(&config).expect("validated"),
            in_flight: 0,
            successes: 0,
            since: origin,
            seed: config.jitter_seed,
            consecutive: 0,
            permitted: 0,
            rejected: 0,
            succeeded: 0,
            failed: 0,
            ignored: 0,
            slow: 0,
            trips: 0,
        }
    }

    /// Takes the seed a breaker reports (`config().jitter_seed`) once it has drawn one at
    /// random; the seed never changes after that, and a given seed is never replaced.
    pub fn adopt_seed(&mut self, reported: Option<u64>) {
        match (self.seed, reported) {
            (Some(mine), Some(theirs)) => assert_eq!(mine, theirs, "the jitter seed changed"),
            (Some(mine), None) => panic!("the breaker forgot its seed {mine}"),
            (None, Some(theirs)) => {
                assert!(
                    self.config.jitter_seed.is_none() && self.config.jitter_permille > 0,
                    "a seed {theirs} drawn though none was needed"
                );
                self.seed = Some(theirs);
            }
            (None, None) => {}
        }
    }

    pub fn detects_slow_calls(&self) -> bool {
        self.config.slow_call_rate_threshold.is_some()
    }

    /// The backoff in use (`seed` 0 until a random seed is drawn).
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base_ns: self.config.wait_duration_ns,
            factor_milli: self.config.backoff_factor_milli,
            max_ns: cap(&self.config),
            jitter_permille: self.config.jitter_permille,
            seed: self.seed.unwrap_or(0),
        }
    }

    /// The wait of the current Open period, or the probe timeout of the current half-open
    /// period: the backoff delay of (step, generation).
    pub fn wait(&self) -> u64 {
        let plain = plain_delay(&self.config, self.step);
        assert!(plain <= MAX_WAIT_DURATION_NS, "a wait above 2^54 ns");
        let permille = self.config.jitter_permille;
        if permille == 0 {
            return plain;
        }
        assert!(
            self.seed.is_some(),
            "the jitter's seed is needed before it was drawn"
        );
        // The jitter's hash is the core's; its bounds are checked against the plain delay.
        let jittered = self.backoff().delay(self.step, self.generation);
        let most = u128::from(plain) * u128::from(permille) / 1000;
        assert!(
            jittered <= plain && u128::from(plain - jittered) <= most,
            "jittered delay {jittered} out of [{plain} - {most}, {plain}]"
        );
        jittered
    }

    /// Nanoseconds left of the current wait at `now`.
    pub fn remaining(&self, now: u64) -> u64 {
        self.wait()
            .saturating_sub(now - observed_since(self.since, now))
    }

    /// Whether the next acquire needs the wait: open, or half-open with every slot taken.
    pub fn needs_wait(&self) -> bool {
        match self.state {
            State::Open => true,
            State::HalfOpen => self.in_flight >= self.config.half_open_max_calls,
            _ => false,
        }
    }

    /// The time left before the next acquire can move on: the open wait, or the probe
    /// timeout of a full half-open breaker.
    pub fn deadline(&self, now: u64) -> Option<u64> {
        self.needs_wait().then(|| self.remaining(now))
    }

    /// Starts a new period in `to`, one generation later.
    fn enter(&mut self, to: State, step: u32, now: u64) -> Option<Transition> {
        let from = self.state;
        self.generation += 1;
        self.state = to;
        self.step = step;
        self.in_flight = 0;
        self.successes = 0;
        self.since = now;
        if to == State::Open {
            self.trips += 1;
        }
        // A run of consecutive failures belongs to its period: every period starts at 0
        // (only closed and metrics-only periods count failures), however many pass.
        self.consecutive = 0;
        // The window is emptied when the breaker trips or closes.
        if matches!(to, State::Open | State::Closed) {
            self.window.clear();
        }
        (from != to).then_some(Transition {
            from,
            to,
            generation: self.generation,
            at: now,
        })
    }

    pub fn acquire(&mut self, now: u64) -> Result<(ModelPermit, Option<Transition>), Rejected> {
        let (kind, transition) = match self.state {
            State::Closed => (PermitKind::Normal, None),
            State::MetricsOnly => (PermitKind::Observe, None),
            State::Disabled => (PermitKind::Passive, None),
            State::ForcedOpen => {
                self.rejected += 1;
                return Err(Rejected::ForcedOpen);
            }
            State::Open => {
                let left = self.remaining(now);
                if left > 0 {
                    self.rejected += 1;
                    return Err(Rejected::Open { retry_after: left });
                }
                let transition = self.enter(State::HalfOpen, self.step, now);
                self.in_flight = 1;
                (PermitKind::Probe, transition)
            }
            State::HalfOpen => {
                if self.in_flight < self.config.half_open_max_calls {
                    // Each probe is timed from its own admission: the stored time moves to
                    // the latest probe's.
                    self.in_flight += 1;
                    if observed_since(self.since, now) < now {
                        self.since = now;
                    }
                    (PermitKind::Probe, None)
                } else if self.remaining(now) == 0 {
                    // Every probe out has been out for the wait: presumed hung. A new probing
                    // period frees their slots and keeps the successes already recorded.
                    let successes = self.successes;
                    let transition = self.enter(State::HalfOpen, self.step, now);
                    self.in_flight = 1;
                    self.successes = successes;
                    (PermitKind::Probe, transition)
                } else {
                    self.rejected += 1;
                    return Err(Rejected::HalfOpenFull);
                }
            }
        };
        // Closed-state permits are counted as permitted when recorded; probes and
        // metrics-only permits when admitted.
        if matches!(kind, PermitKind::Probe | PermitKind::Observe) {
            self.permitted += 1;
        }
        let permit = ModelPermit {
            generation: self.generation,
            kind,
            started_at: if self.detects_slow_calls() { now } else { 0 },
        };
        Ok((permit, transition))
    }

    /// A permit dropped without a record: counted as permitted when admitted (probes,
    /// metrics-only) or never (closed-state calls), and a probe keeps its slot.
    pub fn drop_permit(&mut self, _permit: ModelPermit) {}

    pub fn record(
        &mut self,
        permit: ModelPermit,
        outcome: Outcome,
        duration: u64,
        now: u64,
    ) -> Option<Transition> {
        if permit.kind == PermitKind::Passive {
            return None;
        }
        let slow = self.detects_slow_calls()
            && outcome != Outcome::Ignored
            && duration > self.config.slow_call_duration_ns;
        match outcome {
            Outcome::Success => self.succeeded += 1,
            Outcome::Failure => self.failed += 1,
            Outcome::Ignored => self.ignored += 1,
        }
        if slow {
            self.slow += 1;
        }
        if permit.kind == PermitKind::Normal {
            self.permitted += 1;
        }
        if permit.generation != self.generation {
            return None; // stale
        }
        match permit.kind {
            PermitKind::Normal | PermitKind::Observe => {
                let expected_state = if permit.kind == PermitKind::Normal {
                    State::Closed
                } else {
                    State::MetricsOnly
                };
                assert_eq!(self.state, expected_state, "model: permit of another state");
                let failure = match outcome {
                    Outcome::Ignored => return None,
                    Outcome::Failure => true,
                    Outcome::Success => false,
                };
                if failure {
                    self.consecutive = (self.consecutive + 1).min(MAX_FAILURE_THRESHOLD);
                } else {
                    self.consecutive = 0;
                }
                self.window.push(failure, slow, now);
                let stats = self.window.stats(now);
                let c = &self.config;
                let by_count =
                    failure && c.failure_threshold.is_some_and(|n| self.consecutive >= n);
                let by_rate = failure
                    && c.failure_rate_threshold
                        .is_some_and(|p| reaches(stats, stats.failures, p, c.minimum_calls));
                let by_slow = slow
                    && c.slow_call_rate_threshold
                        .is_some_and(|p| reaches(stats, stats.slow, p, c.minimum_calls));
                if permit.kind == PermitKind::Normal && (by_count || by_rate || by_slow) {
                    self.enter(State::Open, self.step, now)
                } else {
                    None
                }
            }
            PermitKind::Probe => {
                assert_eq!(
                    self.state,
                    State::HalfOpen,
                    "model: probe outside half-open"
                );
                // A slow probe is a failed probe when slow calls are a trip rule.
                let outcome = if slow { Outcome::Failure } else { outcome };
                match outcome {
                    Outcome::Ignored => {
                        self.in_flight -= 1;
                        None
                    }
                    // The wait grows at each reopening until it reaches its cap, then stays.
                    Outcome::Failure => {
                        self.enter(State::Open, (self.step + 1).min(self.max_step), now)
                    }
                    Outcome::Success => {
                        self.successes += 1;
                        if self.successes >= self.config.success_threshold {
                            self.enter(State::Closed, 0, now)
                        } else {
                            self.in_flight -= 1;
                            None
                        }
                    }
                }
            }
            PermitKind::Passive => unreachable!("handled above"),
        }
    }

    /// Manual control: `Closed` is reset, `Open` is trip.
    pub fn manual(&mut self, to: State, now: u64) -> Option<Transition> {
        self.enter(to, 0, now)
    }

    pub fn retry_after(&self, now: u64) -> u64 {
        if self.state == State::Open {
            self.remaining(now)
        } else {
            0
        }
    }

    pub fn metrics(&self, now: u64) -> Metrics {
        Metrics {
            state: self.state,
            generation: self.generation,
            permitted: self.permitted,
            rejected: self.rejected,
            succeeded: self.succeeded,
            failed: self.failed,
            ignored: self.ignored,
            slow: self.slow,
            trips: self.trips,
            consecutive_failures: self.consecutive,
            half_open_in_flight: if self.state == State::HalfOpen {
                self.in_flight
            } else {
                0
            },
            window: self.window.stats(now),
            last_transition_at: (self.generation != 0).then(|| observed_since(self.since, now)),
            retry_after: self.retry_after(now),
        }
    }

    /// What `CircuitBreaker::config` reads back: the configuration with its window's size
    /// or bucket count resolved, the other window's fields at their defaults, no cap if the
    /// cap is the longest wait, and the seed in use.
    pub fn read_back(&self) -> BreakerConfig {
        let defaults = BreakerConfig::new();
        let mut c = BreakerConfig {
            window_size: None,
            window_buckets: None,
            bucket_duration_ns: defaults.bucket_duration_ns,
            max_wait_duration_ns: self
                .config
                .max_wait_duration_ns
                .filter(|&m| m != MAX_WAIT_DURATION_NS),
            jitter_seed: self.seed,
            ..self.config
        };
        match &self.window {
            ModelWindow::Count { size, .. } => {
                c.window_size = Some(u16::try_from(*size).expect("a u16 size"));
            }
            ModelWindow::Time {
                bucket_ns, buckets, ..
            } => {
                c.window_buckets = Some(u16::try_from(*buckets).expect("a u16 count"));
                c.bucket_duration_ns = *bucket_ns;
            }
        }
        c
    }
}
