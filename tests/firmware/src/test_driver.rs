//! The embassy-time driver of these tests: time is a number that only the tests move.
//!
//! A real firmware gets its driver from its HAL (embassy-nrf, embassy-stm32, ...); the core
//! needs none of it, only `embassy_time::Instant::now()` through
//! [`fastbreaker::EmbassyClock`].

use core::task::Waker;

use embassy_time::Duration;
use embassy_time_driver::Driver;
use portable_atomic::{AtomicU64, Ordering};

/// Ticks (embassy-time's default 1 MHz) since "boot".
struct TestDriver {
    ticks: AtomicU64,
}

impl Driver for TestDriver {
    fn now(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        // Nothing else moves time here: jump to the alarm and wake the task at once, so a
        // `Timer` is ready on its next poll (simulated time).
        self.ticks.fetch_max(at, Ordering::Relaxed);
        waker.wake_by_ref();
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: TestDriver = TestDriver {
    ticks: AtomicU64::new(0),
});

/// Moves time forward by `by`.
pub fn advance(by: Duration) {
    DRIVER.ticks.fetch_add(by.as_ticks(), Ordering::Relaxed);
}
