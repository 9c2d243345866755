//! The C types of the breaker (enumerations, configuration, permit, statistics) and their
//! conversions to and from the core's.

use core_fb::{BreakerConfig, ConfigError, Metrics, Outcome, Permit, PermitKind, Rejected};

use crate::error::Error;
use crate::handle::BreakerKind;

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

/// Largest `window_size` of a count window.
pub const FB_MAX_WINDOW_SIZE: u32 = 1024;
/// Largest `window_buckets` of a time window.
pub const FB_MAX_WINDOW_BUCKETS: u32 = 64;

/// `duration_ns` for `fb_breaker_record`: measure the call from its acquire instead.
pub const FB_DURATION_AUTO: u64 = 0xFFFF_FFFF_FFFF_FFFFu64;

/// Bytes of storage that hold any breaker (`fb_breaker_init`); `fb_breaker_storage_size`
/// gives the exact, often much smaller, need of one configuration.
pub const FB_BREAKER_STORAGE_SIZE: usize = 1688;
/// Alignment of breaker storage.
pub const FB_BREAKER_STORAGE_ALIGN: usize = 8;

/// How a breaker decides to open and when it tries again. Start from
/// `fb_breaker_config_default()` and change fields. Times are nanoseconds.
///
/// A rule or limit that is off is 0 (the Rust core's `None`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct fb_breaker_config {
    /// Open after this many failures in a row; 0 = rule off. Default 5.
    pub failure_threshold: u32,
    /// Open when at least this percentage (1..=100) of the window's outcomes are failures,
    /// once it holds `minimum_calls`; 0 = rule off. Default 0.
    pub failure_rate_threshold: u32,
    /// Open when at least this percentage (1..=100) of the window's outcomes were slow,
    /// once it holds `minimum_calls`; 0 = rule off. Default 0.
    pub slow_call_rate_threshold: u32,
    /// Outcomes the window must hold before the rate rules apply. At least 1. Default 10.
    pub minimum_calls: u32,
    /// A call that took longer than this is slow (used when `slow_call_rate_threshold` is
    /// set). Non-zero. Default 60 s.
    pub slow_call_duration_ns: u64,
    /// `FB_WINDOW_COUNT` (default) or `FB_WINDOW_TIME`.
    pub window_kind: fb_window_kind,
    /// Count window: how many of the last outcomes count, 1..=`FB_MAX_WINDOW_SIZE`;
    /// 0 = `FB_MAX_WINDOW_SIZE`. Default 0. Windows of up to 64 and 256 outcomes take less
    /// storage.
    pub window_size: u32,
    /// Time window: number of buckets, 1..=`FB_MAX_WINDOW_BUCKETS`. Default 10.
    pub window_buckets: u32,
    /// Time window: span of one bucket. Non-zero. Default 1 s.
    pub bucket_duration_ns: u64,
    /// How long the breaker stays open before admitting a probe. Non-zero. Default 60 s.
    pub wait_duration_ns: u64,
    /// Growth of the wait per repeated trip, in thousandths (1000 = none, 2000 = doubling).
    /// At least 1000. Default 1000.
    pub backoff_factor_milli: u32,
    /// Part of the wait, in thousandths (0..=1000), that jitter may take away. Default 0.
    pub jitter_permille: u32,
    /// Cap of the grown wait, at least `wait_duration_ns`; 0 = no cap. Default 0.
    pub max_wait_duration_ns: u64,
    /// Seed of the jitter: the same seed gives the same waits. Default 0.
    pub jitter_seed: u64,
    /// Probes admitted at once in half-open, 1..=1023. Default 1.
    pub half_open_max_calls: u32,
    /// Probe successes that close the breaker, 1..=1023. Default 1.
    pub success_threshold: u32,
}

/// Leave to make one call (from `fb_breaker_acquire`), or why there is none.
///
/// After `FB_OK`, hand it back to `fb_breaker_record` with the call's outcome; do not change
/// `kind`, `generation` or `started_at`. An outcome recorded after the breaker changed state
/// moves nothing. After `FB_REJECTED`, `reason` and `retry_after_ns` say why.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct fb_permit {
    /// `FB_REJECT_NONE` when permitted, else why the call was refused.
    pub reason: fb_reject_reason,
    /// Private: the kind of call admitted.
    pub kind: u32,
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
    /// Times the breaker opened on its own.
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

impl fb_breaker_config {
    /// The core configuration and the breaker type this asks for.
    pub(crate) fn to_core(self) -> Result<(BreakerKind, BreakerConfig), ConfigError> {
        let (kind, window_size) = match self.window_kind {
            FB_WINDOW_COUNT => {
                let size = if self.window_size == 0 {
                    FB_MAX_WINDOW_SIZE
                } else {
                    self.window_size
                };
                let kind = BreakerKind::count(size).ok_or(ConfigError {
                    field: "window_size",
                    value: size.into(),
                    reason: "must be in 1..=1024 (FB_MAX_WINDOW_SIZE; 0 = 1024)",
                })?;
                (kind, Some(size as u16)) // size <= 1024: checked by BreakerKind::count
            }
            FB_WINDOW_TIME => {
                let kind = BreakerKind::time(self.window_buckets).ok_or(ConfigError {
                    field: "window_buckets",
                    value: self.window_buckets.into(),
                    reason: "must be in 1..=64 (FB_MAX_WINDOW_BUCKETS)",
                })?;
                (kind, None)
            }
            other => {
                return Err(ConfigError {
                    field: "window_kind",
                    value: other.into(),
                    reason: "must be FB_WINDOW_COUNT (0) or FB_WINDOW_TIME (1)",
                })
            }
        };
        let percent = |field: &'static str, v: u32| -> Result<Option<u8>, ConfigError> {
            match v {
                0 => Ok(None),
                1..=255 => Ok(Some(v as u8)), // the core rejects 101..=255
                _ => Err(ConfigError {
                    field,
                    value: v.into(),
                    reason: "must be a percentage in 1..=100",
                }),
            }
        };
        let narrow = |field: &'static str, v: u32, reason| {
            u16::try_from(v).map_err(|_| ConfigError {
                field,
                value: v.into(),
                reason,
            })
        };
        let config = BreakerConfig {
            failure_threshold: (self.failure_threshold != 0).then_some(self.failure_threshold),
            failure_rate_threshold: percent("failure_rate_threshold", self.failure_rate_threshold)?,
            slow_call_rate_threshold: percent(
                "slow_call_rate_threshold",
                self.slow_call_rate_threshold,
            )?,
            slow_call_duration_ns: self.slow_call_duration_ns,
            minimum_calls: self.minimum_calls,
            window_size,
            bucket_duration_ns: self.bucket_duration_ns,
            wait_duration_ns: self.wait_duration_ns,
            backoff_factor_milli: self.backoff_factor_milli,
            max_wait_duration_ns: (self.max_wait_duration_ns != 0)
                .then_some(self.max_wait_duration_ns),
            jitter_permille: narrow(
                "jitter_permille",
                self.jitter_permille,
                "must be in 0..=1000",
            )?,
            jitter_seed: self.jitter_seed,
            half_open_max_calls: narrow(
                "half_open_max_calls",
                self.half_open_max_calls,
                "must be in 1..=1023",
            )?,
            success_threshold: narrow(
                "success_threshold",
                self.success_threshold,
                "must be in 1..=1023",
            )?,
        };
        // The time window's bucket duration is checked by the core only for time windows.
        Ok((kind, config))
    }
}

pub(crate) fn permit_to_c(p: Permit) -> fb_permit {
    let (generation, kind, started_at) = p.into_parts();
    fb_permit {
        reason: FB_REJECT_NONE,
        kind: kind as u32,
        retry_after_ns: 0,
        generation,
        started_at,
    }
}

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
        retry_after_ns: r.retry_after().unwrap_or(0),
        generation: 0,
        started_at: 0,
    }
}

pub(crate) fn permit_from_c(p: &fb_permit) -> Result<Permit, Error> {
    if p.reason != FB_REJECT_NONE {
        return Err(Error::Invalid(
            "permit.reason",
            p.reason.into(),
            "the call was rejected: there is no outcome to record",
        ));
    }
    let kind = match p.kind {
        0 => PermitKind::Normal,
        1 => PermitKind::Probe,
        2 => PermitKind::Observe,
        3 => PermitKind::Passive,
        k => {
            return Err(Error::Invalid(
                "permit.kind",
                k.into(),
                "not a permit from fb_breaker_acquire",
            ))
        }
    };
    Ok(Permit::from_parts(p.generation, kind, p.started_at))
}

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

pub(crate) fn default_config() -> fb_breaker_config {
    let d = BreakerConfig::new();
    fb_breaker_config {
        failure_threshold: d.failure_threshold.unwrap_or(0),
        failure_rate_threshold: d.failure_rate_threshold.map_or(0, u32::from),
        slow_call_rate_threshold: d.slow_call_rate_threshold.map_or(0, u32::from),
        minimum_calls: d.minimum_calls,
        slow_call_duration_ns: d.slow_call_duration_ns,
        window_kind: FB_WINDOW_COUNT,
        window_size: d.window_size.map_or(0, u32::from),
        window_buckets: 10,
        bucket_duration_ns: d.bucket_duration_ns,
        wait_duration_ns: d.wait_duration_ns,
        backoff_factor_milli: d.backoff_factor_milli,
        jitter_permille: d.jitter_permille.into(),
        max_wait_duration_ns: d.max_wait_duration_ns.unwrap_or(0),
        jitter_seed: d.jitter_seed,
        half_open_max_calls: d.half_open_max_calls.into(),
        success_threshold: d.success_threshold.into(),
    }
}

/// What `fb_breaker_config_default` returns should it ever panic (a test keeps the two equal).
pub(crate) const FALLBACK_CONFIG: fb_breaker_config = fb_breaker_config {
    failure_threshold: 5,
    failure_rate_threshold: 0,
    slow_call_rate_threshold: 0,
    minimum_calls: 10,
    slow_call_duration_ns: 60 * crate::FB_SECOND,
    window_kind: FB_WINDOW_COUNT,
    window_size: 0,
    window_buckets: 10,
    bucket_duration_ns: crate::FB_SECOND,
    wait_duration_ns: 60 * crate::FB_SECOND,
    backoff_factor_milli: 1000,
    jitter_permille: 0,
    max_wait_duration_ns: 0,
    jitter_seed: 0,
    half_open_max_calls: 1,
    success_threshold: 1,
};
