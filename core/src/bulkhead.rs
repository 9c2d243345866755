//! Bulkhead: a lock-free limit on calls in flight.

use crate::error::ConfigError;
use crate::limits::MIN_MAX_CONCURRENT;
use crate::sync::{maybe_const_fn, AtomicU32, AtomicU64, Ordering};

/// Why a [`Bulkhead`] refused a call. Rejection is data, not an error type to unwrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BulkheadRejected {
    /// Every slot is taken.
    Full {
        /// The bulkhead's limit.
        max_concurrent: u32,
    },
}

impl core::fmt::Display for BulkheadRejected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BulkheadRejected::Full { max_concurrent } => {
                write!(f, "bulkhead full: {max_concurrent} calls in flight")
            }
        }
    }
}

/// At most `max_concurrent` permits out at once.
///
/// Acquire is a CAS on the in-flight count (never above the limit, even transiently);
/// release is a decrement. Orderings are `Relaxed`: the count publishes no other memory.
///
/// ```
/// use fastbreaker::{Bulkhead, BulkheadRejected};
/// let bulkhead = Bulkhead::new(2).unwrap();
/// let a = bulkhead.try_acquire().unwrap();
/// let _b = bulkhead.try_acquire().unwrap();
/// assert_eq!(bulkhead.try_acquire().unwrap_err(), BulkheadRejected::Full { max_concurrent: 2 });
/// drop(a);
/// assert!(bulkhead.try_acquire().is_ok());
/// assert_eq!(bulkhead.metrics().peak, 2);
/// ```
#[derive(Debug)]
#[repr(C)]
pub struct Bulkhead {
    in_flight: AtomicU32,
    /// The limit; changed at run time by [`reconfigure`](Bulkhead::reconfigure).
    max: AtomicU32,
    peak: AtomicU32,
    acquired: AtomicU64,
    rejected: AtomicU64,
}

/// Counters of a [`Bulkhead`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadMetrics {
    /// The limit.
    pub max_concurrent: u32,
    /// Permits out now.
    pub in_flight: u32,
    /// Most permits ever out at once.
    pub peak: u32,
    /// Permits granted in all.
    pub acquired: u64,
    /// Requests refused in all.
    pub rejected: u64,
}

/// A bulkhead slot; dropping it gives the slot back.
#[must_use = "dropping the permit releases the slot at once"]
#[derive(Debug)]
pub struct BulkheadPermit<'a> {
    bulkhead: &'a Bulkhead,
}

impl Drop for BulkheadPermit<'_> {
    fn drop(&mut self) {
        self.bulkhead.release();
    }
}

impl Bulkhead {
    maybe_const_fn! {
        /// A bulkhead of `max_concurrent` slots (at least 1).
        pub fn new(max_concurrent: u32) -> Result<Self, ConfigError> {
            if max_concurrent < MIN_MAX_CONCURRENT {
                return Err(ConfigError::new("max_concurrent", 0, "must be at least 1"));
            }
            Ok(Bulkhead {
                in_flight: AtomicU32::new(0),
                max: AtomicU32::new(max_concurrent),
                peak: AtomicU32::new(0),
                acquired: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
            })
        }
    }

    /// Takes a slot, released when the permit is dropped.
    #[inline]
    pub fn try_acquire(&self) -> Result<BulkheadPermit<'_>, BulkheadRejected> {
        if self.try_acquire_raw() {
            Ok(BulkheadPermit { bulkhead: self })
        } else {
            Err(BulkheadRejected::Full {
                max_concurrent: self.max_concurrent(),
            })
        }
    }

    /// Takes a slot without a guard; the caller must call [`release`](Self::release) once.
    /// For bindings that hold slots across a language boundary (through
    /// [`binding`](crate::binding)).
    #[inline]
    pub(crate) fn try_acquire_raw(&self) -> bool {
        let max = self.max.load(Ordering::Relaxed);
        let mut cur = self.in_flight.load(Ordering::Relaxed);
        loop {
            if cur >= max {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            match self.in_flight.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        self.acquired.fetch_add(1, Ordering::Relaxed);
        if self.peak.load(Ordering::Relaxed) <= cur {
            self.peak.fetch_max(cur + 1, Ordering::Relaxed);
        }
        true
    }

    /// Gives back a slot taken with [`try_acquire_raw`](Self::try_acquire_raw). A release
    /// with no slot out changes nothing (the count never wraps) and returns `false`, so a
    /// binding can report the extra release.
    #[inline]
    pub(crate) fn release(&self) -> bool {
        let mut cur = self.in_flight.load(Ordering::Relaxed);
        while cur > 0 {
            match self.in_flight.compare_exchange_weak(
                cur,
                cur - 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
        false
    }

    /// The limit.
    #[inline]
    pub fn max_concurrent(&self) -> u32 {
        self.max.load(Ordering::Relaxed)
    }

    /// Changes the limit at run time. Permits out stay out: a limit lowered below the
    /// permits in flight admits nothing until they drop below it. One word: every acquire
    /// decides on the old limit or the new one.
    ///
    /// ```
    /// use fastbreaker::Bulkhead;
    /// let bulkhead = Bulkhead::new(2).unwrap();
    /// let a = bulkhead.try_acquire().unwrap();
    /// let b = bulkhead.try_acquire().unwrap();
    /// bulkhead.reconfigure(1).unwrap();
    /// drop(a);
    /// assert!(bulkhead.try_acquire().is_err(), "1 still in flight");
    /// drop(b);
    /// assert!(bulkhead.try_acquire().is_ok());
    /// ```
    pub fn reconfigure(&self, max_concurrent: u32) -> Result<(), ConfigError> {
        let _ = Self::new(max_concurrent)?;
        self.max.store(max_concurrent, Ordering::Relaxed);
        Ok(())
    }

    /// Permits out now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> BulkheadMetrics {
        BulkheadMetrics {
            max_concurrent: self.max_concurrent(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            peak: self.peak.load(Ordering::Relaxed),
            acquired: self.acquired.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
impl Bulkhead {
    /// Stores arbitrary bits in every atomic word (tests of corrupt shared state).
    pub(crate) fn scramble(&self, next: &mut dyn FnMut() -> u64) {
        self.in_flight.store(next() as u32, Ordering::Relaxed);
        self.peak.store(next() as u32, Ordering::Relaxed);
        self.max.store(next() as u32, Ordering::Relaxed);
        self.acquired.store(next(), Ordering::Relaxed);
        self.rejected.store(next(), Ordering::Relaxed);
    }
}

#[cfg(all(feature = "shm", unix))]
impl crate::window::SameSettings for Bulkhead {
    fn same_settings(&self, other: &Self) -> bool {
        self.max_concurrent() == other.max_concurrent()
    }

    fn same_shape(&self, _: &Self) -> bool {
        true // the limit is all there is, and it changes at run time
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_counts() {
        let b = Bulkhead::new(1).unwrap();
        assert!(b.try_acquire_raw());
        assert!(!b.try_acquire_raw());
        assert!(b.release());
        assert!(!b.release(), "an extra release is refused");
        assert_eq!(b.in_flight(), 0);
        assert!(b.try_acquire_raw());
        assert_eq!(
            b.metrics(),
            BulkheadMetrics {
                max_concurrent: 1,
                in_flight: 1,
                peak: 1,
                acquired: 2,
                rejected: 1
            }
        );
        assert_eq!(Bulkhead::new(0).unwrap_err().field, "max_concurrent");
    }

    #[test]
    fn reconfigure_keeps_the_permits_out() {
        let b = Bulkhead::new(3).unwrap();
        let permits: [_; 3] = core::array::from_fn(|_| b.try_acquire().unwrap());
        assert_eq!(b.reconfigure(0).unwrap_err().field, "max_concurrent");
        assert_eq!(b.max_concurrent(), 3, "a refused change changes nothing");
        b.reconfigure(1).unwrap();
        assert_eq!(b.in_flight(), 3);
        drop(permits);
        assert_eq!(b.in_flight(), 0);
        let one = b.try_acquire().unwrap();
        assert_eq!(
            b.try_acquire().unwrap_err(),
            BulkheadRejected::Full { max_concurrent: 1 }
        );
        b.reconfigure(2).unwrap();
        let two = b.try_acquire().unwrap();
        assert_eq!(b.metrics().max_concurrent, 2);
        drop((one, two));
    }

    /// Every atomic word (shared with other processes in a region) may hold any bits: no
    /// panic, no hang, and a corrupt in-flight count never admits past the limit.
    #[test]
    fn any_bit_pattern_in_the_words_is_survivable() {
        let mut next = crate::breaker::tests::arbitrary_words(0x2545_F491_4F6C_DD1D);
        let b = Bulkhead::new(3).unwrap();
        for _ in 0..5_000 {
            b.scramble(&mut next);
            let (before, max) = (b.in_flight(), b.max_concurrent());
            if let Ok(permit) = b.try_acquire() {
                assert!(before < max, "admitted at {before} in flight, limit {max}");
                assert!(b.in_flight() <= max);
                drop(permit);
            }
            let _ = b.release();
            let _ = b.metrics();
        }
        b.scramble(&mut || u32::MAX as u64);
        assert!(b.try_acquire().is_err());
        b.scramble(&mut || 0);
        assert!(b.try_acquire().is_err(), "a limit of 0 admits nothing");
    }
}
