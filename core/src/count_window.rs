//! Count-based sliding window: the last N outcomes as two bit rings.

use crate::error::ConfigError;
use crate::limits::DEFAULT_WINDOW_SIZE;
use crate::sync::{maybe_const_fn, zeroed_u32s, AtomicU32, Ordering};
use crate::window::{Window, WindowShape, WindowStats};

/// The last `size` outcomes (at most `32 * WORDS`), kept as a failure bit ring and a slow-call
/// bit ring, with their population counts.
///
/// All orderings are `Relaxed`: every count is adjusted by the thread whose read-modify-write
/// flipped the matching bit, so counts equal contents at quiescence, and nothing else is
/// published through the window.
///
/// A window full of fast successes takes another fast success without writing anything (its
/// contents would not change), so a healthy breaker's successes touch no shared cache line.
///
/// Slots are chosen by a 32-bit ticket; when `size` does not divide 2^32, the ticket's wrap
/// (after 2^32 outcomes) makes one slot be overwritten early, once.
#[derive(Debug)]
#[repr(C)]
pub struct CountWindow<const WORDS: usize> {
    size: u32,
    head: AtomicU32,
    samples: AtomicU32,
    failure_count: AtomicU32,
    slow_count: AtomicU32,
    failures: [AtomicU32; WORDS],
    slow: [AtomicU32; WORDS],
}

/// A window of up to 64 outcomes.
pub type CountWindow64 = CountWindow<2>;
/// A window of up to 128 outcomes.
pub type CountWindow128 = CountWindow<4>;
/// A window of up to 256 outcomes.
pub type CountWindow256 = CountWindow<8>;
/// A window of up to 1024 outcomes.
pub type CountWindow1024 = CountWindow<32>;

impl<const WORDS: usize> CountWindow<WORDS> {
    /// The most outcomes this window type can hold.
    pub const CAPACITY: u32 = 32 * WORDS as u32;

    maybe_const_fn! {
        /// A window of the last `size` outcomes; `None`: 100, or the capacity if smaller.
        pub fn new(size: Option<u16>) -> Result<Self, ConfigError> {
            let size = match size {
                Some(s) => s as u32,
                None if (DEFAULT_WINDOW_SIZE as u32) < Self::CAPACITY => DEFAULT_WINDOW_SIZE as u32,
                None => Self::CAPACITY,
            };
            if size == 0 || size > Self::CAPACITY {
                return Err(ConfigError::new("window_size", size as u64, "must be between 1 and the window's capacity"));
            }
            Ok(Self {
                size,
                head: AtomicU32::new(0),
                samples: AtomicU32::new(0),
                failure_count: AtomicU32::new(0),
                slow_count: AtomicU32::new(0),
                failures: zeroed_u32s(),
                slow: zeroed_u32s(),
            })
        }
    }

    /// How many outcomes the window covers.
    pub const fn size(&self) -> u32 {
        self.size
    }

    /// The size, clamped into 1..=capacity: a corrupt size (shared memory) is never trusted.
    #[inline]
    fn span(&self) -> u32 {
        if self.size == 0 || self.size > Self::CAPACITY {
            Self::CAPACITY
        } else {
            self.size
        }
    }

    /// Counts that may be transiently off by the records in progress, clamped to the size.
    fn clamp(&self, c: u32) -> u64 {
        if (c as i32) < 0 {
            0
        } else {
            c.min(self.span()) as u64
        }
    }
}

#[cfg(test)]
impl<const WORDS: usize> CountWindow<WORDS> {
    /// Stores arbitrary bits in every atomic word (tests of corrupt shared state).
    pub(crate) fn scramble(&self, next: &mut dyn FnMut() -> u64) {
        for a in [
            &self.head,
            &self.samples,
            &self.failure_count,
            &self.slow_count,
        ] {
            a.store(next() as u32, Ordering::Relaxed);
        }
        for a in self.failures.iter().chain(&self.slow) {
            a.store(next() as u32, Ordering::Relaxed);
        }
    }
}

#[cfg(all(feature = "shm", unix))]
impl<const WORDS: usize> crate::window::SameSettings for CountWindow<WORDS> {
    fn same_settings(&self, other: &Self) -> bool {
        self.size == other.size
    }
}

/// Sets or clears bit `slot` of `ring`, adjusting `count` if this call flipped it.
fn put(ring: &[AtomicU32], count: &AtomicU32, slot: u32, value: bool) {
    let word = &ring[(slot / 32) as usize];
    let mask = 1u32 << (slot % 32);
    if value {
        if word.fetch_or(mask, Ordering::Relaxed) & mask == 0 {
            count.fetch_add(1, Ordering::Relaxed);
        }
    } else if word.load(Ordering::Relaxed) & mask != 0
        && word.fetch_and(!mask, Ordering::Relaxed) & mask != 0
    {
        count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Clears `ring`, taking from `count` exactly the bits this call cleared.
///
/// A count left far outside `-SLACK..=span + SLACK` cannot come from records in progress
/// (each is off by at most one, transiently): it is corrupt (shared memory), and is
/// restarted at 0. A corrupt count within range cannot be told from a true one; `stats`
/// bounds what it can do (never more failures than samples).
fn wipe(ring: &[AtomicU32], count: &AtomicU32, span: u32) {
    const SLACK: u32 = 1 << 16;
    for word in ring {
        if word.load(Ordering::Relaxed) != 0 {
            let old = word.swap(0, Ordering::Relaxed);
            count.fetch_sub(old.count_ones(), Ordering::Relaxed);
        }
    }
    let c = count.load(Ordering::Relaxed);
    if c.wrapping_add(SLACK) > span + 2 * SLACK {
        // Relaxed: a lone repair of a corrupt value; racing records keep their own +-1.
        let _ = count.compare_exchange(c, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}

impl<const WORDS: usize> Window for CountWindow<WORDS> {
    const NEEDS_TIME: bool = false;

    #[inline]
    fn record(&self, failure: bool, slow: bool, _now: u64) {
        if !failure
            && !slow
            && self.failure_count.load(Ordering::Relaxed) == 0
            && self.slow_count.load(Ordering::Relaxed) == 0
            && self.samples.load(Ordering::Relaxed) >= self.size
        {
            return; // all fast successes already: one more changes nothing
        }
        let size = self.span();
        let slot = self.head.fetch_add(1, Ordering::Relaxed) % size;
        put(&self.failures, &self.failure_count, slot, failure);
        put(&self.slow, &self.slow_count, slot, slow);
        let mut n = self.samples.load(Ordering::Relaxed);
        while n < size {
            match self
                .samples
                .compare_exchange_weak(n, n + 1, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => n = actual,
            }
        }
    }

    #[inline]
    fn stats(&self, _now: u64) -> WindowStats {
        let samples = self.clamp(self.samples.load(Ordering::Relaxed));
        // Never more failures or slow calls than samples: a record in progress may have set
        // its bit before counting its sample, and a corrupt count (shared memory) must not
        // make a rate above 100 %.
        WindowStats {
            samples,
            failures: self
                .clamp(self.failure_count.load(Ordering::Relaxed))
                .min(samples),
            slow: self
                .clamp(self.slow_count.load(Ordering::Relaxed))
                .min(samples),
        }
    }

    fn shape(&self) -> WindowShape {
        WindowShape::Count { size: self.span() }
    }

    fn clear(&self) {
        let span = self.span();
        wipe(&self.failures, &self.failure_count, span);
        wipe(&self.slow, &self.slow_count, span);
        self.samples.store(0, Ordering::Relaxed);
        self.head.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_n() {
        let w = CountWindow64::new(Some(10)).unwrap();
        for i in 0..25 {
            w.record(i % 5 == 0, i % 2 == 0, 0);
        }
        // outcomes 15..25: failures at 15, 20; slow at 16, 18, 20, 22, 24
        assert_eq!(
            w.stats(0),
            WindowStats {
                samples: 10,
                failures: 2,
                slow: 5
            }
        );
        w.clear();
        assert_eq!(w.stats(0), WindowStats::default());
    }

    #[test]
    fn steady_success_writes_nothing() {
        let w = CountWindow64::new(Some(8)).unwrap();
        for _ in 0..8 {
            w.record(false, false, 0);
        }
        let head = w.head.load(Ordering::Relaxed);
        w.record(false, false, 0);
        assert_eq!(w.head.load(Ordering::Relaxed), head);
        w.record(true, false, 0);
        assert_eq!(w.stats(0).failures, 1);
        for _ in 0..7 {
            w.record(false, false, 0);
        }
        assert_eq!(
            w.stats(0).failures,
            1,
            "the failure is still among the last 8"
        );
        w.record(false, false, 0);
        assert_eq!(w.stats(0).failures, 0);
    }

    #[test]
    fn any_bit_pattern_in_the_words_is_survivable() {
        let mut next = crate::breaker::tests::arbitrary_words(0x2545_F491_4F6C_DD1D);
        let w = CountWindow1024::new(Some(1000)).unwrap();
        for i in 0..2_000u64 {
            w.scramble(&mut next);
            w.record(i % 2 == 0, i % 3 == 0, 0);
            let s = w.stats(0);
            assert!(s.samples <= 1000 && s.failures <= s.samples && s.slow <= s.samples);
        }
        w.clear();
        assert_eq!(w.stats(0), WindowStats::default());
        // A count far out of range is repaired by the next clear.
        w.failure_count.store(u32::MAX / 2, Ordering::Relaxed);
        w.clear();
        assert_eq!(w.failure_count.load(Ordering::Relaxed), 0);
        for _ in 0..10 {
            w.record(false, false, 0);
        }
        assert_eq!(w.stats(0).failures, 0);
    }

    #[test]
    fn size_is_validated() {
        assert_eq!(
            CountWindow64::new(Some(0)).unwrap_err().field,
            "window_size"
        );
        assert_eq!(CountWindow64::new(Some(65)).unwrap_err().value, 65);
        assert_eq!(CountWindow64::new(None).unwrap().size(), 64);
        assert_eq!(CountWindow1024::new(None).unwrap().size(), 100);
        assert_eq!(CountWindow1024::new(Some(1024)).unwrap().size(), 1024);
    }
}
