//! Exponential backoff arithmetic shared by the breaker's open wait and the bindings' retries.

use crate::error::ConfigError;

/// Exponential backoff: `base * factor^step`, capped, with optional deterministic jitter.
///
/// The factor is in thousandths (`2000` doubles the delay at each step, `1000` keeps it
/// constant) so that the arithmetic is exact integer math on every target.
/// Jitter takes away up to `jitter_permille / 1000` of the delay, chosen by a hash of
/// `seed` and the caller's `nonce` (the breaker passes its generation), so a run is
/// reproducible given the seed.
///
/// ```
/// use fastbreaker::{Backoff, SECOND};
/// let b = Backoff { base_ns: SECOND, factor_milli: 2000, max_ns: 5 * SECOND, jitter_permille: 0, seed: 0 };
/// assert_eq!(b.delay(0, 0), SECOND);
/// assert_eq!(b.delay(2, 0), 4 * SECOND);
/// assert_eq!(b.delay(3, 0), 5 * SECOND); // capped
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay at step 0, in nanoseconds.
    pub base_ns: u64,
    /// Growth per step in thousandths (1000 = constant). At least 1000.
    pub factor_milli: u32,
    /// Upper bound of the delay before jitter, in nanoseconds. At least `base_ns`.
    pub max_ns: u64,
    /// Largest fraction of the delay, in thousandths, that jitter may take away (0..=1000).
    pub jitter_permille: u16,
    /// Seed of the jitter's hash.
    pub seed: u64,
}

impl Backoff {
    /// A validated backoff: `factor_milli >= 1000`, `max_ns >= base_ns`,
    /// `jitter_permille <= 1000`. The error names the field and the value.
    ///
    /// ```
    /// use fastbreaker::{Backoff, SECOND};
    /// let b = Backoff::new(SECOND, 2000, 60 * SECOND, 0, 0).unwrap();
    /// assert_eq!(b.delay(1, 0), 2 * SECOND);
    /// assert_eq!(Backoff::new(SECOND, 500, SECOND, 0, 0).unwrap_err().field, "factor_milli");
    /// ```
    pub const fn new(
        base_ns: u64,
        factor_milli: u32,
        max_ns: u64,
        jitter_permille: u16,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        if factor_milli < 1000 {
            return Err(ConfigError::new(
                "factor_milli",
                factor_milli as u64,
                "at least 1000 (the delay never shrinks)",
            ));
        }
        if max_ns < base_ns {
            return Err(ConfigError::new("max_ns", max_ns, "at least base_ns"));
        }
        if jitter_permille > 1000 {
            return Err(ConfigError::new(
                "jitter_permille",
                jitter_permille as u64,
                "at most 1000",
            ));
        }
        Ok(Backoff {
            base_ns,
            factor_milli,
            max_ns,
            jitter_permille,
            seed,
        })
    }

    /// One growth step of `d`: `d * factor / 1000`, exactly, saturating at `max_ns`.
    const fn grow(&self, d: u64) -> u64 {
        // d * f / 1000 exactly, as (d / 1000) * f + (d % 1000) * f / 1000.
        let f = self.factor_milli as u64;
        let d = match (d / 1000).checked_mul(f) {
            Some(q) => match q.checked_add(d % 1000 * f / 1000) {
                Some(v) => v,
                None => u64::MAX,
            },
            None => u64::MAX,
        };
        if d > self.max_ns {
            self.max_ns
        } else {
            d
        }
    }

    /// How many growth steps the delay takes to reach `max_ns` (0 if it never grows).
    /// Counting stops past 1024: a result above
    /// [`MAX_BACKOFF_STEPS`](crate::limits::MAX_BACKOFF_STEPS) means "too many" (a factor so
    /// small that the delay grows too slowly, or not at all once rounded).
    pub const fn steps_to_cap(&self) -> u32 {
        if self.factor_milli <= 1000 || self.base_ns >= self.max_ns {
            return 0;
        }
        let mut d = self.base_ns;
        let mut steps = 0;
        while d < self.max_ns && steps <= 1024 {
            d = self.grow(d);
            steps += 1;
        }
        steps
    }

    /// The delay before attempt `step` (0-based), jittered by `nonce`.
    pub const fn delay(&self, step: u32, nonce: u64) -> u64 {
        let mut d = if self.base_ns > self.max_ns {
            self.max_ns
        } else {
            self.base_ns
        };
        if self.factor_milli > 1000 {
            let mut i = 0;
            while i < step && d < self.max_ns {
                let next = self.grow(d);
                if next == d {
                    break; // rounding keeps it here for good
                }
                d = next;
                i += 1;
            }
        }
        if self.jitter_permille == 0 || d == 0 {
            return d;
        }
        // Take away a pseudo-random part of up to jitter_permille/1000 of the delay.
        let span =
            d / 1000 * self.jitter_permille as u64 + d % 1000 * self.jitter_permille as u64 / 1000;
        let r = splitmix64(self.seed ^ nonce.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        d - mul_frac(span, r)
    }
}

/// `x * r / 2^64` without 128-bit arithmetic: a uniform fraction of `x`.
const fn mul_frac(x: u64, r: u64) -> u64 {
    let (xh, xl) = (x >> 32, x & 0xFFFF_FFFF);
    let (rh, rl) = (r >> 32, r & 0xFFFF_FFFF);
    let lo = (xl * rl) >> 32;
    let mid1 = xh * rl;
    let mid2 = xl * rh;
    let mid = (mid1 & 0xFFFF_FFFF) + (mid2 & 0xFFFF_FFFF) + lo;
    xh * rh + (mid1 >> 32) + (mid2 >> 32) + (mid >> 32)
}

/// SplitMix64 finaliser: a cheap, well-mixed hash of one word.
pub(crate) const fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn b(factor: u32, max: u64, jitter: u16) -> Backoff {
        Backoff {
            base_ns: S,
            factor_milli: factor,
            max_ns: max,
            jitter_permille: jitter,
            seed: 7,
        }
    }

    #[test]
    fn constant_without_growth() {
        for step in [0, 1, 5, 31, u32::MAX] {
            assert_eq!(b(1000, 10 * S, 0).delay(step, 3), S);
        }
    }

    #[test]
    fn grows_and_caps() {
        let x = b(1500, 4 * S, 0);
        assert_eq!(x.delay(1, 0), 1_500_000_000);
        assert_eq!(x.delay(2, 0), 2_250_000_000);
        assert_eq!(x.delay(4, 0), 4 * S);
        assert_eq!(x.delay(u32::MAX, 0), 4 * S);
    }

    #[test]
    fn huge_values_saturate_at_cap() {
        let x = Backoff {
            base_ns: u64::MAX / 2,
            factor_milli: u32::MAX,
            max_ns: u64::MAX,
            jitter_permille: 0,
            seed: 0,
        };
        assert_eq!(x.delay(3, 0), u64::MAX);
    }

    #[test]
    fn jitter_is_bounded_and_deterministic() {
        let x = b(1000, S, 500);
        let mut distinct = 0;
        let mut last = 0;
        for nonce in 0..1000 {
            let d = x.delay(0, nonce);
            assert!((S / 2..=S).contains(&d), "{d}");
            assert_eq!(d, x.delay(0, nonce));
            if d != last {
                distinct += 1;
            }
            last = d;
        }
        assert!(distinct > 900, "jitter barely varies: {distinct}");
        let full = b(1000, S, 1000);
        assert!(
            (0..1000).all(|n| full.delay(0, n) <= S) && (0..1000).any(|n| full.delay(0, n) < S / 2)
        );
    }

    #[test]
    fn steps_to_cap_counts_growth() {
        assert_eq!(b(1000, 10 * S, 0).steps_to_cap(), 0);
        assert_eq!(b(2000, 8 * S, 0).steps_to_cap(), 3);
        assert_eq!(b(2000, 9 * S, 0).steps_to_cap(), 4);
        // 1.1x up to 100x: 49 steps (the old 5-bit step stopped at 31, 19.2x).
        let slow = b(1100, 100 * S, 0);
        assert_eq!(slow.steps_to_cap(), 49);
        assert_eq!(slow.delay(49, 0), 100 * S);
        assert!(slow.delay(48, 0) < 100 * S);
        // 1 ns times 1.001 rounds back to 1 ns: it never grows.
        let stuck = Backoff {
            base_ns: 1,
            factor_milli: 1001,
            max_ns: 10,
            jitter_permille: 0,
            seed: 0,
        };
        assert!(stuck.steps_to_cap() > 1023);
        assert_eq!(stuck.delay(u32::MAX, 0), 1);
    }

    #[test]
    fn new_validates_each_field() {
        assert_eq!(
            Backoff::new(S, 2000, 4 * S, 100, 9),
            Ok(Backoff {
                base_ns: S,
                factor_milli: 2000,
                max_ns: 4 * S,
                jitter_permille: 100,
                seed: 9
            })
        );
        let e = Backoff::new(S, 999, 4 * S, 0, 0).unwrap_err();
        assert_eq!((e.field, e.value), ("factor_milli", 999));
        let e = Backoff::new(2 * S, 1000, S, 0, 0).unwrap_err();
        assert_eq!((e.field, e.value), ("max_ns", S));
        let e = Backoff::new(S, 1000, S, 1001, 0).unwrap_err();
        assert_eq!((e.field, e.value), ("jitter_permille", 1001));
    }

    #[test]
    fn mul_frac_matches_u128() {
        for (x, r) in [
            (u64::MAX, u64::MAX),
            (12345, 1 << 63),
            (u64::MAX, 1),
            (987654321987, 0xDEAD_BEEF_0000_1234),
        ] {
            assert_eq!(mul_frac(x, r), ((x as u128 * r as u128) >> 64) as u64);
        }
    }
}
