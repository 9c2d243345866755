//! Google SRE client-side adaptive throttling.

use crate::error::{ConfigError, ReconfigureError};
use crate::limits::{
    DEFAULT_THROTTLE_BUCKETS, DEFAULT_THROTTLE_K_MILLI, DEFAULT_THROTTLE_WINDOW_NS,
    MAX_THROTTLE_BUCKETS, MAX_THROTTLE_K_MILLI, MAX_THROTTLE_WINDOW_NS, MIN_THROTTLE_K_MILLI,
};
use crate::sync::{maybe_const_fn, zeroed_u64s, AtomicU64, Ordering};
use crate::versioned::Versioned;

/// The configuration of an [`AdaptiveThrottle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// K in thousandths, 1000..=1_000_000 (K = 1 to 1000). Default 2000: the backend may
    /// refuse up to half of the calls before the client starts refusing some itself.
    pub k_milli: u64,
    /// The sliding window over which requests and accepts are counted, at least one
    /// nanosecond per bucket, at most one day. Default 60 s.
    pub window_ns: u64,
    /// Buckets of the window, 1..=64 (the window slides one bucket at a time). Default 10.
    pub buckets: u32,
}

impl ThrottleConfig {
    /// The defaults: K = 2 over 60 s in 10 buckets.
    pub const fn new() -> Self {
        ThrottleConfig {
            k_milli: DEFAULT_THROTTLE_K_MILLI,
            window_ns: DEFAULT_THROTTLE_WINDOW_NS,
            buckets: DEFAULT_THROTTLE_BUCKETS,
        }
    }

    /// Checks every field; the error names the first bad one, its value and the range.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if self.k_milli < MIN_THROTTLE_K_MILLI || self.k_milli > MAX_THROTTLE_K_MILLI {
            return Err(ConfigError::new(
                "k_milli",
                self.k_milli,
                "must be in 1000..=1000000 (K from 1 to 1000, in thousandths)",
            ));
        }
        if self.buckets == 0 || self.buckets > MAX_THROTTLE_BUCKETS {
            return Err(ConfigError::new(
                "buckets",
                self.buckets as u64,
                "must be in 1..=64",
            ));
        }
        if self.window_ns < self.buckets as u64 || self.window_ns > MAX_THROTTLE_WINDOW_NS {
            return Err(ConfigError::new(
                "window_ns",
                self.window_ns,
                "must be in buckets..=86400000000000 (at least 1 ns per bucket, at most one day)",
            ));
        }
        Ok(())
    }
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Why an [`AdaptiveThrottle`] refused a call locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ThrottleRejected {
    /// Refused with this probability (in millionths), drawn from the window's counts.
    Throttled {
        /// The rejection probability at the time, in millionths.
        probability_ppm: u32,
    },
}

impl core::fmt::Display for ThrottleRejected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ThrottleRejected::Throttled { probability_ppm } => write!(
                f,
                "throttled locally (rejection probability {probability_ppm} ppm)"
            ),
        }
    }
}

/// Counters of an [`AdaptiveThrottle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleMetrics {
    /// Requests counted in the window (admitted or refused).
    pub requests: u64,
    /// Requests the backend accepted, in the window.
    pub accepts: u64,
    /// The rejection probability now, in millionths.
    pub reject_probability_ppm: u32,
    /// Requests refused locally, in all.
    pub throttled: u64,
    /// Requests admitted, in all.
    pub admitted: u64,
}

/// Bits of a bucket word: `tag (22) | requests (21) | accepts (21)`.
const COUNT_BITS: u32 = 21;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
const TAG_MASK: u64 = (1 << 22) - 1;

#[inline]
fn tag_of(word: u64) -> u64 {
    word >> (2 * COUNT_BITS)
}
#[inline]
fn requests_of(word: u64) -> u64 {
    (word >> COUNT_BITS) & COUNT_MAX
}
#[inline]
fn accepts_of(word: u64) -> u64 {
    word & COUNT_MAX
}
#[inline]
fn pack(tag: u64, requests: u64, accepts: u64) -> u64 {
    (tag & TAG_MASK) << (2 * COUNT_BITS)
        | requests.min(COUNT_MAX) << COUNT_BITS
        | accepts.min(COUNT_MAX)
}

/// `max(0, (requests - K * accepts) / (requests + 1))` as a fraction `(num, den)`.
#[inline]
fn probability(requests: u64, accepts: u64, k_milli: u64) -> (u128, u128) {
    let num = (requests as u128 * 1000).saturating_sub(k_milli as u128 * accepts as u128);
    (num, (requests as u128 + 1) * 1000)
}

/// Google SRE client-side throttling ("Handling Overload", *Site Reliability
/// Engineering*, ch. 21): each call is refused locally with probability
/// `max(0, (requests - K * accepts) / (requests + 1))`, counted over a sliding window of
/// fixed-size buckets.
///
/// A request counts **before** the call, at [`try_acquire`](Self::try_acquire), whether it
/// is admitted or refused; the probability it is judged by is that of the counts before it.
/// Counting at the end of the call (go-zero#5011) lets a burst of concurrent calls through
/// before any is counted. [`record`](Self::record) counts an accept when the backend
/// accepted the call.
///
/// Randomness comes from a seeded generator (SplitMix64 on one atomic word): runs with the
/// same seed and the same calls draw the same numbers. Each bucket is one atomic word
/// (tag, requests, accepts; counts saturate at 2^21 - 1 per bucket), reset lazily.
///
/// ```
/// use fastbreaker::{AdaptiveThrottle, ThrottleConfig};
/// let throttle = AdaptiveThrottle::with_seed(ThrottleConfig::new(), 7).unwrap();
/// for _ in 0..10 {
///     throttle.try_acquire(0).ok();     // the backend refuses all of them
/// }
/// // (10 - 2 * 0) / (10 + 1)
/// assert_eq!(throttle.metrics(0).reject_probability_ppm, 909_090);
/// ```
#[derive(Debug)]
#[repr(C)]
pub struct AdaptiveThrottle {
    rng: AtomicU64,
    throttled: AtomicU64,
    admitted: AtomicU64,
    /// K (thousandths), bucket duration (ns), buckets.
    settings: Versioned<3>,
    ring: [AtomicU64; MAX_THROTTLE_BUCKETS as usize],
}

#[derive(Debug, Clone, Copy)]
struct Params {
    k_milli: u64,
    bucket_ns: u64,
    buckets: u64,
}

impl Params {
    #[inline]
    fn decode(w: [u64; 3]) -> Params {
        Params {
            k_milli: w[0].clamp(MIN_THROTTLE_K_MILLI, MAX_THROTTLE_K_MILLI),
            bucket_ns: w[1].max(1),
            buckets: w[2].clamp(1, MAX_THROTTLE_BUCKETS as u64),
        }
    }
}

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl AdaptiveThrottle {
    maybe_const_fn! {
        /// A throttle drawing from a generator seeded with `seed` (deterministic).
        pub fn with_seed(config: ThrottleConfig, seed: u64) -> Result<Self, ConfigError> {
            if let Err(e) = config.validate() {
                return Err(e);
            }
            Ok(AdaptiveThrottle {
                rng: AtomicU64::new(seed),
                throttled: AtomicU64::new(0),
                admitted: AtomicU64::new(0),
                settings: Versioned::new([
                    config.k_milli,
                    config.window_ns / config.buckets as u64,
                    config.buckets as u64,
                ]),
                ring: zeroed_u64s(),
            })
        }
    }

    /// A throttle seeded with `seed`, or, when `None`, from the operating system's
    /// randomness (feature `std`; without it a seed is required: an error naming `seed`).
    pub fn new(config: ThrottleConfig, seed: Option<u64>) -> Result<Self, ConfigError> {
        match seed {
            Some(seed) => Self::with_seed(config, seed),
            None => Self::with_seed(config, os_seed()?),
        }
    }

    #[inline]
    fn params(&self) -> Params {
        Params::decode(self.settings.read().1)
    }

    /// The configuration in force.
    pub fn config(&self) -> ThrottleConfig {
        let p = self.params();
        ThrottleConfig {
            k_milli: p.k_milli,
            window_ns: p.bucket_ns.saturating_mul(p.buckets),
            buckets: p.buckets as u32,
        }
    }

    /// Requests and accepts in the window at `now`.
    fn counts(&self, p: &Params, now: u64) -> (u64, u64) {
        let epoch = now / p.bucket_ns;
        let (mut requests, mut accepts) = (0u64, 0u64);
        for age in 0..p.buckets {
            let Some(e) = epoch.checked_sub(age) else {
                break;
            };
            let word = self.ring[(e % p.buckets) as usize].load(Ordering::Relaxed);
            if tag_of(word) == e & TAG_MASK {
                requests += requests_of(word);
                accepts += accepts_of(word);
            }
        }
        (requests, accepts)
    }

    /// Adds to the bucket of `now`: one request or one accept.
    fn add(&self, p: &Params, now: u64, request: bool) {
        let epoch = now / p.bucket_ns;
        let tag = epoch & TAG_MASK;
        let slot = &self.ring[(epoch % p.buckets) as usize];
        let mut word = slot.load(Ordering::Relaxed);
        loop {
            let ahead = tag_of(word).wrapping_sub(tag) & TAG_MASK;
            let (t, r, a) = if ahead == 0 || ahead < p.buckets {
                // Ours, or a caller whose clock read was later: add to it.
                (tag_of(word), requests_of(word), accepts_of(word))
            } else {
                (tag, 0, 0) // stale: this bucket's turn came round again
            };
            let next = if request {
                pack(t, r + 1, a)
            } else {
                pack(t, r, a + 1)
            };
            match slot.compare_exchange_weak(word, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => word = actual,
            }
        }
    }

    /// The rejection probability at `now`, in millionths.
    pub fn reject_probability_ppm(&self, now: u64) -> u32 {
        let p = self.params();
        let (requests, accepts) = self.counts(&p, now);
        let (num, den) = probability(requests, accepts, p.k_milli);
        (num * 1_000_000 / den) as u32
    }

    /// Counts a request at `now`, then admits it or refuses it locally with the
    /// probability of the counts before it.
    pub fn try_acquire(&self, now: u64) -> Result<(), ThrottleRejected> {
        let p = self.params();
        let (requests, accepts) = self.counts(&p, now);
        self.add(&p, now, true);
        let (num, den) = probability(requests, accepts, p.k_milli);
        if num != 0 {
            let draw = mix(self
                .rng
                .fetch_add(GAMMA, Ordering::Relaxed)
                .wrapping_add(GAMMA));
            if (draw as u128) * den < num << 64 {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                return Err(ThrottleRejected::Throttled {
                    probability_ppm: (num * 1_000_000 / den) as u32,
                });
            }
        }
        self.admitted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Records the backend's answer to an admitted request: `accepted` counts an accept
    /// (a refusal, 429/503 or a timeout, counts nothing: its request is already counted).
    pub fn record(&self, accepted: bool, now: u64) {
        if accepted {
            let p = self.params();
            self.add(&p, now, false);
        }
    }

    /// Changes K, the window and the buckets at run time. A change of K alone keeps the
    /// counts as they are. A change of the window or of the bucket count re-buckets them:
    /// the window's totals at `now` move into the bucket of `now` under the new settings
    /// (so the probability is unchanged, and those counts age out as one bucket). Requests
    /// counted by other threads while the change is made may be lost.
    pub fn reconfigure(&self, config: ThrottleConfig, now: u64) -> Result<(), ReconfigureError> {
        config.validate()?;
        let totals = core::cell::Cell::new(None);
        self.settings
            .write(
                |_, cur| {
                    let old = Params::decode(cur);
                    let new_bucket = config.window_ns / config.buckets as u64;
                    if old.bucket_ns != new_bucket || old.buckets != config.buckets as u64 {
                        totals.set(Some(self.counts(&old, now)));
                    }
                    [config.k_milli, new_bucket, config.buckets as u64]
                },
                |_| {
                    if let Some((requests, accepts)) = totals.get() {
                        let p = self.params();
                        for w in &self.ring {
                            w.store(0, Ordering::Relaxed);
                        }
                        let epoch = now / p.bucket_ns;
                        self.ring[(epoch % p.buckets) as usize]
                            .store(pack(epoch, requests, accepts), Ordering::Relaxed);
                    }
                },
            )
            .map(drop)
            .map_err(|_| ReconfigureError::Busy)
    }

    /// A snapshot of the counters at `now`.
    pub fn metrics(&self, now: u64) -> ThrottleMetrics {
        let p = self.params();
        let (requests, accepts) = self.counts(&p, now);
        let (num, den) = probability(requests, accepts, p.k_milli);
        ThrottleMetrics {
            requests,
            accepts,
            reject_probability_ppm: (num * 1_000_000 / den) as u32,
            throttled: self.throttled.load(Ordering::Relaxed),
            admitted: self.admitted.load(Ordering::Relaxed),
        }
    }
}

#[cfg(feature = "std")]
fn os_seed() -> Result<u64, ConfigError> {
    use std::hash::{BuildHasher, Hasher};
    // RandomState's keys come from the operating system's randomness.
    Ok(std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish())
}

#[cfg(not(feature = "std"))]
fn os_seed() -> Result<u64, ConfigError> {
    Err(ConfigError::new(
        "seed",
        0,
        "is required without the std feature (no OS randomness)",
    ))
}

#[cfg(test)]
impl AdaptiveThrottle {
    pub(crate) fn scramble(&self, next: &mut dyn FnMut() -> u64) {
        self.rng.store(next(), Ordering::Relaxed);
        for w in &self.ring {
            w.store(next(), Ordering::Relaxed);
        }
        self.settings.scramble(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SECOND;

    #[test]
    fn probability_is_exact() {
        assert_eq!(probability(10, 0, 2000), (10_000, 11_000));
        assert_eq!(probability(10, 5, 2000), (0, 11_000));
        assert_eq!(probability(100, 30, 2000), (40_000, 101_000));
        assert_eq!(probability(0, 0, 2000), (0, 1000));
    }

    #[test]
    fn counts_slide_out_of_the_window() {
        let t = AdaptiveThrottle::with_seed(
            ThrottleConfig {
                window_ns: 10 * SECOND,
                buckets: 10,
                ..ThrottleConfig::new()
            },
            1,
        )
        .unwrap();
        for i in 0..10 {
            let _ = t.try_acquire(i * SECOND);
        }
        assert_eq!(t.metrics(9 * SECOND).requests, 10);
        assert_eq!(t.metrics(10 * SECOND).requests, 9);
        assert_eq!(t.metrics(19 * SECOND).requests, 0);
    }

    #[test]
    fn validation_and_reconfigure() {
        let bad = |c| AdaptiveThrottle::with_seed(c, 0).unwrap_err().field;
        assert_eq!(
            bad(ThrottleConfig {
                k_milli: 999,
                ..ThrottleConfig::new()
            }),
            "k_milli"
        );
        assert_eq!(
            bad(ThrottleConfig {
                buckets: 65,
                ..ThrottleConfig::new()
            }),
            "buckets"
        );
        assert_eq!(
            bad(ThrottleConfig {
                window_ns: 5,
                buckets: 10,
                ..ThrottleConfig::new()
            }),
            "window_ns"
        );
        let t = AdaptiveThrottle::with_seed(ThrottleConfig::new(), 3).unwrap();
        for _ in 0..20 {
            let _ = t.try_acquire(0);
        }
        let before = t.metrics(0).reject_probability_ppm;
        t.reconfigure(
            ThrottleConfig {
                window_ns: 5 * SECOND,
                buckets: 5,
                ..ThrottleConfig::new()
            },
            0,
        )
        .unwrap();
        assert_eq!(
            t.metrics(0).reject_probability_ppm,
            before,
            "re-bucketed, same counts"
        );
        t.reconfigure(
            ThrottleConfig {
                k_milli: 1000,
                window_ns: 5 * SECOND,
                buckets: 5,
            },
            0,
        )
        .unwrap();
        assert_eq!(t.config().k_milli, 1000);
        assert_eq!(t.metrics(0).requests, 20);
    }

    #[test]
    fn any_bits_survivable() {
        let mut next = crate::breaker::tests::arbitrary_words(0xDEAD_BEEF_0BAD_F00D);
        let t = AdaptiveThrottle::with_seed(ThrottleConfig::new(), 9).unwrap();
        for _ in 0..2_000 {
            t.scramble(&mut next);
            let now = next();
            let _ = t.try_acquire(now);
            t.record(true, now);
            assert!(t.metrics(now).reject_probability_ppm <= 1_000_000);
        }
    }
}
