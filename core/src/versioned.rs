//! Settings that change at run time: a sequence word and two buffers of `N` words.
//!
//! Runtime reconfiguration (`reconfigure` on every primitive) must never show a caller half
//! of a configuration (a new rate with an old burst), must never block callers, and must
//! survive a writer that dies midway (a process killed while it reconfigures a primitive in
//! a shared region). So the settings live twice: the sequence word's version says which
//! buffer is current, and a writer fills the other one, then publishes it by bumping the
//! version. Readers never wait: they read the current buffer and check that the version did
//! not move by two while they read (two bumps are needed before a writer touches the buffer
//! being read).
//!
//! The sequence word: `version << 1 | writing`. `writing` is the writers' lock: a writer
//! sets it with a CAS, fills the spare buffer and stores `version + 1` with the bit clear.
//! A writer that dies leaves the bit set: readers are unaffected (they never look at it),
//! and further writers get [`Busy`] until the owner of the primitive (the shared region,
//! which can tell that the writer died) forces a write with [`Versioned::write_exclusive`].
//!
//! Orderings (the classic seqlock, with fences): the writer's `Release` fence after taking
//! the lock orders the lock (and the version it saw) before its stores to the spare buffer;
//! a reader's `Acquire` fence after its loads orders them before its second load of the
//! sequence word. A reader that saw any word of a write that reuses its buffer therefore
//! sees a version at least one higher, and reads again.

use crate::sync::{fence, AtomicU64, Ordering};

/// Another reconfiguration of the same primitive is under way (or its writer died, in a
/// shared region).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// How often a reader retries before taking what it read (only a writer that publishes
/// new versions back to back, faster than a reader reads `N` words, gets there; what the
/// reader then takes is decoded like any other bits: never a panic).
const READ_ATTEMPTS: u32 = 64;
/// How long a writer spins on another writer's lock before reporting [`Busy`].
const WRITE_SPINS: u32 = 1 << 16;

/// `N` words of settings, double-buffered under a sequence word (see the module docs).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Versioned<const N: usize> {
    seq: AtomicU64,
    bufs: [[AtomicU64; N]; 2],
}

impl<const N: usize> Versioned<N> {
    crate::sync::maybe_const_fn! {
        /// Version 0, holding `words`.
        pub(crate) fn new(words: [u64; N]) -> Self {
            Versioned {
                seq: AtomicU64::new(0),
                bufs: [atomics(words), atomics([0; N])],
            }
        }
    }

    /// A consistent copy of the current settings, and their version.
    #[inline]
    pub(crate) fn read(&self) -> (u64, [u64; N]) {
        let (version, words, ()) = self.read_with(|| ());
        (version, words)
    }

    /// [`read`](Self::read), with `extra` (a load of the caller's state) made inside the
    /// read: if that load saw a value stored after a newer version was published (by a
    /// `Release` store of someone who loaded that version), the read is retried, so the
    /// state returned is never newer than the settings.
    #[inline]
    pub(crate) fn read_with<T>(&self, extra: impl Fn() -> T) -> (u64, [u64; N], T) {
        let mut attempt = 0;
        loop {
            // Acquire: pairs with the writer's Release store of the version: its buffer
            // is complete.
            let s1 = self.seq.load(Ordering::Acquire);
            let buf = &self.bufs[((s1 >> 1) & 1) as usize];
            let words = core::array::from_fn(|i| buf[i].load(Ordering::Relaxed));
            let state = extra();
            fence(Ordering::Acquire);
            let s2 = self.seq.load(Ordering::Relaxed);
            attempt += 1;
            if s1 >> 1 == s2 >> 1 || attempt >= READ_ATTEMPTS {
                return (s1 >> 1, words, state);
            }
        }
    }

    /// Word `i` of the current settings alone (one load is its own consistent snapshot).
    #[inline]
    pub(crate) fn word(&self, i: usize) -> u64 {
        let s = self.seq.load(Ordering::Acquire);
        self.bufs[((s >> 1) & 1) as usize][i].load(Ordering::Relaxed)
    }

    /// The current version.
    #[inline]
    pub(crate) fn version(&self) -> u64 {
        self.seq.load(Ordering::Acquire) >> 1
    }

    /// Publishes the next version, unless another writer holds the lock for longer than a
    /// bounded spin ([`Busy`]). Under the lock, `make` gets the current version and its
    /// words and returns the next version's words (it may also bring the caller's state up
    /// to the current version); `after` runs once the next version is published, still
    /// under the lock, with its number.
    pub(crate) fn write(
        &self,
        make: impl FnOnce(u64, [u64; N]) -> [u64; N],
        after: impl FnOnce(u64),
    ) -> Result<u64, Busy> {
        let mut spins = 0;
        let mut cur = self.seq.load(Ordering::Relaxed);
        loop {
            if cur & 1 == 0 {
                match self.seq.compare_exchange_weak(
                    cur,
                    cur | 1,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(actual) => cur = actual,
                }
            } else {
                spins += 1;
                if spins >= WRITE_SPINS {
                    return Err(Busy);
                }
                core::hint::spin_loop();
                #[cfg(loom)]
                loom::thread::yield_now();
                cur = self.seq.load(Ordering::Relaxed);
            }
        }
        Ok(self.publish(cur >> 1, make, after))
    }

    /// [`write`](Self::write) for a caller that excludes every other writer by its own
    /// means: takes the lock even if it is held (by a writer that died).
    pub(crate) fn write_exclusive(
        &self,
        make: impl FnOnce(u64, [u64; N]) -> [u64; N],
        after: impl FnOnce(u64),
    ) -> u64 {
        let cur = self.seq.fetch_or(1, Ordering::Acquire);
        self.publish(cur >> 1, make, after)
    }

    fn publish(
        &self,
        version: u64,
        make: impl FnOnce(u64, [u64; N]) -> [u64; N],
        after: impl FnOnce(u64),
    ) -> u64 {
        let current = &self.bufs[(version & 1) as usize];
        let words = make(
            version,
            core::array::from_fn(|i| current[i].load(Ordering::Relaxed)),
        );
        let next = version.wrapping_add(1) & (u64::MAX >> 1);
        // Release: orders the lock taken above (and so the version seen) before the stores
        // to the spare buffer (see the module docs).
        fence(Ordering::Release);
        let spare = &self.bufs[(next & 1) as usize];
        for (word, v) in spare.iter().zip(words) {
            word.store(v, Ordering::Relaxed);
        }
        // Release: a reader that loads this version (Acquire) finds the buffer complete.
        // The lock stays held while `after` runs (a writer's follow-up must not meet the
        // next writer's version), then is released.
        self.seq.store(next << 1 | 1, Ordering::Release);
        after(next);
        self.seq.store(next << 1, Ordering::Release);
        next
    }

    /// Stores arbitrary bits in every word (tests of corrupt shared state).
    #[cfg(test)]
    pub(crate) fn scramble(&self, next: &mut dyn FnMut() -> u64) {
        self.seq.store(next(), Ordering::Relaxed);
        for buf in &self.bufs {
            for w in buf {
                w.store(next(), Ordering::Relaxed);
            }
        }
    }
}

crate::sync::maybe_const_fn! {
    fn atomics<const N: usize>(words: [u64; N]) -> [AtomicU64; N] {
        #[cfg(not(loom))]
        {
            let mut out = [const { AtomicU64::new(0) }; N];
            let mut i = 0;
            while i < N {
                out[i] = AtomicU64::new(words[i]);
                i += 1;
            }
            out
        }
        #[cfg(loom)]
        {
            core::array::from_fn(|i| AtomicU64::new(words[i]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_see_the_latest_write_and_its_version() {
        let v = Versioned::new([1, 2, 3]);
        assert_eq!(v.read(), (0, [1, 2, 3]));
        let mut seen = (9, [0; 3], 9);
        let made = v.write(
            |n, cur| {
                seen.0 = n;
                seen.1 = cur;
                [4, 5, 6]
            },
            |n| seen.2 = n,
        );
        assert_eq!(made, Ok(1));
        assert_eq!(seen, (0, [1, 2, 3], 1));
        assert_eq!(v.read(), (1, [4, 5, 6]));
        assert_eq!(v.word(1), 5);
        assert_eq!(v.write(|_, _| [7, 8, 9], |_| {}), Ok(2));
        assert_eq!(v.read(), (2, [7, 8, 9]));
        assert_eq!(v.version(), 2);
    }

    #[test]
    fn a_dead_writer_blocks_writers_not_readers_until_forced() {
        let v = Versioned::new([1]);
        // A writer that took the lock and died.
        v.seq.fetch_or(1, Ordering::Relaxed);
        assert_eq!(v.read(), (0, [1]));
        assert_eq!(v.write(|_, _| [2], |_| {}), Err(Busy));
        assert_eq!(v.read(), (0, [1]));
        assert_eq!(v.write_exclusive(|_, _| [3], |_| {}), 1);
        assert_eq!(v.read(), (1, [3]));
        assert_eq!(v.write(|_, _| [4], |_| {}), Ok(2));
    }

    #[test]
    fn any_bits_read_without_panic_or_hang() {
        let v = Versioned::new([0u64; 4]);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..1000 {
            v.scramble(&mut next);
            let _ = v.read();
            let _ = v.word(3);
            let _ = v.version();
        }
        // The top version wraps to 0 instead of overflowing.
        v.seq.store(!1, Ordering::Relaxed);
        assert_eq!(v.write(|_, _| [1; 4], |_| {}), Ok(0));
        assert_eq!(v.read(), (0, [1; 4]));
    }
}
