//! Translation of the Python constructors' arguments into the core's configuration.
//!
//! The translation converts types and units only (seconds to nanoseconds, fractions to
//! thousandths, ints to the core's widths); every rule and range is checked by the core,
//! and its `ConfigError` is reworded in Python terms: the Python parameter, the value as
//! given and, when the units differ, the value the core saw. A value that does not fit the
//! core field's type is handed to the core as the nearest end of that type, so that the
//! core's own reason is what the user reads.

use fastbreaker as fb;
use fb::limits::{
    DEFAULT_PERIOD_NS, DEFAULT_WINDOW_BUCKETS, MAX_BURST, MAX_WINDOW_BUCKETS, MAX_WINDOW_SIZE,
};
use fb::{BreakerConfig, BucketConfig};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt};

use crate::breaker::Arg;

const NS: f64 = 1e9;

/// The repr of a Python value (for messages).
pub(crate) fn repr(v: &Bound<'_, PyAny>) -> String {
    v.repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<unrepresentable>".into())
}

/// `"{repr} ({type})"`.
pub(crate) fn describe(v: &Bound<'_, PyAny>) -> String {
    let ty = v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    format!("{} ({ty})", repr(v))
}

/// The TypeError for an argument of the wrong type; the message names the argument.
pub(crate) fn type_error(name: &str, v: &Bound<'_, PyAny>, expected: &str) -> PyErr {
    PyTypeError::new_err(format!("{name} must be {expected}, got {}", describe(v)))
}

/// A Python number converted to a core integer, or the end of the core type it fell past.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wide {
    /// Fits in a u64.
    Fits(u64),
    /// Below 0.
    Below,
    /// Above u64::MAX (or not finite).
    Above,
}

impl Wide {
    /// The value for a core field whose type holds at most `max`, and whether it had to be
    /// replaced by an end of that type.
    pub(crate) fn fit(self, max: u64) -> (u64, bool) {
        match self {
            Wide::Fits(n) if n <= max => (n, false),
            Wide::Below => (0, true),
            _ => (max, true),
        }
    }
}

/// An int, not a bool.
pub(crate) fn whole(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Wide> {
    if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
        return Err(type_error(name, v, "an int"));
    }
    if let Ok(n) = v.extract::<u64>() {
        return Ok(Wide::Fits(n));
    }
    Ok(if v.lt(0)? { Wide::Below } else { Wide::Above })
}

/// An int or float, not a bool.
pub(crate) fn real(name: &str, v: &Bound<'_, PyAny>) -> PyResult<f64> {
    if v.is_instance_of::<PyBool>()
        || !(v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>())
    {
        return Err(type_error(name, v, "a number"));
    }
    v.extract::<f64>()
        .map_err(|_| PyValueError::new_err(format!("{name} is too large, got {}", repr(v))))
}

/// `x * scale`, rounded to an integer.
pub(crate) fn scaled(x: f64, scale: f64) -> Wide {
    let y = (x * scale).round();
    if y.is_nan() || y >= 18_446_744_073_709_551_616.0 {
        Wide::Above
    } else if y < 0.0 {
        Wide::Below
    } else {
        Wide::Fits(y as u64)
    }
}

/// Seconds as nanoseconds.
pub(crate) fn seconds(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Wide> {
    Ok(scaled(real(name, v)?, NS))
}

/// A duration that has two forms: `s_name` in seconds (int or float) and `ns_name` in whole
/// nanoseconds (an int, exact: float seconds cannot hold every nanosecond past 2^53). At
/// most one is given (a TypeError names both); the one given, as (its name, its value, the
/// nanoseconds), or None.
pub(crate) fn duration<'a, 'py>(
    s_name: &'static str,
    s: Option<&'a Bound<'py, PyAny>>,
    ns_name: &'static str,
    ns: Option<&'a Bound<'py, PyAny>>,
) -> PyResult<Option<(&'static str, &'a Bound<'py, PyAny>, Wide)>> {
    match (s, ns) {
        (Some(_), Some(_)) => Err(PyTypeError::new_err(format!(
            "{s_name} and {ns_name} are one option, in seconds and in nanoseconds: give one \
             of them"
        ))),
        (Some(v), None) => Ok(Some((s_name, v, seconds(s_name, v)?))),
        (None, Some(v)) => Ok(Some((ns_name, v, whole(ns_name, v)?))),
        (None, None) => Ok(None),
    }
}

/// The duration argument of a call (not a configuration field), in either form (see
/// [`duration`]): nanoseconds >= 0, saturating above u64::MAX; None when neither is given.
pub(crate) fn call_duration(
    s_name: &'static str,
    s: Option<&Bound<'_, PyAny>>,
    ns_name: &'static str,
    ns: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<u64>> {
    match duration(s_name, s, ns_name, ns)? {
        None => Ok(None),
        Some((_, _, Wide::Fits(n))) => Ok(Some(n)),
        Some((_, _, Wide::Above)) => Ok(Some(u64::MAX)),
        Some((name, v, Wide::Below)) => {
            let what = if name == s_name {
                "a number of seconds"
            } else {
                "an int of nanoseconds"
            };
            Err(PyValueError::new_err(format!(
                "{name} must be {what} >= 0, got {}",
                repr(v)
            )))
        }
    }
}

/// Whether `ns`, reported as float seconds (`ns_to_s`), builds the same nanoseconds again
/// through [`seconds`] (not every value past 2^53 ns does).
pub(crate) fn seconds_exact(ns: u64) -> bool {
    matches!(scaled(ns as f64 / NS, NS), Wide::Fits(n) if n == ns)
}

/// A whole percentage: an int, or a float with no fractional part (the core counts whole
/// percents; a fraction is refused rather than rounded).
pub(crate) fn whole_percent(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Wide> {
    if v.is_instance_of::<PyFloat>() {
        let p: f64 = v.extract()?;
        if !p.is_finite() || p.fract() != 0.0 {
            return Err(PyValueError::new_err(format!(
                "{name} must be a whole percentage (the core counts whole percents), got {}",
                repr(v)
            )));
        }
        return Ok(scaled(p, 1.0));
    }
    whole(name, v)
}

/// What the constructor gave for one core field.
struct Given {
    core: &'static str,
    py: &'static str,
    repr: String,
    /// The value did not fit the core field's type and was replaced by an end of it.
    substituted: bool,
    /// The core field holds the value in other units than the Python one.
    converted: bool,
}

/// The Python side of each core field set, to word the core's errors.
#[derive(Default)]
pub(crate) struct Translation {
    given: Vec<Given>,
    /// (field, other): a rule on `field` that involves `other` (a range bounded by it).
    related: Vec<(&'static str, &'static str)>,
}

impl Translation {
    /// Notes that core field `core` came from Python argument `py` = `v`.
    pub(crate) fn note(
        &mut self,
        core: &'static str,
        py: &'static str,
        v: &Bound<'_, PyAny>,
        substituted: bool,
    ) {
        self.given.push(Given {
            core,
            py,
            repr: repr(v),
            substituted,
            converted: core != py,
        });
    }

    /// Notes that the core's rule on `field` involves `other`, so that an error on `field`
    /// also shows the value given for `other`.
    pub(crate) fn relate(&mut self, field: &'static str, other: &'static str) {
        self.related.push((field, other));
    }

    /// The ValueError for the core's error `e`, in Python terms.
    pub(crate) fn error(&self, e: fb::ConfigError) -> PyErr {
        let mut reason = e.reason.to_string();
        match e.field {
            // The range's end (the window type's capacity), not for a window that cannot
            // change at run time.
            _ if e.reason.contains("run time") => {}
            "window_size" => reason.push_str(&format!(" ({MAX_WINDOW_SIZE})")),
            "window_buckets" => reason.push_str(&format!(" ({MAX_WINDOW_BUCKETS})")),
            _ => {}
        }
        let msg = match self.given.iter().rev().find(|g| g.core == e.field) {
            Some(g) if g.substituted => format!("invalid {} = {}: {reason}", g.py, g.repr),
            Some(g) if g.converted => format!(
                "invalid {} = {} ({} = {}): {reason}",
                g.py, g.repr, e.field, e.value
            ),
            _ => format!("invalid {} = {}: {reason}", e.field, e.value),
        };
        let mut msg = msg;
        for (_, other) in self.related.iter().filter(|(f, _)| *f == e.field) {
            if let Some(g) = self.given.iter().rev().find(|g| g.core == *other) {
                msg.push_str(&format!(" (given {} = {})", g.py, g.repr));
            }
        }
        PyValueError::new_err(msg)
    }

    /// After the core accepted the configuration: a value that did not fit its field's type
    /// was accepted only as that type's end, which is not what was asked.
    pub(crate) fn check_substitutions(&self) -> PyResult<()> {
        match self.given.iter().find(|g| g.substituted) {
            Some(g) => Err(PyValueError::new_err(format!(
                "invalid {} = {}: out of the range of the core's {}",
                g.py, g.repr, g.core
            ))),
            None => Ok(()),
        }
    }
}

// ----- the breaker's and the bucket's options: one translation for the constructors and
// for `reconfigure` -----

/// The breaker's configuration options as given (each absent, None or a value), in the
/// constructor's names.
#[derive(Default)]
pub(crate) struct BreakerArgs<'py> {
    pub failure_threshold: Arg<'py>,
    pub wait_duration: Arg<'py>,
    pub wait_duration_ns: Arg<'py>,
    pub failure_rate_threshold: Arg<'py>,
    pub slow_call_rate_threshold: Arg<'py>,
    pub slow_call_duration: Arg<'py>,
    pub slow_call_duration_ns: Arg<'py>,
    pub minimum_calls: Arg<'py>,
    pub window: Arg<'py>,
    pub window_seconds: Arg<'py>,
    pub bucket_duration_ns: Arg<'py>,
    pub buckets: Arg<'py>,
    pub backoff_factor: Arg<'py>,
    pub max_wait_duration: Arg<'py>,
    pub max_wait_duration_ns: Arg<'py>,
    pub jitter: Arg<'py>,
    pub jitter_seed: Arg<'py>,
    pub half_open_max_calls: Arg<'py>,
    pub success_threshold: Arg<'py>,
}

/// Whether an argument was given as `None` (the option's off or unset state).
fn given_none(a: &Arg<'_>) -> bool {
    matches!(a, Arg::Given(v) if v.is_none())
}

/// The breaker configuration `args` make of `base`: the constructor's (`window_kind` None;
/// `base` the defaults; a time window when its span is given) or a reconfiguration's
/// (`window_kind` Some(time): the window's kind is fixed; `base` the configuration in
/// force, so that an option not given keeps its value). `None` turns an optional rule off
/// (`failure_threshold`, the rate thresholds, `max_wait_duration`: no cap of its own,
/// `jitter_seed`: random) and leaves any other option as it is. Types are checked here, and
/// the values are noted in the returned Translation, which words the core's errors.
pub(crate) fn breaker_config(
    args: &BreakerArgs<'_>,
    base: BreakerConfig,
    window_kind: Option<bool>,
) -> PyResult<(BreakerConfig, bool, Translation)> {
    let mut c = base;
    let mut tr = Translation::default();
    let u32max = u32::MAX as u64;
    let u16max = u16::MAX as u64;
    if let Arg::Given(v) = &args.failure_threshold {
        c.failure_threshold = if v.is_none() {
            None
        } else {
            let (n, sub) = whole("failure_threshold", v)?.fit(u32max);
            tr.note("failure_threshold", "failure_threshold", v, sub);
            Some(n as u32)
        };
    }
    if let Some((given, v, w)) = duration(
        "wait_duration",
        args.wait_duration.value(),
        "wait_duration_ns",
        args.wait_duration_ns.value(),
    )? {
        let (n, sub) = w.fit(u64::MAX);
        tr.note("wait_duration_ns", given, v, sub);
        c.wait_duration_ns = n;
    }
    if given_none(&args.failure_rate_threshold) {
        c.failure_rate_threshold = None;
    }
    if let Some(v) = args.failure_rate_threshold.value() {
        let (n, sub) = whole_percent("failure_rate_threshold", v)?.fit(u8::MAX as u64);
        tr.note("failure_rate_threshold", "failure_rate_threshold", v, sub);
        c.failure_rate_threshold = Some(n as u8);
    }
    if given_none(&args.slow_call_rate_threshold) {
        c.slow_call_rate_threshold = None;
    }
    if let Some(v) = args.slow_call_rate_threshold.value() {
        let (n, sub) = whole_percent("slow_call_rate_threshold", v)?.fit(u8::MAX as u64);
        tr.note(
            "slow_call_rate_threshold",
            "slow_call_rate_threshold",
            v,
            sub,
        );
        c.slow_call_rate_threshold = Some(n as u8);
    }
    if let Some((given, v, w)) = duration(
        "slow_call_duration",
        args.slow_call_duration.value(),
        "slow_call_duration_ns",
        args.slow_call_duration_ns.value(),
    )? {
        let (n, sub) = w.fit(u64::MAX);
        tr.note("slow_call_duration_ns", given, v, sub);
        c.slow_call_duration_ns = n;
    }
    if let Some(v) = args.minimum_calls.value() {
        let (n, sub) = whole("minimum_calls", v)?.fit(u32max);
        tr.note("minimum_calls", "minimum_calls", v, sub);
        c.minimum_calls = n as u32;
    }
    // The time window: its span in seconds (split into `buckets`), or the duration of one
    // bucket in nanoseconds, as the core holds it.
    let span = duration(
        "window_seconds",
        args.window_seconds.value(),
        "bucket_duration_ns",
        args.bucket_duration_ns.value(),
    )?;
    let window = args.window.value();
    let buckets = args.buckets.value();
    let fixed = |given: &str, kind: &str| {
        PyValueError::new_err(format!(
            "{given} applies to a {kind} window, and this breaker's window is of the other \
             kind, fixed for its life: build a new breaker"
        ))
    };
    let time = match window_kind {
        None => span.is_some(),
        Some(time) => time,
    };
    if time {
        if window.is_some() {
            return Err(match (window_kind, &span) {
                (None, Some((given, _, _))) => PyValueError::new_err(format!(
                    "window and {given} are exclusive: give one of them"
                )),
                _ => fixed("window", "count"),
            });
        }
        let count = match buckets {
            Some(b) => {
                let (n, sub) = whole("buckets", b)?.fit(u16max);
                tr.note("window_buckets", "buckets", b, sub);
                c.window_buckets = Some(n as u16);
                n
            }
            None => c.window_buckets.unwrap_or(DEFAULT_WINDOW_BUCKETS) as u64,
        };
        match span {
            Some((given, v, w)) if given == "bucket_duration_ns" => {
                let (n, sub) = w.fit(u64::MAX);
                tr.note("bucket_duration_ns", given, v, sub);
                c.bucket_duration_ns = n;
            }
            Some((given, v, w)) => {
                let span = match w {
                    Wide::Fits(n) => n,
                    Wide::Below => 0,
                    Wide::Above => u64::MAX,
                };
                c.bucket_duration_ns = span / count.max(1);
                tr.note("bucket_duration_ns", given, v, false);
            }
            None => {}
        }
    } else {
        match (window_kind, &span, buckets) {
            (Some(_), Some((given, _, _)), _) => return Err(fixed(given, "time")),
            (Some(_), None, Some(_)) => return Err(fixed("buckets", "time")),
            (None, _, Some(b)) => {
                return Err(PyValueError::new_err(format!(
                    "buckets is given only with window_seconds or bucket_duration_ns, got \
                     buckets={}",
                    repr(b)
                )))
            }
            _ => {}
        }
        if let Some(v) = window {
            let (n, sub) = whole("window", v)?.fit(u16max);
            tr.note("window_size", "window", v, sub);
            c.window_size = Some(n as u16);
        }
    }
    if let Some(v) = args.backoff_factor.value() {
        let (n, sub) = scaled(real("backoff_factor", v)?, 1000.0).fit(u32max);
        tr.note("backoff_factor_milli", "backoff_factor", v, sub);
        c.backoff_factor_milli = n as u32;
    }
    match duration(
        "max_wait_duration",
        args.max_wait_duration.value(),
        "max_wait_duration_ns",
        args.max_wait_duration_ns.value(),
    )? {
        Some((given, v, w)) => {
            let (n, sub) = w.fit(u64::MAX);
            tr.note("max_wait_duration_ns", given, v, sub);
            c.max_wait_duration_ns = Some(n);
        }
        None if given_none(&args.max_wait_duration) || given_none(&args.max_wait_duration_ns) => {
            c.max_wait_duration_ns = None;
        }
        None => {}
    }
    if let Some(v) = args.jitter.value() {
        let (n, sub) = scaled(real("jitter", v)?, 1000.0).fit(u16max);
        tr.note("jitter_permille", "jitter", v, sub);
        c.jitter_permille = n as u16;
    }
    if given_none(&args.jitter_seed) {
        c.jitter_seed = None;
    }
    if let Some(v) = args.jitter_seed.value() {
        let (n, sub) = whole("jitter_seed", v)?.fit(u64::MAX);
        tr.note("jitter_seed", "jitter_seed", v, sub);
        c.jitter_seed = Some(n);
    }
    if let Some(v) = args.half_open_max_calls.value() {
        let (n, sub) = whole("half_open_max_calls", v)?.fit(u16max);
        tr.note("half_open_max_calls", "half_open_max_calls", v, sub);
        c.half_open_max_calls = n as u16;
    }
    if let Some(v) = args.success_threshold.value() {
        let (n, sub) = whole("success_threshold", v)?.fit(u16max);
        tr.note("success_threshold", "success_threshold", v, sub);
        c.success_threshold = n as u16;
    }
    tr.relate("max_wait_duration_ns", "wait_duration_ns");
    tr.relate("backoff_factor_milli", "wait_duration_ns");
    tr.relate("backoff_factor_milli", "max_wait_duration_ns");
    tr.relate("minimum_calls", "window_size");
    Ok((c, time, tr))
}

/// A rate limiter's rate as the Python API holds it: `rate` tokens (a float) every
/// `period_ns` nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate {
    pub rate: f64,
    pub period_ns: u64,
}

impl Rate {
    /// The core's (tokens, period): whole tokens per whole nanoseconds as given; any other
    /// rate as one token per (period / rate) nanoseconds.
    pub(crate) fn core(self) -> (u64, u64) {
        let r = self.rate;
        match scaled(r, 1.0) {
            Wide::Fits(k) if k as f64 == r => (k, self.period_ns),
            Wide::Fits(_) if r > 0.0 => (1, (self.period_ns as f64 / r).round() as u64),
            w => (w.fit(u64::MAX).0, self.period_ns),
        }
    }
}

/// The bucket configuration of a limiter's `rate`, `per` / `per_ns` and `burst`: the
/// constructor's (`base` None: `per` defaults to 1 s, `burst` to the rate rounded up) or a
/// reconfiguration's (`base` the rate and configuration in force, kept for what is not
/// given). The Rate the API reports, the configuration, and the Translation of the values.
pub(crate) fn bucket_config(
    rate: Option<&Bound<'_, PyAny>>,
    per: Option<&Bound<'_, PyAny>>,
    per_ns: Option<&Bound<'_, PyAny>>,
    burst: Option<&Bound<'_, PyAny>>,
    base: Option<(Rate, BucketConfig)>,
) -> PyResult<(Rate, BucketConfig, Translation)> {
    let mut tr = Translation::default();
    let r = match (rate, &base) {
        (Some(v), _) => {
            let r = real("rate", v)?;
            tr.note("rate", "rate", v, r < 0.0 || !r.is_finite());
            r
        }
        (None, Some((given, _))) => given.rate,
        (None, None) => 0.0,
    };
    let period = match duration("per", per, "per_ns", per_ns)? {
        Some((given, v, w)) => {
            let (p, sub) = w.fit(u64::MAX);
            tr.note("period_ns", given, v, sub);
            p
        }
        None => base.map_or(DEFAULT_PERIOD_NS, |(given, _)| given.period_ns),
    };
    let shown = Rate {
        rate: r,
        period_ns: period,
    };
    let (tokens, period_ns) = shown.core();
    let burst = match (burst, &base) {
        (Some(v), _) => {
            let (b, sub) = whole("burst", v)?.fit(u64::MAX);
            tr.note("burst", "burst", v, sub);
            b
        }
        (None, Some((_, c))) => c.burst,
        (None, None) => (r.ceil().max(1.0) as u64).min(MAX_BURST),
    };
    tr.relate("rate", "period_ns");
    let config = BucketConfig {
        rate: tokens,
        period_ns,
        burst,
    };
    Ok((shown, config, tr))
}
