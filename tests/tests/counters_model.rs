//! `KeyedCounters` (the state of `limits`' strategies per key) against a reference model,
//! and under threads.
//!
//! * [`roomy_table_matches_model`]: random sequences of `incr`, `decr`, `get`, `expiry`,
//!   `acquire_entry`, `moving_window`, `clear` and `clear_all` on a few keys, with a clock
//!   that only moves forwards, in a table with room for every key; after every operation
//!   the result equals the model's: a map from key to (count, expiry) and to the list of
//!   its hits' times (newest first), written from `limits`' MemoryStorage (a counter at 0
//!   or expired restarts its window; a moving-window entry counts while
//!   `time + expiry > now`).
//! * [`threads_never_grant_past_the_limit`]: 4 threads hit the same keys with
//!   `acquire_entry` and `incr` at one fixed time; at the end each key's granted entries
//!   equal its limit exactly and its count equals the sum of every increment.
#![cfg(not(loom))]

use std::collections::HashMap;
use std::sync::Barrier;

use fastbreaker::{HeapCounters, KeyedCounters, WhenFull};
use proptest::prelude::*;
use proptest::test_runner::RngAlgorithm;

const ENTRIES: usize = 8;

#[derive(Debug, Clone)]
enum Op {
    Incr {
        key: u8,
        expiry: u64,
        amount: u64,
    },
    Decr {
        key: u8,
        amount: u64,
    },
    Get {
        key: u8,
    },
    Expiry {
        key: u8,
    },
    Acquire {
        key: u8,
        limit: u64,
        expiry: u64,
        amount: u64,
    },
    Window {
        key: u8,
        expiry: u64,
    },
    Clear {
        key: u8,
    },
    ClearAll,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..4;
    let expiry = prop_oneof![Just(1u64), Just(5), Just(20)];
    prop_oneof![
        (key.clone(), expiry.clone(), 0u64..4).prop_map(|(key, expiry, amount)| Op::Incr {
            key,
            expiry,
            amount
        }),
        (key.clone(), 0u64..4).prop_map(|(key, amount)| Op::Decr { key, amount }),
        key.clone().prop_map(|key| Op::Get { key }),
        key.clone().prop_map(|key| Op::Expiry { key }),
        (key.clone(), 0u64..=ENTRIES as u64, expiry.clone(), 0u64..5).prop_map(
            |(key, limit, expiry, amount)| Op::Acquire {
                key,
                limit,
                expiry,
                amount
            }
        ),
        (key.clone(), expiry).prop_map(|(key, expiry)| Op::Window { key, expiry }),
        key.prop_map(|key| Op::Clear { key }),
        Just(Op::ClearAll),
    ]
}

#[derive(Default)]
struct Model {
    counters: HashMap<u8, (u64, u64)>,
    logs: HashMap<u8, (u64, Vec<u64>)>,
}

impl Model {
    fn live_counter(&self, key: u8, now: u64) -> Option<(u64, u64)> {
        self.counters.get(&key).copied().filter(|&(_, e)| e > now)
    }

    fn step(&mut self, op: &Op, now: u64) -> String {
        match *op {
            Op::Incr {
                key,
                expiry,
                amount,
            } => {
                let (count, e) = self.live_counter(key, now).unwrap_or((0, now));
                let e = if count == 0 { now + expiry } else { e };
                self.counters.insert(key, (count + amount, e));
                format!("{:?}", Ok::<u64, ()>(count + amount))
            }
            Op::Decr { key, amount } => {
                let r = match self.live_counter(key, now) {
                    Some((c, e)) => {
                        self.counters.insert(key, (c.saturating_sub(amount), e));
                        c.saturating_sub(amount)
                    }
                    None => 0,
                };
                format!("{:?}", Ok::<u64, ()>(r))
            }
            Op::Get { key } => format!(
                "{:?}",
                Ok::<u64, ()>(self.live_counter(key, now).map_or(0, |c| c.0))
            ),
            Op::Expiry { key } => format!(
                "{:?}",
                Ok::<Option<u64>, ()>(self.live_counter(key, now).map(|c| c.1))
            ),
            Op::Acquire {
                key,
                limit,
                expiry,
                amount,
            } => {
                if amount > limit {
                    return format!("{:?}", Ok::<bool, ()>(false));
                }
                let log = &mut self.logs.entry(key).or_default().1;
                let i = (limit - amount) as usize;
                if log.get(i).is_some_and(|&t| t + expiry > now) {
                    return format!("{:?}", Ok::<bool, ()>(false));
                }
                for _ in 0..amount {
                    log.insert(0, now);
                }
                log.truncate(ENTRIES);
                format!("{:?}", Ok::<bool, ()>(true))
            }
            Op::Window { key, expiry } => {
                let log = self.logs.get(&key).map(|l| l.1.clone()).unwrap_or_default();
                let inside: Vec<u64> = log.into_iter().take_while(|&t| t + expiry > now).collect();
                let start = inside.last().copied().unwrap_or(now);
                format!("{:?}", Ok::<(u64, u64), ()>((start, inside.len() as u64)))
            }
            Op::Clear { key } => {
                let had = self.counters.remove(&key).is_some() | self.logs.remove(&key).is_some();
                // The table answers whether the key had a slot; the model keeps no slots, so
                // only the emptiness is compared (below).
                let _ = had;
                String::from("clear")
            }
            Op::ClearAll => {
                self.counters.clear();
                self.logs.clear();
                String::from("clear_all")
            }
        }
    }
}

fn run(t: &KeyedCounters<HeapCounters>, op: &Op, now: u64) -> String {
    let k = |key: u8| [b'k', key];
    match *op {
        Op::Incr {
            key,
            expiry,
            amount,
        } => format!("{:?}", t.incr(&k(key), expiry, amount, now)),
        Op::Decr { key, amount } => format!("{:?}", t.decr(&k(key), amount, now)),
        Op::Get { key } => format!("{:?}", t.get(&k(key), now)),
        Op::Expiry { key } => format!("{:?}", t.expiry(&k(key), now)),
        Op::Acquire {
            key,
            limit,
            expiry,
            amount,
        } => format!("{:?}", t.acquire_entry(&k(key), limit, expiry, amount, now)),
        Op::Window { key, expiry } => format!("{:?}", t.moving_window(&k(key), expiry, now)),
        Op::Clear { key } => {
            t.clear(&k(key), now).expect("not busy");
            String::from("clear")
        }
        Op::ClearAll => {
            t.clear_all(now).expect("not busy");
            String::from("clear_all")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2_000,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    })]

    #[test]
    fn roomy_table_matches_model(
        steps in proptest::collection::vec((op(), 0u64..4), 1..80),
        seed in any::<u64>(),
    ) {
        let table = KeyedCounters::with_capacity(WhenFull::Reject, seed, 64, ENTRIES).unwrap();
        let mut model = Model::default();
        // Starts past the reuse grace so that "expired" never underflows.
        let mut now = 1_000;
        for (op, advance) in &steps {
            now += advance;
            let want = model.step(op, now);
            let got = run(&table, op, now);
            prop_assert_eq!(&got, &want, "{:?} at {}", op, now);
        }
    }
}

#[test]
fn threads_never_grant_past_the_limit() {
    const THREADS: usize = 4;
    const KEYS: u8 = 8;
    const LIMIT: u64 = 50;
    let table = KeyedCounters::with_capacity(WhenFull::Reject, 9, 256, 64).unwrap();
    let barrier = Barrier::new(THREADS);
    let now = 5_000_000_000u64;
    let granted: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (table, barrier) = (&table, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let mut mine = vec![0u64; KEYS as usize];
                    for round in 0..400u64 {
                        let key = [((round + i as u64) % KEYS as u64) as u8];
                        loop {
                            match table.acquire_entry(&key, LIMIT, 60_000_000_000, 1, now) {
                                Ok(true) => {
                                    mine[key[0] as usize] += 1;
                                    break;
                                }
                                Ok(false) => break,
                                Err(_) => std::thread::yield_now(),
                            }
                        }
                        while table
                            .incr(&[b'c', key[0]], 60_000_000_000, 1 + round % 3, now)
                            .is_err()
                        {
                            std::thread::yield_now();
                        }
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for key in 0..KEYS {
        let total: u64 = granted.iter().map(|g| g[key as usize]).sum();
        assert_eq!(total, LIMIT, "key {key}: moving-window grants");
        assert_eq!(
            table.moving_window(&[key], 60_000_000_000, now),
            Ok((now, LIMIT))
        );
        let expected: u64 = (0..THREADS as u64)
            .flat_map(|i| (0..400u64).filter(move |r| (r + i) % KEYS as u64 == key as u64))
            .map(|r| 1 + r % 3)
            .sum();
        assert_eq!(
            table.get(&[b'c', key], now),
            Ok(expected),
            "key {key}: count"
        );
    }
}
