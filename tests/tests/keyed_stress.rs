//! Stress test of the keyed table (`KeyedBuckets`): 2, 3 and 4 threads push 10^6 distinct
//! keys (2 x 10^5 in debug builds, where the three take about 10 s on 2 cores;
//! `FASTBREAKER_KEYED_STRESS_KEYS` sets the number) through a table of 4 096 slots.
//!
//! Time moves in phases. In each phase every thread sets its own `now` to the phase's time
//! and asks for tokens (1 or 2 of a burst of 3, sometimes twice) of the same list of keys, each
//! thread in its own shuffled order: 256 new keys and 128 keys of the two phases before, so
//! that threads race on one key's claim, on claims of keys sharing a home slot, and on the
//! reuse of expired keys' slots (a key lives at most one burst, 3 intervals, and keeps its slot
//! a reuse grace of 1 s longer; phases step 0 to 2 bursts: every slot is reused many times). Between phases, with the threads
//! parked on a barrier, the main thread merges what each thread was granted and checks:
//!
//! * per key and phase, exact GCRA: the tokens granted fit, `max(tat, now) + g*T <= now +
//!   tau`, and every refusal was due, `max(tat', now) + n*T > now + tau` with `tat'` the TAT
//!   after the phase (the TAT only grows within a phase, so a refusal cannot be undone);
//! * `live_keys` equals the number of keys whose TAT (from the merged grants) lies after the
//!   phase's time and after the next phase's: a key held in two slots, a forgotten live key or
//!   a phantom would change it.
//!
//! At the end, for every key, tokens granted `<= burst + floor((max_now - min_now) / T)`
//! over the times its grants used, and the metrics equal the outcomes the threads counted.
//!
//! All threads of a phase use the same time. The table keeps an expired key's slot for a
//! reuse grace (1 s) so that callers whose clocks lag by less still find the key; with
//! clocks further apart the per-key bound does not hold by design (a thread whose clock has
//! passed a key's TAT and the grace may reuse its slot, and a lagging one then finds the key
//! absent, full).
#![cfg(not(loom))]

use std::collections::HashMap;
use std::sync::{Barrier, Mutex};

use fastbreaker::{BucketConfig, KeySlot, KeyedBuckets, KeyedRejected, WhenFull};

const SLOTS: usize = 4_096;
/// Interval between tokens (ns) and burst of every key: 1 s, so that phases (0 to 2 bursts
/// apart) pass the table's reuse grace (`KEY_REUSE_GRACE_NS`, 1 s) and slots are reused.
const T: u64 = 1_000_000_000;
const BURST: u64 = 3;
const TAU: u64 = T * BURST;
/// Keys first used in a phase, and keys of the two phases before asked for again.
const NEW_PER_PHASE: u64 = 256;
const OLD_PER_PHASE: u64 = 128;

fn keys_total() -> u64 {
    std::env::var("FASTBREAKER_KEYED_STRESS_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            200_000
        } else {
            1_000_000
        })
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Key `id`'s bytes: its number, then filler (zeros for some) up to 4..=64 bytes.
fn key(id: u64, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&(id as u32).to_le_bytes());
    let len = 4 + (id * 37 % 61) as usize;
    out.resize(len, (id % 5) as u8);
}

/// Phase `p`'s time: the one before plus 0, one interval, half, one or two bursts.
fn step(p: u64) -> u64 {
    [0, T, TAU / 2, TAU, 2 * TAU][(splitmix(p) % 5) as usize]
}

/// Phase `p`'s keys: its new ones, and some of the two phases before.
fn phase_keys(p: u64) -> Vec<u64> {
    let first = p * NEW_PER_PHASE;
    let mut keys: Vec<u64> = (first..first + NEW_PER_PHASE).collect();
    if p > 0 {
        let back = (2 * NEW_PER_PHASE).min(first);
        keys.extend((0..OLD_PER_PHASE).map(|i| first - 1 - splitmix(p << 8 | i) % back));
    }
    keys
}

/// What one thread saw in a phase: `(key, tokens, granted)`.
type Record = (u64, u64, bool);

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    allowed: u64,
    limited: u64,
    full: u64,
    busy: u64,
}

fn worker(
    table: &KeyedBuckets<Box<[KeySlot]>>,
    me: u64,
    phases: u64,
    barrier: &Barrier,
    out: &Mutex<Vec<Record>>,
) -> Counts {
    let mut rng = splitmix(me + 1);
    let mut next = move || {
        rng = splitmix(rng);
        rng
    };
    let mut counts = Counts::default();
    let mut now = 0u64;
    let mut bytes = Vec::with_capacity(64);
    let mut seen = Vec::new();
    for p in 0..phases {
        now += step(p);
        let mut keys = phase_keys(p);
        for i in (1..keys.len()).rev() {
            keys.swap(i, (next() % (i as u64 + 1)) as usize);
        }
        for &id in &keys {
            key(id, &mut bytes);
            let times = if next() % 4 == 0 { 2 } else { 1 };
            for _ in 0..times {
                let n = 1 + next() % 2;
                let mut result = table.try_acquire(&bytes, n, now);
                while result == Err(KeyedRejected::Busy) {
                    counts.busy += 1;
                    std::thread::yield_now();
                    result = table.try_acquire(&bytes, n, now);
                }
                match result {
                    Ok(()) => counts.allowed += 1,
                    Err(KeyedRejected::RateLimited { .. }) => counts.limited += 1,
                    Err(KeyedRejected::TableFull) => {
                        counts.full += 1;
                        continue;
                    }
                    Err(e) => panic!("thread {me}, key {id}: {e:?}"),
                }
                seen.push((id, n, result.is_ok()));
            }
        }
        out.lock().unwrap().append(&mut seen);
        barrier.wait(); // the phase is over
        barrier.wait(); // the main thread has checked it
    }
    counts
}

/// Per key over the whole run: tokens granted, and the first and last time of a grant.
#[derive(Debug, Clone, Copy)]
struct Granted {
    tokens: u64,
    first: u64,
    last: u64,
}

fn run(threads: u64) {
    let keys = keys_total();
    let phases = keys.div_ceil(NEW_PER_PHASE);
    let config = BucketConfig {
        rate: 1,
        period_ns: T,
        burst: BURST,
    };
    let table = KeyedBuckets::with_capacity(config, WhenFull::Reject, 0x5EED ^ threads, SLOTS)
        .expect("a valid table");
    let barrier = Barrier::new(threads as usize + 1);
    let outs: Vec<Mutex<Vec<Record>>> = (0..threads).map(|_| Mutex::new(Vec::new())).collect();

    // The TAT of every key that may still be live, from the merged grants.
    let mut tat: HashMap<u64, u64> = HashMap::new();
    let mut granted: HashMap<u64, Granted> = HashMap::new();
    let mut failures: Vec<String> = Vec::new();
    let counts = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|me| {
                let (table, barrier, out) = (&table, &barrier, &outs[me as usize]);
                s.spawn(move || worker(table, me, phases, barrier, out))
            })
            .collect();
        let mut now = 0u64;
        for p in 0..phases {
            now += step(p);
            barrier.wait();
            // Per key this phase: tokens granted, and the largest refused request.
            let mut phase: HashMap<u64, (u64, u64)> = HashMap::new();
            for out in &outs {
                for (id, n, ok) in out.lock().unwrap().drain(..) {
                    let e = phase.entry(id).or_default();
                    if ok {
                        e.0 += n;
                    } else {
                        e.1 = e.1.max(n);
                    }
                }
            }
            for (&id, &(g, refused)) in &phase {
                let before = tat.get(&id).copied().unwrap_or(0).max(now);
                let after = before + g * T;
                if after > now + TAU {
                    failures.push(format!(
                        "phase {p} at {now}: key {id} granted {g} tokens with TAT {before}"
                    ));
                }
                if refused > 0 && after.max(now) + refused * T <= now + TAU {
                    failures.push(format!(
                        "phase {p} at {now}: key {id} refused {refused} with TAT {after} after {g} granted"
                    ));
                }
                if g > 0 {
                    tat.insert(id, after);
                    let e = granted.entry(id).or_insert(Granted {
                        tokens: 0,
                        first: now,
                        last: now,
                    });
                    e.tokens += g;
                    e.last = now;
                }
            }
            tat.retain(|_, &mut t| t > now);
            let next = now + if p + 1 < phases { step(p + 1) } else { 0 };
            for t in [now, next] {
                let expected = tat.values().filter(|&&tat| tat > t).count();
                let live = table.live_keys(t);
                if live != expected {
                    failures.push(format!(
                        "phase {p} at {t}: {live} live keys, {expected} expected"
                    ));
                }
            }
            if failures.len() > 20 {
                failures.truncate(20);
            }
            barrier.wait();
        }
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .fold(Counts::default(), |a, c| Counts {
                allowed: a.allowed + c.allowed,
                limited: a.limited + c.limited,
                full: a.full + c.full,
                busy: a.busy + c.busy,
            })
    });
    assert!(failures.is_empty(), "{threads} threads: {failures:#?}");

    // New keys refused by a full window in every thread are rare (a window of 16 slots full
    // of live keys, with a fifth of the table live).
    let used = phases * NEW_PER_PHASE;
    assert!(
        granted.len() as u64 >= used - used / 100,
        "{} of {used} keys granted tokens",
        granted.len()
    );
    for (id, g) in &granted {
        assert!(
            g.tokens <= BURST + (g.last - g.first) / T,
            "key {id}: {g:?} over the GCRA bound"
        );
    }
    let m = table.metrics();
    assert_eq!(
        (m.allowed, m.limited, m.full_rejected, m.full_admitted),
        (counts.allowed, counts.limited, counts.full, 0),
        "{threads} threads: metrics against the outcomes counted ({counts:?})"
    );
    eprintln!(
        "{threads} threads: {} keys, {phases} phases, {counts:?}",
        granted.len()
    );
}

#[test]
fn two_threads() {
    run(2);
}

#[test]
fn three_threads() {
    run(3);
}

#[test]
fn four_threads() {
    run(4);
}
