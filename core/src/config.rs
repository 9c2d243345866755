//! Breaker configuration and its validation.

use core::fmt;

use crate::backoff::Backoff;

/// A configuration value that cannot work, with the field it came from.
///
/// ```
/// use fastbreaker::{BreakerConfig, CircuitBreaker, CountWindow64};
/// let bad = BreakerConfig { failure_rate_threshold: Some(120), ..BreakerConfig::new() };
/// let err = CircuitBreaker::<CountWindow64>::new(bad).unwrap_err();
/// assert_eq!(err.field, "failure_rate_threshold");
/// assert_eq!(err.to_string(), "invalid failure_rate_threshold = 120: must be a percentage in 1..=100");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration field, spelled as in the struct.
    pub field: &'static str,
    /// The rejected value.
    pub value: u64,
    /// What the field accepts.
    pub reason: &'static str,
}

impl ConfigError {
    pub(crate) const fn new(field: &'static str, value: u64, reason: &'static str) -> Self {
        Self {
            field,
            value,
            reason,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} = {}: {}",
            self.field, self.value, self.reason
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

/// How a [`CircuitBreaker`](crate::CircuitBreaker) decides to open and when it tries again.
///
/// The largest `failure_threshold`: the consecutive-failure counter has 24 bits.
pub const MAX_FAILURE_THRESHOLD: u32 = (1 << 24) - 1;

/// Every trip rule is switchable: `None` turns it off. The defaults (from [`BreakerConfig::new`])
/// are given on each field. Times are nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Open after this many failures in a row (1..=[`MAX_FAILURE_THRESHOLD`]). Default `Some(5)`.
    pub failure_threshold: Option<u32>,
    /// Open when at least this percentage (1..=100) of the window's outcomes are failures,
    /// once the window holds `minimum_calls` outcomes. Default `None` (off).
    pub failure_rate_threshold: Option<u8>,
    /// Open when at least this percentage (1..=100) of the window's outcomes were slow,
    /// once the window holds `minimum_calls` outcomes. Default `None` (off).
    pub slow_call_rate_threshold: Option<u8>,
    /// A call that took longer than this is slow. Only used when
    /// `slow_call_rate_threshold` is set. Default 60 s. Must be non-zero.
    pub slow_call_duration_ns: u64,
    /// Outcomes the window must hold before the rate rules apply. Default 10; at least 1,
    /// and on a count window with a rate rule set, at most `window_size`.
    pub minimum_calls: u32,
    /// Count windows: how many of the last outcomes count, at most the window's capacity.
    /// `None` uses the whole capacity. Default `None`. Ignored by time windows.
    pub window_size: Option<u16>,
    /// Time windows: the span of one bucket; the window covers `B` buckets.
    /// Default 1 s. Ignored by count windows.
    pub bucket_duration_ns: u64,
    /// How long the breaker stays open before admitting a probe. Default 60 s; non-zero.
    pub wait_duration_ns: u64,
    /// Growth of the wait per repeated trip without recovery, in thousandths (1000 = none,
    /// 2000 = doubling). Default 1000. At least 1000.
    pub backoff_factor_milli: u32,
    /// Cap of the grown wait. `None` = no cap beyond `u64::MAX`. Default `None`.
    /// Must be at least `wait_duration_ns`.
    pub max_wait_duration_ns: Option<u64>,
    /// Part of the wait, in thousandths (0..=1000), that jitter may take away. Default 0.
    pub jitter_permille: u16,
    /// Seed of the jitter: the same seed gives the same waits. Default 0.
    pub jitter_seed: u64,
    /// Probes admitted at once in half-open (1..=1023). Default 1.
    pub half_open_max_calls: u16,
    /// Probe successes that close the breaker (1..=1023). Default 1.
    pub success_threshold: u16,
}

impl BreakerConfig {
    /// The default configuration (see each field).
    pub const fn new() -> Self {
        Self {
            failure_threshold: Some(5),
            failure_rate_threshold: None,
            slow_call_rate_threshold: None,
            slow_call_duration_ns: 60 * crate::SECOND,
            minimum_calls: 10,
            window_size: None,
            bucket_duration_ns: crate::SECOND,
            wait_duration_ns: 60 * crate::SECOND,
            backoff_factor_milli: 1000,
            max_wait_duration_ns: None,
            jitter_permille: 0,
            jitter_seed: 0,
            half_open_max_calls: 1,
            success_threshold: 1,
        }
    }

    /// The backoff of the open wait described by this configuration.
    pub const fn backoff(&self) -> Backoff {
        Backoff {
            base_ns: self.wait_duration_ns,
            factor_milli: self.backoff_factor_milli,
            max_ns: match self.max_wait_duration_ns {
                Some(m) => m,
                None => u64::MAX,
            },
            jitter_permille: self.jitter_permille,
            seed: self.jitter_seed,
        }
    }

    /// Checks every field; the window-specific ones are checked by the window.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if let Some(n) = self.failure_threshold {
            if n == 0 {
                return Err(ConfigError::new(
                    "failure_threshold",
                    0,
                    "must be at least 1 (None turns the rule off)",
                ));
            }
            if n > MAX_FAILURE_THRESHOLD {
                return Err(ConfigError::new(
                    "failure_threshold",
                    n as u64,
                    "must be at most 16777215 (the consecutive counter has 24 bits)",
                ));
            }
        }
        if let Some(p) = self.failure_rate_threshold {
            if p == 0 || p > 100 {
                return Err(ConfigError::new(
                    "failure_rate_threshold",
                    p as u64,
                    "must be a percentage in 1..=100",
                ));
            }
        }
        if let Some(p) = self.slow_call_rate_threshold {
            if p == 0 || p > 100 {
                return Err(ConfigError::new(
                    "slow_call_rate_threshold",
                    p as u64,
                    "must be a percentage in 1..=100",
                ));
            }
        }
        if self.slow_call_duration_ns == 0 {
            return Err(ConfigError::new(
                "slow_call_duration_ns",
                0,
                "must be greater than 0",
            ));
        }
        if self.minimum_calls == 0 {
            return Err(ConfigError::new("minimum_calls", 0, "must be at least 1"));
        }
        if self.wait_duration_ns == 0 {
            return Err(ConfigError::new(
                "wait_duration_ns",
                0,
                "must be greater than 0",
            ));
        }
        if self.backoff_factor_milli < 1000 {
            return Err(ConfigError::new(
                "backoff_factor_milli",
                self.backoff_factor_milli as u64,
                "must be at least 1000 (a factor of 1.0)",
            ));
        }
        if let Some(m) = self.max_wait_duration_ns {
            if m < self.wait_duration_ns {
                return Err(ConfigError::new(
                    "max_wait_duration_ns",
                    m,
                    "must be at least wait_duration_ns",
                ));
            }
        }
        if self.jitter_permille > 1000 {
            return Err(ConfigError::new(
                "jitter_permille",
                self.jitter_permille as u64,
                "must be in 0..=1000",
            ));
        }
        if self.half_open_max_calls == 0 || self.half_open_max_calls > crate::state::MAX_PROBES {
            return Err(ConfigError::new(
                "half_open_max_calls",
                self.half_open_max_calls as u64,
                "must be in 1..=1023",
            ));
        }
        if self.success_threshold == 0 || self.success_threshold > crate::state::MAX_PROBES {
            return Err(ConfigError::new(
                "success_threshold",
                self.success_threshold as u64,
                "must be in 1..=1023",
            ));
        }
        Ok(())
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self::new()
    }
}
