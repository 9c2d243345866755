//! What differs between boards: entry point, output, exit, and the interrupts the tests use.

#[cfg(target_arch = "arm")]
mod cortex_m;
#[cfg(target_arch = "arm")]
pub use self::cortex_m::*;

#[cfg(target_arch = "riscv32")]
mod riscv;
#[cfg(target_arch = "riscv32")]
pub use self::riscv::*;

/// The QEMU machine this build is for (set by build.rs from the target).
pub const NAME: &str = env!("FIRMWARE_BOARD");
