//! Size baseline: the runtime and a loop, no fastbreaker. `size-pair` minus this is what one
//! breaker and one bucket cost (scripts/size.py).
#![no_std]
#![no_main]

use core::hint::black_box;

// The critical-section implementations (interrupts off; single core), linked in both
// programs: only the pair calls them (on thumbv6m and riscv32imc).
#[cfg(target_arch = "arm")]
use cortex_m as _;
#[cfg(target_arch = "riscv32")]
use riscv as _;

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    let mut now: u64 = 0;
    loop {
        now = black_box(now).wrapping_add(1_000);
        black_box(now);
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
