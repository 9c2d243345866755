//! A breaker and a bucket in `static`s, used from the main loop and from interrupt handlers:
//! a software interrupt the test pends (PendSV on Cortex-M, the machine software interrupt
//! on RISC-V) and a periodic timer interrupt (SysTick, the machine timer) that preempts the
//! main loop at arbitrary points.

use fastbreaker::{
    BreakerConfig, BucketConfig, CircuitBreaker, Clock, CountWindow64, EmbassyClock, Outcome,
    Rejected, State, TokenBucket, SECOND,
};
use portable_atomic::{AtomicU32, Ordering};

use crate::board;
use crate::harness::TestResult;
use crate::test_driver::advance;

type Breaker = CircuitBreaker<CountWindow64>;

/// Trips after 3 failures in a row; waits 10 s before a probe.
static BREAKER: Breaker = match Breaker::new(BreakerConfig {
    failure_threshold: Some(3),
    wait_duration_ns: 10 * SECOND,
    ..BreakerConfig::new()
}) {
    Ok(b) => b,
    Err(_) => panic!("invalid breaker config"),
};

/// 1000 tokens, refilled at 100 a second (time only moves when a test says so).
static BUCKET: TokenBucket = match TokenBucket::new(BucketConfig::per_second(100, 1000)) {
    Ok(b) => b,
    Err(_) => panic!("invalid bucket config"),
};

/// The outcome the software-interrupt handler records: 0 success, 1 failure.
static OUTCOME: AtomicU32 = AtomicU32::new(0);

/// What the handlers saw. 32-bit counters: native atomics on M3/M4, critical sections on
/// M0/RV32IMC. Only handlers write them, and handlers do not preempt each other here
/// (same priority), so a load and a store would do; `fetch_add` keeps it obvious.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    runs: u32,
    permitted: u32,
    open: u32,
    half_open_full: u32,
    tokens: u32,
    limited: u32,
}

struct SeenCounters {
    runs: AtomicU32,
    permitted: AtomicU32,
    open: AtomicU32,
    half_open_full: AtomicU32,
    tokens: AtomicU32,
    limited: AtomicU32,
}

impl SeenCounters {
    const fn new() -> Self {
        SeenCounters {
            runs: AtomicU32::new(0),
            permitted: AtomicU32::new(0),
            open: AtomicU32::new(0),
            half_open_full: AtomicU32::new(0),
            tokens: AtomicU32::new(0),
            limited: AtomicU32::new(0),
        }
    }

    fn get(&self) -> Seen {
        Seen {
            runs: self.runs.load(Ordering::Relaxed),
            permitted: self.permitted.load(Ordering::Relaxed),
            open: self.open.load(Ordering::Relaxed),
            half_open_full: self.half_open_full.load(Ordering::Relaxed),
            tokens: self.tokens.load(Ordering::Relaxed),
            limited: self.limited.load(Ordering::Relaxed),
        }
    }
}

static SOFTWARE: SeenCounters = SeenCounters::new();
static TIMER: SeenCounters = SeenCounters::new();

/// One call through the shared breaker and one token from the shared bucket.
fn use_shared(outcome: Outcome, seen: &SeenCounters) {
    seen.runs.fetch_add(1, Ordering::Relaxed);
    match BREAKER.acquire_with(&EmbassyClock) {
        Ok(permit) => {
            seen.permitted.fetch_add(1, Ordering::Relaxed);
            BREAKER.record_with(&EmbassyClock, permit, outcome);
        }
        Err(Rejected::Open { .. }) => {
            seen.open.fetch_add(1, Ordering::Relaxed);
        }
        Err(Rejected::HalfOpenFull) => {
            seen.half_open_full.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {}
    }
    match BUCKET.try_acquire_with(1, &EmbassyClock) {
        Ok(()) => seen.tokens.fetch_add(1, Ordering::Relaxed),
        Err(_) => seen.limited.fetch_add(1, Ordering::Relaxed),
    };
}

/// Body of the software interrupt (PendSV / machine software interrupt).
pub fn on_software_interrupt() {
    let outcome = match OUTCOME.load(Ordering::Relaxed) {
        0 => Outcome::Success,
        _ => Outcome::Failure,
    };
    use_shared(outcome, &SOFTWARE);
}

/// Body of the periodic timer interrupt (SysTick / machine timer).
pub fn on_timer_interrupt() {
    use_shared(Outcome::Success, &TIMER);
}

/// Pends the software interrupt with `outcome` and checks that its handler ran.
fn interrupt_with(outcome: Outcome) -> Result<(), crate::harness::NotPassed> {
    OUTCOME.store(
        matches!(outcome, Outcome::Failure) as u32,
        Ordering::Relaxed,
    );
    let before = SOFTWARE.get().runs;
    board::pend_software_interrupt();
    check_eq!(
        SOFTWARE.get().runs,
        before + 1,
        "the software interrupt handler ran"
    );
    Ok(())
}

/// Puts the shared breaker and bucket back to closed / full.
fn reset_shared() {
    BREAKER.reset(EmbassyClock.now_ns());
    BUCKET.reset();
}

pub fn handler_and_main_loop_share_static_breaker_and_bucket() -> TestResult {
    reset_shared();
    let m0 = BREAKER.metrics_with(&EmbassyClock);
    let s0 = SOFTWARE.get();
    let main = SeenCounters::new();
    for _ in 0..2 {
        use_shared(Outcome::Success, &main);
        interrupt_with(Outcome::Success)?;
        interrupt_with(Outcome::Failure)?;
    }
    use_shared(Outcome::Success, &main); // the main loop's success ends the run of failures
    let m = BREAKER.metrics_with(&EmbassyClock);
    let s = SOFTWARE.get();
    check_eq!(m.state, State::Closed);
    check_eq!(m.permitted - m0.permitted, 7);
    check_eq!((m.succeeded - m0.succeeded, m.failed - m0.failed), (5, 2));
    check_eq!(m.consecutive_failures, 0);
    check_eq!(m.window.samples, 7);
    check_eq!((s.permitted - s0.permitted, s.tokens - s0.tokens), (4, 4));
    check_eq!(main.get().tokens, 3);
    check_eq!(BUCKET.available(EmbassyClock.now_ns()), 1000 - 7);
    Ok(())
}

pub fn handler_sees_trip_probe_and_close_made_by_main_loop() -> TestResult {
    reset_shared();
    let m0 = BREAKER.metrics_with(&EmbassyClock);
    let s0 = SOFTWARE.get();
    // The handler's failures trip the breaker...
    for _ in 0..3 {
        interrupt_with(Outcome::Failure)?;
    }
    check_eq!(BREAKER.state(), State::Open, "tripped from the handler");
    // ...the main loop sees it open, waits, and takes the probe...
    check_eq!(
        BREAKER.acquire_with(&EmbassyClock).err(),
        Some(Rejected::Open {
            retry_after: 10 * SECOND
        })
    );
    advance(embassy_time::Duration::from_secs(10));
    let probe = BREAKER.acquire_with(&EmbassyClock).unwrap();
    check_eq!(BREAKER.state(), State::HalfOpen);
    // ...while the probe is out the handler is refused...
    interrupt_with(Outcome::Success)?;
    check_eq!(SOFTWARE.get().half_open_full - s0.half_open_full, 1);
    // ...and once the main loop's probe succeeds, the handler gets through again.
    let t = BREAKER.record_with(&EmbassyClock, probe, Outcome::Success);
    check_eq!(t.map(|t| t.to), Some(State::Closed));
    interrupt_with(Outcome::Success)?;
    let s = SOFTWARE.get();
    let m = BREAKER.metrics_with(&EmbassyClock);
    check_eq!(s.permitted - s0.permitted, 4);
    check_eq!((m.trips - m0.trips, m.state), (1, State::Closed));
    check_eq!((m.succeeded - m0.succeeded, m.failed - m0.failed), (2, 3));
    Ok(())
}

pub fn preempting_timer_interrupt_loses_no_update() -> TestResult {
    if crate::ATOMICS == crate::LOCK_FALLBACK {
        // Measured on lm3s6965evb: within a second the SysTick handler spins forever in
        // portable-atomic's SeqLock::write (AtomicU64::fetch_add of a breaker counter), whose
        // lock the preempted main loop holds.
        return Err(crate::harness::NotPassed::Skipped(
            "the lock-based 64-bit fallback deadlocks when an interrupt preempts a holder; \
             build with --features single-core",
        ));
    }
    reset_shared();
    let m0 = BREAKER.metrics_with(&EmbassyClock);
    let t0 = TIMER.get();
    let main = SeenCounters::new();
    // Time stands still: the bucket's 1000 tokens are all there is to share.
    board::start_periodic_interrupt();
    let mut loops = 0u32;
    while loops < 2_000 || (TIMER.get().runs - t0.runs < 200 && loops < 1_000_000) {
        use_shared(Outcome::Success, &main);
        loops += 1;
    }
    board::stop_periodic_interrupt();
    let t = TIMER.get();
    let m = BREAKER.metrics_with(&EmbassyClock);
    let timer_runs = t.runs - t0.runs;
    print!(
        "{} main-loop calls, {} timer interrupts ... ",
        loops, timer_runs
    );
    check!(
        timer_runs >= 200,
        "the timer interrupt must have preempted the loop"
    );
    let calls = (loops + timer_runs) as u64;
    check_eq!(m.permitted - m0.permitted, calls, "no acquire lost");
    check_eq!(m.succeeded - m0.succeeded, calls, "no record lost");
    let tokens = main.get().tokens + (t.tokens - t0.tokens);
    let limited = main.get().limited + (t.limited - t0.limited);
    check_eq!(tokens, 1000, "exactly the burst granted, none twice");
    check_eq!(tokens + limited, calls as u32);
    check_eq!(BUCKET.available(EmbassyClock.now_ns()), 0);
    Ok(())
}
