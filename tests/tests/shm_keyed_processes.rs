//! A keyed table of a shared-memory region across real processes.
//!
//! The test re-executes this test binary with `FB_SHM_ROLE` set, running only itself
//! (`--exact`): the child part does its role, prints `RESULT key=value ...` lines and exits.
//! Children print `READY` and block reading their stdin; once every child is ready, the
//! parent closes all their stdins at once. No sleep decides anything; every loop is bounded
//! in count. (The helpers are those of `shm_processes.rs`.)
//!
//! * 4 processes open one region's keyed table at once (a creation race: one creates it)
//!   and hammer the same keys with explicit `CLOCK_MONOTONIC` times: for every key, the
//!   grants of all processes stay within the GCRA bound `burst + (t_max - t_min) /
//!   interval` over the times of its grants, and the table's shared counters equal the sums
//!   of what the processes saw.

#![cfg(not(loom))]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use fastbreaker::shm::{Region, RegionOptions};
use fastbreaker::{BucketConfig, Clock, KeyedRejected, MonotonicClock, WhenFull, SECOND};

const ROLE: &str = "FB_SHM_ROLE";
const DIR: &str = "FB_SHM_DIR";
const REGION: &str = "FB_SHM_REGION";

/// A fresh directory for one test, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "fastbreaker-shm-keyed-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn options(dir: &Path) -> RegionOptions {
    RegionOptions::new().dir(dir).capacity(64)
}

/// The child's environment: (role, region options, region name), if this is a child.
fn child_env() -> Option<(String, RegionOptions, String)> {
    let role = std::env::var(ROLE).ok()?;
    let dir = PathBuf::from(std::env::var(DIR).expect("dir"));
    Some((role, options(&dir), std::env::var(REGION).expect("region")))
}

/// Starts this test binary as a child running `test` in `role`.
fn spawn(test: &str, role: &str, dir: &Path, region: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, role)
        .env(DIR, dir)
        .env(REGION, region)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `child` says it is ready (the line `READY`, printed by [`wait_for_start`]).
fn await_ready(child: &mut Child) -> BufReader<ChildStdout> {
    await_ready_results(child).0
}

/// [`await_ready`], with the `RESULT` values the child printed before `READY`.
fn await_ready_results(child: &mut Child) -> (BufReader<ChildStdout>, BTreeMap<String, u64>) {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let mut results = BTreeMap::new();
    // Bounded: the child prints a few lines of the test harness first, then READY.
    for _ in 0..100 {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "child exited before READY"
        );
        if line.trim() == "READY" {
            return (out, results);
        }
        results.extend(parse_results(&line));
    }
    panic!("no READY from the child");
}

/// The `key=value` pairs of a `RESULT` line (none for other lines).
fn parse_results(line: &str) -> Vec<(String, u64)> {
    line.trim()
        .strip_prefix("RESULT ")
        .into_iter()
        .flat_map(|l| l.split_whitespace())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// Waits for `child` (after closing its stdin), reading its output from `out` (or from
/// its stdout); its `RESULT` values, by key.
fn results(mut child: Child, out: Option<BufReader<ChildStdout>>) -> BTreeMap<String, u64> {
    drop(child.stdin.take());
    let mut text = String::new();
    match out {
        Some(mut out) => out.read_to_string(&mut text),
        None => child.stdout.take().unwrap().read_to_string(&mut text),
    }
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "child failed: {status}\n{text}");
    text.lines().flat_map(parse_results).collect()
}

/// Says READY, then blocks until the parent closes stdin: the start signal.
fn wait_for_start() {
    println!("READY");
    std::io::stdout().flush().unwrap();
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink).unwrap();
}

/// Starts `n` children in `role`, waits until every one is ready, then lets them all go
/// at once; their results.
fn run_together(
    test: &str,
    role: &str,
    n: usize,
    dir: &Path,
    region: &str,
) -> Vec<BTreeMap<String, u64>> {
    let mut children: Vec<Child> = (0..n).map(|_| spawn(test, role, dir, region)).collect();
    let outs: Vec<_> = children.iter_mut().map(await_ready).collect();
    for c in &mut children {
        drop(c.stdin.take());
    }
    children
        .into_iter()
        .zip(outs)
        .map(|(c, out)| results(c, Some(out)))
        .collect()
}

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
