//! `fb_breaker_*`: the circuit breaker.

use core::ffi::{c_char, c_void};

use core_fb::{
    CircuitBreaker, Clock, Metrics, MonotonicClock, Outcome, Permit, Rejected, State, Window,
};

use crate::breaker_types::*;
use crate::error::{guard, guard_value, Error};
use crate::handle::{self, fb_breaker, BreakerRef};
use crate::{fb_result, FB_OK, FB_REJECTED};

/// Manual state changes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Manual {
    ForceOpen,
    Disable,
    MetricsOnly,
    Reset,
}

/// A clock that reads the `now_ns` a caller of an `_at` function passed.
struct At(u64);

impl Clock for At {
    #[inline(always)]
    fn now_ns(&self) -> u64 {
        self.0
    }
}

/// The operations of the C API on a breaker of any window type, for the breakers reached
/// through a vtable (time windows: 64 types). Taking the clock as `&dyn Clock` keeps the
/// core's generic code instantiated once per window type; the clock is called only when
/// the breaker needs the time.
pub(crate) trait AnyBreaker {
    fn ffi_acquire(&self, clock: &dyn Clock) -> Result<Permit, Rejected>;
    fn ffi_record(&self, permit: Permit, outcome: Outcome, duration_ns: u64, clock: &dyn Clock);
    fn ffi_state(&self) -> State;
    fn ffi_metrics(&self, now: u64) -> Metrics;
    fn ffi_manual(&self, op: Manual, now: u64);
}

impl<W: Window> AnyBreaker for CircuitBreaker<W> {
    #[inline(always)]
    fn ffi_acquire(&self, clock: &dyn Clock) -> Result<Permit, Rejected> {
        self.acquire_with(clock)
    }

    #[inline(always)]
    fn ffi_record(&self, permit: Permit, outcome: Outcome, duration_ns: u64, clock: &dyn Clock) {
        // A given duration matters only with slow-call detection, which reads the clock
        // anyway; otherwise the core reads it only if it needs to.
        if duration_ns == FB_DURATION_AUTO || !detects_slow_calls(self) {
            self.record_with(clock, permit, outcome);
        } else {
            self.record_with_duration(permit, outcome, duration_ns, clock.now_ns());
        }
    }

    #[inline(always)]
    fn ffi_state(&self) -> State {
        self.state()
    }

    fn ffi_metrics(&self, now: u64) -> Metrics {
        self.metrics(now)
    }

    fn ffi_manual(&self, op: Manual, now: u64) {
        match op {
            Manual::ForceOpen => self.force_open(now),
            Manual::Disable => self.disable(now),
            Manual::MetricsOnly => self.metrics_only(now),
            Manual::Reset => self.reset(now),
        };
    }
}

/// Whether a breaker detects slow calls (then a record reads the clock anyway).
#[inline(always)]
fn detects_slow_calls<W: Window>(b: &CircuitBreaker<W>) -> bool {
    b.config().slow_call_rate_threshold.is_some()
}

/// Acquire on a breaker matched by type (count windows: the hot path, fully inlined):
/// at the caller's `now` if `AT`, else on the monotonic clock, read only if needed.
#[inline(always)]
fn acquire_direct<W: Window, const AT: bool>(
    b: &CircuitBreaker<W>,
    now: u64,
) -> Result<Permit, Rejected> {
    if AT {
        b.acquire(now)
    } else {
        b.acquire_with(&MonotonicClock)
    }
}

/// Record on a breaker matched by type; see [`acquire_direct`].
#[inline(always)]
fn record_direct<W: Window, const AT: bool>(
    b: &CircuitBreaker<W>,
    permit: Permit,
    outcome: Outcome,
    duration_ns: u64,
    now: u64,
) {
    if AT {
        if duration_ns == FB_DURATION_AUTO {
            b.record(permit, outcome, now)
        } else {
            b.record_with_duration(permit, outcome, duration_ns, now)
        }
    } else if duration_ns == FB_DURATION_AUTO || !detects_slow_calls(b) {
        // A given duration matters only with slow-call detection.
        b.record_with(&MonotonicClock, permit, outcome)
    } else {
        b.record_with_duration(permit, outcome, duration_ns, MonotonicClock.now_ns())
    };
}

/// Runs `$body` with `$b` bound to the breaker, whatever its window type.
macro_rules! with_breaker {
    ($r:expr, $b:ident => $body:expr) => {
        match $r {
            BreakerRef::Count64($b) => $body,
            BreakerRef::Count256($b) => $body,
            BreakerRef::Count1024($b) => $body,
            BreakerRef::Time($b) => $body,
        }
    };
}

/// The default configuration (see each field of `fb_breaker_config`).
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn fb_breaker_config_default() -> fb_breaker_config {
    // `default_config` cannot panic; the fallback only completes the boundary.
    guard_value("fb_breaker_config_default", FALLBACK_CONFIG, default_config)
}

/// Checks `*config` and stores in `*size` the bytes of storage `fb_breaker_init` needs for
/// it (at most `FB_BREAKER_STORAGE_SIZE`; a count window of up to 64 outcomes needs about a
/// tenth of that).
///
/// Returns `FB_OK`, `FB_ERR_INVALID_CONFIG` (see `fb_last_error()`), `FB_ERR_NULL`.
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `config` is NULL or points to an `fb_breaker_config`; `size` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_storage_size(
    config: *const fb_breaker_config,
    size: *mut usize,
) -> fb_result {
    guard("fb_breaker_storage_size", || {
        // SAFETY: the pointers obey this function's contract.
        let (config, size) =
            unsafe { (handle::input(config, "config")?, handle::out(size, "size")?) };
        let (kind, core) = config.to_core()?;
        kind.check(core)?;
        size.write(kind.storage_size());
        Ok(FB_OK)
    })
}

/// Creates a breaker on the heap and stores its handle in `*out`; free it with
/// `fb_breaker_free`.
///
/// Returns `FB_OK`, `FB_ERR_INVALID_CONFIG` (`fb_last_error()` names the field and the
/// value, and `*out` is left unchanged), `FB_ERR_NULL`.
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `config` is NULL or points to an `fb_breaker_config`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_new(
    config: *const fb_breaker_config,
    out: *mut *mut fb_breaker,
) -> fb_result {
    guard("fb_breaker_new", || {
        // SAFETY: the pointers obey this function's contract.
        let (config, out) = unsafe { (handle::input(config, "config")?, handle::out(out, "out")?) };
        let (kind, core) = config.to_core()?;
        out.write(handle::new_breaker(kind, core)?);
        Ok(FB_OK)
    })
}

/// Creates a breaker in `storage` (`size` bytes, aligned to `FB_BREAKER_STORAGE_ALIGN`),
/// without touching the heap, and stores its handle in `*out`.
///
/// `FB_BREAKER_STORAGE_SIZE` bytes always suffice; `fb_breaker_storage_size` gives the exact
/// need. The storage stays the caller's: keep it alive and unmoved while the handle is used,
/// and do not free the handle (`fb_breaker_free` ignores it); there is nothing to tear down.
///
/// Returns `FB_OK`, `FB_ERR_BUFFER` (too small or misaligned), `FB_ERR_INVALID_CONFIG`,
/// `FB_ERR_NULL`.
///
/// Thread safety: safe from any thread, on distinct storage.
///
/// # Safety
/// `storage` is NULL or valid for writes of `size` bytes and not used for anything else while
/// the breaker lives; `config` is NULL or points to an `fb_breaker_config`; `out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_init(
    storage: *mut c_void,
    size: usize,
    config: *const fb_breaker_config,
    out: *mut *mut fb_breaker,
) -> fb_result {
    guard("fb_breaker_init", || {
        if storage.is_null() {
            return Err(Error::Null("storage"));
        }
        // SAFETY: the pointers obey this function's contract.
        let (config, out) = unsafe { (handle::input(config, "config")?, handle::out(out, "out")?) };
        let (kind, core) = config.to_core()?;
        // SAFETY: `storage` obeys this function's contract.
        out.write(unsafe { handle::init_breaker(storage, size, kind, core) }?);
        Ok(FB_OK)
    })
}

/// Frees a breaker made by `fb_breaker_new`. NULL is ignored, and so is a breaker made by
/// `fb_breaker_init` (its storage is the caller's).
///
/// Thread safety: must be the last call on this breaker, from any thread.
///
/// # Safety
/// `breaker` is NULL or a live handle that no other thread is using or will use.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_free(breaker: *mut fb_breaker) {
    // SAFETY: `breaker` obeys this function's contract.
    guard_value("fb_breaker_free", (), || unsafe {
        handle::free_breaker(breaker)
    })
}

/// Asks to make one call now (on `fb_now_ns()`'s clock, read only if the breaker needs the
/// time: a closed breaker on a count window without slow-call detection reads none).
///
/// Returns `FB_OK` with the permit in `*permit` (make the call, then `fb_breaker_record`
/// it), or `FB_REJECTED` with `permit->reason` and `permit->retry_after_ns` set. Errors:
/// `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT` (not a breaker handle).
///
/// Thread safety: safe from many threads at once on one breaker (lock-free).
///
/// # Safety
/// `breaker` is NULL or a live handle; `permit` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_acquire(
    breaker: *const fb_breaker,
    permit: *mut fb_permit,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { acquire::<false>("fb_breaker_acquire", breaker, permit, 0) }
}

/// `fb_breaker_acquire` at time `now_ns` (a monotonic clock of the caller's, in
/// nanoseconds, the same for every call on this breaker).
///
/// Thread safety: safe from many threads at once on one breaker (lock-free).
///
/// # Safety
/// As `fb_breaker_acquire`.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_acquire_at(
    breaker: *const fb_breaker,
    permit: *mut fb_permit,
    now_ns: u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { acquire::<true>("fb_breaker_acquire_at", breaker, permit, now_ns) }
}

/// `fb_breaker_acquire` at `now` if `AT`, else on the monotonic clock. A const parameter,
/// so that each C function gets its own code with the choice made at compile time.
///
/// # Safety
/// As `fb_breaker_acquire`.
#[inline(always)]
unsafe fn acquire<const AT: bool>(
    func: &'static str,
    breaker: *const fb_breaker,
    permit: *mut fb_permit,
    now: u64,
) -> fb_result {
    guard(func, move || {
        // SAFETY: the pointers obey the calling function's contract.
        let (b, out) = unsafe { (handle::breaker(breaker)?, handle::out(permit, "permit")?) };
        let result = match b {
            BreakerRef::Count64(b) => acquire_direct::<_, AT>(b, now),
            BreakerRef::Count256(b) => acquire_direct::<_, AT>(b, now),
            BreakerRef::Count1024(b) => acquire_direct::<_, AT>(b, now),
            BreakerRef::Time(b) if AT => b.ffi_acquire(&At(now)),
            BreakerRef::Time(b) => b.ffi_acquire(&MonotonicClock),
        };
        let (code, p) = match result {
            Ok(p) => (FB_OK, permit_to_c(p)),
            Err(r) => (FB_REJECTED, rejection_to_c(r)),
        };
        out.write(p);
        Ok(code)
    })
}

/// Records the outcome of a call permitted by `fb_breaker_acquire`, now.
///
/// `duration_ns` is the call's duration, for slow-call detection; `FB_DURATION_AUTO`
/// measures it from the acquire. The clock is read only if the breaker needs the time.
///
/// Returns `FB_OK`; errors: `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT` (an unknown outcome,
/// a permit that was rejected or altered).
///
/// Thread safety: safe from many threads at once on one breaker (lock-free).
///
/// # Safety
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_record(
    breaker: *const fb_breaker,
    permit: fb_permit,
    outcome: fb_outcome,
    duration_ns: u64,
) -> fb_result {
    // SAFETY: `breaker` obeys this function's contract.
    unsafe {
        record::<false>(
            "fb_breaker_record",
            breaker,
            permit,
            outcome,
            duration_ns,
            0,
        )
    }
}

/// `fb_breaker_record` at time `now_ns`; with `FB_DURATION_AUTO` the duration is `now_ns`
/// minus the acquire's `now_ns`.
///
/// Thread safety: safe from many threads at once on one breaker (lock-free).
///
/// # Safety
/// As `fb_breaker_record`.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_record_at(
    breaker: *const fb_breaker,
    permit: fb_permit,
    outcome: fb_outcome,
    duration_ns: u64,
    now_ns: u64,
) -> fb_result {
    // SAFETY: `breaker` obeys this function's contract.
    unsafe {
        record::<true>(
            "fb_breaker_record_at",
            breaker,
            permit,
            outcome,
            duration_ns,
            now_ns,
        )
    }
}

/// `fb_breaker_record` at `now` if `AT`, else on the monotonic clock (see [`acquire`]).
///
/// # Safety
/// As `fb_breaker_record`.
#[inline(always)]
unsafe fn record<const AT: bool>(
    func: &'static str,
    breaker: *const fb_breaker,
    permit: fb_permit,
    outcome: fb_outcome,
    duration_ns: u64,
    now: u64,
) -> fb_result {
    guard(func, move || {
        // SAFETY: `breaker` obeys the calling function's contract.
        let b = unsafe { handle::breaker(breaker)? };
        let (p, o) = (permit_from_c(&permit)?, outcome_from_c(outcome)?);
        match b {
            BreakerRef::Count64(b) => record_direct::<_, AT>(b, p, o, duration_ns, now),
            BreakerRef::Count256(b) => record_direct::<_, AT>(b, p, o, duration_ns, now),
            BreakerRef::Count1024(b) => record_direct::<_, AT>(b, p, o, duration_ns, now),
            BreakerRef::Time(b) if AT => b.ffi_record(p, o, duration_ns, &At(now)),
            BreakerRef::Time(b) => b.ffi_record(p, o, duration_ns, &MonotonicClock),
        }
        Ok(FB_OK)
    })
}

/// Stores the current state (`FB_STATE_*`) in `*state`.
///
/// Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one breaker.
///
/// # Safety
/// `breaker` is NULL or a live handle; `state` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_state(
    breaker: *const fb_breaker,
    state: *mut fb_state,
) -> fb_result {
    guard("fb_breaker_state", || {
        // SAFETY: the pointers obey this function's contract.
        let (b, out) = unsafe { (handle::breaker(breaker)?, handle::out(state, "state")?) };
        out.write(with_breaker!(b, b => b.ffi_state()) as u32);
        Ok(FB_OK)
    })
}

/// Stores a snapshot of the state and counters, now, in `*metrics`.
///
/// Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one breaker (loads only).
///
/// # Safety
/// `breaker` is NULL or a live handle; `metrics` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_metrics(
    breaker: *const fb_breaker,
    metrics: *mut fb_breaker_stats,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { snapshot("fb_breaker_metrics", breaker, metrics, None) }
}

/// `fb_breaker_metrics` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one breaker (loads only).
///
/// # Safety
/// As `fb_breaker_metrics`.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_metrics_at(
    breaker: *const fb_breaker,
    metrics: *mut fb_breaker_stats,
    now_ns: u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
    unsafe { snapshot("fb_breaker_metrics_at", breaker, metrics, Some(now_ns)) }
}

/// # Safety
/// As `fb_breaker_metrics`.
unsafe fn snapshot(
    func: &'static str,
    breaker: *const fb_breaker,
    metrics: *mut fb_breaker_stats,
    now: Option<u64>,
) -> fb_result {
    guard(func, || {
        // SAFETY: the pointers obey the calling function's contract.
        let (b, out) = unsafe { (handle::breaker(breaker)?, handle::out(metrics, "metrics")?) };
        let now = now.unwrap_or_else(|| MonotonicClock.now_ns());
        out.write(metrics_to_c(with_breaker!(b, b => b.ffi_metrics(now))));
        Ok(FB_OK)
    })
}

/// # Safety
/// `breaker` is NULL or a live handle.
unsafe fn manual(
    func: &'static str,
    breaker: *const fb_breaker,
    op: Manual,
    now: Option<u64>,
) -> fb_result {
    guard(func, || {
        // SAFETY: `breaker` obeys the calling function's contract.
        let b = unsafe { handle::breaker(breaker)? };
        let now = now.unwrap_or_else(|| MonotonicClock.now_ns());
        with_breaker!(b, b => b.ffi_manual(op, now));
        Ok(FB_OK)
    })
}

/// Forces the breaker open: every call is rejected (`FB_REJECT_FORCED_OPEN`) until
/// `fb_breaker_reset`.
///
/// Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one breaker.
///
/// # Safety
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_force_open(breaker: *const fb_breaker) -> fb_result {
    // SAFETY: `breaker` obeys this function's contract.
    unsafe { manual("fb_breaker_force_open", breaker, Manual::ForceOpen, None) }
}

/// `fb_breaker_force_open` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one breaker.
///
/// # Safety
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_force_open_at(
    breaker: *const fb_breaker,
    now_ns: u64,
) -> fb_result {
    // SAFETY: `breaker` obeys this function's contract.
    unsafe {
        manual(
            "fb_breaker_force_open_at",
            breaker,
            Manual::ForceOpen,
            Some(now_ns),
        )
    }
}

/// Disables the breaker: every call goes through and nothing is recorded, until
/// `fb_breaker_reset`.
///
/// Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one breaker.
///
/// # Safety
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_disable(breaker: *const fb_breaker) -> fb_result {
    // SAFETY: `breaker` obeys this function's contract.
    unsafe { manual("fb_breaker_disable", breaker, Manual::Disable, None) }
}

/// `fb_breaker_disable` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one breaker.
///
/// # Safety
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_disable_at(
    breaker: *const fb_breaker,
    now_ns: u64,
) -> fb_result {
    // SAFETY: `breaker` obeys this function's contract.
    unsafe {
        manual(
            "fb_breaker_disable_at",
            breaker,
            Manual::Disable,
            Some(now_ns),
        )
    }
}

/// Metrics-only: every call goes through, outcomes are recorded, nothing trips, until
/// `fb_breaker_reset`.
///
/// Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one breaker.
///
/// # Safety
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_metrics_only(breaker: *const fb_breaker) -> fb_result {
    // SAFETY: `breaker` obeys this function's contract.
    unsafe {
        manual(
            "fb_breaker_metrics_only",
            breaker,
            Manual::MetricsOnly,
            None,
        )
    }
}

/// `fb_breaker_metrics_only` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one breaker.
///
/// # Safety
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_metrics_only_at(
    breaker: *const fb_breaker,
    now_ns: u64,
) -> fb_result {
    // SAFETY: `breaker` obeys this function's contract.
    unsafe {
        manual(
            "fb_breaker_metrics_only_at",
            breaker,
            Manual::MetricsOnly,
            Some(now_ns),
        )
    }
}

/// Back to closed with an empty window and a new generation (outstanding permits become
/// stale); lifetime counters are kept. Also ends the manual states.
///
/// Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one breaker.
///
/// # Safety
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_reset(breaker: *const fb_breaker) -> fb_result {
    // SAFETY: `breaker` obeys this function's contract.
    unsafe { manual("fb_breaker_reset", breaker, Manual::Reset, None) }
}

/// `fb_breaker_reset` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one breaker.
///
/// # Safety
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_reset_at(breaker: *const fb_breaker, now_ns: u64) -> fb_result {
    // SAFETY: `breaker` obeys this function's contract.
    unsafe { manual("fb_breaker_reset_at", breaker, Manual::Reset, Some(now_ns)) }
}

/// The name of a state: `"closed"`, `"open"`, `"half_open"`, `"forced_open"`,
/// `"disabled"`, `"metrics_only"`, or `"unknown"`. Static storage; never NULL.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn fb_state_str(state: fb_state) -> *const c_char {
    guard_value("fb_state_str", c"unknown".as_ptr(), || {
        match u8::try_from(state).ok().and_then(State::from_u8) {
            Some(State::Closed) => c"closed",
            Some(State::Open) => c"open",
            Some(State::HalfOpen) => c"half_open",
            Some(State::ForcedOpen) => c"forced_open",
            Some(State::Disabled) => c"disabled",
            Some(State::MetricsOnly) => c"metrics_only",
            None => c"unknown",
        }
        .as_ptr()
    })
}
