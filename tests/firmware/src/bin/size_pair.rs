//! Size of one breaker (64-outcome count window) and one token bucket in `static`s, with
//! the calls a firmware makes on every request: `acquire` + `record` on the breaker,
//! `try_acquire` on the bucket. `black_box` keeps the compiler from folding them away.
#![no_std]
#![no_main]

use core::hint::black_box;

// The critical-section implementations (interrupts off; single core), linked in both
// programs: only the pair calls them (on thumbv6m and riscv32imc).
#[cfg(target_arch = "arm")]
use cortex_m as _;
#[cfg(target_arch = "riscv32")]
use riscv as _;

use fastbreaker::{
    BreakerConfig, BucketConfig, CircuitBreaker, CountWindow64, Outcome, TokenBucket, SECOND,
};

static BREAKER: CircuitBreaker<CountWindow64> =
    match CircuitBreaker::<CountWindow64>::new(BreakerConfig {
        failure_threshold: Some(5),
        failure_rate_threshold: Some(50),
        wait_duration_ns: 30 * SECOND,
        ..BreakerConfig::new()
    }) {
        Ok(b) => b,
        Err(_) => panic!(),
    };

static BUCKET: TokenBucket = match TokenBucket::new(BucketConfig::per_second(100, 20)) {
    Ok(b) => b,
    Err(_) => panic!(),
};

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    let mut now: u64 = 0;
    loop {
        now = black_box(now).wrapping_add(1_000);
        let breaker = black_box(&BREAKER);
        if let Ok(permit) = breaker.acquire(now) {
            let outcome = if black_box(now) & 1 == 0 {
                Outcome::Success
            } else {
                Outcome::Failure
            };
            black_box(breaker.record(permit, outcome, now));
        }
        black_box(black_box(&BUCKET).try_acquire(1, now)).ok();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
