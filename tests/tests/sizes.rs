//! Layout and auto-trait guarantees: the breakers and the manual clock are `Send + Sync`,
//! a breaker's size does not grow unnoticed, and a breaker can be built in a `static`.
//!
//! `cargo test -p fastbreaker-tests --test sizes -- --nocapture` prints the sizes.

use fastbreaker::{CircuitBreaker, CountWindow64, ManualClock, TimeWindow};

const fn assert_send_sync<T: Send + Sync>() {}

const _: () = {
    assert_send_sync::<CircuitBreaker<CountWindow64>>();
    assert_send_sync::<CircuitBreaker<TimeWindow<10>>>();
    assert_send_sync::<ManualClock>();
};

/// The sizes today on 64-bit targets (already multiples of 8, so no slack): a failure here
/// means the layout grew.
#[cfg(not(loom))]
#[test]
fn breaker_sizes_are_bounded() {
    use core::mem::size_of;
    let count = size_of::<CircuitBreaker<CountWindow64>>();
    let time = size_of::<CircuitBreaker<TimeWindow<10>>>();
    println!("size_of::<CircuitBreaker<CountWindow64>>() = {count} bytes");
    println!("size_of::<CircuitBreaker<TimeWindow<10>>>() = {time} bytes");
    println!(
        "size_of::<ManualClock>() = {} bytes",
        size_of::<ManualClock>()
    );
    assert!(count <= COUNT_BOUND, "{count} > {COUNT_BOUND}");
    assert!(time <= TIME_BOUND, "{time} > {TIME_BOUND}");
}

/// state 8 + time 8 + settings 120 (a sequence word and two buffers of 7 words, for runtime
/// reconfiguration) + consecutive failures 8 (a generation-tagged u64) + jitter seed 8 +
/// window 36 (5 x u32 + 2 x 2 ring words) + 4 padding + 7 counters x 8 = 248.
#[cfg(not(loom))]
const COUNT_BOUND: usize = 248;
/// state 8 + time 8 + settings 120 + consecutive failures 8 + jitter seed 8 + window 256
/// (bucket duration 8 + bucket count 4 + 4 padding + 10 buckets x 3 tagged u64) + 7
/// counters x 8 = 464.
#[cfg(not(loom))]
const TIME_BOUND: usize = 464;

/// A breaker built by the `const fn` constructor in a `static`, then used.
#[cfg(not(loom))]
#[test]
fn breaker_in_a_static() {
    use fastbreaker::{BreakerConfig, Outcome, State};
    static B: CircuitBreaker<CountWindow64> =
        match CircuitBreaker::<CountWindow64>::new(BreakerConfig::new()) {
            Ok(b) => b,
            Err(_) => panic!(),
        };
    let p = B.acquire(0).expect("closed");
    assert_eq!(B.record(p, Outcome::Success, 0), None);
    let m = B.metrics(0);
    assert_eq!((m.state, m.permitted, m.succeeded), (State::Closed, 1, 1));
}
