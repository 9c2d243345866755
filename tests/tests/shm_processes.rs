//! Shared-memory regions across real processes.
//!
//! Each test re-executes this test binary with `FB_SHM_ROLE` set, running only itself
//! (`--exact`): the child part of the test does its role, prints `RESULT key=value ...`
//! lines and exits. Children that must start together print `READY` and block reading
//! their stdin; once every child is ready, the parent closes all their stdins at once. No
//! sleep decides anything; every loop is bounded in count.
//!
//! * A breaker tripped in one process is open in another, and the other way round.
//! * Creation race: 8 processes open the same new region and slots at once, 20 rounds:
//!   exactly one creates the region, every slot is initialised once and all of them use
//!   the same primitives (their outcomes, tokens and permits add up in one place).
//! * A process killed with SIGKILL while it holds owned bulkhead permits: they come back
//!   (the next rejection reaps them), while a live holder's stay counted.
//! * A child made by a real `fork` (no exec: it inherits the parent's cached owner id and
//!   entry hints) counts its permits in an entry of its own; after SIGKILL they are reaped,
//!   while its parent's stay.
//! * A process SIGKILLed while it holds a shared breaker's only half-open probe does not
//!   wedge it: once the open wait has passed, the probe is presumed hung and a new one is
//!   admitted, whose success closes the breaker.
//! * Stress: 4 processes hammer one bucket, one bulkhead and one breaker: the bucket never
//!   grants more than `burst + floor((t_max - t_min) / T)` over the monotonic times of its
//!   grants; a shared count of bulkhead holders never exceeds the limit; the breaker's
//!   shared counters equal the sums of what each process did.

#![cfg(not(loom))]

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Command;

use fastbreaker::shm::{Region, SlotEntry};
use fastbreaker::{
    BreakerConfig, BucketConfig, Clock, MonotonicClock, Outcome, PermitKind, Rejected, State,
    MILLISECOND, SECOND,
};

mod procs;

use procs::*;

fn trip_config() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: Some(3),
        wait_duration_ns: 600 * SECOND,
        ..BreakerConfig::new()
    }
}

#[test]
fn a_breaker_tripped_in_one_process_is_open_in_another() {
    const TEST: &str = "a_breaker_tripped_in_one_process_is_open_in_another";
    let clock = MonotonicClock;
    if let Some((role, options, name)) = child_env() {
        let region = Region::open(&name, &options).unwrap();
        let breaker = region.breaker_count("payments", &trip_config()).unwrap();
        match role.as_str() {
            "trip" => {
                for _ in 0..3 {
                    let p = breaker.acquire_with(&clock).unwrap();
                    breaker.record_with(&clock, p, Outcome::Failure);
                }
            }
            "observe" => {}
            other => panic!("unknown role {other}"),
        }
        let open = matches!(breaker.acquire_with(&clock), Err(Rejected::Open { .. }));
        println!(
            "RESULT open={} generation={}",
            open as u64,
            breaker.generation()
        );
        return;
    }
    let dir = TempDir::new("trip");
    let region = Region::open("trip", &options(&dir.0)).unwrap();
    let breaker = region.breaker_count("payments", &trip_config()).unwrap();

    let r = results(spawn(TEST, "trip", &dir.0, "trip"), None);
    assert_eq!(r["open"], 1);
    assert_eq!(breaker.state(), State::Open, "tripped by the child");
    assert_eq!(breaker.generation(), r["generation"]);
    assert!(matches!(
        breaker.acquire_with(&clock),
        Err(Rejected::Open { .. })
    ));
    assert_eq!(breaker.metrics_with(&clock).failed, 3);

    breaker.reset(clock.now_ns());
    let r = results(spawn(TEST, "observe", &dir.0, "trip"), None);
    assert_eq!(r["open"], 0, "the reset is seen by a new process");
    for _ in 0..3 {
        let p = breaker.acquire_with(&clock).unwrap();
        breaker.record_with(&clock, p, Outcome::Failure);
    }
    let r = results(spawn(TEST, "observe", &dir.0, "trip"), None);
    assert_eq!(r["open"], 1, "tripped by the parent, open in the child");
    assert_eq!(r["generation"], breaker.generation());
}

#[test]
fn permits_of_a_killed_process_come_back() {
    const TEST: &str = "permits_of_a_killed_process_come_back";
    if let Some((_, options, name)) = child_env() {
        let region = Region::open(&name, &options).unwrap();
        let owned = region.owned_bulkhead("db", 3).unwrap();
        std::mem::forget(owned.try_acquire().unwrap());
        let _held = owned.try_acquire().unwrap();
        wait_for_start(); // holds its permits until killed
        return;
    }
    let dir = TempDir::new("kill");
    let region = Region::open("kill", &options(&dir.0)).unwrap();
    let owned = region.owned_bulkhead("db", 3).unwrap();
    let mine = owned.try_acquire().unwrap();

    let mut child = spawn(TEST, "hold", &dir.0, "kill");
    let _out = await_ready(&mut child);
    let pid = child.id();
    let mut held: Vec<_> = owned.held_by_owners().collect();
    held.sort();
    let mut expected = vec![(pid, 2), (std::process::id(), 1)];
    expected.sort();
    assert_eq!(held, expected);
    assert_eq!(
        owned.bulkhead().in_flight(),
        3,
        "full: 2 held by a live child"
    );

    child.kill().unwrap(); // SIGKILL, while it holds them
    child.wait().unwrap();
    // The first rejection reaps the dead child's permits (no reap has run yet, so one is
    // due), then admits.
    let a = owned.try_acquire().unwrap();
    assert_eq!(owned.bulkhead().in_flight(), 2);
    let b = owned.try_acquire().unwrap();
    assert!(owned.try_acquire().is_err());
    assert_eq!(owned.reap(), 0, "nothing dead is left");
    assert_eq!(
        owned.held_by_owners().collect::<Vec<_>>(),
        [(std::process::id(), 3)]
    );
    drop((mine, a, b));
    assert_eq!(owned.bulkhead().in_flight(), 0);
}

extern "C" {
    /// POSIX `<unistd.h>`: the real thing (no exec), so that the child inherits this
    /// process's memory, caches included. No crate of the workspace wraps it.
    fn fork() -> i32;
}

/// Sends SIGKILL to `pid` (with kill(1): no process handle of ours).
fn sigkill(pid: u32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -9 {pid}: {status}");
}

#[test]
fn a_forked_child_is_its_own_owner_and_is_reaped_alone() {
    const TEST: &str = "a_forked_child_is_its_own_owner_and_is_reaped_alone";
    if let Some((_, options, name)) = child_env() {
        // The forker: a permit first, so that its owner id and entry hint are cached.
        let region = Region::open(&name, &options).unwrap();
        let owned = region.owned_bulkhead("db", 8).unwrap();
        std::mem::forget(owned.try_acquire().unwrap());
        // SAFETY: fork(2) has no preconditions. This process (the test harness run with
        // --test-threads=1) has one other thread, libtest's main thread, blocked waiting
        // for this test; the child runs only this thread: it takes permits in the region it
        // inherited mapped (reading /proc, allocating: glibc's malloc is fork-safe), blocks
        // on stdin and exits, never returning into the harness.
        let pid = unsafe { fork() };
        if pid == 0 {
            let took = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                std::mem::forget(owned.try_acquire().unwrap());
                std::mem::forget(owned.try_acquire().unwrap());
            }));
            // Held until killed (or, should the test fail first, until stdin closes).
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            std::process::exit(took.is_ok() as i32 ^ 1);
        }
        assert!(pid > 0, "fork failed");
        // Bounded: wait until the child's permits are counted under its own pid.
        for _ in 0..1000 {
            if owned
                .held_by_owners()
                .any(|(p, n)| p == pid as u32 && n == 2)
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // The forker's own entry still serves it after the fork.
        std::mem::forget(owned.try_acquire().unwrap());
        wait_for_start();
        return;
    }
    let dir = TempDir::new("fork");
    let region = Region::open("fork", &options(&dir.0)).unwrap();
    let owned = region.owned_bulkhead("db", 8).unwrap();
    let mine = owned.try_acquire().unwrap();

    let mut child = spawn(TEST, "fork", &dir.0, "fork");
    let out = await_ready(&mut child);
    let (me, forker) = (std::process::id(), child.id());
    let held: BTreeMap<u32, u64> = owned.held_by_owners().collect();
    assert_eq!(
        held.len(),
        3,
        "one entry each: {held:?} (me {me}, forker {forker})"
    );
    assert_eq!((held[&me], held[&forker]), (1, 2), "{held:?}");
    let (&grandchild, &n) = held.iter().find(|(&p, _)| p != me && p != forker).unwrap();
    assert_eq!(n, 2, "the forked child's permits, in its own entry");
    assert_eq!(owned.bulkhead().in_flight(), 5);

    sigkill(grandchild);
    // Bounded: the kill lands a moment later (the child then stays a zombie of the
    // forker's, which counts as dead).
    let mut reaped = 0;
    for _ in 0..1000 {
        reaped += owned.reap();
        if reaped >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(reaped, 2, "the killed child's permits come back");
    let held: BTreeMap<u32, u64> = owned.held_by_owners().collect();
    assert_eq!(
        held,
        BTreeMap::from([(me, 1), (forker, 2)]),
        "the rest stay"
    );
    assert_eq!(owned.bulkhead().in_flight(), 3);
    drop(mine);
    results(child, Some(out));
}

/// The open wait of [`probe_config`].
const PROBE_WAIT: u64 = 50 * MILLISECOND;

fn probe_config() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: Some(1),
        wait_duration_ns: PROBE_WAIT,
        jitter_permille: 0,
        half_open_max_calls: 1,
        success_threshold: 1,
        ..BreakerConfig::new()
    }
}

#[test]
fn a_half_open_probe_of_a_killed_process_does_not_wedge_the_breaker() {
    const TEST: &str = "a_half_open_probe_of_a_killed_process_does_not_wedge_the_breaker";
    let clock = MonotonicClock;
    let pause = std::time::Duration::from_millis(2);
    if let Some((_, options, name)) = child_env() {
        let region = Region::open(&name, &options).unwrap();
        let breaker = region.breaker_count("flaky", &probe_config()).unwrap();
        let p = breaker.acquire_with(&clock).unwrap();
        breaker.record_with(&clock, p, Outcome::Failure);
        assert_eq!(breaker.state(), State::Open);
        // Bounded: wait out the open wait, then take the only probe.
        for _ in 0..2500 {
            let before = clock.now_ns();
            if let Ok(probe) = breaker.acquire_with(&clock) {
                assert_eq!(probe.kind(), PermitKind::Probe);
                println!("RESULT probe_at={before}");
                wait_for_start(); // holds the probe until killed
                return;
            }
            std::thread::sleep(pause);
        }
        panic!("no probe admitted");
    }
    let dir = TempDir::new("probe");
    let region = Region::open("probe", &options(&dir.0)).unwrap();
    let breaker = region.breaker_count("flaky", &probe_config()).unwrap();

    let mut child = spawn(TEST, "probe", &dir.0, "probe");
    let (_out, r) = await_ready_results(&mut child);
    assert_eq!(
        breaker.state(),
        State::HalfOpen,
        "the child holds the probe"
    );
    child.kill().unwrap(); // SIGKILL, while it holds the probe
    child.wait().unwrap();

    // Bounded (5 s): the dead child's probe is presumed hung once the open wait has passed
    // since it was admitted; then a new probe is admitted.
    let mut probe = None;
    for _ in 0..2500 {
        if let Ok(p) = breaker.acquire_with(&clock) {
            probe = Some((p, clock.now_ns()));
            break;
        }
        std::thread::sleep(pause);
    }
    let (probe, admitted) = probe.expect("the breaker stayed wedged by a dead probe");
    assert_eq!(probe.kind(), PermitKind::Probe);
    assert!(
        admitted - r["probe_at"] >= PROBE_WAIT,
        "a new probe only once the wait has passed: {} ns after the first",
        admitted - r["probe_at"]
    );
    breaker.record_with(&clock, probe, Outcome::Success);
    assert_eq!(breaker.state(), State::Closed);
    assert!(breaker.acquire_with(&clock).is_ok());
}

const RACERS: usize = 8;
const ROUNDS: usize = 20;
/// Further breakers every racer asks for, in the same order: more claims to race on.
const MORE: usize = 40;

fn race_config() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: Some(1000),
        ..BreakerConfig::new()
    }
}

#[test]
fn creation_race_ends_with_one_region_and_one_initialised_slot_each() {
    const TEST: &str = "creation_race_ends_with_one_region_and_one_initialised_slot_each";
    let clock = MonotonicClock;
    if let Some((_, options, name)) = child_env() {
        wait_for_start();
        let region = Region::open(&name, &options).unwrap();
        let breaker = region.breaker_count("shared", &race_config()).unwrap();
        let p = breaker.acquire_with(&clock).unwrap();
        breaker.record_with(&clock, p, Outcome::Failure);
        let bucket = region
            .bucket("tokens", BucketConfig::per_second(1, 1_000))
            .unwrap();
        bucket.try_acquire_with(1, &clock).unwrap();
        let bulkhead = region.bulkhead("slots", RACERS as u32).unwrap();
        std::mem::forget(bulkhead.try_acquire().unwrap());
        for i in 0..MORE {
            let b = region
                .breaker_count(&format!("b{i}"), &race_config())
                .unwrap();
            let p = b.acquire_with(&clock).unwrap();
            b.record_with(&clock, p, Outcome::Failure);
        }
        let index = |n: &str| {
            region
                .list()
                .into_iter()
                .find_map(|e| match e {
                    SlotEntry::Ready(i) if i.name == n => Some(i.index as u64),
                    _ => None,
                })
                .unwrap()
        };
        println!(
            "RESULT created={} shared={} tokens={} slots={}",
            region.created() as u64,
            index("shared"),
            index("tokens"),
            index("slots")
        );
        return;
    }
    let dir = TempDir::new("race");
    for round in 0..ROUNDS {
        let name = format!("race-{round}");
        let all = run_together(TEST, "race", RACERS, &dir.0, &name);
        assert_eq!(
            all.iter().map(|r| r["created"]).sum::<u64>(),
            1,
            "round {round}: exactly one creator"
        );
        for key in ["shared", "tokens", "slots"] {
            assert!(
                all.iter().all(|r| r[key] == all[0][key]),
                "round {round}: every process found {key} in the same slot: {all:?}"
            );
        }
        let region = Region::open(&name, &options(&dir.0).create(false)).unwrap();
        let entries = region.list();
        assert_eq!(entries.len(), 3 + MORE, "round {round}: {entries:?}");
        for i in 0..MORE {
            let b = region
                .breaker_count(&format!("b{i}"), &race_config())
                .unwrap();
            assert_eq!(
                b.metrics_with(&clock).failed,
                RACERS as u64,
                "round {round}: b{i}"
            );
        }
        assert!(entries.iter().all(|e| matches!(e, SlotEntry::Ready(_))));
        let breaker = region.breaker_count("shared", &race_config()).unwrap();
        assert_eq!(breaker.metrics_with(&clock).failed, RACERS as u64);
        let bucket = region
            .bucket("tokens", BucketConfig::per_second(1, 1_000))
            .unwrap();
        // 1000 tokens less the 8 taken, plus at most what refilled meanwhile.
        assert!(bucket.available(clock.now_ns()) < 1_000);
        let bulkhead = region.bulkhead("slots", RACERS as u32).unwrap();
        let m = bulkhead.metrics();
        assert_eq!((m.acquired, m.in_flight, m.rejected), (8, 8, 0));
        // No temporary file is left behind by the losers.
        let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

const WORKERS: usize = 4;
const RATE: u64 = 2_000;
const BURST: u64 = 20;
const LIMIT: u32 = 3;
/// Per worker: at most this many rounds, and at most this long.
const MAX_OPS: u64 = 400_000;
const MAX_NANOS: u64 = 300_000_000;

fn stress_breaker() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: None,
        failure_rate_threshold: Some(50),
        minimum_calls: 20,
        wait_duration_ns: 1_000_000,
        half_open_max_calls: 2,
        ..BreakerConfig::new()
    }
}

#[test]
fn processes_hammering_one_bucket_bulkhead_and_breaker_keep_the_invariants() {
    const TEST: &str = "processes_hammering_one_bucket_bulkhead_and_breaker_keep_the_invariants";
    let clock = MonotonicClock;
    if let Some((_, options, name)) = child_env() {
        let region = Region::open(&name, &options).unwrap();
        let bucket = region
            .bucket("bucket", BucketConfig::per_second(RATE, BURST))
            .unwrap();
        let bulkhead = region.bulkhead("bulkhead", LIMIT).unwrap();
        let holders = region.bulkhead("holders", 1_000_000).unwrap();
        let breaker = region.breaker_count("breaker", &stress_breaker()).unwrap();
        wait_for_start();
        let (mut grants, mut t_min, mut t_max) = (0u64, u64::MAX, 0u64);
        let (mut attempts, mut max_holders) = (0u64, 0u32);
        let mut outcomes = [0u64; 3];
        let mut rejected = 0u64;
        let mut x = std::process::id() as u64 | 1;
        let start = clock.now_ns();
        for _ in 0..MAX_OPS {
            let now = clock.now_ns();
            if now - start > MAX_NANOS {
                break;
            }
            if bucket.try_acquire(1, now).is_ok() {
                grants += 1;
                t_min = t_min.min(now);
                t_max = t_max.max(now);
            }
            attempts += 1;
            if let Ok(permit) = bulkhead.try_acquire() {
                let counted = holders.try_acquire().unwrap();
                max_holders = max_holders.max(holders.in_flight());
                drop(counted);
                drop(permit);
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match breaker.acquire(now) {
                Ok(p) => {
                    let i = (x % 3) as usize;
                    let outcome = [Outcome::Success, Outcome::Failure, Outcome::Ignored][i];
                    outcomes[i] += 1;
                    breaker.record(p, outcome, clock.now_ns());
                }
                Err(_) => rejected += 1,
            }
        }
        println!(
            "RESULT grants={grants} t_min={t_min} t_max={t_max} attempts={attempts} \
             max_holders={max_holders} succeeded={} failed={} ignored={} rejected={rejected}",
            outcomes[0], outcomes[1], outcomes[2]
        );
        return;
    }
    let dir = TempDir::new("stress");
    let name = "stress";
    let region = Region::open(name, &options(&dir.0)).unwrap();
    let all = run_together(TEST, "stress", WORKERS, &dir.0, name);
    let sum = |k: &str| all.iter().map(|r| r[k]).sum::<u64>();

    let grants = sum("grants");
    let t_min = all.iter().map(|r| r["t_min"]).min().unwrap();
    let t_max = all.iter().map(|r| r["t_max"]).max().unwrap();
    let interval = SECOND.div_ceil(RATE);
    assert!(grants > 0);
    assert!(
        grants <= BURST + (t_max - t_min) / interval,
        "{grants} grants over {} ns",
        t_max - t_min
    );

    assert!(
        all.iter().all(|r| r["max_holders"] <= LIMIT as u64),
        "{all:?}"
    );
    let m = region.bulkhead("bulkhead", LIMIT).unwrap().metrics();
    assert_eq!(m.in_flight, 0);
    assert!(m.peak <= LIMIT);
    assert_eq!(m.acquired + m.rejected, sum("attempts"));
    assert_eq!(
        region.bulkhead("holders", 1_000_000).unwrap().in_flight(),
        0
    );

    let b = region
        .breaker_count("breaker", &stress_breaker())
        .unwrap()
        .metrics_with(&MonotonicClock);
    assert_eq!(
        (b.succeeded, b.failed, b.ignored, b.rejected),
        (
            sum("succeeded"),
            sum("failed"),
            sum("ignored"),
            sum("rejected")
        )
    );
    assert_eq!(b.permitted, b.succeeded + b.failed + b.ignored);
}
