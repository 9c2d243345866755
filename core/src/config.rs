//! Breaker configuration and its validation.

use crate::backoff::Backoff;
use crate::error::ConfigError;
use crate::limits::*;

/// How a [`CircuitBreaker`](crate::CircuitBreaker) decides to open and when it tries again.
///
/// Every trip rule is switchable: `None` turns it off. The defaults (from [`BreakerConfig::new`])
/// come from the table in [`limits`](crate::limits) and are given on each field. Times are
/// nanoseconds.
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
    /// and, with a rate rule set, at most what the window can hold (`window_size` of a count
    /// window).
    pub minimum_calls: u32,
    /// Count windows: how many of the last outcomes count (1..= the window type's capacity).
    /// `None`: [`DEFAULT_WINDOW_SIZE`] (100), or the capacity if that is smaller. Ignored by
    /// time windows.
    pub window_size: Option<u16>,
    /// Time windows: how many buckets of `bucket_duration_ns` the window covers (1..= the
    /// window type's capacity). `None`: [`DEFAULT_WINDOW_BUCKETS`] (10), or the capacity if
    /// that is smaller. Ignored by count windows.
    pub window_buckets: Option<u16>,
    /// Time windows: the span of one bucket. Default 1 s; non-zero. Ignored by count windows.
    pub bucket_duration_ns: u64,
    /// How long the breaker stays open before admitting a probe. The current wait (grown by
    /// backoff, less jitter) is also how long the youngest probe out may stay out before the
    /// probes out are presumed hung. Default 60 s; 1..=[`MAX_WAIT_DURATION_NS`].
    pub wait_duration_ns: u64,
    /// Growth of the wait per repeated trip without recovery, in thousandths (1000 = none,
    /// 2000 = doubling). Default 1000. At least 1000, and the wait must reach its cap within
    /// [`MAX_BACKOFF_STEPS`] reopenings.
    pub backoff_factor_milli: u32,
    /// Cap of the grown wait. `None`: [`MAX_WAIT_DURATION_NS`]. Default `None`. Must be in
    /// `wait_duration_ns..=MAX_WAIT_DURATION_NS`.
    pub max_wait_duration_ns: Option<u64>,
    /// Part of the wait, in thousandths (0..=1000), that jitter may take away. Default 0.
    pub jitter_permille: u16,
    /// Seed of the jitter: the same seed gives the same waits. `None` (the default): each
    /// breaker draws a random seed from the operating system the first time it jitters
    /// (feature `std`), so that processes and instances do not jitter alike. Without `std`
    /// there is no entropy source: a configuration with jitter on must give a seed.
    pub jitter_seed: Option<u64>,
    /// Probes admitted at once in half-open (1..=1023). Default 1.
    pub half_open_max_calls: u16,
    /// Probe successes that close the breaker (1..=1023). Default 1.
    pub success_threshold: u16,
}

impl BreakerConfig {
    /// The default configuration (see each field).
    pub const fn new() -> Self {
        Self {
            failure_threshold: Some(DEFAULT_FAILURE_THRESHOLD),
            failure_rate_threshold: None,
            slow_call_rate_threshold: None,
            slow_call_duration_ns: DEFAULT_SLOW_CALL_DURATION_NS,
            minimum_calls: DEFAULT_MINIMUM_CALLS,
            window_size: None,
            window_buckets: None,
            bucket_duration_ns: DEFAULT_BUCKET_DURATION_NS,
            wait_duration_ns: DEFAULT_WAIT_DURATION_NS,
            backoff_factor_milli: DEFAULT_BACKOFF_FACTOR_MILLI,
            max_wait_duration_ns: None,
            jitter_permille: 0,
            jitter_seed: None,
            half_open_max_calls: DEFAULT_HALF_OPEN_MAX_CALLS,
            success_threshold: DEFAULT_SUCCESS_THRESHOLD,
        }
    }

    /// The backoff of the open wait described by this configuration (seed 0 when the
    /// configuration leaves it random).
    pub const fn backoff(&self) -> Backoff {
        Backoff {
            base_ns: self.wait_duration_ns,
            factor_milli: self.backoff_factor_milli,
            max_ns: match self.max_wait_duration_ns {
                Some(m) => m,
                None => MAX_WAIT_DURATION_NS,
            },
            jitter_permille: self.jitter_permille,
            seed: match self.jitter_seed {
                Some(s) => s,
                None => 0,
            },
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
            if p == 0 || p > MAX_RATE_THRESHOLD {
                return Err(ConfigError::new(
                    "failure_rate_threshold",
                    p as u64,
                    "must be a percentage in 1..=100",
                ));
            }
        }
        if let Some(p) = self.slow_call_rate_threshold {
            if p == 0 || p > MAX_RATE_THRESHOLD {
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
        if self.wait_duration_ns == 0 || self.wait_duration_ns > MAX_WAIT_DURATION_NS {
            return Err(ConfigError::new(
                "wait_duration_ns",
                self.wait_duration_ns,
                "must be in 1..=2^54 (about 208 days)",
            ));
        }
        if self.backoff_factor_milli < MIN_BACKOFF_FACTOR_MILLI {
            return Err(ConfigError::new(
                "backoff_factor_milli",
                self.backoff_factor_milli as u64,
                "must be at least 1000 (a factor of 1.0)",
            ));
        }
        if let Some(m) = self.max_wait_duration_ns {
            if m < self.wait_duration_ns || m > MAX_WAIT_DURATION_NS {
                return Err(ConfigError::new(
                    "max_wait_duration_ns",
                    m,
                    "must be in wait_duration_ns..=2^54 (about 208 days)",
                ));
            }
        }
        if self.backoff().steps_to_cap() > MAX_BACKOFF_STEPS as u32 {
            return Err(ConfigError::new(
                "backoff_factor_milli",
                self.backoff_factor_milli as u64,
                "too small to grow wait_duration_ns to its cap within 1023 reopenings: \
                 raise the factor or lower max_wait_duration_ns",
            ));
        }
        if self.jitter_permille > MAX_JITTER_PERMILLE {
            return Err(ConfigError::new(
                "jitter_permille",
                self.jitter_permille as u64,
                "must be in 0..=1000",
            ));
        }
        #[cfg(not(feature = "std"))]
        if self.jitter_permille > 0 && self.jitter_seed.is_none() {
            return Err(ConfigError::new(
                "jitter_seed",
                0,
                "must be given when jitter_permille > 0 without the std feature (no entropy source)",
            ));
        }
        if self.half_open_max_calls == 0 || self.half_open_max_calls > MAX_HALF_OPEN_MAX_CALLS {
            return Err(ConfigError::new(
                "half_open_max_calls",
                self.half_open_max_calls as u64,
                "must be in 1..=1023",
            ));
        }
        if self.success_threshold == 0 || self.success_threshold > MAX_SUCCESS_THRESHOLD {
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
