//! The state-change listener of a breaker: a C callback and its `user_data`, stored next to
//! the breaker and called after each committed transition. Uses `breaker_types` only.

use core::ffi::c_void;
use core::sync::atomic::{fence, AtomicPtr, AtomicU64, Ordering};

use core_fb::Transition;

use crate::breaker_types::fb_state;
use crate::fb_breaker;

/// A state-change listener: called with the breaker, the state it left, the state it
/// entered and the `user_data` given to `fb_breaker_set_listener`.
///
/// It runs on the thread whose call made the change (an acquire, a record or a manual
/// change), after the change is committed and outside any critical section: the breaker
/// holds no lock while it runs. It may call any `fb_*` function, including on the same
/// breaker (a change it makes there notifies it again, nested, before it returns) and
/// `fb_breaker_set_listener`, but not `fb_breaker_free` on the breaker it was called for (the
/// call that made the change is still running). It must return normally: no C++ exception or
/// `longjmp` may leave it. Changes made on several threads at once notify on those threads at once, in no
/// guaranteed order.
pub type fb_breaker_listener = Option<
    unsafe extern "C" fn(
        breaker: *const fb_breaker,
        from: fb_state,
        to: fb_state,
        user_data: *mut c_void,
    ),
>;

/// The function type inside [`fb_breaker_listener`].
type ListenerFn = unsafe extern "C" fn(*const fb_breaker, fb_state, fb_state, *mut c_void);

/// A listener and its `user_data`, read together (a sequence lock: the writer makes the
/// counter odd while it writes; a reader that saw it odd or changed reads again).
#[derive(Debug)]
pub(crate) struct Listener {
    seq: AtomicU64,
    func: AtomicPtr<()>,
    data: AtomicPtr<c_void>,
}

impl Listener {
    /// No listener.
    pub(crate) const fn new() -> Self {
        Listener {
            seq: AtomicU64::new(0),
            func: AtomicPtr::new(core::ptr::null_mut()),
            data: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Installs `func` with `data` (`None`: removes the listener).
    pub(crate) fn set(&self, func: fb_breaker_listener, data: *mut c_void) {
        // Writers exclude each other by making the counter odd.
        let mut s = self.seq.load(Ordering::Relaxed);
        loop {
            if s & 1 == 1 {
                std::thread::yield_now();
                s = self.seq.load(Ordering::Relaxed);
                continue;
            }
            // Acquire: pairs with the Release store that ended the previous write.
            match self
                .seq
                .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        // Release fence: a reader that sees either store below also sees the odd counter.
        fence(Ordering::Release);
        let f = func.map_or(core::ptr::null_mut(), |f| f as *mut ());
        self.func.store(f, Ordering::Relaxed);
        self.data.store(data, Ordering::Relaxed);
        // Release: pairs with the Acquire load in `get`.
        self.seq.store(s + 2, Ordering::Release);
    }

    /// The listener and its data, if one is installed.
    fn get(&self) -> Option<(ListenerFn, *mut c_void)> {
        loop {
            // Acquire: pairs with the Release store that ended the last write.
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::thread::yield_now();
                continue;
            }
            let f = self.func.load(Ordering::Relaxed);
            let d = self.data.load(Ordering::Relaxed);
            // Acquire fence: pairs with the writer's Release fence; if a write began before
            // the loads above saw its values, the counter read below has moved.
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) != s1 {
                continue;
            }
            if f.is_null() {
                return None;
            }
            // SAFETY: a non-null `func` was stored by `set` from a `ListenerFn` (the same
            // function pointer type, converted to a data pointer and back unchanged).
            let f = unsafe { core::mem::transmute::<*mut (), ListenerFn>(f) };
            return Some((f, d));
        }
    }

    /// Tells the listener about `transition`, made on `breaker`, if there is a listener.
    #[inline]
    pub(crate) fn notify(&self, breaker: *const fb_breaker, transition: Option<Transition>) {
        if let Some(t) = transition {
            self.notify_cold(breaker, t);
        }
    }

    #[cold]
    #[inline(never)]
    fn notify_cold(&self, breaker: *const fb_breaker, t: Transition) {
        if let Some((f, data)) = self.get() {
            // SAFETY: the caller of `fb_breaker_set_listener` promised a function of this
            // type that may be called from any thread with this `user_data` (see
            // `fb_breaker_set_listener`). No lock is held here.
            unsafe { f(breaker, t.from as u32, t.to as u32, data) }
        }
    }
}
