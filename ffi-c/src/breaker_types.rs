//! The C types of the breaker (enumerations, configuration, permit, statistics) and their
//! conversions to and from the core's. Uses only `error` and `limits` of this crate.

use core_fb::binding::{permit_from_parts, permit_into_parts};
use core_fb::limits::{DEFAULT_BUCKET_DURATION_NS, MAX_WAIT_DURATION_NS};
use core_fb::{
    BreakerConfig, ConfigError, CountWindow1024, Metrics, Outcome, Permit, PermitKind, Rejected,
    State, TimeWindow64, Transition,
};

use crate::error::Error;

/// A breaker state (`FB_STATE_*`).
pub type fb_state = u32;
/// Calls go through; outcomes are recorded and may trip the breaker.
pub const FB_STATE_CLOSED: fb_state = 0;
/// Calls are rejected until the wait has passed.
pub const FB_STATE_OPEN: fb_state = 1;
/// A limited number of probe calls go through to test recovery.
pub const FB_STATE_HALF_OPEN: fb_state = 2;
/// Manual: every call is rejected until a reset.
pub const FB_STATE_FORCED_OPEN: fb_state = 3;
/// Manual: every call goes through and nothing is recorded.
pub const FB_STATE_DISABLED: fb_state = 4;
/// Manual: every call goes through, outcomes are recorded, nothing trips.
pub const FB_STATE_METRICS_ONLY: fb_state = 5;

/// What became of a permitted call (`FB_OUTCOME_*`).
pub type fb_outcome = u32;
/// The call worked.
pub const FB_OUTCOME_SUCCESS: fb_outcome = 0;
/// The call failed: counts toward the trip rules.
pub const FB_OUTCOME_FAILURE: fb_outcome = 1;
/// Neither (an excluded error, a cancellation): counts only in `ignored`, and hands a
/// half-open probe slot back.
pub const FB_OUTCOME_IGNORED: fb_outcome = 2;

/// Why an acquire was refused (`FB_REJECT_*`).
pub type fb_reject_reason = u32;
/// Not refused.
pub const FB_REJECT_NONE: fb_reject_reason = 0;
/// Open: a probe is admitted in `retry_after_ns`.
pub const FB_REJECT_OPEN: fb_reject_reason = 1;
/// Half-open, and every probe slot is taken.
pub const FB_REJECT_HALF_OPEN_FULL: fb_reject_reason = 2;
/// Forced open by hand.
pub const FB_REJECT_FORCED_OPEN: fb_reject_reason = 3;

/// The kind of sliding window a breaker computes its rates over (`FB_WINDOW_*`).
pub type fb_window_kind = u32;
/// The last `window_size` outcomes.
pub const FB_WINDOW_COUNT: fb_window_kind = 0;
/// The outcomes of the last `window_buckets` buckets of `bucket_duration_ns` each.
pub const FB_WINDOW_TIME: fb_window_kind = 1;

/// A rule that is off: the value of `failure_threshold`, `failure_rate_threshold` or
/// `slow_call_rate_threshold` that turns the rule off (the Rust core's `None`). 0 is not off:
/// the core refuses it, as it refuses `Some(0)`.
pub const FB_OFF: u32 = 0xFFFF_FFFFu32;
/// `jitter_seed` that asks for a random seed (the Rust core's `None`, and the default): the
/// breaker draws one from the operating system the first time it jitters, so processes and
/// instances do not jitter alike. Every other value is used as the seed.
pub const FB_RANDOM_SEED: u64 = 0xFFFF_FFFF_FFFF_FFFFu64;

/// `duration_ns` for `fb_breaker_record`: measure the call from its acquire instead.
pub const FB_DURATION_AUTO: u64 = 0xFFFF_FFFF_FFFF_FFFFu64;

/// The kind of call a permit admits (`fb_permit.kind`, `FB_PERMIT_*`): read it, never set it.
pub type fb_permit_kind = u8;
/// A call in the closed state: its outcome enters the window and may trip the breaker.
pub const FB_PERMIT_NORMAL: fb_permit_kind = 0;
/// A half-open probe: its outcome may close or reopen the breaker.
pub const FB_PERMIT_PROBE: fb_permit_kind = 1;
/// A call in the metrics-only state: its outcome is counted, never trips.
pub const FB_PERMIT_OBSERVE: fb_permit_kind = 2;
/// A call in the disabled state: its outcome is not recorded at all.
pub const FB_PERMIT_PASSIVE: fb_permit_kind = 3;

/// Bytes of storage that hold any breaker (`fb_breaker_init`); `fb_breaker_storage_size`
/// gives the exact, smaller, need of a count window.
pub const FB_BREAKER_STORAGE_SIZE: usize = 1800;
/// Alignment of breaker storage.
pub const FB_BREAKER_STORAGE_ALIGN: usize = 8;

// The C values are the core's.
const _: () = {
    assert!(FB_STATE_CLOSED == State::Closed as u32 && FB_STATE_OPEN == State::Open as u32);
    assert!(FB_STATE_HALF_OPEN == State::HalfOpen as u32);
    assert!(FB_STATE_FORCED_OPEN == State::ForcedOpen as u32);
    assert!(FB_STATE_DISABLED == State::Disabled as u32);
    assert!(FB_STATE_METRICS_ONLY == State::MetricsOnly as u32);
    assert!(FB_PERMIT_NORMAL == PermitKind::Normal as u8);
    assert!(FB_PERMIT_PROBE == PermitKind::Probe as u8);
    assert!(FB_PERMIT_OBSERVE == PermitKind::Observe as u8);
    assert!(FB_PERMIT_PASSIVE == PermitKind::Passive as u8);
};

/// How a breaker decides to open and when it tries again. Start from
/// `fb_breaker_config_default()` (the core's defaults) and change fields. Times are
/// nanoseconds. The core checks every field when the breaker is made: a value it refuses
/// gives `FB_ERR_INVALID_CONFIG` with its message in `fb_last_error()`.
///
/// Each field is passed to the core as it is, so every binding accepts and refuses the same
/// values; the core's `None` is spelled `FB_OFF` for the three rules and `FB_RANDOM_SEED` for
/// the jitter seed (and 0 is refused where Rust refuses `Some(0)`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct fb_breaker_config {
    /// Open after this many failures in a row, 1..=`FB_MAX_FAILURE_THRESHOLD`; `FB_OFF` =
    /// rule off. Default 5.
    pub failure_threshold: u32,
    /// Open when at least this percentage (1..=`FB_MAX_RATE_THRESHOLD`) of the window's
    /// outcomes are failures, once it holds `minimum_calls`; `FB_OFF` = rule off. Default
    /// `FB_OFF`.
    pub failure_rate_threshold: u32,
    /// Open when at least this percentage (1..=`FB_MAX_RATE_THRESHOLD`) of the window's
    /// outcomes were slow, once it holds `minimum_calls`; `FB_OFF` = rule off. Default
    /// `FB_OFF`.
    pub slow_call_rate_threshold: u32,
    /// Outcomes the window must hold before the rate rules apply. At least 1; with a rate
    /// rule on and a count window, at most `window_size`. Default 10.
    pub minimum_calls: u32,
    /// A call that took longer than this is slow (used when `slow_call_rate_threshold` is
    /// set). Non-zero. Default 60 s.
    pub slow_call_duration_ns: u64,
    /// `FB_WINDOW_COUNT` (default) or `FB_WINDOW_TIME`.
    pub window_kind: fb_window_kind,
    /// Count window: how many of the last outcomes count, 1..=`FB_MAX_WINDOW_SIZE`.
    /// Default 100.
    pub window_size: u32,
    /// Time window: number of buckets, 1..=`FB_MAX_WINDOW_BUCKETS`. Default 10.
    pub window_buckets: u32,
    /// Time window: span of one bucket. Non-zero. Default 1 s.
    pub bucket_duration_ns: u64,
    /// How long the breaker stays open before admitting a probe, and how long probes may be
    /// out before they are presumed hung. 1..=`FB_MAX_WAIT_DURATION_NS`. Default 60 s.
    pub wait_duration_ns: u64,
    /// Growth of the wait per repeated trip, in thousandths (1000 = none, 2000 = doubling).
    /// At least `FB_MIN_BACKOFF_FACTOR_MILLI`, and large enough that the wait reaches its cap
    /// within `FB_MAX_BACKOFF_STEPS` reopenings. Default 1000.
    pub backoff_factor_milli: u32,
    /// Part of the wait, in thousandths (0..=`FB_MAX_JITTER_PERMILLE`), that jitter may take
    /// away. Default 0.
    pub jitter_permille: u32,
    /// Cap of the grown wait, `wait_duration_ns..=FB_MAX_WAIT_DURATION_NS`. Default
    /// `FB_MAX_WAIT_DURATION_NS` (the Rust core's `None`: no cap of its own).
    pub max_wait_duration_ns: u64,
    /// Seed of the jitter: the same seed gives the same waits. Default `FB_RANDOM_SEED`: a
    /// random seed per breaker.
    pub jitter_seed: u64,
    /// Probes admitted at once in half-open, 1..=`FB_MAX_HALF_OPEN_MAX_CALLS`. Default 1.
    pub half_open_max_calls: u32,
    /// Probe successes that close the breaker, 1..=`FB_MAX_SUCCESS_THRESHOLD`. Default 1.
    pub success_threshold: u32,
}

/// Leave to make one call (from `fb_breaker_acquire`), or why there is none.
///
/// After `FB_OK`, make the call, then hand a pointer to this very struct to
/// `fb_breaker_record` with the call's outcome. A permit counts once: the record sets
/// `used`, and a second record of it returns `FB_ERR_PERMIT_USED` and changes nothing. Do
/// not change `kind`, `generation` or `started_at`, and do not record copies of one permit
/// (each copy has its own `used` flag). A permit belongs to one thread at a time.
///
/// A permit that is never recorded (the call was abandoned and the struct dropped) needs no
/// clean-up and counts nowhere. A dropped half-open probe keeps its probe slot until the
/// wait (`wait_duration_ns`) has passed since the latest probe was admitted; then the probes
/// out are presumed hung and a new probe is admitted, so a lost permit never wedges the
/// breaker. Record `FB_OUTCOME_IGNORED` to hand a slot back at once.
///
/// An outcome recorded after the breaker changed state (a stale permit) is counted but moves
/// nothing. After `FB_REJECTED`, `reason` and `retry_after_ns` say why.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct fb_permit {
    /// `FB_REJECT_NONE` when permitted, else why the call was refused.
    pub reason: fb_reject_reason,
    /// The kind of call admitted (`FB_PERMIT_*`); read-only.
    pub kind: fb_permit_kind,
    /// Set by the first `fb_breaker_record*` of this permit; false after an acquire.
    pub used: bool,
    /// `FB_REJECT_OPEN`: nanoseconds until a probe is admitted; otherwise 0.
    pub retry_after_ns: u64,
    /// Private: the generation of the state that issued the permit.
    pub generation: u64,
    /// Private: when the call started, if the breaker needed to know.
    pub started_at: u64,
}

/// A snapshot of a breaker's state and counters, from `fb_breaker_metrics` (C cannot
/// name a type and a function alike, hence `_stats`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct fb_breaker_stats {
    /// Current state (`FB_STATE_*`).
    pub state: fb_state,
    /// Consecutive failures so far in the closed state.
    pub consecutive_failures: u32,
    /// Current generation (bumped by every state change).
    pub generation: u64,
    /// Calls let through (not counting the disabled state); a closed-state call is counted
    /// when its outcome is recorded, probes and metrics-only calls when admitted.
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
    /// Times the breaker opened on its own or by `fb_breaker_trip`.
    pub trips: u64,
    /// Outcomes in the window now.
    pub window_samples: u64,
    /// Failures among them.
    pub window_failures: u64,
    /// Slow calls among them.
    pub window_slow: u64,
    /// Probes in flight (half-open only).
    pub half_open_in_flight: u32,
    /// Whether `last_transition_at_ns` is known (false until the first state change).
    pub has_last_transition: bool,
    /// When the current state began.
    pub last_transition_at_ns: u64,
    /// Nanoseconds until an open breaker admits a probe (0 otherwise).
    pub retry_after_ns: u64,
}

/// The window type a configuration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowKind {
    /// `CountWindow1024`.
    Count,
    /// `TimeWindow64`.
    Time,
}

/// A C configuration translated to the core's, before the core has checked it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CoreConfig {
    pub(crate) window: WindowKind,
    pub(crate) config: BreakerConfig,
    /// Fields whose C value does not fit the core's narrower type: (field, C value). The
    /// core was given the type's largest value, which it refuses; [`CoreConfig::explain`]
    /// then puts the C value back in the core's message.
    saturated: [Option<(&'static str, u64)>; 7],
}

impl CoreConfig {
    /// The core's error about this configuration, naming the value the caller gave.
    pub(crate) fn explain(&self, e: ConfigError) -> ConfigError {
        match self.saturated.iter().flatten().find(|(f, _)| *f == e.field) {
            Some(&(_, value)) => ConfigError { value, ..e },
            None => e,
        }
    }
}

// Saturating to a type's largest value hands the core a value it refuses.
const _: () = {
    use core_fb::limits as l;
    assert!(l::MAX_RATE_THRESHOLD < u8::MAX);
    assert!(l::MAX_WINDOW_SIZE < u16::MAX && l::MAX_WINDOW_BUCKETS < u16::MAX);
    assert!(l::MAX_JITTER_PERMILLE < u16::MAX && l::MAX_HALF_OPEN_MAX_CALLS < u16::MAX);
    assert!(l::MAX_SUCCESS_THRESHOLD < u16::MAX);
};

impl fb_breaker_config {
    /// The core configuration and the window type this asks for. Only the C encoding is
    /// handled here (0 = `None` for the rules, the window kind, integer widths); every
    /// value is checked by the core when the breaker is built.
    pub(crate) fn to_core(self) -> Result<CoreConfig, ConfigError> {
        let window = match self.window_kind {
            FB_WINDOW_COUNT => WindowKind::Count,
            FB_WINDOW_TIME => WindowKind::Time,
            other => {
                // Not a core field: Rust picks the window by its type.
                return Err(ConfigError {
                    field: "window_kind",
                    value: other.into(),
                    reason: "must be FB_WINDOW_COUNT (0) or FB_WINDOW_TIME (1)",
                });
            }
        };
        let mut saturated = [None; 7];
        let mut slot = 0;
        let mut narrow = |field: &'static str, v: u32, max: u32| -> u32 {
            if v <= max {
                v
            } else {
                saturated[slot] = Some((field, u64::from(v)));
                slot += 1;
                max
            }
        };
        let u8_max = u32::from(u8::MAX);
        let u16_max = u32::from(u16::MAX);
        let off_or = |v: u32| (v != FB_OFF).then_some(v);
        let mut rate = |field, v| match v {
            FB_OFF => None,
            v => Some(narrow(field, v, u8_max) as u8),
        };
        let failure_rate = rate("failure_rate_threshold", self.failure_rate_threshold);
        let slow_rate = rate("slow_call_rate_threshold", self.slow_call_rate_threshold);
        let window_size = narrow("window_size", self.window_size, u16_max);
        let window_buckets = narrow("window_buckets", self.window_buckets, u16_max);
        let jitter = narrow("jitter_permille", self.jitter_permille, u16_max);
        let half_open = narrow("half_open_max_calls", self.half_open_max_calls, u16_max);
        let successes = narrow("success_threshold", self.success_threshold, u16_max);
        // Each value fits its type now: the `as` casts below cannot truncate.
        let config = BreakerConfig {
            failure_threshold: off_or(self.failure_threshold),
            failure_rate_threshold: failure_rate,
            slow_call_rate_threshold: slow_rate,
            slow_call_duration_ns: self.slow_call_duration_ns,
            minimum_calls: self.minimum_calls,
            window_size: Some(window_size as u16),
            window_buckets: Some(window_buckets as u16),
            bucket_duration_ns: self.bucket_duration_ns,
            wait_duration_ns: self.wait_duration_ns,
            backoff_factor_milli: self.backoff_factor_milli,
            max_wait_duration_ns: Some(self.max_wait_duration_ns),
            jitter_permille: jitter as u16,
            jitter_seed: (self.jitter_seed != FB_RANDOM_SEED).then_some(self.jitter_seed),
            half_open_max_calls: half_open as u16,
            success_threshold: successes as u16,
        };
        Ok(CoreConfig {
            window,
            config,
            saturated,
        })
    }

    /// The C form of a core configuration: `None` as `FB_OFF`, `FB_RANDOM_SEED` or the
    /// resolved value (the longest wait, the window's default size or bucket count).
    pub(crate) const fn from_core(c: &BreakerConfig, window: WindowKind) -> fb_breaker_config {
        fb_breaker_config {
            failure_threshold: match c.failure_threshold {
                Some(v) => v,
                None => FB_OFF,
            },
            failure_rate_threshold: match c.failure_rate_threshold {
                Some(v) => v as u32,
                None => FB_OFF,
            },
            slow_call_rate_threshold: match c.slow_call_rate_threshold {
                Some(v) => v as u32,
                None => FB_OFF,
            },
            minimum_calls: c.minimum_calls,
            slow_call_duration_ns: c.slow_call_duration_ns,
            window_kind: match window {
                WindowKind::Count => FB_WINDOW_COUNT,
                WindowKind::Time => FB_WINDOW_TIME,
            },
            window_size: match c.window_size {
                Some(v) => v as u32,
                None => DEFAULT_WINDOW_SIZE,
            },
            window_buckets: match c.window_buckets {
                Some(v) => v as u32,
                None => DEFAULT_WINDOW_BUCKETS,
            },
            bucket_duration_ns: c.bucket_duration_ns,
            wait_duration_ns: c.wait_duration_ns,
            backoff_factor_milli: c.backoff_factor_milli,
            jitter_permille: c.jitter_permille as u32,
            max_wait_duration_ns: match c.max_wait_duration_ns {
                Some(v) => v,
                None => MAX_WAIT_DURATION_NS,
            },
            jitter_seed: match c.jitter_seed {
                Some(v) => v,
                None => FB_RANDOM_SEED,
            },
            half_open_max_calls: c.half_open_max_calls as u32,
            success_threshold: c.success_threshold as u32,
        }
    }
}

/// The size of a count window built with the core's default (`None`), as the core resolves
/// it for the window type the bindings use.
const DEFAULT_WINDOW_SIZE: u32 = match CountWindow1024::new(None) {
    Ok(w) => w.size(),
    Err(_) => panic!("the default count window builds"),
};

/// The bucket count of a time window built with the core's default (`None`).
const DEFAULT_WINDOW_BUCKETS: u32 = match TimeWindow64::new(DEFAULT_BUCKET_DURATION_NS, None) {
    Ok(w) => w.buckets(),
    Err(_) => panic!("the default time window builds"),
};

/// `fb_breaker_config_default()`: the core's `BreakerConfig::new()` on a count window,
/// computed at compile time.
pub(crate) const DEFAULT_CONFIG: fb_breaker_config =
    fb_breaker_config::from_core(&BreakerConfig::new(), WindowKind::Count);

/// A granted permit in C form, and the state change its acquire made.
pub(crate) fn permit_to_c(p: Permit) -> (fb_permit, Option<Transition>) {
    let transition = p.transition();
    let (generation, kind, started_at) = permit_into_parts(p);
    let permit = fb_permit {
        reason: FB_REJECT_NONE,
        kind: kind as u8,
        used: false,
        retry_after_ns: 0,
        generation,
        started_at,
    };
    (permit, transition)
}

/// A refusal in C form.
pub(crate) fn rejection_to_c(r: Rejected) -> fb_permit {
    let reason = match r {
        Rejected::Open { .. } => FB_REJECT_OPEN,
        Rejected::HalfOpenFull => FB_REJECT_HALF_OPEN_FULL,
        // The breaker refuses only with the three reasons above and this one.
        _ => FB_REJECT_FORCED_OPEN,
    };
    fb_permit {
        reason,
        kind: 0,
        used: false,
        retry_after_ns: r.retry_after().unwrap_or(0),
        generation: 0,
        started_at: 0,
    }
}

/// The core's permit for a C permit that has not been recorded yet.
pub(crate) fn permit_from_c(p: &fb_permit) -> Result<Permit, Error> {
    if p.used {
        return Err(Error::PermitUsed);
    }
    if p.reason != FB_REJECT_NONE {
        return Err(Error::Invalid(
            "permit.reason",
            p.reason.into(),
            "the call was rejected: there is no outcome to record",
        ));
    }
    let kind = match p.kind {
        FB_PERMIT_NORMAL => PermitKind::Normal,
        FB_PERMIT_PROBE => PermitKind::Probe,
        FB_PERMIT_OBSERVE => PermitKind::Observe,
        FB_PERMIT_PASSIVE => PermitKind::Passive,
        k => {
            return Err(Error::Invalid(
                "permit.kind",
                k.into(),
                "not a permit from fb_breaker_acquire",
            ))
        }
    };
    Ok(permit_from_parts(p.generation, kind, p.started_at))
}

/// The core's outcome for an `FB_OUTCOME_*`.
pub(crate) fn outcome_from_c(o: fb_outcome) -> Result<Outcome, Error> {
    match o {
        FB_OUTCOME_SUCCESS => Ok(Outcome::Success),
        FB_OUTCOME_FAILURE => Ok(Outcome::Failure),
        FB_OUTCOME_IGNORED => Ok(Outcome::Ignored),
        _ => Err(Error::Invalid(
            "outcome",
            o.into(),
            "must be FB_OUTCOME_SUCCESS, FB_OUTCOME_FAILURE or FB_OUTCOME_IGNORED",
        )),
    }
}

/// A metrics snapshot in C form.
pub(crate) fn metrics_to_c(m: Metrics) -> fb_breaker_stats {
    fb_breaker_stats {
        state: m.state as u32,
        consecutive_failures: m.consecutive_failures,
        generation: m.generation,
        permitted: m.permitted,
        rejected: m.rejected,
        succeeded: m.succeeded,
        failed: m.failed,
        ignored: m.ignored,
        slow: m.slow,
        trips: m.trips,
        window_samples: m.window.samples,
        window_failures: m.window.failures,
        window_slow: m.window.slow,
        half_open_in_flight: m.half_open_in_flight.into(),
        has_last_transition: m.last_transition_at.is_some(),
        last_transition_at_ns: m.last_transition_at.unwrap_or(0),
        retry_after_ns: m.retry_after,
    }
}
