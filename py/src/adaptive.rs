//! `AdaptiveLimiter` (a concurrency or rate limit moved by the backend's answers) and
//! `AdaptiveThrottle` (Google SRE client-side throttling), over the core's primitives.

use fastbreaker as fb;
use fb::{AdaptiveConfig, AdaptiveMode, AdaptiveOutcome, AnyRule, Clock, ThrottleConfig};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString};
use std::sync::{Mutex, MutexGuard};

use crate::clock::{PyManualClock, TimeSource};
use crate::config::{real, repr, type_error, Translation};
use crate::native::ns_to_s;

const NS: f64 = 1e9;

/// A finite number >= 0 (int or float, not bool), times `scale`, rounded; values past
/// u64::MAX saturate (the core's range check then names them).
fn scaled_arg(name: &str, v: &Bound<'_, PyAny>, scale: f64) -> PyResult<u64> {
    let x = real(name, v)?;
    if !x.is_finite() || x < 0.0 {
        return Err(PyValueError::new_err(format!(
            "invalid {name} = {}: must be a finite number >= 0",
            repr(v)
        )));
    }
    let y = (x * scale).round();
    Ok(if y >= 18_446_744_073_709_551_615.0 {
        u64::MAX
    } else {
        y as u64
    })
}

/// An optional `name` keyword: a str or None.
fn optional_name(name: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Py<PyString>>> {
    match name {
        None => Ok(None),
        Some(n) if n.is_none() => Ok(None),
        Some(n) => n
            .cast::<PyString>()
            .map(|n| Some(n.clone().unbind()))
            .map_err(|_| type_error("name", n, "a str or None")),
    }
}

/// The limiter's options as Python names them, applied to `config`, with the translation
/// that words the core's errors in those names.
fn apply_limiter_option(
    config: &mut AdaptiveConfig,
    tr: &mut Translation,
    key: &str,
    v: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let milli = |name: &str| scaled_arg(name, v, 1000.0);
    match key {
        "initial_limit" => {
            config.initial_limit_milli = milli(key)?;
            tr.note("initial_limit_milli", "initial_limit", v, false);
        }
        "min_limit" => {
            config.min_limit_milli = milli(key)?;
            tr.note("min_limit_milli", "min_limit", v, false);
        }
        "max_limit" => {
            config.max_limit_milli = milli(key)?;
            tr.note("max_limit_milli", "max_limit", v, false);
        }
        "increase" => {
            config.increase_milli = milli(key)?;
            tr.note("increase_milli", "increase", v, false);
        }
        "decrease" => {
            config.decrease_permille = milli(key)?.min(u32::MAX as u64) as u32;
            tr.note("decrease_permille", "decrease", v, false);
        }
        "rtt" => {
            config.rtt_ns = scaled_arg(key, v, NS)?;
            tr.note("rtt_ns", "rtt", v, false);
        }
        "latency_target" => {
            if v.is_none() {
                config.latency_target_ns = 0;
            } else {
                let ns = scaled_arg(key, v, NS)?;
                if ns == 0 {
                    return Err(PyValueError::new_err(format!(
                        "invalid latency_target = {}: must be above 0 (None: no target)",
                        repr(v)
                    )));
                }
                config.latency_target_ns = ns;
                tr.note("latency_target_ns", "latency_target", v, false);
            }
        }
        _ => {
            return Err(PyTypeError::new_err(format!(
                "unknown option '{key}': expected one of min_limit, max_limit, increase, \
                 decrease, rtt, latency_target"
            )))
        }
    }
    Ok(())
}

/// A concurrency or rate limit that follows the backend: it grows while calls succeed and
/// shrinks (at most once per `rtt`) on overload (a 429/503, a timeout, a latency above
/// `latency_target`); a `retry_after` pauses every call until it passes.
#[pyclass(frozen, module = "fastbreaker._native", name = "AdaptiveLimiter")]
pub(crate) struct PyAdaptiveLimiter {
    inner: fb::AdaptiveLimiter<AnyRule>,
    rule: AnyRule,
    name: Option<Py<PyString>>,
    clock: TimeSource,
}

#[pymethods]
impl PyAdaptiveLimiter {
    #[new]
    #[pyo3(signature = (initial_limit, *, min_limit = None, max_limit = None, mode = "concurrency", rule = "aimd", increase = None, decrease = None, latency_target = None, rtt = None, name = None, clock = None))]
    #[pyo3(
        text_signature = "(initial_limit, *, min_limit=1.0, max_limit=1000.0, mode='concurrency', rule='aimd', increase=1.0, decrease=0.5, latency_target=None, rtt=1.0, name=None, clock=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new<'py>(
        initial_limit: &Bound<'py, PyAny>,
        min_limit: Option<&Bound<'py, PyAny>>,
        max_limit: Option<&Bound<'py, PyAny>>,
        mode: &str,
        rule: &str,
        increase: Option<&Bound<'py, PyAny>>,
        decrease: Option<&Bound<'py, PyAny>>,
        latency_target: Option<&Bound<'py, PyAny>>,
        rtt: Option<&Bound<'py, PyAny>>,
        name: Option<&Bound<'py, PyAny>>,
        clock: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let mode = match mode {
            "concurrency" => AdaptiveMode::Concurrency,
            "rate" => AdaptiveMode::Rate,
            other => {
                return Err(PyValueError::new_err(format!(
                    "invalid mode = '{other}': must be 'concurrency' or 'rate'"
                )))
            }
        };
        let rule = match rule {
            "aimd" => AnyRule::Aimd,
            "gradient" => AnyRule::Gradient,
            other => {
                return Err(PyValueError::new_err(format!(
                    "invalid rule = '{other}': must be 'aimd' or 'gradient'"
                )))
            }
        };
        let mut config = AdaptiveConfig::new(mode, 0);
        let mut tr = Translation::default();
        apply_limiter_option(&mut config, &mut tr, "initial_limit", initial_limit)?;
        let options = [
            ("min_limit", min_limit),
            ("max_limit", max_limit),
            ("increase", increase),
            ("decrease", decrease),
            ("rtt", rtt),
            ("latency_target", latency_target),
        ];
        for (key, v) in options {
            if let Some(v) = v {
                if !v.is_none() || key == "latency_target" {
                    apply_limiter_option(&mut config, &mut tr, key, v)?;
                } else {
                    return Err(type_error(key, v, "a number"));
                }
            }
        }
        tr.relate("initial_limit_milli", "min_limit_milli");
        tr.relate("initial_limit_milli", "max_limit_milli");
        tr.relate("max_limit_milli", "min_limit_milli");
        let inner = fb::AdaptiveLimiter::with_rule(config, rule).map_err(|e| tr.error(e))?;
        Ok(PyAdaptiveLimiter {
            inner,
            rule,
            name: optional_name(name)?,
            clock: TimeSource::from_arg(clock)?,
        })
    }

    /// The current limit (calls in flight, or calls per second in rate mode).
    #[getter]
    fn limit(&self) -> f64 {
        self.inner.limit_milli() as f64 / 1000.0
    }

    /// Calls admitted and not yet recorded.
    #[getter]
    fn in_flight(&self) -> u32 {
        self.inner.in_flight()
    }

    /// The name given, or None.
    #[getter]
    fn name(&self, py: Python<'_>) -> Option<Py<PyString>> {
        self.name.as_ref().map(|n| n.clone_ref(py))
    }

    /// The mode: "concurrency" or "rate".
    #[getter]
    fn mode(&self) -> &'static str {
        mode_name(self.inner.mode())
    }

    /// The rule: "aimd" or "gradient".
    #[getter]
    fn rule(&self) -> &'static str {
        rule_name(self.rule)
    }

    /// The clock given, or None (the monotonic clock).
    #[getter]
    fn clock(&self, py: Python<'_>) -> Option<Py<PyManualClock>> {
        self.clock.object(py)
    }

    /// True: the call is admitted, and the caller must call `record()` once when it ends.
    /// False: refused (the limit is reached, the rate's next slot is later, or a
    /// Retry-After has not passed: see `retry_after()`).
    fn try_acquire(&self) -> bool {
        // The binding keeps no permit object: record() rebuilds one (the in-flight count
        // never goes negative; an extra record is counted as unmatched).
        self.inner.try_acquire(self.clock.now_ns()).is_ok()
    }

    /// Records how an admitted call ended: "success" (with its `latency` in seconds, which
    /// the gradient rule needs), "overload" (a 429/503 or a timeout; `retry_after` seconds
    /// from the server pause every call until they pass) or "ignore" (neither: the call is
    /// just released).
    #[pyo3(signature = (outcome = "success", *, latency = None, retry_after = None))]
    fn record(
        &self,
        outcome: &str,
        latency: Option<&Bound<'_, PyAny>>,
        retry_after: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let latency = latency.filter(|v| !v.is_none());
        let retry_after = retry_after.filter(|v| !v.is_none());
        let outcome = match outcome {
            "success" => AdaptiveOutcome::Success {
                latency_ns: match latency {
                    Some(v) => scaled_arg("latency", v, NS)?,
                    None => 0,
                },
            },
            "overload" => AdaptiveOutcome::Overload {
                retry_after_ns: retry_after
                    .map(|v| scaled_arg("retry_after", v, NS))
                    .transpose()?,
            },
            "ignore" => AdaptiveOutcome::Ignore,
            other => {
                return Err(PyValueError::new_err(format!(
                    "invalid outcome = '{other}': must be 'success', 'overload' or 'ignore'"
                )))
            }
        };
        if retry_after.is_some() && !matches!(outcome, AdaptiveOutcome::Overload { .. }) {
            return Err(PyValueError::new_err(
                "retry_after is only for outcome=\"overload\"",
            ));
        }
        let now = self.clock.now_ns();
        self.inner
            .record(fb::binding::adaptive_permit(now), outcome, now);
        Ok(())
    }

    /// Seconds until `try_acquire()` could succeed as far as time goes (a Retry-After
    /// pause, the rate mode's pacing); 0.0 if now. A full concurrency limit waits for a
    /// `record()`, not for time: that reads 0.0.
    fn retry_after(&self) -> f64 {
        ns_to_s(self.inner.retry_after(self.clock.now_ns()))
    }

    /// Changes min_limit, max_limit, increase, decrease, rtt and latency_target (None: no
    /// target) at run time, all at once or none. The limit in force is kept (clamped into
    /// the new bounds), and so are the calls in flight and a pause.
    #[pyo3(signature = (**changes))]
    fn reconfigure(&self, changes: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        let mut config = self.inner.config();
        let mut tr = Translation::default();
        if let Some(changes) = changes {
            for (k, v) in changes.iter() {
                let key: String = k.extract()?;
                apply_limiter_option(&mut config, &mut tr, &key, &v)?;
            }
        }
        tr.relate("max_limit_milli", "min_limit_milli");
        self.inner.reconfigure(config).map_err(|e| match e {
            fb::ReconfigureError::Invalid(e) => tr.error(e),
            _ => PyRuntimeError::new_err(e.to_string()),
        })
    }

    /// The limit, calls in flight and counters, with the configuration in force.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.inner.metrics(self.clock.now_ns());
        let c = self.inner.config();
        let d = PyDict::new(py);
        d.set_item("name", self.name(py))?;
        d.set_item("mode", self.mode())?;
        d.set_item("rule", self.rule())?;
        d.set_item("limit", m.limit_milli as f64 / 1000.0)?;
        d.set_item("in_flight", m.in_flight)?;
        d.set_item("admitted", m.admitted)?;
        d.set_item("rejected", m.rejected)?;
        d.set_item("paused_rejections", m.paused_rejections)?;
        d.set_item("overloads", m.overloads)?;
        d.set_item("decreases", m.decreases)?;
        d.set_item("unmatched_records", m.unmatched_records)?;
        d.set_item(
            "min_rtt",
            (m.min_rtt_ns != 0).then(|| ns_to_s(m.min_rtt_ns)),
        )?;
        d.set_item("paused_for", ns_to_s(m.paused_for_ns))?;
        d.set_item("min_limit", c.min_limit_milli as f64 / 1000.0)?;
        d.set_item("max_limit", c.max_limit_milli as f64 / 1000.0)?;
        d.set_item("increase", c.increase_milli as f64 / 1000.0)?;
        d.set_item("decrease", c.decrease_permille as f64 / 1000.0)?;
        d.set_item("rtt", ns_to_s(c.rtt_ns))?;
        d.set_item(
            "latency_target",
            (c.latency_target_ns != 0).then(|| ns_to_s(c.latency_target_ns)),
        )?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let name = match &self.name {
            Some(n) => format!("{:?} ", n.bind(py).to_string()),
            None => String::new(),
        };
        format!(
            "<AdaptiveLimiter {name}{} {} limit={} in_flight={}>",
            self.mode(),
            self.rule(),
            self.limit(),
            self.in_flight()
        )
    }
}

fn mode_name(mode: AdaptiveMode) -> &'static str {
    match mode {
        AdaptiveMode::Concurrency => "concurrency",
        AdaptiveMode::Rate => "rate",
    }
}

fn rule_name(rule: AnyRule) -> &'static str {
    match rule {
        AnyRule::Aimd => "aimd",
        AnyRule::Gradient => "gradient",
    }
}

fn apply_throttle_option(
    config: &mut ThrottleConfig,
    tr: &mut Translation,
    key: &str,
    v: &Bound<'_, PyAny>,
) -> PyResult<()> {
    match key {
        "k" => {
            config.k_milli = scaled_arg(key, v, 1000.0)?;
            tr.note("k_milli", "k", v, false);
        }
        "window" => {
            config.window_ns = scaled_arg(key, v, NS)?;
            tr.note("window_ns", "window", v, false);
        }
        "buckets" => {
            if v.is_instance_of::<PyBool>() {
                return Err(type_error(key, v, "an int"));
            }
            let n: i64 = v.extract().map_err(|_| type_error(key, v, "an int"))?;
            config.buckets = n.clamp(0, u32::MAX as i64) as u32;
            tr.note("buckets", "buckets", v, n < 0 || n > u32::MAX as i64);
        }
        _ => {
            return Err(PyTypeError::new_err(format!(
                "unknown option '{key}': expected one of k, window, buckets"
            )))
        }
    }
    Ok(())
}

/// Google SRE client-side throttling: each call is refused locally with probability
/// `max(0, (requests - k * accepts) / (requests + 1))` over a sliding `window` of seconds.
/// Requests count at `try_acquire()` (before the call, refused ones too), accepts at
/// `record(True)`.
#[pyclass(frozen, module = "fastbreaker._native", name = "AdaptiveThrottle")]
pub(crate) struct PyAdaptiveThrottle {
    inner: fb::AdaptiveThrottle,
    name: Option<Py<PyString>>,
    clock: TimeSource,
    /// The window in force as given (the core keeps `window / buckets` per bucket, and its
    /// `config()` reads the window back as `buckets` whole buckets: 10 ns in 3 buckets reads
    /// 9 ns). `reconfigure` starts from this, so that a change of `buckets` alone keeps the
    /// window given, as in the core's and the C API's terms. Held across `reconfigure`, which
    /// it serializes.
    window_ns: Mutex<u64>,
}

#[pymethods]
impl PyAdaptiveThrottle {
    #[new]
    #[pyo3(signature = (k = None, window = None, *, buckets = None, name = None, clock = None, seed = None))]
    #[pyo3(
        text_signature = "(k=2.0, window=60.0, *, buckets=10, name=None, clock=None, seed=None)"
    )]
    fn new<'py>(
        k: Option<&Bound<'py, PyAny>>,
        window: Option<&Bound<'py, PyAny>>,
        buckets: Option<&Bound<'py, PyAny>>,
        name: Option<&Bound<'py, PyAny>>,
        clock: Option<&Bound<'py, PyAny>>,
        seed: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let mut config = ThrottleConfig::new();
        let mut tr = Translation::default();
        for (key, v) in [("k", k), ("window", window), ("buckets", buckets)] {
            if let Some(v) = v {
                apply_throttle_option(&mut config, &mut tr, key, v)?;
            }
        }
        tr.relate("window_ns", "buckets");
        let seed = match seed.filter(|s| !s.is_none()) {
            None => None,
            Some(s) => {
                if s.is_instance_of::<PyBool>() {
                    return Err(type_error("seed", s, "an int or None"));
                }
                let n: i128 = s
                    .extract()
                    .map_err(|_| type_error("seed", s, "an int or None"))?;
                if !(0..=u64::MAX as i128).contains(&n) {
                    return Err(PyValueError::new_err(format!(
                        "invalid seed = {n}: must be in 0..=2**64-1"
                    )));
                }
                Some(n as u64)
            }
        };
        let inner = fb::AdaptiveThrottle::new(config, seed).map_err(|e| tr.error(e))?;
        Ok(PyAdaptiveThrottle {
            inner,
            name: optional_name(name)?,
            clock: TimeSource::from_arg(clock)?,
            window_ns: Mutex::new(config.window_ns),
        })
    }

    /// Counts a request; False: refused locally (do not make the call).
    fn try_acquire(&self) -> bool {
        self.inner.try_acquire(self.clock.now_ns()).is_ok()
    }

    /// Records the backend's answer to an admitted call: True if it accepted the call.
    fn record(&self, accepted: &Bound<'_, PyAny>) -> PyResult<()> {
        let accepted = accepted
            .cast::<PyBool>()
            .map_err(|_| type_error("accepted", accepted, "a bool"))?
            .is_true();
        self.inner.record(accepted, self.clock.now_ns());
        Ok(())
    }

    /// The probability that the next call is refused locally.
    #[getter]
    fn reject_probability(&self) -> f64 {
        self.inner.reject_probability_ppm(self.clock.now_ns()) as f64 / 1e6
    }

    /// The name given, or None.
    #[getter]
    fn name(&self, py: Python<'_>) -> Option<Py<PyString>> {
        self.name.as_ref().map(|n| n.clone_ref(py))
    }

    /// Changes k, window and buckets at run time, all at once or none (a change of the
    /// window or the bucket count moves the window's counts into the current bucket).
    #[pyo3(signature = (**changes))]
    fn reconfigure(&self, changes: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        let mut window = self.window();
        let mut config = self.inner.config();
        config.window_ns = *window;
        let mut tr = Translation::default();
        if let Some(changes) = changes {
            for (k, v) in changes.iter() {
                let key: String = k.extract()?;
                apply_throttle_option(&mut config, &mut tr, &key, &v)?;
            }
        }
        tr.relate("window_ns", "buckets");
        self.inner
            .reconfigure(config, self.clock.now_ns())
            .map_err(|e| match e {
                fb::ReconfigureError::Invalid(e) => tr.error(e),
                _ => PyRuntimeError::new_err(e.to_string()),
            })?;
        *window = config.window_ns;
        Ok(())
    }

    /// Requests and accepts in the window, the probability, and counters.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.inner.metrics(self.clock.now_ns());
        let c = self.inner.config();
        let d = PyDict::new(py);
        d.set_item("name", self.name(py))?;
        d.set_item("requests", m.requests)?;
        d.set_item("accepts", m.accepts)?;
        d.set_item("reject_probability", m.reject_probability_ppm as f64 / 1e6)?;
        d.set_item("throttled", m.throttled)?;
        d.set_item("admitted", m.admitted)?;
        d.set_item("k", c.k_milli as f64 / 1000.0)?;
        d.set_item("window", ns_to_s(*self.window()))?;
        d.set_item("buckets", c.buckets)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let c = self.inner.config();
        format!(
            "<AdaptiveThrottle k={} window={}s reject_probability={}>",
            c.k_milli as f64 / 1000.0,
            ns_to_s(*self.window()),
            self.reject_probability()
        )
    }
}

impl PyAdaptiveThrottle {
    /// The window in force, locked (a panic while it was held left it intact: a `u64`).
    fn window(&self) -> MutexGuard<'_, u64> {
        self.window_ns.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Registers the classes in the module.
pub(crate) fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyAdaptiveLimiter>()?;
    m.add_class::<PyAdaptiveThrottle>()?;
    Ok(())
}
