//! Loom models of the keyed table (`KeyedBuckets`): every interleaving (up to a preemption
//! bound; `make loom` sets 2) of two threads on one table, with loom's atomics swapped in.
//!
//! * Two threads asking for the same new key at once: one slot holds it (never two), and
//!   the key's bucket grants exactly its burst across both threads.
//! * Two keys sharing a home slot (a table of one window of 2 slots): each gets its own
//!   slot, neither is merged with the other, and each key's bucket grants its own burst.
//! * A key reclaimed while another thread still uses it: an expired key's slot taken by a
//!   new key never lets the old key's caller commit a grant into the new key's bucket.
#![cfg(loom)]

use fastbreaker::{BucketConfig, KeyedBuckets, KeyedRejected, WhenFull, SECOND};
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

fn table(capacity: usize, burst: u64) -> Arc<KeyedBuckets<Box<[fastbreaker::KeySlot]>>> {
    Arc::new(
        KeyedBuckets::with_capacity(
            BucketConfig::per_second(1, burst),
            WhenFull::Reject,
            1,
            capacity,
        )
        .unwrap(),
    )
}

#[test]
fn two_threads_claiming_one_new_key_share_one_slot() {
    model(|| {
        let t = table(2, 1);
        let other = {
            let t = Arc::clone(&t);
            thread::spawn(move || t.try_acquire(b"k", 1, 0))
        };
        let mine = t.try_acquire(b"k", 1, 0);
        let theirs = other.join().unwrap();
        // A claim that met the other's claim lock says Busy: its caller asks again.
        let mine = if mine == Err(KeyedRejected::Busy) {
            t.try_acquire(b"k", 1, 0)
        } else {
            mine
        };
        let theirs = if theirs == Err(KeyedRejected::Busy) {
            t.try_acquire(b"k", 1, 0)
        } else {
            theirs
        };
        // Burst 1: exactly one of the two takes the token, the other is rate limited.
        let granted = [mine, theirs].iter().filter(|r| r.is_ok()).count();
        assert_eq!(granted, 1, "{mine:?} {theirs:?}");
        assert!([mine, theirs]
            .iter()
            .any(|r| matches!(r, Err(KeyedRejected::RateLimited { .. }))));
        assert_eq!(t.live_keys(0), 1, "one slot holds the key");
    });
}

#[test]
fn two_keys_sharing_a_window_get_their_own_buckets() {
    model(|| {
        // Two slots: every key's window covers both, so the keys collide on their home.
        let t = table(2, 1);
        let other = {
            let t = Arc::clone(&t);
            thread::spawn(move || t.try_acquire(b"a", 1, 0))
        };
        let mine = t.try_acquire(b"b", 1, 0);
        let theirs = other.join().unwrap();
        let retry = |r: Result<(), KeyedRejected>, key: &[u8]| match r {
            Err(KeyedRejected::Busy) => t.try_acquire(key, 1, 0),
            r => r,
        };
        assert_eq!(retry(theirs, b"a"), Ok(()));
        assert_eq!(retry(mine, b"b"), Ok(()));
        assert_eq!(t.live_keys(0), 2);
        // Neither was merged with the other: each is empty now, on its own.
        assert!(t.try_acquire(b"a", 1, 0).is_err());
        assert!(t.try_acquire(b"b", 1, 0).is_err());
    });
}

#[test]
fn a_reclaimed_slot_never_takes_the_old_keys_grant() {
    model(|| {
        // One slot: key "old" takes its token at 0 and has it back at 1 s (expired); at
        // 2 s "new" reclaims the slot while another thread takes "old" again.
        let t = table(1, 1);
        assert_eq!(t.try_acquire(b"old", 1, 0), Ok(()));
        let other = {
            let t = Arc::clone(&t);
            thread::spawn(move || t.try_acquire(b"old", 1, 2 * SECOND))
        };
        let new = t.try_acquire(b"new", 1, 2 * SECOND);
        let old = other.join().unwrap();
        let new = match new {
            Err(KeyedRejected::Busy) => t.try_acquire(b"new", 1, 2 * SECOND),
            r => r,
        };
        let old = match old {
            Err(KeyedRejected::Busy) => t.try_acquire(b"old", 1, 2 * SECOND),
            r => r,
        };
        // Whoever got the slot holds it whole; the other finds the table full. Never both.
        match (new, old) {
            (Ok(()), Err(KeyedRejected::TableFull)) | (Err(KeyedRejected::TableFull), Ok(())) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(t.live_keys(2 * SECOND), 1);
        // The holder's bucket has exactly its one token taken.
        let holder: &[u8] = if new.is_ok() { b"new" } else { b"old" };
        assert_eq!(t.retry_after(holder, 1, 2 * SECOND), Ok(SECOND));
    });
}
