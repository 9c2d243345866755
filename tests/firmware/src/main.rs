//! The fastbreaker core's scenarios as firmware: each test's name and result go out through
//! semihosting, and the exit status says whether all passed (1 on any failure or panic).
//!
//! Boards (see .cargo/config.toml for the QEMU command of each, firmware.mk for the runs):
//! - Cortex-M0 `thumbv6m-none-eabi` on `-machine microbit`
//! - Cortex-M3 `thumbv7m-none-eabi` on `-machine lm3s6965evb`
//! - Cortex-M4F `thumbv7em-none-eabihf` on `-machine mps2-an386`
//! - RV32IMC `riscv32imc-unknown-none-elf` on `-machine virt`
//!
//! Features pick how portable-atomic provides what a core lacks (Cargo.toml): thumbv6m and
//! riscv32imc need `critical-section` or `single-core`; thumbv7m/thumbv7em run with
//! `single-core` or, without a feature, portable-atomic's lock-based 64-bit fallback.
#![no_std]
#![no_main]

/// Prints through semihosting.
macro_rules! print {
    ($($arg:tt)*) => { $crate::board::print(format_args!($($arg)*)) };
}

/// Prints one line through semihosting.
macro_rules! println {
    ($fmt:literal $($arg:tt)*) => { $crate::board::print(format_args!(concat!($fmt, "\n") $($arg)*)) };
}

#[macro_use]
mod harness;
mod board;
mod breaker_scenarios;
mod bucket_scenarios;
mod embassy;
mod interrupts;
mod test_driver;

use harness::Test;

/// Every test, in the order they run.
const TESTS: &[Test] = &[
    // The core's breaker scenarios (tests/tests/scenarios.rs), explicit times.
    test!(breaker_scenarios::consecutive_failures_trip_and_a_probe_closes),
    test!(breaker_scenarios::failure_rate_needs_minimum_calls_and_never_trips_on_success),
    test!(breaker_scenarios::slow_calls_trip_and_a_slow_probe_reopens),
    test!(breaker_scenarios::repeated_failed_probes_back_off_up_to_the_cap_and_closing_resets),
    test!(breaker_scenarios::jitter_is_deterministic_for_a_seed),
    test!(breaker_scenarios::a_hung_probe_does_not_wedge_the_breaker),
    test!(breaker_scenarios::ignored_hands_the_probe_slot_back),
    test!(breaker_scenarios::stale_outcomes_do_not_move_the_new_state),
    test!(breaker_scenarios::manual_states),
    test!(breaker_scenarios::manual_trip_and_half_open),
    test!(breaker_scenarios::closed_count_window_reads_no_clock),
    test!(breaker_scenarios::time_window_breaker_forgets_old_failures),
    test!(breaker_scenarios::config_errors_name_the_field_and_value),
    test!(breaker_scenarios::times_far_from_zero_work),
    test!(breaker_scenarios::const_constructors_build_statics),
    // Token bucket and bulkhead.
    test!(bucket_scenarios::burst_then_rate),
    test!(bucket_scenarios::reserve_queues_and_refunds),
    test!(bucket_scenarios::headers),
    test!(bucket_scenarios::extreme_configurations),
    test!(bucket_scenarios::bulkhead_limits_and_releases),
    // Time from embassy-time through the test driver.
    test!(embassy::clock_follows_the_driver),
    test!(embassy::breaker_opens_half_opens_and_closes_on_embassy_time),
    test!(embassy::bucket_refills_on_embassy_time),
    test!(embassy::timer_waits_out_retry_after),
    // Statics shared by the main loop and an exception / interrupt handler.
    test!(interrupts::handler_and_main_loop_share_static_breaker_and_bucket),
    test!(interrupts::handler_sees_trip_probe_and_close_made_by_main_loop),
    test!(interrupts::preempting_timer_interrupt_loses_no_update),
];

/// How portable-atomic provides the core's atomics in this build.
#[cfg(all(not(target_has_atomic = "ptr"), feature = "critical-section"))]
const ATOMICS: &str = "critical-section (every atomic operation, 32-bit loads included)";
#[cfg(all(not(target_has_atomic = "ptr"), feature = "single-core"))]
const ATOMICS: &str =
    "unsafe-assume-single-core (CAS, RMW and 64-bit with interrupts masked; 32-bit loads/stores native)";
#[cfg(all(
    target_has_atomic = "ptr",
    not(target_has_atomic = "64"),
    feature = "single-core"
))]
const ATOMICS: &str = "unsafe-assume-single-core (32-bit native; 64-bit with interrupts masked)";
#[cfg(all(
    target_has_atomic = "ptr",
    not(target_has_atomic = "64"),
    not(feature = "single-core")
))]
const ATOMICS: &str = LOCK_FALLBACK;
#[cfg(target_has_atomic = "64")]
const ATOMICS: &str = "native";
/// portable-atomic's default where a 32-bit CAS exists but no 64-bit one (thumbv7m/7em).
const LOCK_FALLBACK: &str = "lock-based fallback (32-bit native; 64-bit behind global spinlocks)";

#[board::entry]
fn main() -> ! {
    board::init();
    println!("{}: atomics by {}", board::NAME, ATOMICS);
    let failed = harness::run(board::NAME, TESTS);
    board::exit(failed == 0)
}
