//! Cortex-M: cortex-m-rt entry, semihosting output and exit, PendSV as the software
//! interrupt and SysTick as the periodic one.

use core::fmt;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SCB;
pub use cortex_m_rt::entry;
use cortex_m_rt::exception;
use cortex_m_semihosting::debug;
use panic_semihosting as _; // a panic prints its message and exits with status 1

/// SysTick reload: an interrupt every this many core clock cycles.
const SYSTICK_RELOAD: u32 = 997;

pub fn init() {}

pub fn print(args: fmt::Arguments) {
    cortex_m_semihosting::hprint!("{}", args);
}

pub fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Pends PendSV; its handler has run when this returns.
pub fn pend_software_interrupt() {
    SCB::set_pendsv();
    cortex_m::asm::dsb();
    cortex_m::asm::isb();
}

pub fn start_periodic_interrupt() {
    // SAFETY: the tests run one at a time from the main loop; nothing else owns SYST.
    let mut syst = unsafe { cortex_m::Peripherals::steal() }.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(SYSTICK_RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

pub fn stop_periodic_interrupt() {
    // SAFETY: as in `start_periodic_interrupt`.
    let mut syst = unsafe { cortex_m::Peripherals::steal() }.SYST;
    syst.disable_interrupt();
    syst.disable_counter();
    SCB::clear_pendst(); // a tick that was already pending never runs
    cortex_m::asm::dsb();
    cortex_m::asm::isb();
}

#[exception]
fn PendSV() {
    crate::interrupts::on_software_interrupt();
}

#[exception]
fn SysTick() {
    crate::interrupts::on_timer_interrupt();
}
