//! The configuration error every primitive's constructor returns.

use core::fmt;

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

/// Why a `reconfigure` call changed nothing.
///
/// ```
/// use fastbreaker::{BucketConfig, ReconfigureError, TokenBucket};
/// let bucket = TokenBucket::new(BucketConfig::per_second(10, 5)).unwrap();
/// let err = bucket.reconfigure(BucketConfig::per_second(0, 5), 0).unwrap_err();
/// assert!(matches!(err, ReconfigureError::Invalid(e) if e.field == "rate"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReconfigureError {
    /// The new configuration is invalid, or changes what cannot change at run time (the
    /// window of a breaker, the time unit of a bucket): the field says which.
    Invalid(ConfigError),
    /// Another reconfiguration of the same primitive was under way for longer than a
    /// bounded spin (in a shared region: or its process died; the region clears that).
    Busy,
}

impl From<ConfigError> for ReconfigureError {
    fn from(e: ConfigError) -> Self {
        ReconfigureError::Invalid(e)
    }
}

impl fmt::Display for ReconfigureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReconfigureError::Invalid(e) => e.fmt(f),
            ReconfigureError::Busy => f.write_str("another reconfiguration is under way"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ReconfigureError {}
