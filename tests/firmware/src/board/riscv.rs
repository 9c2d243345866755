//! RISC-V (RV32IMC) on QEMU `-machine virt`, machine mode (`-bios none`): riscv-rt entry,
//! semihosting output and exit, the CLINT's machine software interrupt as the software
//! interrupt and its machine timer as the periodic one.

use core::fmt;
use core::ptr::{read_volatile, write_volatile};

use riscv::interrupt::Interrupt;
use riscv::register::mie;
pub use riscv_rt::entry;
use riscv_semihosting::debug;

/// The CLINT of QEMU's virt machine (SiFive layout), hart 0.
const MSIP: *mut u32 = 0x0200_0000 as *mut u32;
const MTIMECMP_LO: *mut u32 = 0x0200_4000 as *mut u32;
const MTIMECMP_HI: *mut u32 = 0x0200_4004 as *mut u32;
const MTIME_LO: *const u32 = 0x0200_BFF8 as *const u32;
const MTIME_HI: *const u32 = 0x0200_BFFC as *const u32;

/// Timer period in mtime ticks (10 MHz on virt): 50 µs.
const TIMER_PERIOD: u64 = 500;

pub fn init() {
    set_mtimecmp(u64::MAX); // resets to 0, which would fire at once
                            // SAFETY: the handlers below only touch atomics and the CLINT; enabling machine
                            // software and global interrupts on this single hart is what the tests need.
    unsafe {
        mie::set_msoft();
        riscv::interrupt::enable();
    }
}

pub fn print(args: fmt::Arguments) {
    riscv_semihosting::hprint!("{}", args);
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

/// Raises the machine software interrupt; its handler has run when this returns.
pub fn pend_software_interrupt() {
    // SAFETY: MSIP of hart 0 is a CLINT register on virt.
    unsafe {
        write_volatile(MSIP, 1);
        while read_volatile(MSIP) != 0 {} // the handler clears it
    }
}

pub fn start_periodic_interrupt() {
    set_mtimecmp(mtime() + TIMER_PERIOD);
    // SAFETY: see `init`.
    unsafe { mie::set_mtimer() };
}

pub fn stop_periodic_interrupt() {
    // SAFETY: see `init`.
    unsafe { mie::clear_mtimer() };
    set_mtimecmp(u64::MAX);
}

fn mtime() -> u64 {
    loop {
        // SAFETY: CLINT registers on virt.
        let (hi, lo, hi2) = unsafe {
            (
                read_volatile(MTIME_HI),
                read_volatile(MTIME_LO),
                read_volatile(MTIME_HI),
            )
        };
        if hi == hi2 {
            return (hi as u64) << 32 | lo as u64;
        }
    }
}

fn set_mtimecmp(at: u64) {
    // SAFETY: CLINT registers on virt. High word to all ones first, so that no intermediate
    // value is below the current time.
    unsafe {
        write_volatile(MTIMECMP_HI, u32::MAX);
        write_volatile(MTIMECMP_LO, at as u32);
        write_volatile(MTIMECMP_HI, (at >> 32) as u32);
    }
}

#[riscv_rt::core_interrupt(Interrupt::MachineSoft)]
fn machine_soft() {
    // SAFETY: as in `pend_software_interrupt`.
    unsafe { write_volatile(MSIP, 0) };
    crate::interrupts::on_software_interrupt();
}

#[riscv_rt::core_interrupt(Interrupt::MachineTimer)]
fn machine_timer() {
    set_mtimecmp(mtime() + TIMER_PERIOD);
    crate::interrupts::on_timer_interrupt();
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    riscv_semihosting::hprintln!("\npanicked: {}", info);
    exit(false)
}
