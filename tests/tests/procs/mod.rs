//! The multi-process harness of the shared-memory tests (`shm_processes.rs`,
//! `shm_keyed_processes.rs`): a test re-executes its own binary with `FB_SHM_ROLE` set,
//! running only itself (`--exact`); the child part does its role, prints `RESULT key=value
//! ...` lines and exits. Children that must start together print `READY` and block reading
//! their stdin; once every child is ready, the parent closes all their stdins at once.
// Each test binary uses a part of the harness.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use fastbreaker::shm::RegionOptions;

pub const ROLE: &str = "FB_SHM_ROLE";
pub const DIR: &str = "FB_SHM_DIR";
pub const REGION: &str = "FB_SHM_REGION";

/// A fresh directory for one test, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("fastbreaker-shm-{tag}-{}", std::process::id()));
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

pub fn options(dir: &Path) -> RegionOptions {
    RegionOptions::new().dir(dir).capacity(64)
}

/// The child's environment: (role, region options, region name), if this is a child.
pub fn child_env() -> Option<(String, RegionOptions, String)> {
    let role = std::env::var(ROLE).ok()?;
    let dir = PathBuf::from(std::env::var(DIR).expect("dir"));
    Some((role, options(&dir), std::env::var(REGION).expect("region")))
}

/// Starts this test binary as a child running `test` in `role`.
pub fn spawn(test: &str, role: &str, dir: &Path, region: &str) -> Child {
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
pub fn await_ready(child: &mut Child) -> BufReader<ChildStdout> {
    await_ready_results(child).0
}

/// [`await_ready`], with the `RESULT` values the child printed before `READY`.
pub fn await_ready_results(child: &mut Child) -> (BufReader<ChildStdout>, BTreeMap<String, u64>) {
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
pub fn parse_results(line: &str) -> Vec<(String, u64)> {
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
pub fn results(mut child: Child, out: Option<BufReader<ChildStdout>>) -> BTreeMap<String, u64> {
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
pub fn wait_for_start() {
    println!("READY");
    std::io::stdout().flush().unwrap();
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink).unwrap();
}

/// Starts `n` children in `role`, waits until every one is ready, then lets them all go
/// at once; their results.
pub fn run_together(
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
