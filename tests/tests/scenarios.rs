//! End-to-end scenarios of the circuit breaker, driven by explicit times and a manual clock.
//!
//! One source for two runners: the scenarios live in `tests/firmware/src/breaker_scenarios.rs`
//! (no_std, `check*!` macros that report and return), which the firmware runs on emulated
//! Cortex-M and RISC-V boards and which this file runs on the host, one `#[test]` each.
#![cfg(not(loom))]

// The firmware's runner and its `Test` type are unused here; its check macros are the point.
#[macro_use]
#[allow(dead_code, unused_macros)]
#[path = "../firmware/src/harness.rs"]
mod harness;

#[path = "../firmware/src/breaker_scenarios.rs"]
mod breaker_scenarios;

use harness::NotPassed;

macro_rules! host_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                match breaker_scenarios::$name() {
                    Ok(()) => {}
                    Err(NotPassed::Skipped(why)) => println!("skipped: {why}"),
                    Err(NotPassed::Failed) => panic!("a check failed (printed above)"),
                }
            }
        )*
    };
}

host_tests!(
    consecutive_failures_trip_and_a_probe_closes,
    failure_rate_needs_minimum_calls_and_never_trips_on_success,
    slow_calls_trip_and_a_slow_probe_reopens,
    repeated_failed_probes_back_off_up_to_the_cap_and_closing_resets,
    jitter_is_deterministic_for_a_seed,
    a_hung_probe_does_not_wedge_the_breaker,
    ignored_hands_the_probe_slot_back,
    stale_outcomes_do_not_move_the_new_state,
    manual_states,
    manual_trip_and_half_open,
    closed_count_window_reads_no_clock,
    time_window_breaker_forgets_old_failures,
    config_errors_name_the_field_and_value,
    times_far_from_zero_work,
    const_constructors_build_statics,
);
