//! A breaker driven by arbitrary steps (acquire, record, drop a permit, move the clock, go
//! to the end of the current wait, manual control) against the reference model of
//! `tests/tests/model/breaker.rs`: after every step the results, state, generation,
//! metrics, window, backoff and configuration read-back must agree.
#![no_main]

use arbitrary::Arbitrary;
use fastbreaker::{CircuitBreaker, CountWindow64, TimeWindow};
use fastbreaker_fuzz::breaker_model::{validate, WindowSpec};
use fastbreaker_fuzz::{Lockstep, RawBreakerConfig, Step};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    config: RawBreakerConfig,
    time_window: bool,
    origin: u64,
    steps: Vec<Step>,
}

fuzz_target!(|input: Input| {
    let config = input.config.build();
    let origin = input.origin % (1 << 62);
    let steps = &input.steps[..input.steps.len().min(400)];
    if input.time_window {
        let spec = WindowSpec::Time { capacity: 4 };
        let built = CircuitBreaker::<TimeWindow<4>>::new(config);
        if validate(&config, spec).is_err() || built.is_err() {
            assert_eq!(validate(&config, spec).is_ok(), built.is_ok(), "{config:?}");
            return;
        }
        // A time window compares 32-bit bucket numbers: a bucket untouched for about a
        // multiple of 2^32 bucket durations reads as current (a documented limit; the
        // window also counts tags up to its bucket count ahead, so the alias starts a few
        // buckets before 2^32). Keep the run within 2^31 buckets.
        let span = config
            .bucket_duration_ns
            .saturating_mul(1 << 31)
            .min(1 << 62);
        let mut run = Lockstep::new(built.unwrap(), config, spec, origin, span);
        for step in steps {
            run.step(step);
        }
        run.drain();
    } else {
        let spec = WindowSpec::Count { capacity: 64 };
        let built = CircuitBreaker::<CountWindow64>::new(config);
        if validate(&config, spec).is_err() || built.is_err() {
            assert_eq!(validate(&config, spec).is_ok(), built.is_ok(), "{config:?}");
            return;
        }
        let mut run = Lockstep::new(built.unwrap(), config, spec, origin, 1 << 62);
        for step in steps {
            run.step(step);
        }
        run.drain();
    }
});
