//! The sliding-window interface shared by [`CountWindow`](crate::CountWindow) and
//! [`TimeWindow`](crate::TimeWindow).

/// What a window holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowStats {
    /// Outcomes in the window (successes and failures; ignored outcomes never enter it).
    pub samples: u64,
    /// Failures among them.
    pub failures: u64,
    /// Slow calls among them (successful or not).
    pub slow: u64,
}

impl WindowStats {
    /// Whether `part` of the samples reaches `percent` %, once `minimum` samples are in.
    pub const fn reaches(&self, part: u64, percent: u8, minimum: u32) -> bool {
        self.samples >= minimum as u64
            && self.samples > 0
            && (part as u128) * 100 >= (percent as u128) * (self.samples as u128)
    }

    /// Failures as a fraction of the samples, 0.0..=1.0 (0 when empty). The one unit of
    /// rates in every binding: the Python metrics and the Prometheus gauges report it as is.
    pub fn failure_rate(&self) -> f64 {
        ratio(self.failures, self.samples)
    }

    /// Slow calls as a fraction of the samples, 0.0..=1.0 (0 when empty).
    pub fn slow_rate(&self) -> f64 {
        ratio(self.slow, self.samples)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// What a window covers: the last outcomes, or the last buckets of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WindowShape {
    /// The last `size` outcomes.
    Count {
        /// Outcomes covered.
        size: u32,
    },
    /// The last `buckets` buckets of `bucket_duration_ns` each.
    Time {
        /// Buckets covered.
        buckets: u32,
        /// The span of one bucket.
        bucket_duration_ns: u64,
    },
}

/// A fixed-size, lock-free sliding window of call outcomes.
///
/// Implemented by [`CountWindow`](crate::CountWindow) and [`TimeWindow`](crate::TimeWindow);
/// a breaker is generic over it. All methods may be called from many threads at once; the
/// counts equal the window's contents whenever no record is in progress.
pub trait Window {
    /// Whether the window needs the time (a count window does not).
    const NEEDS_TIME: bool;
    /// Adds one outcome at time `now` (ignored by count windows).
    fn record(&self, failure: bool, slow: bool, now: u64);
    /// The window's contents at time `now`.
    fn stats(&self, now: u64) -> WindowStats;
    /// Empties the window.
    fn clear(&self);
    /// What the window covers.
    fn shape(&self) -> WindowShape;
}

/// Compares the settings of two instances: the shared-memory region checks a primitive
/// found in place against one rebuilt from its stored configuration before handing it out,
/// so that corrupt fixed settings never reach the state machines, and compares a requested
/// configuration with the one in force.
#[cfg(all(feature = "shm", unix))]
pub(crate) trait SameSettings {
    /// Whether the settings in force (fixed and changeable at run time) are `other`'s.
    fn same_settings(&self, other: &Self) -> bool;

    /// Whether the settings fixed for the instance's life (its non-atomic fields: a
    /// window's shape, a bucket's time unit) are `other`'s.
    fn same_shape(&self, other: &Self) -> bool {
        self.same_settings(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_exact_fractions() {
        let s = WindowStats {
            samples: 3,
            failures: 1,
            slow: 3,
        };
        assert_eq!(s.failure_rate(), 1.0 / 3.0);
        assert_eq!(s.slow_rate(), 1.0);
        assert_eq!(WindowStats::default().failure_rate(), 0.0);
        assert!(s.reaches(1, 33, 3) && !s.reaches(1, 34, 3) && !s.reaches(1, 1, 4));
    }
}
