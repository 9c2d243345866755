//! `fb_adaptive_*` (an adaptive concurrency or rate limit) and `fb_throttle_*` (Google SRE
//! client-side throttling).

use core_fb::{
    AdaptiveConfig, AdaptiveLimiter, AdaptiveMode, AdaptiveOutcome, AdaptiveRejected,
    AdaptiveThrottle, AnyRule, ThrottleConfig,
};

use crate::error::{guard, guard_value, Error};
use crate::handle;
use crate::{fb_adaptive, fb_result, fb_throttle, FB_OK, FB_REJECTED};

/// Concurrency mode: admits while fewer than `floor(limit)` calls are in flight.
pub const FB_ADAPTIVE_CONCURRENCY: u32 = 0;
/// Rate mode: admits `limit` calls per second, paced (a burst of one call).
pub const FB_ADAPTIVE_RATE: u32 = 1;
/// The AIMD rule: additive increase, multiplicative decrease.
pub const FB_ADAPTIVE_AIMD: u32 = 0;
/// The gradient rule (min-RTT over sampled latency, with a queue term).
pub const FB_ADAPTIVE_GRADIENT: u32 = 1;
/// Outcome: the backend served the call (pass its latency).
pub const FB_ADAPTIVE_SUCCESS: u32 = 0;
/// Outcome: the backend is overloaded (a 429/503 or a timeout; pass its Retry-After).
pub const FB_ADAPTIVE_OVERLOAD: u32 = 1;
/// Outcome: neither (a 404, a cancellation): the call is just released.
pub const FB_ADAPTIVE_IGNORE: u32 = 2;

/// An adaptive limiter's configuration. Limits are in thousandths of a call (in flight, or
/// per second in rate mode): 10000 is a limit of 10. Start from
/// `fb_adaptive_config_default`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct fb_adaptive_config {
    /// `FB_ADAPTIVE_CONCURRENCY` or `FB_ADAPTIVE_RATE`; fixed once built.
    pub mode: u32,
    /// `FB_ADAPTIVE_AIMD` or `FB_ADAPTIVE_GRADIENT`; fixed once built.
    pub rule: u32,
    /// The limit to start from, within the bounds (ignored by `fb_adaptive_reconfigure`).
    pub initial_limit_milli: u64,
    /// The floor: at least 1 (rate) or 1000 (concurrency). Default 1000.
    pub min_limit_milli: u64,
    /// The ceiling: the floor ..= 10^9. Default 10^6 (a limit of 1000).
    pub max_limit_milli: u64,
    /// Additive increase per `limit` successes. Default 1000.
    pub increase_milli: u64,
    /// Multiplicative decrease on overload, 1..=999 thousandths. Default 500.
    pub decrease_permille: u32,
    /// The gradient rule's smoothing, 1..=1000 thousandths. Default 200.
    pub smoothing_permille: u32,
    /// At most one decrease per this window, 1 ns ..= 1 hour. Default 1 s.
    pub rtt_ns: u64,
    /// A success slower than this is an overload; 0: no target.
    pub latency_target_ns: u64,
    /// The gradient rule's queue term. Default 4000.
    pub queue_milli: u64,
}

/// Counters of an adaptive limiter, from `fb_adaptive_metrics`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct fb_adaptive_stats {
    /// The limit now, in thousandths.
    pub limit_milli: u64,
    /// Calls in flight.
    pub in_flight: u32,
    /// Calls admitted in all.
    pub admitted: u64,
    /// Calls refused in all.
    pub rejected: u64,
    /// Calls refused during a Retry-After pause.
    pub paused_rejections: u64,
    /// Overload signals recorded.
    pub overloads: u64,
    /// Decreases applied (at most one per RTT window).
    pub decreases: u64,
    /// Records with no call in flight (ignored).
    pub unmatched_records: u64,
    /// Nanoseconds until a Retry-After pause ends (0: not paused).
    pub paused_for_ns: u64,
}

fn mode_of(mode: u32) -> Result<AdaptiveMode, Error> {
    match mode {
        FB_ADAPTIVE_CONCURRENCY => Ok(AdaptiveMode::Concurrency),
        FB_ADAPTIVE_RATE => Ok(AdaptiveMode::Rate),
        m => Err(Error::Invalid(
            "mode",
            m as u64,
            "must be FB_ADAPTIVE_CONCURRENCY (0) or FB_ADAPTIVE_RATE (1)",
        )),
    }
}

fn core_config(c: &fb_adaptive_config) -> Result<AdaptiveConfig, Error> {
    Ok(AdaptiveConfig {
        mode: mode_of(c.mode)?,
        initial_limit_milli: c.initial_limit_milli,
        min_limit_milli: c.min_limit_milli,
        max_limit_milli: c.max_limit_milli,
        increase_milli: c.increase_milli,
        decrease_permille: c.decrease_permille,
        rtt_ns: c.rtt_ns,
        latency_target_ns: c.latency_target_ns,
        queue_milli: c.queue_milli,
        smoothing_permille: c.smoothing_permille,
    })
}

/// The default configuration (the core's table) in `mode`, starting at
/// `initial_limit_milli`, with the AIMD rule. An unknown mode reads as concurrency.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn fb_adaptive_config_default(
    mode: u32,
    initial_limit_milli: u64,
) -> fb_adaptive_config {
    let make = move || {
        let m = mode_of(mode).unwrap_or(AdaptiveMode::Concurrency);
        let c = AdaptiveConfig::new(m, initial_limit_milli);
        fb_adaptive_config {
            mode: m as u32,
            rule: FB_ADAPTIVE_AIMD,
            initial_limit_milli,
            min_limit_milli: c.min_limit_milli,
            max_limit_milli: c.max_limit_milli,
            increase_milli: c.increase_milli,
            decrease_permille: c.decrease_permille,
            smoothing_permille: c.smoothing_permille,
            rtt_ns: c.rtt_ns,
            latency_target_ns: c.latency_target_ns,
            queue_milli: c.queue_milli,
        }
    };
    guard_value("fb_adaptive_config_default", make(), make)
}

/// Creates an adaptive limiter and stores its handle in `*out`; free it with
/// `fb_adaptive_free`.
///
/// Returns `FB_OK`, `FB_ERR_INVALID_CONFIG` (`fb_last_error()` names the field, the value and
/// the range), `FB_ERR_INVALID_ARGUMENT` (an unknown mode or rule), `FB_ERR_NULL`.
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `config` is NULL or points to an `fb_adaptive_config`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_adaptive_new(
    config: *const fb_adaptive_config,
    out: *mut *mut fb_adaptive,
) -> fb_result {
    guard("fb_adaptive_new", || {
        // SAFETY: the pointers obey this function's contract.
        let (config, out) = unsafe { (handle::input(config, "config")?, handle::out(out, "out")?) };
        let rule = match config.rule {
            FB_ADAPTIVE_AIMD => AnyRule::Aimd,
            FB_ADAPTIVE_GRADIENT => AnyRule::Gradient,
            r => {
                return Err(Error::Invalid(
                    "rule",
                    r as u64,
                    "must be FB_ADAPTIVE_AIMD (0) or FB_ADAPTIVE_GRADIENT (1)",
                ))
            }
        };
        let limiter = AdaptiveLimiter::with_rule(core_config(config)?, rule)?;
        out.write(handle::new_adaptive(limiter));
        Ok(FB_OK)
    })
}

/// Frees a limiter made by `fb_adaptive_new`; NULL is ignored.
///
/// Thread safety: must be the last call on this limiter.
///
/// # Safety
/// `limiter` is NULL or a live handle that no other thread is using or will use.
#[no_mangle]
pub unsafe extern "C" fn fb_adaptive_free(limiter: *mut fb_adaptive) {
    // SAFETY: `limiter` obeys this function's contract.
    guard_value("fb_adaptive_free", (), || unsafe {
        handle::free_adaptive(limiter)
    })
}

/// Admits a call at `now_ns`: `FB_OK` (record it once with `fb_adaptive_record`) or
/// `FB_REJECTED`, storing in `*retry_after_ns` (optional: NULL to skip) the nanoseconds until
/// a retry could succeed as far as time goes (a Retry-After pause, the rate's pacing; 0 when
/// a full concurrency limit waits for a record).
///
/// Other results: `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once (lock-free).
///
/// # Safety
/// `limiter` is NULL or a live handle; `retry_after_ns` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_adaptive_try_acquire(
    limiter: *const fb_adaptive,
    now_ns: u64,
    retry_after_ns: *mut u64,
) -> fb_result {
    guard("fb_adaptive_try_acquire", || {
        // SAFETY: the pointers obey this function's contract.
        let (l, wait) = unsafe { (handle::adaptive(limiter)?, handle::out_opt(retry_after_ns)) };
        match l.try_acquire(now_ns) {
            Ok(_) => {
                if let Some(w) = wait {
                    w.write(0);
                }
                Ok(FB_OK)
            }
            Err(e) => {
                if let Some(w) = wait {
                    w.write(match e {
                        AdaptiveRejected::LimitReached { .. } => 0,
                        other => other.retry_after().unwrap_or(0),
                    });
                }
                Ok(FB_REJECTED)
            }
        }
    })
}

/// Records how an admitted call ended at `now_ns`: `FB_ADAPTIVE_SUCCESS` (with
/// `latency_ns`, which the gradient rule needs; 0: unknown), `FB_ADAPTIVE_OVERLOAD` (with
/// `retry_after_ns` from the server, 0: none; it pauses every acquire until it passes) or
/// `FB_ADAPTIVE_IGNORE`. A record with no call in flight changes no count (it is counted as
/// unmatched).
///
/// Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT` (an unknown outcome).
///
/// Thread safety: safe from many threads at once.
///
/// # Safety
/// `limiter` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_adaptive_record(
    limiter: *const fb_adaptive,
    outcome: u32,
    latency_ns: u64,
    retry_after_ns: u64,
    now_ns: u64,
) -> fb_result {
    guard("fb_adaptive_record", || {
        // SAFETY: `limiter` obeys this function's contract.
        let l = unsafe { handle::adaptive(limiter)? };
        let outcome = match outcome {
            FB_ADAPTIVE_SUCCESS => AdaptiveOutcome::Success { latency_ns },
            FB_ADAPTIVE_OVERLOAD => AdaptiveOutcome::Overload {
                retry_after_ns: (retry_after_ns != 0).then_some(retry_after_ns),
            },
            FB_ADAPTIVE_IGNORE => AdaptiveOutcome::Ignore,
            o => {
                return Err(Error::Invalid(
                    "outcome",
                    o as u64,
                    "must be FB_ADAPTIVE_SUCCESS, FB_ADAPTIVE_OVERLOAD or FB_ADAPTIVE_IGNORE",
                ))
            }
        };
        l.record(core_fb::binding::adaptive_permit(now_ns), outcome, now_ns);
        Ok(FB_OK)
    })
}

/// The limit now, in thousandths (0 for a NULL or foreign handle: see `fb_last_error()`).
///
/// Thread safety: safe from many threads at once.
///
/// # Safety
/// `limiter` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_adaptive_limit(limiter: *const fb_adaptive) -> u64 {
    let mut limit = 0;
    let code = guard("fb_adaptive_limit", || {
        // SAFETY: `limiter` obeys this function's contract.
        limit = unsafe { handle::adaptive(limiter)? }.limit_milli();
        Ok(FB_OK)
    });
    if code == FB_OK {
        limit
    } else {
        0
    }
}

/// Changes the bounds, increase, decrease, RTT window, latency target and gradient terms at
/// run time, all at once or none; the limit in force (clamped into the new bounds), the
/// calls in flight and a pause are kept. `mode` cannot change (`FB_ERR_INVALID_CONFIG`
/// naming `mode`); `rule` and `initial_limit_milli` are ignored.
///
/// Returns `FB_OK`, `FB_ERR_INVALID_CONFIG`, `FB_ERR_BUSY` (another reconfiguration held on
/// too long: try again), `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once.
///
/// # Safety
/// `limiter` is NULL or a live handle; `config` is NULL or points to an `fb_adaptive_config`.
#[no_mangle]
pub unsafe extern "C" fn fb_adaptive_reconfigure(
    limiter: *const fb_adaptive,
    config: *const fb_adaptive_config,
) -> fb_result {
    guard("fb_adaptive_reconfigure", || {
        // SAFETY: the pointers obey this function's contract.
        let (l, config) = unsafe { (handle::adaptive(limiter)?, handle::input(config, "config")?) };
        l.reconfigure(core_config(config)?)?;
        Ok(FB_OK)
    })
}

/// Stores a snapshot of the counters at `now_ns` in `*stats`.
///
/// Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once (loads only).
///
/// # Safety
/// `limiter` is NULL or a live handle; `stats` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_adaptive_metrics(
    limiter: *const fb_adaptive,
    now_ns: u64,
    stats: *mut fb_adaptive_stats,
) -> fb_result {
    guard("fb_adaptive_metrics", || {
        // SAFETY: the pointers obey this function's contract.
        let (l, out) = unsafe { (handle::adaptive(limiter)?, handle::out(stats, "stats")?) };
        let m = l.metrics(now_ns);
        out.write(fb_adaptive_stats {
            limit_milli: m.limit_milli,
            in_flight: m.in_flight,
            admitted: m.admitted,
            rejected: m.rejected,
            paused_rejections: m.paused_rejections,
            overloads: m.overloads,
            decreases: m.decreases,
            unmatched_records: m.unmatched_records,
            paused_for_ns: m.paused_for_ns,
        });
        Ok(FB_OK)
    })
}

/// An adaptive throttle's configuration. Start from `fb_throttle_config_default`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct fb_throttle_config {
    /// K in thousandths, 1000..=1000000. Default 2000.
    pub k_milli: u64,
    /// The sliding window, `buckets` ns ..= one day. Default 60 s.
    pub window_ns: u64,
    /// Buckets of the window, 1..=64. Default 10.
    pub buckets: u32,
}

/// The default throttle configuration: K = 2 over 60 s in 10 buckets.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn fb_throttle_config_default() -> fb_throttle_config {
    let c = ThrottleConfig::new();
    let config = fb_throttle_config {
        k_milli: c.k_milli,
        window_ns: c.window_ns,
        buckets: c.buckets,
    };
    guard_value("fb_throttle_config_default", config, || config)
}

fn throttle_config(c: &fb_throttle_config) -> ThrottleConfig {
    ThrottleConfig {
        k_milli: c.k_milli,
        window_ns: c.window_ns,
        buckets: c.buckets,
    }
}

/// Creates a throttle drawing from a generator seeded with `*seed` (NULL: from the
/// operating system's randomness) and stores its handle in `*out`; free it with
/// `fb_throttle_free`.
///
/// Returns `FB_OK`, `FB_ERR_INVALID_CONFIG`, `FB_ERR_NULL`.
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `config` is NULL or points to an `fb_throttle_config`; `seed` is NULL or points to a
/// `uint64_t`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fb_throttle_new(
    config: *const fb_throttle_config,
    seed: *const u64,
    out: *mut *mut fb_throttle,
) -> fb_result {
    guard("fb_throttle_new", || {
        // SAFETY: the pointers obey this function's contract.
        let (config, out) = unsafe { (handle::input(config, "config")?, handle::out(out, "out")?) };
        // SAFETY: `seed` is NULL or points to a u64 (contract).
        let seed = unsafe { seed.as_ref() }.copied();
        let throttle = AdaptiveThrottle::new(throttle_config(config), seed)?;
        out.write(handle::new_throttle(throttle));
        Ok(FB_OK)
    })
}

/// Frees a throttle made by `fb_throttle_new`; NULL is ignored.
///
/// Thread safety: must be the last call on this throttle.
///
/// # Safety
/// `throttle` is NULL or a live handle that no other thread is using or will use.
#[no_mangle]
pub unsafe extern "C" fn fb_throttle_free(throttle: *mut fb_throttle) {
    // SAFETY: `throttle` obeys this function's contract.
    guard_value("fb_throttle_free", (), || unsafe {
        handle::free_throttle(throttle)
    })
}

/// Counts a request at `now_ns` (before the call) and admits it (`FB_OK`) or refuses it
/// locally (`FB_REJECTED`) with probability `max(0, (requests - K*accepts) / (requests+1))`
/// of the counts before it.
///
/// Other results: `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once (lock-free).
///
/// # Safety
/// `throttle` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_throttle_try_acquire(
    throttle: *const fb_throttle,
    now_ns: u64,
) -> fb_result {
    guard("fb_throttle_try_acquire", || {
        // SAFETY: `throttle` obeys this function's contract.
        let t = unsafe { handle::throttle(throttle)? };
        Ok(if t.try_acquire(now_ns).is_ok() {
            FB_OK
        } else {
            FB_REJECTED
        })
    })
}

/// Records the backend's answer to an admitted request at `now_ns`: `accepted` counts an
/// accept.
///
/// Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once.
///
/// # Safety
/// `throttle` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_throttle_record(
    throttle: *const fb_throttle,
    accepted: bool,
    now_ns: u64,
) -> fb_result {
    guard("fb_throttle_record", || {
        // SAFETY: `throttle` obeys this function's contract.
        unsafe { handle::throttle(throttle)? }.record(accepted, now_ns);
        Ok(FB_OK)
    })
}

/// The probability at `now_ns` that the next request is refused, in millionths (0 for a
/// NULL or foreign handle: see `fb_last_error()`).
///
/// Thread safety: safe from many threads at once.
///
/// # Safety
/// `throttle` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fb_throttle_reject_probability_ppm(
    throttle: *const fb_throttle,
    now_ns: u64,
) -> u32 {
    let mut ppm = 0;
    let code = guard("fb_throttle_reject_probability_ppm", || {
        // SAFETY: `throttle` obeys this function's contract.
        ppm = unsafe { handle::throttle(throttle)? }.reject_probability_ppm(now_ns);
        Ok(FB_OK)
    });
    if code == FB_OK {
        ppm
    } else {
        0
    }
}

/// Changes K, the window and the buckets at run time (at `now_ns`), all at once or none.
///
/// Returns `FB_OK`, `FB_ERR_INVALID_CONFIG`, `FB_ERR_BUSY`, `FB_ERR_NULL`,
/// `FB_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: safe from many threads at once.
///
/// # Safety
/// `throttle` is NULL or a live handle; `config` is NULL or points to an
/// `fb_throttle_config`.
#[no_mangle]
pub unsafe extern "C" fn fb_throttle_reconfigure(
    throttle: *const fb_throttle,
    config: *const fb_throttle_config,
    now_ns: u64,
) -> fb_result {
    guard("fb_throttle_reconfigure", || {
        // SAFETY: the pointers obey this function's contract.
        let (t, config) = unsafe {
            (
                handle::throttle(throttle)?,
                handle::input(config, "config")?,
            )
        };
        t.reconfigure(throttle_config(config), now_ns)?;
        Ok(FB_OK)
    })
}
