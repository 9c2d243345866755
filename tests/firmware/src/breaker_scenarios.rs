//! The core's breaker scenarios, written for no_std: `check*!` report and return instead of
//! panicking. One source for two runners: the firmware runs them on emulated boards, and
//! tests/tests/scenarios.rs runs them on the host as one `#[test]` each.

use core::cell::Cell;
use core::fmt::Write as _;

use crate::harness::TestResult;

use fastbreaker::{
    BreakerConfig, BucketConfig, CircuitBreaker, Clock, ConfigError, CountWindow64, ManualClock,
    Outcome, PermitKind, Rejected, State, TimeWindow, TokenBucket, MILLISECOND, SECOND,
};

type Breaker = CircuitBreaker<CountWindow64>;

fn breaker(config: BreakerConfig) -> Breaker {
    Breaker::new(config).expect("valid config")
}

fn call(b: &Breaker, outcome: Outcome, now: u64) -> Option<fastbreaker::Transition> {
    let permit = b.acquire(now).expect("permitted");
    b.record(permit, outcome, now)
}

/// A clock that counts its reads.
struct CountingClock {
    now: Cell<u64>,
    reads: Cell<u32>,
}

impl Clock for CountingClock {
    fn now_ns(&self) -> u64 {
        self.reads.set(self.reads.get() + 1);
        self.now.get()
    }
}

pub fn consecutive_failures_trip_and_a_probe_closes() -> TestResult {
    let b = breaker(BreakerConfig {
        failure_threshold: Some(3),
        wait_duration_ns: 30 * SECOND,
        ..BreakerConfig::new()
    });
    check_eq!(call(&b, Outcome::Failure, 0), None);
    check_eq!(
        call(&b, Outcome::Success, 0),
        None,
        "a success resets the run"
    );
    check_eq!(call(&b, Outcome::Failure, 0), None);
    check_eq!(call(&b, Outcome::Failure, 0), None);
    let t = call(&b, Outcome::Failure, SECOND).expect("third failure in a row trips");
    check_eq!((t.from, t.to, t.at), (State::Closed, State::Open, SECOND));
    check_eq!(
        b.acquire(SECOND),
        Err(Rejected::Open {
            retry_after: 30 * SECOND
        })
    );
    check_eq!(
        b.acquire(11 * SECOND),
        Err(Rejected::Open {
            retry_after: 20 * SECOND
        })
    );
    check_eq!(b.retry_after(21 * SECOND), 10 * SECOND);

    let probe = b.acquire(31 * SECOND).expect("wait over");
    check_eq!(probe.kind(), PermitKind::Probe);
    let t = probe.transition().expect("acquire moved the state");
    check_eq!((t.from, t.to), (State::Open, State::HalfOpen));
    check_eq!(b.acquire(31 * SECOND), Err(Rejected::HalfOpenFull));
    let t = b
        .record(probe, Outcome::Success, 32 * SECOND)
        .expect("closes");
    check_eq!((t.from, t.to), (State::HalfOpen, State::Closed));

    let m = b.metrics(32 * SECOND);
    check_eq!(
        (m.state, m.trips, m.failed, m.succeeded, m.rejected),
        (State::Closed, 1, 4, 2, 3)
    );
    check_eq!(m.last_transition_at, Some(32 * SECOND));
    check_eq!(m.consecutive_failures, 0);
    Ok(())
}

pub fn failure_rate_needs_minimum_calls_and_never_trips_on_success() -> TestResult {
    let b = breaker(BreakerConfig {
        failure_threshold: None,
        failure_rate_threshold: Some(50),
        minimum_calls: 4,
        window_size: Some(4),
        ..BreakerConfig::new()
    });
    check_eq!(call(&b, Outcome::Failure, 0), None);
    check_eq!(
        call(&b, Outcome::Failure, 0),
        None,
        "only 2 of the 4 minimum calls"
    );
    check_eq!(call(&b, Outcome::Success, 0), None);
    check_eq!(
        call(&b, Outcome::Success, 0),
        None,
        "2/4 = 50% but a success never trips"
    );
    let t =
        call(&b, Outcome::Failure, 0).expect("window F S S F... = 2 failures of 4 on a failure");
    check_eq!(t.to, State::Open);
    check_eq!(
        b.metrics(0).window.samples,
        0,
        "entering Open clears the window"
    );
    Ok(())
}

pub fn slow_calls_trip_and_a_slow_probe_reopens() -> TestResult {
    let b = breaker(BreakerConfig {
        failure_threshold: None,
        slow_call_rate_threshold: Some(100),
        slow_call_duration_ns: 100 * MILLISECOND,
        minimum_calls: 2,
        wait_duration_ns: SECOND,
        backoff_factor_milli: 2000,
        ..BreakerConfig::new()
    });
    let p = b.acquire(0).unwrap();
    check_eq!(
        b.record(p, Outcome::Success, 100 * MILLISECOND),
        None,
        "exactly the limit is not slow"
    );
    let p = b.acquire(SECOND).unwrap();
    check_eq!(
        b.record(p, Outcome::Success, SECOND + 101 * MILLISECOND),
        None,
        "1 of 2 slow"
    );
    let p = b.acquire(2 * SECOND).unwrap();
    check_eq!(
        b.record_with_duration(p, Outcome::Success, 500 * MILLISECOND, 2 * SECOND),
        None,
        "2 of 3"
    );
    // window_size defaults to the capacity (64): need 100% of the samples slow, so reset.
    b.reset(2 * SECOND);
    for i in 0..2 {
        let p = b.acquire(3 * SECOND).unwrap();
        let t = b.record(p, Outcome::Success, 4 * SECOND);
        check_eq!(t.is_some(), i == 1);
    }
    check_eq!(b.state(), State::Open);
    check_eq!(b.metrics(4 * SECOND).slow, 4);
    let probe = b.acquire(5 * SECOND).unwrap();
    let t = b
        .record(probe, Outcome::Success, 6 * SECOND)
        .expect("slow probe fails");
    check_eq!((t.from, t.to), (State::HalfOpen, State::Open));
    check_eq!(
        b.acquire(6 * SECOND),
        Err(Rejected::Open {
            retry_after: 2 * SECOND
        }),
        "second wait doubled"
    );
    Ok(())
}

pub fn repeated_failed_probes_back_off_up_to_the_cap_and_closing_resets() -> TestResult {
    let b = breaker(BreakerConfig {
        failure_threshold: Some(1),
        wait_duration_ns: SECOND,
        backoff_factor_milli: 3000,
        max_wait_duration_ns: Some(10 * SECOND),
        ..BreakerConfig::new()
    });
    let mut now = 0;
    call(&b, Outcome::Failure, now);
    for expected in [SECOND, 3 * SECOND, 9 * SECOND, 10 * SECOND, 10 * SECOND] {
        check_eq!(b.retry_after(now), expected);
        now += expected;
        let probe = b.acquire(now).unwrap();
        b.record(probe, Outcome::Failure, now);
    }
    now += 10 * SECOND;
    let probe = b.acquire(now).unwrap();
    b.record(probe, Outcome::Success, now);
    call(&b, Outcome::Failure, now);
    check_eq!(b.retry_after(now), SECOND, "a close is a full recovery");
    Ok(())
}

pub fn jitter_is_deterministic_for_a_seed() -> TestResult {
    let config = BreakerConfig {
        failure_threshold: Some(1),
        jitter_permille: 500,
        jitter_seed: Some(99),
        ..BreakerConfig::new()
    };
    let waits = |config: BreakerConfig| -> Result<[u64; 20], crate::harness::NotPassed> {
        let b = breaker(config);
        let mut now = 0;
        let mut out = [0; 20];
        for slot in out.iter_mut() {
            call(&b, Outcome::Failure, now);
            let w = b.retry_after(now);
            check!((30 * SECOND..=60 * SECOND).contains(&w), "{w}");
            *slot = w;
            now += w;
            let probe = b.acquire(now).unwrap();
            b.record(probe, Outcome::Success, now);
        }
        Ok(out)
    };
    let a = waits(config)?;
    check_eq!(a, waits(config)?);
    check_ne!(
        a,
        waits(BreakerConfig {
            jitter_seed: Some(100),
            ..config
        })?
    );
    check!(a.windows(2).any(|w| w[0] != w[1]));
    Ok(())
}

pub fn a_hung_probe_does_not_wedge_the_breaker() -> TestResult {
    let b = breaker(BreakerConfig {
        failure_threshold: Some(1),
        wait_duration_ns: 10 * SECOND,
        ..BreakerConfig::new()
    });
    call(&b, Outcome::Failure, 0);
    let hung = b.acquire(10 * SECOND).unwrap();
    check_eq!(b.acquire(19 * SECOND), Err(Rejected::HalfOpenFull));
    let rescue = b
        .acquire(20 * SECOND)
        .expect("probe out longer than the wait: a new probe");
    check_eq!(rescue.kind(), PermitKind::Probe);
    check_ne!(rescue.generation(), hung.generation());
    check_eq!(rescue.transition(), None, "still half-open");
    check_eq!(
        b.record(hung, Outcome::Failure, 21 * SECOND),
        None,
        "the hung probe's outcome is stale"
    );
    check_eq!(b.state(), State::HalfOpen);
    check_eq!(
        b.record(rescue, Outcome::Success, 21 * SECOND)
            .map(|t| t.to),
        Some(State::Closed)
    );
    check_eq!(
        b.metrics(21 * SECOND).failed,
        2,
        "stale outcomes still count in lifetime metrics"
    );
    Ok(())
}

pub fn ignored_hands_the_probe_slot_back() -> TestResult {
    let b = breaker(BreakerConfig {
        failure_threshold: Some(1),
        success_threshold: 2,
        ..BreakerConfig::new()
    });
    call(&b, Outcome::Failure, 0);
    let p = b.acquire(60 * SECOND).unwrap();
    check_eq!(b.record(p, Outcome::Ignored, 60 * SECOND), None);
    let p = b.acquire(60 * SECOND).expect("slot handed back");
    check_eq!(
        b.record(p, Outcome::Success, 60 * SECOND),
        None,
        "1 of 2 successes"
    );
    let p = b.acquire(60 * SECOND).unwrap();
    check_eq!(
        b.record(p, Outcome::Success, 60 * SECOND).map(|t| t.to),
        Some(State::Closed)
    );
    Ok(())
}

pub fn stale_outcomes_do_not_move_the_new_state() -> TestResult {
    let b = breaker(BreakerConfig {
        failure_threshold: Some(1),
        ..BreakerConfig::new()
    });
    let old = b.acquire(0).unwrap();
    b.reset(0);
    check_eq!(b.record(old, Outcome::Failure, 0), None);
    check_eq!(b.state(), State::Closed);
    check_eq!(
        b.metrics(0).window.samples,
        0,
        "stale outcomes stay out of the window"
    );
    Ok(())
}

pub fn manual_states() -> TestResult {
    let b = breaker(BreakerConfig {
        failure_threshold: Some(1),
        ..BreakerConfig::new()
    });
    let t = b.force_open(5).unwrap();
    check_eq!((t.from, t.to, t.at), (State::Closed, State::ForcedOpen, 5));
    check_eq!(b.acquire(1000 * SECOND), Err(Rejected::ForcedOpen));

    b.disable(0);
    let p = b.acquire(0).unwrap();
    check_eq!(p.kind(), PermitKind::Passive);
    check_eq!(b.record(p, Outcome::Failure, 0), None);
    let m = b.metrics(0);
    check_eq!(
        (m.failed, m.window.samples),
        (0, 0),
        "disabled records nothing"
    );

    b.metrics_only(0);
    for _ in 0..5 {
        check_eq!(
            call(&b, Outcome::Failure, 0),
            None,
            "metrics-only never trips"
        );
    }
    let m = b.metrics(0);
    check_eq!(
        (m.state, m.failed, m.window.failures, m.consecutive_failures),
        (State::MetricsOnly, 5, 5, 5)
    );

    let t = b.reset(0).unwrap();
    check_eq!((t.from, t.to), (State::MetricsOnly, State::Closed));
    check_eq!(b.metrics(0).window.samples, 0);
    check!(
        b.reset(0).is_none(),
        "closed to closed is not a state change"
    );
    check_eq!(
        call(&b, Outcome::Failure, 0).map(|t| t.to),
        Some(State::Open)
    );
    Ok(())
}

pub fn manual_trip_and_half_open() -> TestResult {
    let b = breaker(BreakerConfig {
        failure_threshold: Some(3),
        wait_duration_ns: 10 * SECOND,
        success_threshold: 2,
        ..BreakerConfig::new()
    });
    let stale = b.acquire(0).unwrap();
    let t = b.trip(SECOND).unwrap();
    check_eq!((t.from, t.to, t.at), (State::Closed, State::Open, SECOND));
    check_eq!(b.metrics(SECOND).trips, 1, "a manual trip counts as a trip");
    check_eq!(
        b.record(stale, Outcome::Success, SECOND),
        None,
        "a permit from before the trip is stale"
    );
    check_eq!(
        b.acquire(2 * SECOND),
        Err(Rejected::Open {
            retry_after: 9 * SECOND
        }),
        "the first wait runs from the trip"
    );
    let probe = b.acquire(11 * SECOND).unwrap();
    check_eq!(probe.kind(), PermitKind::Probe);
    check_eq!(b.record(probe, Outcome::Success, 11 * SECOND), None);

    // half_open() from Open: new probing period, success_threshold successes close it.
    b.trip(12 * SECOND);
    let t = b.half_open(13 * SECOND).unwrap();
    check_eq!((t.from, t.to), (State::Open, State::HalfOpen));
    check_eq!(call(&b, Outcome::Success, 13 * SECOND), None);
    check_eq!(
        call(&b, Outcome::Success, 13 * SECOND).map(|t| t.to),
        Some(State::Closed)
    );
    // half_open() from Closed, then a failed probe reopens.
    b.half_open(14 * SECOND);
    check_eq!(
        call(&b, Outcome::Failure, 14 * SECOND).map(|t| t.to),
        Some(State::Open)
    );
    check!(
        b.trip(15 * SECOND).is_none(),
        "open to open is no state change"
    );
    Ok(())
}

pub fn closed_count_window_reads_no_clock() -> TestResult {
    let b = breaker(BreakerConfig::new());
    let clock = CountingClock {
        now: Cell::new(0),
        reads: Cell::new(0),
    };
    for outcome in [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Ignored,
        Outcome::Success,
    ] {
        let p = b.acquire_with(&clock).unwrap();
        b.record_with(&clock, p, outcome);
    }
    check_eq!(clock.reads.get(), 0);

    // Slow-call detection needs the time: one read per acquire and per record.
    let slow = breaker(BreakerConfig {
        slow_call_rate_threshold: Some(50),
        ..BreakerConfig::new()
    });
    let p = slow.acquire_with(&clock).unwrap();
    slow.record_with(&clock, p, Outcome::Success);
    check_eq!(clock.reads.get(), 2);

    // An open breaker reads the clock once per acquire.
    let open = breaker(BreakerConfig {
        failure_threshold: Some(1),
        ..BreakerConfig::new()
    });
    let p = open.acquire_with(&clock).unwrap();
    open.record_with(&clock, p, Outcome::Failure);
    check_eq!(
        clock.reads.get(),
        3,
        "the trip reads the clock to stamp the transition"
    );
    check!(open.acquire_with(&clock).is_err());
    check_eq!(clock.reads.get(), 4);
    Ok(())
}

pub fn time_window_breaker_forgets_old_failures() -> TestResult {
    let b = CircuitBreaker::<TimeWindow<10>>::new(BreakerConfig {
        failure_threshold: None,
        failure_rate_threshold: Some(50),
        minimum_calls: 4,
        bucket_duration_ns: SECOND,
        ..BreakerConfig::new()
    })
    .unwrap();
    let clock = ManualClock::new(0);
    for outcome in [Outcome::Failure, Outcome::Failure, Outcome::Failure] {
        let p = b.acquire_with(&clock).unwrap();
        check_eq!(b.record_with(&clock, p, outcome), None);
    }
    clock.advance(10 * SECOND); // the three failures leave the window
    for _ in 0..3 {
        let p = b.acquire_with(&clock).unwrap();
        b.record_with(&clock, p, Outcome::Success);
    }
    let p = b.acquire_with(&clock).unwrap();
    check_eq!(
        b.record_with(&clock, p, Outcome::Failure),
        None,
        "1 of 4 in the window"
    );
    check_eq!(b.metrics_with(&clock).window.samples, 4);
    let p = b.acquire_with(&clock).unwrap();
    check_eq!(
        b.record_with(&clock, p, Outcome::Failure),
        None,
        "2 of 5 = 40%"
    );
    let p = b.acquire_with(&clock).unwrap();
    check_eq!(
        b.record_with(&clock, p, Outcome::Failure).map(|t| t.to),
        Some(State::Open),
        "3 of 6 = 50%"
    );
    Ok(())
}

pub fn config_errors_name_the_field_and_value() -> TestResult {
    let base = BreakerConfig::new();
    let cases: [(BreakerConfig, &str, u64); 17] = [
        (
            BreakerConfig {
                failure_threshold: Some(0),
                ..base
            },
            "failure_threshold",
            0,
        ),
        (
            BreakerConfig {
                failure_threshold: Some(1 << 24),
                ..base
            },
            "failure_threshold",
            1 << 24,
        ),
        (
            BreakerConfig {
                failure_rate_threshold: Some(50),
                minimum_calls: 11,
                window_size: Some(10),
                ..base
            },
            "minimum_calls",
            11,
        ),
        (
            BreakerConfig {
                failure_rate_threshold: Some(0),
                ..base
            },
            "failure_rate_threshold",
            0,
        ),
        (
            BreakerConfig {
                failure_rate_threshold: Some(101),
                ..base
            },
            "failure_rate_threshold",
            101,
        ),
        (
            BreakerConfig {
                slow_call_rate_threshold: Some(200),
                ..base
            },
            "slow_call_rate_threshold",
            200,
        ),
        (
            BreakerConfig {
                slow_call_duration_ns: 0,
                ..base
            },
            "slow_call_duration_ns",
            0,
        ),
        (
            BreakerConfig {
                minimum_calls: 0,
                ..base
            },
            "minimum_calls",
            0,
        ),
        (
            BreakerConfig {
                wait_duration_ns: 0,
                ..base
            },
            "wait_duration_ns",
            0,
        ),
        (
            BreakerConfig {
                backoff_factor_milli: 999,
                ..base
            },
            "backoff_factor_milli",
            999,
        ),
        (
            BreakerConfig {
                max_wait_duration_ns: Some(SECOND),
                ..base
            },
            "max_wait_duration_ns",
            SECOND,
        ),
        (
            BreakerConfig {
                jitter_permille: 1001,
                ..base
            },
            "jitter_permille",
            1001,
        ),
        (
            BreakerConfig {
                half_open_max_calls: 0,
                ..base
            },
            "half_open_max_calls",
            0,
        ),
        (
            BreakerConfig {
                half_open_max_calls: 1024,
                ..base
            },
            "half_open_max_calls",
            1024,
        ),
        (
            BreakerConfig {
                success_threshold: 0,
                ..base
            },
            "success_threshold",
            0,
        ),
        (
            BreakerConfig {
                window_size: Some(0),
                ..base
            },
            "window_size",
            0,
        ),
        (
            BreakerConfig {
                window_size: Some(65),
                ..base
            },
            "window_size",
            65,
        ),
    ];
    for (config, field, value) in cases {
        let e = Breaker::new(config).unwrap_err();
        check_eq!((e.field, e.value), (field, value));
        let (mut text, mut number) = (Buf::new(), Buf::new());
        write!(text, "{e}").unwrap();
        write!(number, "{value}").unwrap();
        check!(
            text.as_str().contains(field) && text.as_str().contains(number.as_str()),
            "{e}"
        );
    }
    // Jitter needs a seed: drawn from the OS with std, given without (no entropy source).
    let random_jitter = BreakerConfig {
        jitter_permille: 100,
        jitter_seed: None,
        ..base
    };
    if cfg!(target_os = "none") {
        let e = Breaker::new(random_jitter).unwrap_err();
        check_eq!((e.field, e.value), ("jitter_seed", 0));
    } else {
        check!(Breaker::new(random_jitter).is_ok());
    }
    check!(Breaker::new(BreakerConfig {
        jitter_seed: Some(7),
        ..random_jitter
    })
    .is_ok());
    // Without a rate rule minimum_calls does nothing, so any value goes.
    check!(Breaker::new(BreakerConfig {
        minimum_calls: 11,
        window_size: Some(10),
        ..base
    })
    .is_ok());
    let e = CircuitBreaker::<TimeWindow<10>>::new(BreakerConfig {
        bucket_duration_ns: 0,
        ..base
    })
    .unwrap_err();
    check_eq!(e.field, "bucket_duration_ns");
    // The read-back resolves the defaults: the count window's size (64: its capacity, below
    // the default 100).
    check_eq!(
        Breaker::new(base).unwrap().config(),
        BreakerConfig {
            window_size: Some(64),
            ..base
        }
    );
    Ok(())
}

pub fn times_far_from_zero_work() -> TestResult {
    // Callers may pass any monotonic time, e.g. CLOCK_REALTIME in ns (~2^60.6).
    let t0 = 1_790_000_000 * SECOND;
    let b = breaker(BreakerConfig {
        failure_threshold: Some(1),
        wait_duration_ns: SECOND,
        ..BreakerConfig::new()
    });
    call(&b, Outcome::Failure, t0);
    check_eq!(b.retry_after(t0 + SECOND / 2), SECOND / 2);
    check_eq!(b.metrics(t0).last_transition_at, Some(t0));
    check!(b.acquire(t0 + SECOND).is_ok());
    // A caller whose clock read is slightly behind the transition sees the full wait.
    let b = breaker(BreakerConfig {
        failure_threshold: Some(1),
        wait_duration_ns: SECOND,
        ..BreakerConfig::new()
    });
    call(&b, Outcome::Failure, t0);
    check_eq!(
        b.acquire(t0 - 5),
        Err(Rejected::Open {
            retry_after: SECOND
        })
    );
    Ok(())
}

pub fn const_constructors_build_statics() -> TestResult {
    // The constructors are `const fn`: a breaker and a bucket can be built at compile time.
    static B: Breaker = match Breaker::new(BreakerConfig {
        failure_threshold: Some(2),
        ..BreakerConfig::new()
    }) {
        Ok(b) => b,
        Err(_) => panic!("invalid breaker config"),
    };
    static BUCKET: TokenBucket = match TokenBucket::new(BucketConfig::per_second(5, 5)) {
        Ok(b) => b,
        Err(_) => panic!("invalid bucket config"),
    };
    const BAD: Result<Breaker, ConfigError> = Breaker::new(BreakerConfig {
        minimum_calls: 0,
        ..BreakerConfig::new()
    });
    check_eq!(BAD.err().map(|e| e.field), Some("minimum_calls"));
    check_eq!(B.state(), State::Closed);
    check_eq!(B.config().failure_threshold, Some(2));
    check_eq!(BUCKET.available(0), 5);
    check_eq!(
        core::mem::size_of::<Breaker>(),
        BREAKER_SIZE,
        "size of CircuitBreaker<CountWindow64>"
    );
    check_eq!(
        core::mem::size_of::<TokenBucket>(),
        BUCKET_SIZE,
        "size of TokenBucket"
    );
    Ok(())
}

/// `size_of::<CircuitBreaker<CountWindow64>>()`: 248 bytes wherever u64 is 8-aligned (184
/// before runtime reconfiguration: the settings are now two buffers of 7 words under a
/// sequence word).
const BREAKER_SIZE: usize = 248;
/// `size_of::<TokenBucket>()`: 120 bytes (40 before runtime reconfiguration: two buffers of 6
/// settings words under a sequence word).
const BUCKET_SIZE: usize = 120;

/// A small stack buffer for `write!`.
struct Buf {
    bytes: [u8; 160],
    len: usize,
}

impl Buf {
    fn new() -> Self {
        Buf {
            bytes: [0; 160],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap()
    }
}

impl core::fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        if end > self.bytes.len() {
            return Err(core::fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
