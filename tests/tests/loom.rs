//! Loom models of the breaker's state word and of both windows.
//!
//! `--cfg loom` swaps the core's atomics for loom's and rebuilds every crate, so keep it in
//! its own target directory:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p fastbreaker-tests --test loom --release
//! ```
//!
//! `make loom` runs every model with `LOOM_MAX_PREEMPTIONS=2`: each property below is
//! **checked by loom within bound 2** (every interleaving with at most two preemptions, and
//! loom's model of weak memory), not proved for all interleavings. Run by hand without that
//! variable, a model uses its own default bound (3 for most two-thread models, 2 for the
//! three-thread ones, which take minutes at 3). Setup that needs no concurrency (tripping the
//! breaker, taking the permits a model races with) runs on the model's main thread before
//! any spawn.
//!
//! (a) half-open probe bound, and probes timed from their own admission; (b) one trip per
//! trip; (c) window counts equal contents; (d) stale-generation outcomes do not move the
//! state; (e) half-open probes that finish at once leave a legal state.
//!
//! These models found races in the core, now fixed there and checked here:
//! `racing_the_half_open_change_is_not_refused` and `racing_a_rescue_is_not_refused` (a
//! stale state word plus a newer time tag refused with a full wait; fixed by gating time
//! publishes on the current generation, with Release/Acquire on the time word), and
//! `stale_failure_does_not_count_after_reset` (the consecutive counter is tagged with its
//! generation), and `a_young_probe_is_not_presumed_hung` (an ABA on the state word let a
//! caller presume a just-admitted probe hung; fixed by a probe-admission sequence in the
//! word). The one `#[ignore]`d model is a known limitation, documented in the README:
//! `late_trip_follow_up_does_not_wipe_a_later_period` — the window is not tagged with a
//! generation, so an outcome or a clear that straddles a state change can land in (or wipe)
//! the next period's window (`-- --ignored` shows the interleaving).
//!
//! For loom's own trace of a failing model, run it through `loom::model` instead of
//! `model` (only that installs loom's log subscriber) with `LOOM_LOG=trace`.
//!
//! Loom models a plain `store` racing a read-modify-write on the same atomic more loosely
//! than the memory model does (cf. tokio-rs/loom#282): it can report executions in which an
//! RMW read a value that a store had already replaced. The count window's `samples`/`head`
//! resets and the time window's clear are plain stores, so the models assert nothing that
//! depends on them racing an RMW; see `count_window_clear_races_a_record`. (The
//! consecutive-failure counter changes by compare-and-swap only.)
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

use fastbreaker::{
    BreakerConfig, CircuitBreaker, CountWindow, Outcome, Permit, PermitKind, Rejected, State,
    TimeWindow, Transition, Window, WindowStats,
};

/// A 32-outcome count window: one word per ring keeps the models small.
type Breaker = CircuitBreaker<CountWindow<1>>;

/// The open wait of every model.
const WAIT: u64 = 100;

/// Runs `f` under loom with a preemption bound of `LOOM_MAX_PREEMPTIONS` if set, else
/// `default_bound` (3 for the small models, 2 for those that take minutes at 3).
fn model<F>(default_bound: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(default_bound);
    }
    builder.check(f);
}

fn breaker(config: BreakerConfig) -> Arc<Breaker> {
    Arc::new(Breaker::new(config).expect("valid config"))
}

/// Trips a breaker whose `failure_threshold` is 1 at time 0: Open, generation 1.
fn trip(b: &Breaker) {
    let p = b.acquire(0).expect("closed");
    let t = b.record(p, Outcome::Failure, 0).expect("trips");
    assert_eq!(
        (t.from, t.to, t.generation),
        (State::Closed, State::Open, 1)
    );
}

/// Trips a breaker (see [`trip`]) and takes the first probe at `WAIT`: HalfOpen, gen 2.
fn half_open(b: &Breaker) -> Permit {
    trip(b);
    let p = b.acquire(WAIT).expect("the wait is over");
    assert_eq!((p.kind(), p.generation()), (PermitKind::Probe, 2));
    assert_eq!(b.state(), State::HalfOpen);
    p
}

fn is_trip(t: &Option<Transition>) -> bool {
    matches!(
        t,
        Some(Transition {
            from: State::Closed,
            to: State::Open,
            ..
        })
    )
}

// ---------------------------------------------------------------------------------------
// (a) Half-open admits at most `half_open_max_calls` probes at once.
// ---------------------------------------------------------------------------------------

/// Three threads race for two probe slots right as the wait ends; the first also makes the
/// Open -> HalfOpen change. Neither the harness's count of held probes nor the word's
/// in-flight count ever exceeds 2, every probe is of generation 2, and the in-flight count
/// ends equal to the probes let through.
///
/// A thread that loaded the word while it was still Open reloads it once it finds the
/// half-open generation's time (see `racing_the_half_open_change_is_not_refused`): no thread
/// is refused `Open` once the wait is over.
#[test]
fn half_open_probes_never_exceed_the_limit() {
    model(2, || {
        let b = breaker(BreakerConfig {
            failure_threshold: Some(1),
            wait_duration_ns: WAIT,
            half_open_max_calls: 2,
            ..BreakerConfig::new()
        });
        trip(&b);
        let held = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (b, held) = (b.clone(), held.clone());
                thread::spawn(move || match b.acquire(WAIT) {
                    Ok(p) => {
                        assert_eq!((p.kind(), p.generation()), (PermitKind::Probe, 2));
                        let now_held = held.fetch_add(1, SeqCst) + 1;
                        assert!(now_held <= 2, "{now_held} probes held");
                        let in_flight = b.metrics(WAIT).half_open_in_flight;
                        assert!((1..=2).contains(&in_flight), "in flight {in_flight}");
                        1
                    }
                    Err(e) => {
                        assert_eq!(e, Rejected::HalfOpenFull);
                        0
                    }
                })
            })
            .collect();
        let permitted: u16 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(permitted, 2, "two slots, three callers");
        let m = b.metrics(WAIT);
        assert_eq!((m.state, m.generation), (State::HalfOpen, 2));
        assert_eq!(m.half_open_in_flight, permitted);
        assert_eq!(m.permitted + m.rejected, 1 + 3);
    });
}

/// Probes that hand their slot back (an ignored outcome) let another probe in, but the held
/// count never exceeds the limit (1 here) and the in-flight count returns to 0.
#[test]
fn half_open_slots_handed_back_stay_bounded() {
    model(3, || {
        let b = breaker(BreakerConfig {
            failure_threshold: Some(1),
            wait_duration_ns: WAIT,
            half_open_max_calls: 1,
            ..BreakerConfig::new()
        });
        // A permit is not Copy: the thread that records it takes it by value.
        let mut first = Some(half_open(&b));
        let held = Arc::new(AtomicUsize::new(1));
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let (b, held) = (b.clone(), held.clone());
                let first = if i == 0 { first.take() } else { None };
                thread::spawn(move || {
                    if let Some(first) = first {
                        // The first probe's holder hands its slot back.
                        held.fetch_sub(1, SeqCst);
                        assert_eq!(b.record(first, Outcome::Ignored, WAIT), None);
                        return 0;
                    }
                    match b.acquire(WAIT) {
                        Ok(p) => {
                            assert_eq!((p.kind(), p.generation()), (PermitKind::Probe, 2));
                            let now_held = held.fetch_add(1, SeqCst) + 1;
                            assert!(now_held <= 1, "{now_held} probes held");
                            assert_eq!(b.metrics(WAIT).half_open_in_flight, 1);
                            held.fetch_sub(1, SeqCst);
                            assert_eq!(b.record(p, Outcome::Ignored, WAIT), None);
                            1
                        }
                        Err(e) => {
                            assert_eq!(e, Rejected::HalfOpenFull);
                            0
                        }
                    }
                })
            })
            .collect();
        let permitted: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let m = b.metrics(WAIT);
        assert_eq!((m.state, m.generation), (State::HalfOpen, 2));
        assert_eq!(m.half_open_in_flight, 0);
        assert_eq!(m.permitted, 2 + permitted);
        assert_eq!(m.rejected, 1 - permitted);
        assert_eq!(m.ignored, 1 + permitted);
    });
}

/// With every slot held by hung probes past the wait, two racing acquires start one new
/// probing period (generation 3): both get a probe of generation 3 (the new period has two
/// slots), the hung probes' outcomes are then stale and free no slot of the new period, and
/// in flight stays bounded.
#[test]
fn hung_probe_rescue_starts_one_generation() {
    model(3, || {
        let b = breaker(BreakerConfig {
            failure_threshold: Some(1),
            wait_duration_ns: WAIT,
            half_open_max_calls: 2,
            ..BreakerConfig::new()
        });
        let hung1 = half_open(&b);
        let hung2 = b.acquire(WAIT).expect("second slot");
        assert_eq!(b.acquire(WAIT), Err(Rejected::HalfOpenFull));
        let late = 3 * WAIT;
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || match b.acquire(late) {
                    Ok(p) => {
                        assert_eq!((p.kind(), p.generation()), (PermitKind::Probe, 3));
                        assert_eq!(p.transition(), None, "HalfOpen -> HalfOpen is no change");
                        assert!(b.metrics(late).half_open_in_flight <= 2);
                        1
                    }
                    Err(e) => {
                        assert_eq!(e, Rejected::HalfOpenFull);
                        0
                    }
                })
            })
            .collect();
        let permitted: u16 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(permitted, 2, "both get a probe of the new period");
        assert_eq!(b.record(hung1, Outcome::Success, late), None);
        assert_eq!(b.record(hung2, Outcome::Ignored, late), None);
        let m = b.metrics(late);
        assert_eq!((m.state, m.generation), (State::HalfOpen, 3));
        assert_eq!(m.half_open_in_flight, permitted);
    });
}

// ---------------------------------------------------------------------------------------
// (b) One trip, one Closed -> Open.
// ---------------------------------------------------------------------------------------

/// Runs `threads` threads that each acquire and record one failure in a closed breaker;
/// exactly one of them reports Closed -> Open and the breaker counts exactly one trip. A
/// thread whose acquire comes after the trip is refused (`Open`) and records nothing.
fn one_trip(config: BreakerConfig, threads: usize) {
    let b = breaker(config);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let b = b.clone();
            thread::spawn(move || match b.acquire(0) {
                Ok(p) => {
                    assert_eq!(p.kind(), PermitKind::Normal);
                    Some(b.record(p, Outcome::Failure, 0))
                }
                Err(e) => {
                    assert!(matches!(e, Rejected::Open { .. }), "{e:?}");
                    None
                }
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let recorded = results.iter().flatten().count() as u64;
    let trips: Vec<_> = results.iter().flatten().filter(|t| t.is_some()).collect();
    assert_eq!(trips.len(), 1, "{results:?}");
    assert!(is_trip(trips[0]), "{results:?}");
    assert_eq!(trips[0].unwrap().generation, 1);
    let m = b.metrics(0);
    assert_eq!((m.state, m.generation, m.trips), (State::Open, 1, 1));
    assert_eq!((m.permitted, m.failed), (recorded, recorded));
    assert_eq!(m.rejected, threads as u64 - recorded);
}

/// Two failures against a consecutive-failure threshold of 2.
#[test]
fn one_trip_two_threads_consecutive_rule() {
    model(3, || {
        one_trip(
            BreakerConfig {
                failure_threshold: Some(2),
                ..BreakerConfig::new()
            },
            2,
        )
    });
}

/// Two failures against a failure-rate rule that both threads may see fire (each may read
/// the window after both failures are in): the state word's CAS still admits one trip.
#[test]
fn one_trip_two_threads_rate_rule() {
    model(3, || {
        one_trip(
            BreakerConfig {
                failure_threshold: None,
                failure_rate_threshold: Some(50),
                minimum_calls: 2,
                window_size: Some(2),
                ..BreakerConfig::new()
            },
            2,
        )
    });
}

/// Three threads against a threshold of 2: two of them may reach the threshold, or the
/// third may come after the trip and be refused.
#[test]
fn one_trip_three_threads() {
    model(2, || {
        one_trip(
            BreakerConfig {
                failure_threshold: Some(2),
                ..BreakerConfig::new()
            },
            3,
        )
    });
}

// ---------------------------------------------------------------------------------------
// (c) Window counts equal window contents once records are done.
// ---------------------------------------------------------------------------------------

/// Checks, through the `Window` trait only, that a count window's failure and slow counts
/// equal the population of its bit rings: `size` slow failures set every bit (each count
/// must then be exactly `size`; a count below the bits would show here), then `size` fast
/// successes clear every bit (each count must then be 0; a count above the bits would show
/// here). The window is left empty of failures.
fn assert_counts_match_bits<const N: usize>(w: &CountWindow<N>) {
    let size = u64::from(w.size());
    for _ in 0..size {
        w.record(true, true, 0);
    }
    assert_eq!(
        w.stats(0),
        WindowStats {
            samples: size,
            failures: size,
            slow: size
        },
        "counts below the bits"
    );
    for _ in 0..size {
        w.record(false, false, 0);
    }
    assert_eq!(
        w.stats(0),
        WindowStats {
            samples: size,
            failures: 0,
            slow: 0
        },
        "counts above the bits"
    );
}

/// Runs one thread per entry of `per_thread`, each recording its (failure, slow) outcomes
/// into `w` in order.
fn record_concurrently<W: Window + Send + Sync + 'static>(
    w: &Arc<W>,
    per_thread: &[&'static [(bool, bool, u64)]],
) {
    let handles: Vec<_> = per_thread
        .iter()
        .map(|&outcomes| {
            let w = w.clone();
            thread::spawn(move || {
                for &(failure, slow, now) in outcomes {
                    w.record(failure, slow, now);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// As many records as slots: no slot is written twice, so the stats are exact.
#[test]
fn count_window_exact_without_overwrites() {
    model(3, || {
        let w = Arc::new(CountWindow::<1>::new(Some(4)).unwrap());
        record_concurrently(
            &w,
            &[
                &[(true, false, 0), (false, true, 0)],
                &[(true, true, 0), (false, false, 0)],
            ],
        );
        assert_eq!(
            w.stats(0),
            WindowStats {
                samples: 4,
                failures: 2,
                slow: 2
            }
        );
        assert_counts_match_bits(&*w);
    });
}

/// Twice as many records as slots: every slot is written twice, possibly by both threads at
/// once. Every record is a failure, so every failure bit is set whatever the interleaving;
/// slow bits depend on which write landed last. The counts must match the bits.
#[test]
fn count_window_counts_match_bits_with_overwrites() {
    model(3, || {
        let w = Arc::new(CountWindow::<1>::new(Some(2)).unwrap());
        record_concurrently(
            &w,
            &[
                &[(true, false, 0), (true, false, 0)],
                &[(true, true, 0), (true, true, 0)],
            ],
        );
        let s = w.stats(0);
        assert_eq!((s.samples, s.failures), (2, 2), "{s:?}");
        assert!(s.slow <= 2, "{s:?}");
        assert_counts_match_bits(&*w);
    });
}

/// A full window of fast successes skips further fast successes without writing; a
/// concurrent failure must still land and be counted.
#[test]
fn count_window_fast_path_races_a_failure() {
    model(3, || {
        let w = Arc::new(CountWindow::<1>::new(Some(2)).unwrap());
        w.record(false, false, 0);
        w.record(false, false, 0);
        record_concurrently(&w, &[&[(false, false, 0)], &[(true, false, 0)]]);
        let s = w.stats(0);
        assert_eq!((s.samples, s.slow), (2, 0), "{s:?}");
        assert_eq!(s.failures, 1, "the failure is among the last 2 outcomes");
        assert_counts_match_bits(&*w);
    });
}

/// A clear racing a record (what a breaker's trip does to an outcome still in progress)
/// leaves the failure and slow counts equal to the bits.
///
/// `samples` and `head` are reset by plain stores. Loom orders a plain store racing a
/// read-modify-write more loosely than the C++/Rust memory model does (it lets the final
/// value be the RMW's although the store came last; cf. tokio-rs/loom#282), so `samples` is
/// not asserted here: loom reports `samples: 2`, which no real execution can produce. The
/// bit rings and their counts change only by read-modify-writes, which loom models exactly.
#[test]
fn count_window_clear_races_a_record() {
    model(3, || {
        let w = Arc::new(CountWindow::<1>::new(Some(2)).unwrap());
        w.record(true, false, 0);
        let clearer = {
            let w = w.clone();
            thread::spawn(move || w.clear())
        };
        w.record(true, true, 0);
        clearer.join().unwrap();
        let s = w.stats(0);
        assert!(s.failures <= 1 && s.slow <= 1, "{s:?}");
        assert_counts_match_bits(&*w);
    });
}

/// Time window, bucket 10 ns, 2 buckets. Records in epochs 1 and 2 from both threads,
/// including one whose clock read is a bucket behind the other's: all four count at epoch 2,
/// and only epoch 2's two at epoch 3.
#[test]
fn time_window_exact_across_buckets() {
    model(3, || {
        let w = Arc::new(TimeWindow::<2>::new(10, Some(2)).unwrap());
        record_concurrently(
            &w,
            &[
                &[(true, false, 10), (false, false, 20)],
                &[(true, true, 20), (false, true, 15)],
            ],
        );
        assert_eq!(
            w.stats(20),
            WindowStats {
                samples: 4,
                failures: 2,
                slow: 2
            }
        );
        assert_eq!(
            w.stats(30),
            WindowStats {
                samples: 2,
                failures: 1,
                slow: 1
            }
        );
    });
}

/// Two threads record into a bucket that still holds a previous lap's counts (epoch 0,
/// reused by epoch 2): the lazy reset happens once and both new outcomes count.
#[test]
fn time_window_lazy_reset_races() {
    model(3, || {
        let w = Arc::new(TimeWindow::<2>::new(10, Some(2)).unwrap());
        w.record(true, true, 0);
        w.record(true, false, 5);
        record_concurrently(&w, &[&[(true, false, 20)], &[(false, true, 25)]]);
        assert_eq!(
            w.stats(20),
            WindowStats {
                samples: 2,
                failures: 1,
                slow: 1
            }
        );
    });
}

/// A record whose clock read is a whole window late (epoch 0) races a current one (epoch 2)
/// for the same bucket. The late one may reset the bucket and drop the current total, but
/// the stats stay one of the two consistent answers and never count a failure without its
/// sample.
#[test]
fn time_window_late_record_races_a_new_lap() {
    model(3, || {
        let w = Arc::new(TimeWindow::<2>::new(10, Some(2)).unwrap());
        record_concurrently(&w, &[&[(true, false, 20)], &[(false, false, 0)]]);
        let s = w.stats(20);
        let counted = WindowStats {
            samples: 1,
            failures: 1,
            slow: 0,
        };
        assert!(s == counted || s == WindowStats::default(), "{s:?}");
    });
}

// ---------------------------------------------------------------------------------------
// (d) Stale-generation outcomes do not move the state.
// ---------------------------------------------------------------------------------------

/// A closed-state failure that would trip the breaker (threshold 1) races a reset. Either
/// the failure comes first (it trips: generation 1, then the reset: generation 2) or it is
/// stale (only the reset: generation 1). The breaker ends Closed either way.
#[test]
fn stale_failure_vs_reset() {
    model(3, || {
        let b = breaker(BreakerConfig {
            failure_threshold: Some(1),
            wait_duration_ns: WAIT,
            ..BreakerConfig::new()
        });
        let p = b.acquire(0).unwrap();
        let recorder = {
            let b = b.clone();
            thread::spawn(move || b.record(p, Outcome::Failure, 0))
        };
        let reset = b.reset(0);
        let tripped = recorder.join().unwrap();
        let m = b.metrics(0);
        assert_eq!(m.state, State::Closed);
        match tripped {
            Some(t) => {
                assert!(is_trip(&tripped) && t.generation == 1, "{t:?}");
                let r = reset.expect("Open -> Closed");
                assert_eq!(
                    (r.from, r.to, r.generation),
                    (State::Open, State::Closed, 2)
                );
                assert_eq!((m.generation, m.trips), (2, 1));
            }
            None => {
                assert_eq!(reset, None, "Closed -> Closed is no change");
                assert_eq!((m.generation, m.trips), (1, 0));
            }
        }
        assert_eq!(m.failed, 1);
    });
}

/// A probe's success (which would close the breaker) races a force-open: the breaker ends
/// ForcedOpen, and the generation moved once more only if the probe closed it first.
#[test]
fn stale_probe_success_vs_force_open() {
    model(3, || {
        let b = breaker(BreakerConfig {
            failure_threshold: Some(1),
            wait_duration_ns: WAIT,
            ..BreakerConfig::new()
        });
        let p = half_open(&b);
        let recorder = {
            let b = b.clone();
            thread::spawn(move || b.record(p, Outcome::Success, WAIT))
        };
        let forced = b.force_open(WAIT).expect("a change to ForcedOpen");
        let closed = recorder.join().unwrap();
        let m = b.metrics(WAIT);
        assert_eq!(m.state, State::ForcedOpen);
        assert_eq!(m.generation, forced.generation);
        match closed {
            Some(t) => {
                assert_eq!(
                    (t.from, t.to, t.generation),
                    (State::HalfOpen, State::Closed, 3)
                );
                assert_eq!((forced.from, forced.generation), (State::Closed, 4));
            }
            None => assert_eq!((forced.from, forced.generation), (State::HalfOpen, 3)),
        }
        assert_eq!(m.trips, 1, "only the setup's trip");
        assert_eq!(m.half_open_in_flight, 0);
    });
}

/// A probe's failure (which would reopen the breaker) races a reset: the breaker ends
/// Closed, and counts a second trip only if the probe reopened it first.
#[test]
fn stale_probe_failure_vs_reset() {
    model(3, || {
        let b = breaker(BreakerConfig {
            failure_threshold: Some(1),
            wait_duration_ns: WAIT,
            ..BreakerConfig::new()
        });
        let p = half_open(&b);
        let recorder = {
            let b = b.clone();
            thread::spawn(move || b.record(p, Outcome::Failure, WAIT))
        };
        let reset = b.reset(WAIT).expect("a change to Closed");
        let reopened = recorder.join().unwrap();
        let m = b.metrics(WAIT);
        assert_eq!(m.state, State::Closed);
        assert_eq!(m.generation, reset.generation);
        match reopened {
            Some(t) => {
                assert_eq!(
                    (t.from, t.to, t.generation),
                    (State::HalfOpen, State::Open, 3)
                );
                assert_eq!((reset.from, reset.generation, m.trips), (State::Open, 4, 2));
            }
            None => assert_eq!(
                (reset.from, reset.generation, m.trips),
                (State::HalfOpen, 3, 1)
            ),
        }
    });
}

/// Stronger than "stale outcomes do not move the state word": a failure whose permit
/// predates a reset must not count toward the next closed period either (the reset
/// promises an empty window). After the reset one fresh failure is recorded against a
/// threshold of 2: it must not trip, and the closed period must hold exactly that failure.
#[test]
fn stale_failure_does_not_count_after_reset() {
    model(3, || {
        let b = breaker(BreakerConfig {
            failure_threshold: Some(2),
            wait_duration_ns: WAIT,
            ..BreakerConfig::new()
        });
        let p = b.acquire(0).unwrap();
        let recorder = {
            let b = b.clone();
            thread::spawn(move || b.record(p, Outcome::Failure, 0))
        };
        assert_eq!(b.reset(0), None);
        let q = b.acquire(0).unwrap();
        assert_eq!(q.generation(), 1);
        let fresh = b.record(q, Outcome::Failure, 0);
        let stale = recorder.join().unwrap();
        assert_eq!(
            (stale, fresh),
            (None, None),
            "one failure since the reset tripped"
        );
        let m = b.metrics(0);
        assert_eq!((m.state, m.generation, m.trips), (State::Closed, 1, 0));
        assert_eq!(m.consecutive_failures, 1);
        // The window may hold the stale failure too (the known limitation of
        // `late_trip_follow_up_does_not_wipe_a_later_period`): at most one more.
        assert!((1..=2).contains(&m.window.failures), "{m:?}");
    });
}

/// A trip's follow-up (clearing the window and the consecutive counter) must not wipe the
/// outcomes of a later closed period. A probe failure reopens the breaker while another
/// thread resets it and records one fresh failure (threshold 2): whatever the order, the
/// final closed period holds exactly that failure.
#[test]
#[ignore = "known limitation: the window is not generation-tagged; a clear or outcome straddling a state change can touch the next period (README)"]
fn late_trip_follow_up_does_not_wipe_a_later_period() {
    model(3, || {
        let b = breaker(BreakerConfig {
            failure_threshold: Some(2),
            wait_duration_ns: WAIT,
            ..BreakerConfig::new()
        });
        // failure_threshold 2: trip by hand with two failures.
        for _ in 0..2 {
            let p = b.acquire(0).unwrap();
            let _ = b.record(p, Outcome::Failure, 0);
        }
        let probe = b.acquire(WAIT).expect("the wait is over");
        assert_eq!((probe.kind(), probe.generation()), (PermitKind::Probe, 2));
        let recorder = {
            let b = b.clone();
            thread::spawn(move || b.record(probe, Outcome::Failure, WAIT))
        };
        b.reset(WAIT).expect("a change to Closed");
        let q = b.acquire(WAIT).unwrap();
        assert_eq!(b.record(q, Outcome::Failure, WAIT), None);
        recorder.join().unwrap();
        let m = b.metrics(WAIT);
        assert_eq!(m.state, State::Closed);
        // The window's failure count: a late trip's clear can wipe the later period's
        // failure (the window is not generation-tagged). The consecutive counter is tagged
        // with its generation and changes by CAS only, so it is not at stake here.
        assert_eq!(m.window.failures, 1, "{m:?}");
    });
}

/// Two acquires race as the wait ends, with two probe slots: both must get a probe. One may
/// load the word while it is still Open, then find the time word already tagged with the
/// new half-open generation, take the state as just begun, and refuse `Open` with a full
/// `retry_after` although the breaker is half-open with a free slot.
#[test]
fn racing_the_half_open_change_is_not_refused() {
    model(3, || {
        let b = breaker(BreakerConfig {
            failure_threshold: Some(1),
            wait_duration_ns: WAIT,
            half_open_max_calls: 2,
            ..BreakerConfig::new()
        });
        trip(&b);
        let other = {
            let b = b.clone();
            thread::spawn(move || b.acquire(WAIT))
        };
        let mine = b.acquire(WAIT);
        let other = other.join().unwrap();
        assert!(mine.is_ok() && other.is_ok(), "{mine:?} {other:?}");
    });
}

/// The same race during a hung-probe rescue: both acquires must get a probe of the new
/// period (it has two slots).
#[test]
fn racing_a_rescue_is_not_refused() {
    model(3, || {
        let b = breaker(BreakerConfig {
            failure_threshold: Some(1),
            wait_duration_ns: WAIT,
            half_open_max_calls: 2,
            ..BreakerConfig::new()
        });
        let _hung1 = half_open(&b);
        let _hung2 = b.acquire(WAIT).expect("second slot");
        let late = 3 * WAIT;
        let other = {
            let b = b.clone();
            thread::spawn(move || b.acquire(late))
        };
        let mine = b.acquire(late);
        let other = other.join().unwrap();
        assert!(mine.is_ok() && other.is_ok(), "{mine:?} {other:?}");
    });
}

/// Probes are timed from their own admission. One probe slot: probe A (admitted at `WAIT`)
/// hands its slot back at 150 and its holder takes a new probe B at once; a third caller
/// asks at 220. B has then been out 70 ns, less than the wait: the caller may take B's slot
/// only if it came before B, or start a new probing period only if it decided before B was
/// admitted (A was out 120 ns) — never a new period that makes B stale while B is young.
///
/// Once failed here (within bound 2): the late caller loaded the full word (generation 2, one
/// probe in flight: A) and the probe time (100), A handed its slot back and B took it (the
/// word was again generation 2 with one probe in flight, the time 150), and the late
/// caller's compare-and-swap from its stale but identical word succeeded: an ABA on the
/// state word. (The relaxed slot CAS also let a caller see B's slot without B's time.)
/// Fixed in the core: a probe-admission sequence in the word, and Release/Acquire between
/// taking a slot and finding the slots full.
#[test]
fn a_young_probe_is_not_presumed_hung() {
    model(3, || {
        let b = breaker(BreakerConfig {
            failure_threshold: Some(1),
            wait_duration_ns: WAIT,
            half_open_max_calls: 1,
            ..BreakerConfig::new()
        });
        let a = half_open(&b);
        let holder = {
            let b = b.clone();
            thread::spawn(move || {
                let _ = b.record(a, Outcome::Ignored, 150);
                b.acquire(150).map(|p| p.generation())
            })
        };
        let late = b.acquire(220).map(|p| p.generation());
        let probe_b = holder.join().unwrap();
        match (probe_b, late) {
            // B admitted in A's period, then a new period: B was presumed hung at 70 ns.
            (Ok(2), Ok(3)) => panic!("probe B (admitted at 150) presumed hung at 220"),
            (Ok(gb), Ok(gl)) => panic!("both admitted with one slot: {gb} {gl}"),
            (Ok(2), Err(e)) => assert_eq!(e, Rejected::HalfOpenFull),
            // The late caller rescued the period while A was out (120 ns), or took the slot
            // A handed back: B is refused.
            (Err(e), Ok(g)) => {
                assert_eq!(e, Rejected::HalfOpenFull);
                assert!(g == 2 || g == 3, "{g}");
            }
            other => panic!("{other:?}"),
        }
        let m = b.metrics(220);
        assert_eq!(m.state, State::HalfOpen);
        assert_eq!(m.half_open_in_flight, 1);
    });
}

// ---------------------------------------------------------------------------------------
// (e) Half-open probes that finish at once leave a legal state.
// ---------------------------------------------------------------------------------------

/// Trips a breaker with two probe slots and admits two probes at `WAIT` (generation 2),
/// then records `outcomes[i]` for probe i on two threads at once. Returns the transitions
/// the two records reported.
fn two_probes_finish_at_once(
    success_threshold: u16,
    outcomes: [Outcome; 2],
) -> (Arc<Breaker>, [Option<Transition>; 2]) {
    let b = breaker(BreakerConfig {
        failure_threshold: Some(1),
        wait_duration_ns: WAIT,
        half_open_max_calls: 2,
        success_threshold,
        ..BreakerConfig::new()
    });
    let first = half_open(&b);
    let second = b.acquire(WAIT).expect("the second slot");
    assert_eq!(second.generation(), 2);
    let other = {
        let b = b.clone();
        let outcome = outcomes[1];
        thread::spawn(move || b.record(second, outcome, WAIT))
    };
    let mine = b.record(first, outcomes[0], WAIT);
    let theirs = other.join().unwrap();
    (b, [mine, theirs])
}

/// The counters every end state must agree with: the setup's failure and both probes are
/// recorded, nothing is in flight, and `permitted` counts the three calls.
fn assert_counters_consistent(b: &Breaker, succeeded: u64, failed: u64) {
    let m = b.metrics(WAIT);
    assert_eq!(
        (m.succeeded, m.failed, m.ignored),
        (succeeded, failed, 0),
        "{m:?}"
    );
    assert_eq!(m.permitted, 3, "{m:?}");
    assert_eq!(m.rejected, 0, "{m:?}");
    assert_eq!(m.half_open_in_flight, 0, "{m:?}");
    assert_eq!(m.consecutive_failures, 0, "{m:?}");
}

/// One success and one failure, success threshold 2: whatever the order, the failure
/// reopens the breaker (generation 3, a second trip, the wait of backoff step 1), exactly
/// one record reports HalfOpen -> Open, and a success alone never closes it.
#[test]
fn probes_success_and_failure_at_once_reopen() {
    model(3, || {
        let (b, ts) = two_probes_finish_at_once(2, [Outcome::Success, Outcome::Failure]);
        assert_eq!(
            ts[0], None,
            "a lone success with threshold 2 closes nothing"
        );
        let t = ts[1].expect("the failure reopens");
        assert_eq!(
            (t.from, t.to, t.generation),
            (State::HalfOpen, State::Open, 3)
        );
        let m = b.metrics(WAIT);
        assert_eq!((m.state, m.generation, m.trips), (State::Open, 3, 2));
        assert_eq!(
            m.window,
            WindowStats::default(),
            "a trip empties the window"
        );
        assert_eq!(b.retry_after(WAIT), WAIT);
        assert_counters_consistent(&b, 1, 2);
    });
}

/// One success and one failure, success threshold 1: whichever record commits first wins
/// (the success closes, or the failure reopens), the other is stale, and the end state is
/// the winner's.
#[test]
fn probes_success_and_failure_at_once_one_wins() {
    model(3, || {
        let (b, ts) = two_probes_finish_at_once(1, [Outcome::Success, Outcome::Failure]);
        let m = b.metrics(WAIT);
        assert_eq!(m.generation, 3, "{ts:?}");
        match ts {
            [Some(t), None] => {
                assert_eq!(
                    (t.from, t.to, t.generation),
                    (State::HalfOpen, State::Closed, 3)
                );
                assert_eq!((m.state, m.trips), (State::Closed, 1));
            }
            [None, Some(t)] => {
                assert_eq!(
                    (t.from, t.to, t.generation),
                    (State::HalfOpen, State::Open, 3)
                );
                assert_eq!((m.state, m.trips), (State::Open, 2));
            }
            _ => panic!("exactly one record moves the state: {ts:?}"),
        }
        assert_eq!(m.window, WindowStats::default());
        assert_counters_consistent(&b, 1, 2);
    });
}

/// Two successes, success threshold 2: the breaker closes exactly once (generation 3), with
/// an empty window and a full recovery (the next trip waits the base wait).
#[test]
fn probes_two_successes_at_once_close_once() {
    model(3, || {
        let (b, ts) = two_probes_finish_at_once(2, [Outcome::Success, Outcome::Success]);
        let closes: Vec<_> = ts.iter().flatten().collect();
        assert_eq!(closes.len(), 1, "{ts:?}");
        let t = closes[0];
        assert_eq!(
            (t.from, t.to, t.generation),
            (State::HalfOpen, State::Closed, 3)
        );
        let m = b.metrics(WAIT);
        assert_eq!((m.state, m.generation, m.trips), (State::Closed, 3, 1));
        assert_eq!(m.window, WindowStats::default());
        assert_counters_consistent(&b, 2, 1);
    });
}
