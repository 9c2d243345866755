//! fastbreaker against governor, failsafe and recloser, side by side in one process, and
//! each primitive in a host-shared region (feature `shm`) beside the same one in process
//! memory.
//!
//! Run with `cargo bench -p fastbreaker-benches`; then
//! `cargo run -p fastbreaker-benches --release --bin report` prints the table. The groups and
//! names are those of `fastbreaker_benches::CATALOGUE`, which also says what each benchmark
//! measures and what it is compared with.
//!
//! Every object is built once per benchmark, brought into the state under test, checked to
//! be in it, benchmarked, and checked again afterwards. Inputs (`now`, the object's address)
//! go through `black_box`, and so does every result, so nothing is hoisted or discarded.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use failsafe::{backoff, failure_policy, Config};
use fastbreaker::shm::{Region, RegionOptions};
use fastbreaker::{
    BreakerConfig, BucketConfig, Bulkhead, CircuitBreaker, Clock, CountWindow1024, CountWindow64,
    MonotonicClock, Outcome, Rejected, State, TimeWindow, TokenBucket, SECOND,
};
use fastbreaker_benches::{bench, group};
use governor::{Quota, RateLimiter};
use recloser::Recloser;

/// The fixed `now` of the explicit-time benchmarks.
const NOW: u64 = 1_000 * SECOND;
/// A wait long enough that an open breaker stays open for the whole run.
const LONG_WAIT: u64 = 3_600 * SECOND;

/// fastbreaker's [`Clock`] over quanta, read exactly as governor's default clock
/// (`governor::clock::QuantaClock::now`): a raw TSC read scaled to nanoseconds.
struct QuantaNs(quanta::Clock);

impl Clock for QuantaNs {
    #[inline]
    fn now_ns(&self) -> u64 {
        self.0.delta_as_nanos(0, self.0.raw())
    }
}

/// A closed breaker on a count window with the default rules (5 consecutive failures).
fn count_breaker() -> CircuitBreaker<CountWindow64> {
    CircuitBreaker::<CountWindow64>::new(BreakerConfig {
        wait_duration_ns: LONG_WAIT,
        ..BreakerConfig::new()
    })
    .expect("valid configuration")
}

/// failsafe's `StateMachine` with the consecutive-failures policy.
type Failsafe = failsafe::StateMachine<failure_policy::ConsecutiveFailures<backoff::Constant>, ()>;

/// A closed failsafe breaker: opens after 5 consecutive failures, for 60 s.
fn failsafe_state_machine() -> Failsafe {
    Config::new()
        .failure_policy(failure_policy::consecutive_failures(
            5,
            backoff::constant(Duration::from_secs(60)),
        ))
        .build()
}

/// One closed-path operation of fastbreaker with an explicit `now`.
#[inline(always)]
fn breaker_now(b: &CircuitBreaker<CountWindow64>) {
    if let Ok(permit) = b.acquire(black_box(NOW)) {
        black_box(b.record(permit, Outcome::Success, black_box(NOW)));
    }
}

/// One closed-path operation of fastbreaker through a clock.
#[inline(always)]
fn breaker_clock<W: fastbreaker::Window, C: Clock>(b: &CircuitBreaker<W>, clock: &C) {
    if let Ok(permit) = b.acquire_with(clock) {
        black_box(b.record_with(clock, permit, Outcome::Success));
    }
}

/// One closed-path operation of failsafe.
#[inline(always)]
fn failsafe_closed(f: &Failsafe) {
    if black_box(f.is_call_permitted()) {
        f.on_success();
    }
}

/// Runs `op` `iters` times on each of two threads sharing `obj`, starting together at a
/// barrier; returns the wall time from the first start to the last end (thread spawning
/// excluded). Criterion divides it by `iters`: ns per operation per thread.
fn two_threads<T: Sync>(obj: &T, iters: u64, op: impl Fn(&T) + Sync) -> Duration {
    let barrier = Barrier::new(2);
    let spans: Vec<(Instant, Instant)> = thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        op(black_box(obj));
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("benchmark thread panicked"))
            .collect()
    });
    let start = spans.iter().map(|s| s.0).min().expect("two spans");
    let end = spans.iter().map(|s| s.1).max().expect("two spans");
    end - start
}

fn breaker_closed(c: &mut Criterion) {
    let mut g = c.benchmark_group(group::BREAKER_CLOSED);

    let b = count_breaker();
    g.bench_function(bench::FASTBREAKER_NOW, |bn| {
        bn.iter(|| breaker_now(black_box(&b)))
    });
    let m = b.metrics(NOW);
    assert_eq!((m.state, m.rejected, m.failed), (State::Closed, 0, 0));

    let b = count_breaker();
    let clock = MonotonicClock;
    g.bench_function(bench::FASTBREAKER_CLOCK, |bn| {
        bn.iter(|| breaker_clock(black_box(&b), &clock))
    });
    let m = b.metrics(clock.now_ns());
    assert_eq!((m.state, m.rejected, m.failed), (State::Closed, 0, 0));

    let b = CircuitBreaker::<TimeWindow<10>>::new(BreakerConfig {
        wait_duration_ns: LONG_WAIT,
        ..BreakerConfig::new()
    })
    .expect("valid configuration");
    g.bench_function(bench::FASTBREAKER_TIME_WINDOW_CLOCK, |bn| {
        bn.iter(|| breaker_clock(black_box(&b), &clock))
    });
    let m = b.metrics(clock.now_ns());
    assert_eq!((m.state, m.rejected, m.failed), (State::Closed, 0, 0));

    let f = failsafe_state_machine();
    g.bench_function(bench::FAILSAFE, |bn| {
        bn.iter(|| failsafe_closed(black_box(&f)))
    });
    assert!(f.is_call_permitted());

    let r = Recloser::default();
    g.bench_function(bench::RECLOSER, |bn| {
        bn.iter(|| black_box(black_box(&r).call(|| Ok::<_, ()>(()))))
    });
    assert!(r.call(|| Ok::<_, ()>(())).is_ok());

    g.finish();
}

fn breaker_open(c: &mut Criterion) {
    let mut g = c.benchmark_group(group::BREAKER_OPEN);

    let b = count_breaker();
    for _ in 0..5 {
        let p = b.acquire(0).expect("closed");
        b.record(p, Outcome::Failure, 0);
    }
    assert!(matches!(b.acquire(NOW), Err(Rejected::Open { .. })));
    g.bench_function(bench::FASTBREAKER_NOW, |bn| {
        bn.iter(|| black_box(black_box(&b).acquire(black_box(NOW))))
    });
    assert!(matches!(b.acquire(NOW), Err(Rejected::Open { .. })));

    let b = count_breaker();
    let clock = MonotonicClock;
    for _ in 0..5 {
        let p = b.acquire_with(&clock).expect("closed");
        b.record_with(&clock, p, Outcome::Failure);
    }
    assert!(matches!(b.acquire_with(&clock), Err(Rejected::Open { .. })));
    g.bench_function(bench::FASTBREAKER_CLOCK, |bn| {
        bn.iter(|| black_box(black_box(&b).acquire_with(&clock)))
    });
    assert!(matches!(b.acquire_with(&clock), Err(Rejected::Open { .. })));

    let f = failsafe_state_machine_tripped();
    g.bench_function(bench::FAILSAFE, |bn| {
        bn.iter(|| black_box(black_box(&f).is_call_permitted()))
    });
    assert!(!f.is_call_permitted());

    let r = Recloser::custom()
        .closed_len(5)
        .error_rate(0.5)
        .open_wait(Duration::from_secs(3_600))
        .build();
    // recloser computes no rate until its ring of `closed_len` outcomes is full.
    for _ in 0..10 {
        if matches!(r.call(|| Err::<(), ()>(())), Err(recloser::Error::Rejected)) {
            break;
        }
    }
    assert!(matches!(
        r.call(|| Ok::<_, ()>(())),
        Err(recloser::Error::Rejected)
    ));
    g.bench_function(bench::RECLOSER, |bn| {
        bn.iter(|| black_box(black_box(&r).call(|| Ok::<_, ()>(()))))
    });
    assert!(matches!(
        r.call(|| Ok::<_, ()>(())),
        Err(recloser::Error::Rejected)
    ));

    g.finish();
}

/// A failsafe state machine opened by five consecutive failures (open for 60 s).
fn failsafe_state_machine_tripped() -> Failsafe {
    let f = failsafe_state_machine();
    for _ in 0..5 {
        assert!(f.is_call_permitted());
        f.on_error();
    }
    assert!(!f.is_call_permitted());
    f
}

/// A bucket that always allows: 1e9 tokens per second (one per ns), burst 2^32.
fn fast_bucket() -> TokenBucket {
    TokenBucket::new(BucketConfig::per_second(
        1_000_000_000,
        TokenBucket::MAX_BURST,
    ))
    .expect("valid bucket")
}

/// A bucket of one token per 1e6 s, emptied at `now`.
fn exhausted_bucket(now: u64) -> TokenBucket {
    let b = TokenBucket::new(BucketConfig {
        rate: 1,
        period_ns: 1_000_000 * SECOND,
        burst: 1,
    })
    .expect("valid bucket");
    b.try_acquire(1, now).expect("a full bucket");
    b
}

fn governor_fast() -> governor::DefaultDirectRateLimiter {
    RateLimiter::direct(Quota::per_second(
        NonZeroU32::new(1_000_000_000).expect("non-zero"),
    ))
}

fn bucket_allowed(c: &mut Criterion) {
    let mut g = c.benchmark_group(group::BUCKET_ALLOWED);
    let clock = MonotonicClock;

    let b = fast_bucket();
    let mut now = NOW;
    g.bench_function(bench::FASTBREAKER_NOW, |bn| {
        bn.iter(|| {
            now += 1;
            black_box(black_box(&b).try_acquire(1, black_box(now)))
        })
    });
    assert!(b.try_acquire(1, now + 1).is_ok());

    let b = fast_bucket();
    g.bench_function(bench::FASTBREAKER_CLOCK, |bn| {
        bn.iter(|| black_box(black_box(&b).try_acquire_with(1, &clock)))
    });
    assert!(b.try_acquire_with(1, &clock).is_ok());

    let b = fast_bucket();
    let quanta = QuantaNs(quanta::Clock::new());
    g.bench_function(bench::FASTBREAKER_QUANTA, |bn| {
        bn.iter(|| black_box(black_box(&b).try_acquire_with(1, &quanta)))
    });
    assert!(b.try_acquire_with(1, &quanta).is_ok());

    let l = governor_fast();
    g.bench_function(bench::GOVERNOR, |bn| {
        bn.iter(|| black_box(black_box(&l).check()))
    });
    assert!(l.check().is_ok());

    g.finish();
}

fn bucket_rejected(c: &mut Criterion) {
    let mut g = c.benchmark_group(group::BUCKET_REJECTED);
    let clock = MonotonicClock;

    let b = exhausted_bucket(NOW);
    g.bench_function(bench::FASTBREAKER_NOW, |bn| {
        bn.iter(|| black_box(black_box(&b).try_acquire(1, black_box(NOW))))
    });
    assert!(b.try_acquire(1, NOW).is_err());

    let b = exhausted_bucket(clock.now_ns());
    g.bench_function(bench::FASTBREAKER_CLOCK, |bn| {
        bn.iter(|| black_box(black_box(&b).try_acquire_with(1, &clock)))
    });
    assert!(b.try_acquire_with(1, &clock).is_err());

    let quanta = QuantaNs(quanta::Clock::new());
    let b = exhausted_bucket(quanta.now_ns());
    g.bench_function(bench::FASTBREAKER_QUANTA, |bn| {
        bn.iter(|| black_box(black_box(&b).try_acquire_with(1, &quanta)))
    });
    assert!(b.try_acquire_with(1, &quanta).is_err());

    let l = RateLimiter::direct(Quota::per_hour(NonZeroU32::new(1).expect("non-zero")));
    assert!(l.check().is_ok());
    assert!(l.check().is_err());
    g.bench_function(bench::GOVERNOR, |bn| {
        bn.iter(|| black_box(black_box(&l).check()))
    });
    assert!(l.check().is_err());

    g.finish();
}

fn two_thread_group(c: &mut Criterion) {
    let mut g = c.benchmark_group(group::TWO_THREADS);
    let clock = MonotonicClock;

    let b = count_breaker();
    g.bench_function(bench::FASTBREAKER_BREAKER_NOW, |bn| {
        bn.iter_custom(|iters| two_threads(&b, iters, breaker_now))
    });
    let m = b.metrics(NOW);
    assert_eq!((m.state, m.rejected, m.failed), (State::Closed, 0, 0));

    let b = count_breaker();
    g.bench_function(bench::FASTBREAKER_BREAKER_CLOCK, |bn| {
        bn.iter_custom(|iters| two_threads(&b, iters, |b| breaker_clock(b, &clock)))
    });
    let m = b.metrics(clock.now_ns());
    assert_eq!((m.state, m.rejected, m.failed), (State::Closed, 0, 0));

    let b = fast_bucket();
    g.bench_function(bench::FASTBREAKER_BUCKET_CLOCK, |bn| {
        bn.iter_custom(|iters| {
            two_threads(&b, iters, |b| {
                let _ = black_box(b.try_acquire_with(1, &clock));
            })
        })
    });
    assert!(b.try_acquire_with(1, &clock).is_ok());

    let l = governor_fast();
    g.bench_function(bench::GOVERNOR, |bn| {
        bn.iter_custom(|iters| {
            two_threads(&l, iters, |l| {
                let _ = black_box(l.check());
            })
        })
    });
    assert!(l.check().is_ok());

    let f = failsafe_state_machine();
    g.bench_function(bench::FAILSAFE, |bn| {
        bn.iter_custom(|iters| two_threads(&f, iters, failsafe_closed))
    });
    assert!(f.is_call_permitted());

    g.finish();
}

fn clock_read(c: &mut Criterion) {
    let mut g = c.benchmark_group(group::CLOCK_READ);
    let clock = MonotonicClock;
    g.bench_function(bench::MONOTONIC_CLOCK, |bn| {
        bn.iter(|| black_box(black_box(&clock).now_ns()))
    });
    let quanta = QuantaNs(quanta::Clock::new());
    g.bench_function(bench::QUANTA, |bn| {
        bn.iter(|| black_box(black_box(&quanta).now_ns()))
    });
    g.finish();
}

/// A region in a fresh temporary directory (under `/dev/shm`, the tmpfs regions live on by
/// default, when there is one; else the system's temporary directory), unlinked with its
/// directory when dropped, also when a benchmark panics.
struct TempRegion {
    region: Option<Region>,
    options: RegionOptions,
    dir: PathBuf,
}

/// The region's name inside its temporary directory.
const REGION_NAME: &str = "bench";
/// The slots of the bulkheads of the shared-region group.
const BULKHEAD_SLOTS: u32 = 64;

impl TempRegion {
    fn new() -> TempRegion {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("fastbreaker-bench.{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory for the region");
        let options = RegionOptions::new().dir(&dir).capacity(16);
        // A leftover of an earlier run of the same pid would not be fresh.
        let _ = Region::unlink(REGION_NAME, &options);
        let region =
            Region::open(REGION_NAME, &options).expect("a region in the temporary directory");
        assert!(region.created(), "a fresh region");
        TempRegion {
            region: Some(region),
            options,
            dir,
        }
    }

    fn region(&self) -> &Region {
        self.region.as_ref().expect("open until dropped")
    }
}

impl Drop for TempRegion {
    fn drop(&mut self) {
        drop(self.region.take());
        let _ = Region::unlink(REGION_NAME, &self.options);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The configuration of the breakers of the shared-region group (as [`count_breaker`]).
fn long_wait_config() -> BreakerConfig {
    BreakerConfig {
        wait_duration_ns: LONG_WAIT,
        ..BreakerConfig::new()
    }
}

/// One acquire of a bulkhead and the release of its permit (dropped at once).
#[inline(always)]
fn bulkhead_cycle(b: &Bulkhead) {
    drop(black_box(b.try_acquire().expect("a free slot")));
}

fn shared_region(c: &mut Criterion) {
    let mut g = c.benchmark_group(group::SHARED_REGION);
    let clock = MonotonicClock;
    let temp = TempRegion::new();
    let region = temp.region();
    let bucket_config = BucketConfig::per_second(1_000_000_000, TokenBucket::MAX_BURST);

    let b =
        CircuitBreaker::<CountWindow1024>::new(long_wait_config()).expect("valid configuration");
    g.bench_function(bench::BREAKER_IN_PROCESS, |bn| {
        bn.iter(|| breaker_clock(black_box(&b), &clock))
    });
    let m = b.metrics(clock.now_ns());
    assert_eq!((m.state, m.rejected, m.failed), (State::Closed, 0, 0));

    let b = region
        .breaker_count("breaker", &long_wait_config())
        .expect("a breaker slot");
    g.bench_function(bench::BREAKER_SHARED, |bn| {
        bn.iter(|| breaker_clock(black_box(b), &clock))
    });
    let m = b.metrics(clock.now_ns());
    assert_eq!((m.state, m.rejected, m.failed), (State::Closed, 0, 0));

    let b = TokenBucket::new(bucket_config).expect("valid bucket");
    g.bench_function(bench::BUCKET_IN_PROCESS, |bn| {
        bn.iter(|| black_box(black_box(&b).try_acquire_with(1, &clock)))
    });
    assert!(b.try_acquire_with(1, &clock).is_ok());

    let b = region
        .bucket("bucket", bucket_config)
        .expect("a bucket slot");
    g.bench_function(bench::BUCKET_SHARED, |bn| {
        bn.iter(|| black_box(black_box(b).try_acquire_with(1, &clock)))
    });
    assert!(b.try_acquire_with(1, &clock).is_ok());

    let b = Bulkhead::new(BULKHEAD_SLOTS).expect("valid bulkhead");
    g.bench_function(bench::BULKHEAD_IN_PROCESS, |bn| {
        bn.iter(|| bulkhead_cycle(black_box(&b)))
    });
    assert_eq!(b.in_flight(), 0);

    let b = region
        .bulkhead("bulkhead", BULKHEAD_SLOTS)
        .expect("a bulkhead slot");
    g.bench_function(bench::BULKHEAD_SHARED, |bn| {
        bn.iter(|| bulkhead_cycle(black_box(b)))
    });
    assert_eq!(b.in_flight(), 0);

    let owned = region
        .owned_bulkhead("owned-bulkhead", BULKHEAD_SLOTS)
        .expect("a bulkhead slot");
    g.bench_function(bench::BULKHEAD_OWNED_SHARED, |bn| {
        bn.iter(|| {
            drop(black_box(
                black_box(&owned).try_acquire().expect("a free slot"),
            ))
        })
    });
    assert_eq!(owned.bulkhead().in_flight(), 0);

    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .without_plots();
    targets = breaker_closed, breaker_open, bucket_allowed, bucket_rejected, two_thread_group,
        clock_read, shared_region
}
criterion_main!(benches);
