//! A keyed table of a shared-memory region across real processes.
//!
//! The test re-executes this test binary with `FB_SHM_ROLE` set, running only itself
//! (`--exact`): the child part does its role, prints `RESULT key=value ...` lines and exits.
//! Children print `READY` and block reading their stdin; once every child is ready, the
//! parent closes all their stdins at once. No sleep decides anything; every loop is bounded
//! in count. (The harness is `procs/mod.rs`, shared with `shm_processes.rs`.)
//!
//! * 4 processes open one region's keyed table at once (a creation race: one creates it)
//!   and hammer the same keys with explicit `CLOCK_MONOTONIC` times: for every key, the
//!   grants of all processes stay within the GCRA bound `burst + (t_max - t_min) /
//!   interval` over the times of its grants, and the table's shared counters equal the sums
//!   of what the processes saw.

#![cfg(not(loom))]

use fastbreaker::shm::Region;
use fastbreaker::{BucketConfig, Clock, KeyedRejected, MonotonicClock, WhenFull, SECOND};

mod procs;

use procs::*;

const WORKERS: usize = 4;
const KEYS: u64 = 8;
const RATE: u64 = 2_000;
const BURST: u64 = 10;
const CAPACITY: usize = 64;
const MAX_OPS: u64 = 400_000;
const MAX_NANOS: u64 = 300_000_000;

fn key(k: u64) -> Vec<u8> {
    format!("client-{k}").into_bytes()
}

#[test]
fn processes_hammering_one_keyed_table_keep_the_per_key_bound() {
    const TEST: &str = "processes_hammering_one_keyed_table_keep_the_per_key_bound";
    let config = BucketConfig::per_second(RATE, BURST);
    let clock = MonotonicClock;
    if let Some((_, options, name)) = child_env() {
        let region = Region::open(&name, &options).unwrap();
        wait_for_start();
        // Opened after the start signal: the processes race to create the table.
        let table = region
            .keyed("clients", config, WhenFull::Reject, CAPACITY)
            .unwrap();
        let mut grants = [0u64; KEYS as usize];
        let mut t_min = [u64::MAX; KEYS as usize];
        let mut t_max = [0u64; KEYS as usize];
        let (mut limited, mut busy, mut ops) = (0u64, 0u64, 0u64);
        let mut x = std::process::id() as u64 | 1;
        let start = clock.now_ns();
        for _ in 0..MAX_OPS {
            let now = clock.now_ns();
            if now - start > MAX_NANOS {
                break;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = (x % KEYS) as usize;
            ops += 1;
            match table.try_acquire(&key(k as u64), 1, now) {
                Ok(()) => {
                    grants[k] += 1;
                    t_min[k] = t_min[k].min(now);
                    t_max[k] = t_max[k].max(now);
                }
                Err(KeyedRejected::RateLimited { .. }) => limited += 1,
                Err(KeyedRejected::Busy) => busy += 1,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        let mut line = format!(
            "RESULT created={} limited={limited} busy={busy} ops={ops}",
            table.storage().created() as u64
        );
        for k in 0..KEYS as usize {
            line += &format!(
                " grants{k}={} tmin{k}={} tmax{k}={}",
                grants[k], t_min[k], t_max[k]
            );
        }
        println!("{line}");
        return;
    }
    let dir = TempDir::new("stress");
    let name = "keyed";
    let region = Region::open(name, &options(&dir.0)).unwrap();
    let all = run_together(TEST, "stress", WORKERS, &dir.0, name);
    let sum = |k: &str| all.iter().map(|r| r[k]).sum::<u64>();
    assert_eq!(sum("created"), 1, "one process created the table: {all:?}");

    let interval = SECOND.div_ceil(RATE);
    let mut total = 0;
    for k in 0..KEYS {
        let grants = sum(&format!("grants{k}"));
        let t_min = all.iter().map(|r| r[&format!("tmin{k}")]).min().unwrap();
        let t_max = all.iter().map(|r| r[&format!("tmax{k}")]).max().unwrap();
        assert!(grants > 0, "key {k} got nothing: {all:?}");
        assert!(
            grants <= BURST + (t_max - t_min) / interval,
            "key {k}: {grants} grants over {} ns",
            t_max - t_min
        );
        total += grants;
    }
    assert!(
        all.iter().filter(|r| r["grants0"] > 0).count() > 1,
        "more than one process was granted key 0's tokens: {all:?}"
    );

    let table = region
        .keyed(
            "clients",
            BucketConfig::per_second(RATE, BURST),
            WhenFull::Reject,
            CAPACITY,
        )
        .unwrap();
    assert!(!table.storage().created());
    let m = table.metrics();
    assert_eq!(m.allowed, total, "shared counters: {m:?}");
    assert_eq!(m.limited, sum("limited"));
    assert_eq!((m.full_rejected, m.full_admitted), (0, 0));
    assert_eq!(sum("ops"), total + sum("limited") + sum("busy"));
    assert!(Region::unlink(name, &options(&dir.0)).unwrap());
    assert!(!table.storage().path().exists());
}
