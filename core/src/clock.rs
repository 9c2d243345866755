//! Clocks: where `now` comes from when the caller does not pass it.

use crate::sync::{maybe_const_fn, AtomicU64, Ordering};

/// A monotonic source of time in nanoseconds.
///
/// The absolute value is arbitrary (boot, process start, zero for a [`ManualClock`]); only
/// differences matter. It must never go backwards.
pub trait Clock {
    /// Nanoseconds since this clock's origin.
    fn now_ns(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for &C {
    #[inline]
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}

/// A clock that moves only when told to: for tests, simulations and replay.
///
/// It is `const`-constructible and `Sync`, so it can live in a `static` shared by threads or
/// interrupt handlers.
///
/// ```
/// use fastbreaker::{Clock, ManualClock, SECOND};
/// static CLOCK: ManualClock = ManualClock::new(0);
/// CLOCK.advance(2 * SECOND);
/// assert_eq!(CLOCK.now_ns(), 2 * SECOND);
/// ```
#[derive(Debug)]
pub struct ManualClock {
    ns: AtomicU64,
}

impl ManualClock {
    maybe_const_fn! {
        /// A clock that reads `start_ns` until it is moved.
        pub fn new(start_ns: u64) -> Self {
            Self { ns: AtomicU64::new(start_ns) }
        }
    }

    /// Moves the clock forward by `delta_ns` (saturating) and returns the new time.
    pub fn advance(&self, delta_ns: u64) -> u64 {
        let mut cur = self.ns.load(Ordering::Relaxed);
        loop {
            let next = cur.saturating_add(delta_ns);
            match self
                .ns
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Sets the clock to `ns`. Moving it backwards is the caller's responsibility: the
    /// primitives treat a time earlier than one they have seen as "no time has passed".
    pub fn set(&self, ns: u64) {
        self.ns.store(ns, Ordering::Relaxed);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new(0)
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        self.ns.load(Ordering::Relaxed)
    }
}

/// The operating system's monotonic clock (feature `std`).
///
/// On Unix this is `CLOCK_MONOTONIC`, which is the same in every process of the machine, so
/// times can be compared across processes. Elsewhere it counts from the first call in the
/// process.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Copy, Default)]
pub struct MonotonicClock;

#[cfg(feature = "std")]
impl Clock for MonotonicClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        #[cfg(unix)]
        {
            let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
            (ts.tv_sec as u64)
                .wrapping_mul(1_000_000_000)
                .wrapping_add(ts.tv_nsec as u64)
        }
        #[cfg(not(unix))]
        {
            use std::sync::OnceLock;
            use std::time::Instant;
            static ORIGIN: OnceLock<Instant> = OnceLock::new();
            let origin = *ORIGIN.get_or_init(Instant::now);
            u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
        }
    }
}

/// Time from embassy-time's driver (feature `embassy-time`), in nanoseconds.
///
/// The final firmware binary must provide exactly one embassy-time driver.
#[cfg(feature = "embassy-time")]
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbassyClock;

#[cfg(feature = "embassy-time")]
impl Clock for EmbassyClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        embassy_time::Instant::now()
            .as_micros()
            .saturating_mul(1_000)
    }
}

/// Reads a clock at most once, and only if asked: the hot path's way of not paying for a
/// clock read it does not need.
pub(crate) struct LazyNow<'c, C: Clock + ?Sized> {
    clock: &'c C,
    cached: Option<u64>,
}

impl<'c, C: Clock + ?Sized> LazyNow<'c, C> {
    pub(crate) fn new(clock: &'c C) -> Self {
        Self {
            clock,
            cached: None,
        }
    }
}

/// Something that yields `now` on demand: a fixed value or a lazily read clock.
pub(crate) trait Now {
    fn get(&mut self) -> u64;
}

impl Now for u64 {
    #[inline]
    fn get(&mut self) -> u64 {
        *self
    }
}

impl<C: Clock + ?Sized> Now for LazyNow<'_, C> {
    #[inline]
    fn get(&mut self) -> u64 {
        match self.cached {
            Some(t) => t,
            None => {
                let t = self.clock.now_ns();
                self.cached = Some(t);
                t
            }
        }
    }
}
