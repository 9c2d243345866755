//! Time-based sliding window: `B` buckets of a fixed duration, reset lazily.

use crate::config::ConfigError;
use crate::sync::{maybe_const_fn, AtomicU64, Ordering};
use crate::window::{Window, WindowStats};

/// One counter tagged with the 32-bit epoch (bucket number) it counts for:
/// `epoch << 32 | count`. A counter whose tag is not a current epoch counts as empty and is
/// reset by the first record of a new epoch, so no timer ever sweeps the window.
#[derive(Debug)]
struct Tagged(AtomicU64);

impl Tagged {
    maybe_const_fn! {
        fn new() -> Self {
            Tagged(AtomicU64::new(0))
        }
    }

    #[inline]
    fn add(&self, epoch: u32, span: u32) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let tag = (cur >> 32) as u32;
            let count = cur as u32;
            // A tag less than a window ahead of ours belongs to a caller whose clock read
            // was later: add to it rather than wipe its count. Anything else is stale.
            let next = if tag.wrapping_sub(epoch) < span {
                (cur & !0xFFFF_FFFF) | count.saturating_add(1) as u64
            } else {
                ((epoch as u64) << 32) | 1
            };
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// The count if the tag is within `span` epochs of `epoch` (either side).
    #[inline]
    fn count(&self, epoch: u32, span: u32) -> u64 {
        let cur = self.0.load(Ordering::Relaxed);
        let tag = (cur >> 32) as u32;
        if epoch.wrapping_sub(tag) < span || tag.wrapping_sub(epoch) < span {
            cur as u32 as u64
        } else {
            0
        }
    }
}

#[derive(Debug)]
struct Bucket {
    total: Tagged,
    failures: Tagged,
    slow: Tagged,
}

impl Bucket {
    maybe_const_fn! {
        fn new() -> Self {
            Bucket { total: Tagged::new(), failures: Tagged::new(), slow: Tagged::new() }
        }
    }
}

/// The outcomes of the last `B` buckets of `bucket_duration_ns` each.
///
/// Each bucket keeps three epoch-tagged 32-bit counters (total, failures, slow), each in one
/// atomic word changed by compare-and-swap. Epochs are compared on 32 bits: a bucket left
/// untouched for exactly a multiple of 2^32 bucket durations would be read as current.
#[derive(Debug)]
#[repr(C)]
pub struct TimeWindow<const B: usize> {
    bucket_ns: u64,
    buckets: [Bucket; B],
}

impl<const B: usize> TimeWindow<B> {
    maybe_const_fn! {
        /// A window of `B` buckets of `bucket_duration_ns` each.
        pub fn new(bucket_duration_ns: u64) -> Result<Self, ConfigError> {
            if bucket_duration_ns == 0 {
                return Err(ConfigError::new("bucket_duration_ns", 0, "must be greater than 0"));
            }
            if B == 0 || B > 1 << 16 {
                return Err(ConfigError::new("buckets", B as u64, "must be in 1..=65536"));
            }
            #[cfg(not(loom))]
            let buckets = [const { Bucket::new() }; B];
            #[cfg(loom)]
            let buckets = core::array::from_fn(|_| Bucket::new());
            Ok(Self { bucket_ns: bucket_duration_ns, buckets })
        }
    }

    /// The span of one bucket in nanoseconds.
    pub const fn bucket_duration_ns(&self) -> u64 {
        self.bucket_ns
    }

    #[inline]
    fn locate(&self, now: u64) -> (&Bucket, u32) {
        let epoch = now / self.bucket_ns;
        (&self.buckets[(epoch % B as u64) as usize], epoch as u32)
    }
}

impl<const B: usize> Window for TimeWindow<B> {
    const NEEDS_TIME: bool = true;

    #[inline]
    fn record(&self, failure: bool, slow: bool, now: u64) {
        let (bucket, epoch) = self.locate(now);
        let span = B as u32;
        bucket.total.add(epoch, span);
        if failure {
            bucket.failures.add(epoch, span);
        }
        if slow {
            bucket.slow.add(epoch, span);
        }
    }

    fn stats(&self, now: u64) -> WindowStats {
        let epoch = (now / self.bucket_ns) as u32;
        let span = B as u32;
        let mut s = WindowStats::default();
        for b in &self.buckets {
            s.samples += b.total.count(epoch, span);
            s.failures += b.failures.count(epoch, span);
            s.slow += b.slow.count(epoch, span);
        }
        // A record in progress may have bumped a failure before its total.
        s.failures = s.failures.min(s.samples);
        s.slow = s.slow.min(s.samples);
        s
    }

    fn clear(&self) {
        for b in &self.buckets {
            b.total.0.store(0, Ordering::Relaxed);
            b.failures.0.store(0, Ordering::Relaxed);
            b.slow.0.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const S: u64 = 1_000_000_000;

    #[test]
    fn buckets_expire() {
        let w = TimeWindow::<4>::new(S).unwrap();
        w.record(true, false, 0);
        w.record(false, true, S / 2);
        w.record(false, false, S);
        assert_eq!(
            w.stats(S),
            WindowStats {
                samples: 3,
                failures: 1,
                slow: 1
            }
        );
        // at 4 s the bucket of epoch 0 has left the window
        assert_eq!(
            w.stats(4 * S),
            WindowStats {
                samples: 1,
                failures: 0,
                slow: 0
            }
        );
        // a record in epoch 4 reuses bucket 0 and resets it lazily
        w.record(false, false, 4 * S);
        assert_eq!(
            w.stats(4 * S),
            WindowStats {
                samples: 2,
                failures: 0,
                slow: 0
            }
        );
        assert_eq!(w.stats(100 * S), WindowStats::default());
        w.clear();
        assert_eq!(w.stats(4 * S), WindowStats::default());
    }

    #[test]
    fn epochs_past_2_pow_31_count() {
        let w = TimeWindow::<4>::new(1).unwrap();
        w.record(true, false, 0);
        let late = (1 << 31) + 4;
        w.record(true, false, late);
        assert_eq!(
            w.stats(late),
            WindowStats {
                samples: 1,
                failures: 1,
                slow: 0
            }
        );
        let later = (1 << 32) + 7;
        w.record(false, false, later);
        assert_eq!(w.stats(later).samples, 1);
    }

    #[test]
    fn zero_duration_is_an_error() {
        let e = TimeWindow::<4>::new(0).unwrap_err();
        assert_eq!((e.field, e.value), ("bucket_duration_ns", 0));
    }
}
