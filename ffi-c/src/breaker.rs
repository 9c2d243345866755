//! `fb_breaker_*`: the circuit breaker.

use core::ffi::{c_char, c_void};

use core_fb::{
    CircuitBreaker, Clock, ConfigError, MonotonicClock, Outcome, Permit, ReconfigureError,
    Rejected, State, Transition, Window,
};

use crate::breaker_types::*;
use crate::error::{guard, guard_value, Error};
use crate::handle::{self, with_breaker, BreakerRef, BreakerView};
use crate::listener::fb_breaker_listener;
use crate::{fb_breaker, fb_result, FB_OK, FB_REJECTED};

/// Manual state changes.
#[derive(Debug, Clone, Copy)]
enum Manual {
    ForceOpen,
    Disable,
    MetricsOnly,
    Reset,
    Trip,
    HalfOpen,
}

/// Acquire on a breaker matched by type: at the caller's `now` if `AT`, else on the
/// monotonic clock, read only if needed.
#[inline(always)]
fn acquire_on<W: Window, const AT: bool>(
    b: &CircuitBreaker<W>,
    now: u64,
) -> Result<Permit, Rejected> {
    if AT {
        b.acquire(now)
    } else {
        b.acquire_with(&MonotonicClock)
    }
}

/// Record on a breaker matched by type; see [`acquire_on`].
#[inline(always)]
fn record_on<W: Window, const AT: bool>(
    cell: &BreakerView<'_, W>,
    permit: Permit,
    outcome: Outcome,
    duration_ns: u64,
    now: u64,
) -> Option<Transition> {
    let b = cell.breaker;
    if AT {
        if duration_ns == FB_DURATION_AUTO {
            b.record(permit, outcome, now)
        } else {
            b.record_with_duration(permit, outcome, duration_ns, now)
        }
    } else if duration_ns == FB_DURATION_AUTO
        || (!cell.detects_slow_calls && b.config().slow_call_rate_threshold.is_none())
    {
        // A given duration matters only with slow-call detection; otherwise the clock is
        // read only if the breaker needs the time. A breaker built without the rule is asked
        // for the settings in force: a reconfiguration (in a region: by any process) may
        // have turned it on.
        b.record_with(&MonotonicClock, permit, outcome)
    } else {
        b.record_with_duration(permit, outcome, duration_ns, MonotonicClock.now_ns())
    }
}

/// The default configuration: the core's defaults (`BreakerConfig::new()`) on a count
/// window. Rules off are `FB_OFF`; the jitter seed is `FB_RANDOM_SEED` (a random seed per
/// breaker).
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn fb_breaker_config_default() -> fb_breaker_config {
    guard_value("fb_breaker_config_default", DEFAULT_CONFIG, || {
        DEFAULT_CONFIG
    })
}

/// Checks `*config` with the core and stores in `*size` the bytes of storage
/// `fb_breaker_init` needs for it (at most `FB_BREAKER_STORAGE_SIZE`; a count window needs
/// about a quarter of that).
///
/// Returns `FB_OK`, `FB_ERR_INVALID_CONFIG` (see `fb_last_error()`; `*size` is left
/// unchanged), `FB_ERR_NULL` (`config` or `size` NULL).
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
        let core = config.to_core()?;
        handle::check_breaker(&core)?;
        size.write(handle::breaker_storage_size(core.window));
        Ok(FB_OK)
    })
}

/// Creates a breaker on the heap and stores its handle in `*out`; free it with
/// `fb_breaker_free`.
///
/// Returns `FB_OK`, `FB_ERR_INVALID_CONFIG` (`fb_last_error()` gives the core's message,
/// naming the field, the value and the legal range; `*out` is left unchanged),
/// `FB_ERR_NULL` (`config` or `out` NULL).
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
        let core = config.to_core()?;
        out.write(handle::new_breaker(&core)?);
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
/// `FB_ERR_NULL` (`storage`, `config` or `out` NULL). On an error `*out` is left unchanged.
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
        let core = config.to_core()?;
        // SAFETY: `storage` obeys this function's contract.
        out.write(unsafe { handle::init_breaker(storage, size, &core) }?);
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
/// `FB_ERR_NULL` (`breaker` or `permit` NULL), `FB_ERR_INVALID_ARGUMENT` (not a breaker
/// handle). An acquire that admits the first probe moves the breaker from open to half-open
/// and notifies the listener.
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
        let (code, transition) = with_breaker!(b, cell => {
            match acquire_on::<_, AT>(cell.breaker, now) {
                Ok(p) => {
                    let (p, transition) = permit_to_c(p);
                    out.write(p);
                    (FB_OK, transition.map(|t| (cell.listener, t)))
                }
                Err(r) => {
                    out.write(rejection_to_c(r));
                    (FB_REJECTED, None)
                }
            }
        });
        if let Some((listener, t)) = transition {
            listener.notify(breaker, Some(t));
        }
        Ok(code)
    })
}

/// Records the outcome of a call permitted by `fb_breaker_acquire`, now, and marks the
/// permit used.
///
/// `permit` points to the struct the acquire filled. A permit counts once: recording it
/// again returns `FB_ERR_PERMIT_USED` and changes nothing. `duration_ns` is the call's
/// duration, for slow-call detection; `FB_DURATION_AUTO` measures it from the acquire. The
/// clock is read only if the breaker needs the time. A record that changes the state (a
/// trip, a close, a reopen) notifies the listener before it returns.
///
/// Returns `FB_OK`; errors: `FB_ERR_NULL` (`breaker` or `permit` NULL),
/// `FB_ERR_PERMIT_USED`, `FB_ERR_INVALID_ARGUMENT` (an unknown outcome, a permit that was
/// rejected or altered, not a breaker handle). On an error nothing changes.
///
/// Thread safety: safe from many threads at once on one breaker (lock-free), each with its
/// own permit.
///
/// # Safety
/// `breaker` is NULL or a live handle; `permit` is NULL or points to an `fb_permit` that no
/// other thread accesses during the call.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_record(
    breaker: *const fb_breaker,
    permit: *mut fb_permit,
    outcome: fb_outcome,
    duration_ns: u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
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
/// Thread safety: safe from many threads at once on one breaker (lock-free), each with its
/// own permit.
///
/// # Safety
/// As `fb_breaker_record`.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_record_at(
    breaker: *const fb_breaker,
    permit: *mut fb_permit,
    outcome: fb_outcome,
    duration_ns: u64,
    now_ns: u64,
) -> fb_result {
    // SAFETY: the pointers obey this function's contract.
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
    permit: *mut fb_permit,
    outcome: fb_outcome,
    duration_ns: u64,
    now: u64,
) -> fb_result {
    guard(func, move || {
        // SAFETY: the pointers obey the calling function's contract.
        let (b, permit) = unsafe { (handle::breaker(breaker)?, handle::inout(permit, "permit")?) };
        let (p, o) = (permit_from_c(permit)?, outcome_from_c(outcome)?);
        permit.used = true;
        with_breaker!(b, cell => {
            let t = record_on::<_, AT>(&cell, p, o, duration_ns, now);
            cell.listener.notify(breaker, t);
        });
        Ok(FB_OK)
    })
}

/// Stores the current state (`FB_STATE_*`) in `*state`.
///
/// Returns `FB_OK`, `FB_ERR_NULL` (`breaker` or `state` NULL), `FB_ERR_INVALID_ARGUMENT`.
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
        out.write(with_breaker!(b, cell => cell.breaker.state()) as u32);
        Ok(FB_OK)
    })
}

/// Stores a snapshot of the state and counters, now, in `*metrics`.
///
/// Returns `FB_OK`, `FB_ERR_NULL` (`breaker` or `metrics` NULL), `FB_ERR_INVALID_ARGUMENT`.
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
        out.write(metrics_to_c(
            with_breaker!(b, cell => cell.breaker.metrics(now)),
        ));
        Ok(FB_OK)
    })
}

/// Stores the breaker's configuration, read back from the breaker, in `*config`: every
/// field as the core resolved it (the window's size or bucket count as built, the window
/// fields of the other kind at their defaults). `jitter_seed` is the seed in use: the given
/// one, or the random one drawn the first time the breaker jittered (`FB_RANDOM_SEED` until
/// then). Passing it to `fb_breaker_new` builds a breaker with the same rules.
///
/// Returns `FB_OK`, `FB_ERR_NULL` (`breaker` or `config` NULL), `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one breaker (loads only).
///
/// # Safety
/// `breaker` is NULL or a live handle; `config` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_get_config(
    breaker: *const fb_breaker,
    config: *mut fb_breaker_config,
) -> fb_result {
    guard("fb_breaker_get_config", || {
        // SAFETY: the pointers obey this function's contract.
        let (b, out) = unsafe { (handle::breaker(breaker)?, handle::out(config, "config")?) };
        let c = match b {
            BreakerRef::Count(cell) => {
                fb_breaker_config::from_core(&cell.breaker.config(), WindowKind::Count)
            }
            BreakerRef::Time(cell) => {
                fb_breaker_config::from_core(&cell.breaker.config(), WindowKind::Time)
            }
        };
        out.write(c);
        Ok(FB_OK)
    })
}

/// Changes the breaker's configuration at run time, keeping its state: the state, the
/// window's outcomes, the consecutive failures, the backoff step, the probes and the permits
/// out all carry over, and the next decision is made on the new settings (a lowered
/// `failure_threshold` that the failures so far already reach trips at the next failure; an
/// open breaker's wait is measured from when it opened, with the new wait). Start from
/// `fb_breaker_get_config` and change fields.
///
/// `*config` is checked as `fb_breaker_new` checks it. The window is fixed for the breaker's
/// life: `window_kind`, and `window_size` (count window) or `window_buckets` and
/// `bucket_duration_ns` (time window), must be the breaker's (the other kind's window fields
/// are ignored). `jitter_seed` = `FB_RANDOM_SEED` keeps a seed already drawn at random.
/// Atomic: every decision reads either the old settings or the new ones. No state change,
/// so the listener is not called.
///
/// On a breaker from `fb_region_breaker`, the change is made in the region: every process
/// attached to the slot decides on the new settings, and later attaches must ask for them.
///
/// Returns `FB_OK`; `FB_ERR_INVALID_CONFIG` (`fb_last_error()` names the field, the value and
/// the legal range, or says that the field cannot change at run time); `FB_ERR_BUSY` (another
/// reconfiguration of this breaker was under way for too long: try again); `FB_ERR_NULL`
/// (`breaker` or `config` NULL); `FB_ERR_INVALID_ARGUMENT` (not a breaker handle). On an
/// error nothing changes.
///
/// Thread safety: safe from many threads at once on one breaker; reconfigurations are
/// serialised, and acquires and records never wait for them.
///
/// # Safety
/// `breaker` is NULL or a live handle; `config` is NULL or points to an `fb_breaker_config`.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_reconfigure(
    breaker: *const fb_breaker,
    config: *const fb_breaker_config,
) -> fb_result {
    guard("fb_breaker_reconfigure", || {
        // SAFETY: the pointers obey this function's contract.
        let (b, config) = unsafe { (handle::breaker(breaker)?, handle::input(config, "config")?) };
        let core = config.to_core()?;
        let result = match b {
            BreakerRef::Count(cell) => {
                same_window(core.window, WindowKind::Count)?;
                cell.breaker.reconfigure(core.config)
            }
            BreakerRef::Time(cell) => {
                same_window(core.window, WindowKind::Time)?;
                cell.breaker.reconfigure(core.config)
            }
        };
        result.map_err(|e| match e {
            ReconfigureError::Invalid(e) => Error::Config(core.explain(e)),
            e => e.into(),
        })?;
        Ok(FB_OK)
    })
}

/// Refuses a configuration of another window kind than the breaker's.
fn same_window(asked: WindowKind, built: WindowKind) -> Result<(), Error> {
    if asked == built {
        return Ok(());
    }
    let value = match asked {
        WindowKind::Count => FB_WINDOW_COUNT,
        WindowKind::Time => FB_WINDOW_TIME,
    };
    Err(Error::Config(ConfigError {
        field: "window_kind",
        value: value.into(),
        reason: "cannot change at run time (the window holds the outcomes so far): build a \
                 new breaker",
    }))
}

/// Installs `listener`, called with `user_data` after each state change of this breaker
/// (see `fb_breaker_listener` for where it runs and what it may call); NULL removes it. One
/// listener per breaker: this replaces the previous one.
///
/// A change being notified on another thread while this runs may still call the previous
/// listener with the previous `user_data`: keep that data valid until such calls are over.
///
/// Returns `FB_OK`, `FB_ERR_NULL` (`breaker` NULL), `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one breaker, and from inside a listener.
///
/// # Safety
/// `breaker` is NULL or a live handle; `listener` is NULL or a function that may be called
/// with `user_data` from any thread that uses the breaker, until it is replaced.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_set_listener(
    breaker: *const fb_breaker,
    listener: fb_breaker_listener,
    user_data: *mut c_void,
) -> fb_result {
    guard("fb_breaker_set_listener", || {
        // SAFETY: `breaker` obeys this function's contract.
        let b = unsafe { handle::breaker(breaker)? };
        with_breaker!(b, cell => cell.listener.set(listener, user_data));
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
        with_breaker!(b, cell => {
            let b = cell.breaker;
            let t = match op {
                Manual::ForceOpen => b.force_open(now),
                Manual::Disable => b.disable(now),
                Manual::MetricsOnly => b.metrics_only(now),
                Manual::Reset => b.reset(now),
                Manual::Trip => b.trip(now),
                Manual::HalfOpen => b.half_open(now),
            };
            cell.listener.notify(breaker, t);
        });
        Ok(FB_OK)
    })
}

/// Forces the breaker open: every call is rejected (`FB_REJECT_FORCED_OPEN`) until
/// `fb_breaker_reset`.
///
/// Notifies the listener if the state changed. Returns `FB_OK`, `FB_ERR_NULL` (`breaker`
/// NULL), `FB_ERR_INVALID_ARGUMENT`.
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
/// Notifies the listener if the state changed. Returns `FB_OK`, `FB_ERR_NULL` (`breaker`
/// NULL), `FB_ERR_INVALID_ARGUMENT`.
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
/// Notifies the listener if the state changed. Returns `FB_OK`, `FB_ERR_NULL` (`breaker`
/// NULL), `FB_ERR_INVALID_ARGUMENT`.
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

/// Back to closed with an empty window, a zero backoff step and a new generation
/// (outstanding permits become stale); lifetime counters are kept. Also ends the manual
/// states.
///
/// Notifies the listener if the state changed. Returns `FB_OK`, `FB_ERR_NULL` (`breaker`
/// NULL), `FB_ERR_INVALID_ARGUMENT`.
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

/// Opens the breaker now, as if a rule had fired: calls are refused until the first open
/// wait (`wait_duration_ns`, no backoff) has passed, then probes are admitted. Starts a new
/// generation (outstanding permits become stale) and counts as a trip.
///
/// Notifies the listener if the state changed. Returns `FB_OK`, `FB_ERR_NULL` (`breaker`
/// NULL), `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one breaker.
///
/// # Safety
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_trip(breaker: *const fb_breaker) -> fb_result {
    // SAFETY: `breaker` obeys this function's contract.
    unsafe { manual("fb_breaker_trip", breaker, Manual::Trip, None) }
}

/// `fb_breaker_trip` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one breaker.
///
/// # Safety
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_trip_at(breaker: *const fb_breaker, now_ns: u64) -> fb_result {
    // SAFETY: `breaker` obeys this function's contract.
    unsafe { manual("fb_breaker_trip_at", breaker, Manual::Trip, Some(now_ns)) }
}

/// Moves the breaker to half-open now: the next calls are probes (up to
/// `half_open_max_calls` at once), and `success_threshold` successes close it. Starts a new
/// generation (outstanding permits become stale).
///
/// Notifies the listener if the state changed. Returns `FB_OK`, `FB_ERR_NULL` (`breaker`
/// NULL), `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once on one breaker.
///
/// # Safety
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_half_open(breaker: *const fb_breaker) -> fb_result {
    // SAFETY: `breaker` obeys this function's contract.
    unsafe { manual("fb_breaker_half_open", breaker, Manual::HalfOpen, None) }
}

/// `fb_breaker_half_open` at time `now_ns`.
///
/// Thread safety: safe from many threads at once on one breaker.
///
/// # Safety
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_breaker_half_open_at(
    breaker: *const fb_breaker,
    now_ns: u64,
) -> fb_result {
    // SAFETY: `breaker` obeys this function's contract.
    unsafe {
        manual(
            "fb_breaker_half_open_at",
            breaker,
            Manual::HalfOpen,
            Some(now_ns),
        )
    }
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
