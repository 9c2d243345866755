//! Loom models of the keyed counters (`KeyedCounters`, the state of `limits`' strategies):
//! every interleaving (up to a preemption bound; `make loom` sets 2) of two threads on one
//! table, with loom's atomics swapped in.
//!
//! * Two threads adding to the same new key's counter at once: one slot holds it, and the
//!   count is the sum of both increments (each caller sees its own addition).
//! * Two threads taking the one entry of the same new key's moving window (limit 1): exactly
//!   one gets it, and the window holds one entry.
#![cfg(loom)]

use fastbreaker::{CountersRejected, HeapCounters, KeyedCounters, WhenFull};
use loom::sync::Arc;
use loom::thread;

fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

fn table() -> Arc<KeyedCounters<HeapCounters>> {
    Arc::new(KeyedCounters::with_capacity(WhenFull::Reject, 1, 2, 2).unwrap())
}

const NOW: u64 = 5_000_000_000;
const WINDOW: u64 = 60_000_000_000;

/// `op` again (after the other thread is done) if it said `Busy`, as callers do.
fn settle<T>(r: Result<T, CountersRejected>, again: impl Fn() -> Result<T, CountersRejected>) -> T {
    match r {
        Err(CountersRejected::Busy) => again().expect("no contention left"),
        r => r.expect("only Busy is expected"),
    }
}

#[test]
fn two_threads_incrementing_one_new_key_add_up() {
    model(|| {
        let t = table();
        let other = {
            let t = Arc::clone(&t);
            thread::spawn(move || t.incr(b"k", WINDOW, 2, NOW))
        };
        let mine = t.incr(b"k", WINDOW, 1, NOW);
        let theirs = other.join().unwrap();
        let mine = settle(mine, || t.incr(b"k", WINDOW, 1, NOW));
        let theirs = settle(theirs, || t.incr(b"k", WINDOW, 2, NOW));
        assert!(
            (mine, theirs) == (1, 3) || (mine, theirs) == (3, 2),
            "{mine} {theirs}"
        );
        assert_eq!(t.get(b"k", NOW), Ok(3));
        assert_eq!(t.live_keys(NOW), 1, "one slot holds the key");
    });
}

#[test]
fn two_threads_taking_the_last_entry_of_one_new_key() {
    model(|| {
        let t = table();
        let other = {
            let t = Arc::clone(&t);
            thread::spawn(move || t.acquire_entry(b"k", 1, WINDOW, 1, NOW))
        };
        let mine = t.acquire_entry(b"k", 1, WINDOW, 1, NOW);
        let theirs = other.join().unwrap();
        let mine = settle(mine, || t.acquire_entry(b"k", 1, WINDOW, 1, NOW));
        let theirs = settle(theirs, || t.acquire_entry(b"k", 1, WINDOW, 1, NOW));
        assert!(mine ^ theirs, "exactly one: {mine} {theirs}");
        assert_eq!(t.moving_window(b"k", WINDOW, NOW), Ok((NOW, 1)));
    });
}
