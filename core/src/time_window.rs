//! Time-based sliding window: `B` buckets of a fixed duration, reset lazily.

use crate::error::ConfigError;
use crate::limits::DEFAULT_WINDOW_BUCKETS;
use crate::sync::{maybe_const_fn, AtomicU64, Ordering};
use crate::window::{Window, WindowShape, WindowStats};

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

/// The outcomes of the last `buckets` buckets of `bucket_duration_ns` each, where `buckets`
/// is chosen at run time up to the capacity `B`.
///
/// Each bucket keeps three epoch-tagged 32-bit counters (total, failures, slow), each in one
/// atomic word changed by compare-and-swap. Epochs are compared on 32 bits: a bucket left
/// untouched for a multiple of 2^32 bucket durations, give or take the window's bucket
/// count, would be read as current.
#[derive(Debug)]
#[repr(C)]
pub struct TimeWindow<const B: usize> {
    bucket_ns: u64,
    /// Buckets in use, 1..=B.
    count: u32,
    buckets: [Bucket; B],
}

/// A time window of up to 64 buckets: the one the C and Python bindings use.
pub type TimeWindow64 = TimeWindow<64>;

impl<const B: usize> TimeWindow<B> {
    maybe_const_fn! {
        /// A window of `buckets` buckets (`None`: 10, or `B` if smaller) of
        /// `bucket_duration_ns` each.
        pub fn new(bucket_duration_ns: u64, buckets: Option<u16>) -> Result<Self, ConfigError> {
            if bucket_duration_ns == 0 {
                return Err(ConfigError::new("bucket_duration_ns", 0, "must be greater than 0"));
            }
            let count = match buckets {
                Some(n) => n as u64,
                None if (DEFAULT_WINDOW_BUCKETS as usize) < B => DEFAULT_WINDOW_BUCKETS as u64,
                None => B as u64,
            };
            if count == 0 || count > B as u64 || count > u32::MAX as u64 {
                return Err(ConfigError::new("window_buckets", count, "must be between 1 and the window's capacity"));
            }
            let count = count as u32;
            #[cfg(not(loom))]
            let buckets = [const { Bucket::new() }; B];
            #[cfg(loom)]
            let buckets = core::array::from_fn(|_| Bucket::new());
            Ok(Self { bucket_ns: bucket_duration_ns, count, buckets })
        }
    }

    /// The span of one bucket in nanoseconds.
    pub const fn bucket_duration_ns(&self) -> u64 {
        self.bucket_ns
    }

    /// How many buckets the window covers.
    pub const fn buckets(&self) -> u32 {
        self.count
    }

    /// The buckets in use. A corrupt count (shared memory) is clamped, never trusted.
    #[inline]
    fn used(&self) -> &[Bucket] {
        let n = if self.count == 0 || self.count as usize > B {
            B
        } else {
            self.count as usize
        };
        &self.buckets[..n]
    }

    #[inline]
    fn locate(&self, now: u64) -> (&Bucket, u32, u32) {
        let used = self.used();
        let bucket_ns = if self.bucket_ns == 0 {
            1
        } else {
            self.bucket_ns
        };
        let epoch = now / bucket_ns;
        let span = used.len() as u32;
        (&used[(epoch % span as u64) as usize], epoch as u32, span)
    }
}

#[cfg(test)]
impl<const B: usize> TimeWindow<B> {
    /// Stores arbitrary bits in every atomic word (tests of corrupt shared state).
    pub(crate) fn scramble(&self, next: &mut dyn FnMut() -> u64) {
        for b in &self.buckets {
            for t in [&b.total, &b.failures, &b.slow] {
                t.0.store(next(), Ordering::Relaxed);
            }
        }
    }
}

#[cfg(all(feature = "shm", unix))]
impl<const B: usize> crate::window::SameSettings for TimeWindow<B> {
    fn same_settings(&self, other: &Self) -> bool {
        self.bucket_ns == other.bucket_ns && self.count == other.count
    }
}

impl<const B: usize> Window for TimeWindow<B> {
    const NEEDS_TIME: bool = true;

    #[inline]
    fn record(&self, failure: bool, slow: bool, now: u64) {
        let (bucket, epoch, span) = self.locate(now);
        bucket.total.add(epoch, span);
        if failure {
            bucket.failures.add(epoch, span);
        }
        if slow {
            bucket.slow.add(epoch, span);
        }
    }

    fn stats(&self, now: u64) -> WindowStats {
        let (_, epoch, span) = self.locate(now);
        let mut s = WindowStats::default();
        for b in self.used() {
            s.samples += b.total.count(epoch, span);
            s.failures += b.failures.count(epoch, span);
            s.slow += b.slow.count(epoch, span);
        }
        // A record in progress may have bumped a failure before its total.
        s.failures = s.failures.min(s.samples);
        s.slow = s.slow.min(s.samples);
        s
    }

    fn shape(&self) -> WindowShape {
        WindowShape::Time {
            buckets: self.used().len() as u32,
            bucket_duration_ns: self.bucket_ns,
        }
    }

    fn clear(&self) {
        for b in self.used() {
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
        let w = TimeWindow::<4>::new(S, Some(4)).unwrap();
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
        let w = TimeWindow::<4>::new(1, Some(4)).unwrap();
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
    fn any_bit_pattern_in_the_buckets_is_survivable() {
        let mut next = crate::breaker::tests::arbitrary_words(0x9E37_79B9_7F4A_7C15);
        let w = TimeWindow::<64>::new(S, Some(64)).unwrap();
        for i in 0..2_000u64 {
            w.scramble(&mut next);
            let now = next() >> (i % 64);
            w.record(i % 2 == 0, i % 3 == 0, now);
            let s = w.stats(now);
            assert!(s.failures <= s.samples && s.slow <= s.samples);
        }
        w.clear();
        assert_eq!(w.stats(0), WindowStats::default());
    }

    #[test]
    fn zero_duration_is_an_error() {
        let e = TimeWindow::<4>::new(0, None).unwrap_err();
        assert_eq!((e.field, e.value), ("bucket_duration_ns", 0));
    }

    #[test]
    fn bucket_count_is_chosen_at_run_time() {
        assert_eq!(TimeWindow::<64>::new(S, None).unwrap().buckets(), 10);
        assert_eq!(TimeWindow::<4>::new(S, None).unwrap().buckets(), 4);
        let e = TimeWindow::<64>::new(S, Some(65)).unwrap_err();
        assert_eq!((e.field, e.value), ("window_buckets", 65));
        assert_eq!(TimeWindow::<64>::new(S, Some(0)).unwrap_err().value, 0);
        // 7 buckets of 1 s: an outcome leaves after 7 s, whatever the capacity.
        let w = TimeWindow::<64>::new(S, Some(7)).unwrap();
        w.record(true, false, 0);
        assert_eq!(w.stats(6 * S).failures, 1);
        assert_eq!(w.stats(7 * S).failures, 0);
    }
}
