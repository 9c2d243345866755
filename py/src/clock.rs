//! Where a primitive reads the time: the core's monotonic clock, or a `ManualClock` that
//! moves only when told to (tests, simulations, the shared scenarios).

use std::sync::Arc;

use fastbreaker as fb;
use fb::{Clock, MonotonicClock};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt};

const NS: f64 = 1e9;

/// The clock a breaker, limiter or bulkhead reads.
#[derive(Debug, Default)]
pub(crate) enum TimeSource {
    /// `CLOCK_MONOTONIC`, the same in every process of the machine.
    #[default]
    Monotonic,
    /// A `fastbreaker.ManualClock`, shared with the Python object.
    Manual(Arc<fb::ManualClock>, Py<PyManualClock>),
}

impl Clock for TimeSource {
    #[inline]
    fn now_ns(&self) -> u64 {
        match self {
            TimeSource::Monotonic => MonotonicClock.now_ns(),
            TimeSource::Manual(c, _) => c.now_ns(),
        }
    }
}

impl TimeSource {
    /// From a `clock=` argument: None (or absent) or a `ManualClock`.
    pub(crate) fn from_arg(clock: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        match clock {
            None => Ok(TimeSource::Monotonic),
            Some(c) if c.is_none() => Ok(TimeSource::Monotonic),
            Some(c) => match c.cast::<PyManualClock>() {
                Ok(m) => Ok(TimeSource::Manual(
                    Arc::clone(&m.get().inner),
                    m.clone().unbind(),
                )),
                Err(_) => Err(PyTypeError::new_err(format!(
                    "clock must be a fastbreaker.ManualClock or None, got {}",
                    c.repr().map(|r| r.to_string()).unwrap_or_default()
                ))),
            },
        }
    }

    /// The `ManualClock` object, or None for the monotonic clock.
    pub(crate) fn object(&self, py: Python<'_>) -> Option<Py<PyManualClock>> {
        match self {
            TimeSource::Monotonic => None,
            TimeSource::Manual(_, obj) => Some(obj.clone_ref(py)),
        }
    }

    /// The Python object, for the garbage collector.
    pub(crate) fn py_object(&self) -> Option<&Py<PyManualClock>> {
        match self {
            TimeSource::Monotonic => None,
            TimeSource::Manual(_, obj) => Some(obj),
        }
    }
}

/// Seconds (an int or float, not a bool, finite and >= 0) as nanoseconds, rounded.
fn seconds_to_ns(name: &str, v: &Bound<'_, PyAny>) -> PyResult<u64> {
    if v.is_instance_of::<PyBool>()
        || !(v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>())
    {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a number of seconds, got {}",
            v.repr().map(|r| r.to_string()).unwrap_or_default()
        )));
    }
    let s: f64 = v.extract()?;
    let ns = (s * NS).round();
    if !(0.0..1.8446744073709552e19).contains(&ns) {
        return Err(PyValueError::new_err(format!(
            "{name} must be a number of seconds in 0..2^64 ns, got {s}"
        )));
    }
    Ok(ns as u64)
}

/// A clock that moves only when told to, for tests and simulations.
///
/// `ManualClock(start=0.0)` reads `start` seconds until it is moved with `advance()` or
/// `set()` (seconds, as every time in fastbreaker's Python API) or `advance_ns()` /
/// `set_ns()` (exact nanoseconds). Give it as `clock=` to `CircuitBreaker`, `RateLimiter`
/// or `Bulkhead`: they then read this clock instead of the system's monotonic clock.
/// It is thread-safe; moving it backwards is allowed, and the primitives take a time earlier
/// than one they have seen as "no time has passed".
#[pyclass(frozen, module = "fastbreaker._native", name = "ManualClock")]
pub(crate) struct PyManualClock {
    pub(crate) inner: Arc<fb::ManualClock>,
}

#[pymethods]
impl PyManualClock {
    #[new]
    #[pyo3(signature = (start = None))]
    fn new(start: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let ns = match start {
            Some(s) => seconds_to_ns("start", s)?,
            None => 0,
        };
        Ok(PyManualClock {
            inner: Arc::new(fb::ManualClock::new(ns)),
        })
    }

    /// Moves the clock forward by `seconds` (>= 0); returns the new time in seconds.
    fn advance(&self, seconds: &Bound<'_, PyAny>) -> PyResult<f64> {
        let d = seconds_to_ns("seconds", seconds)?;
        Ok(self.inner.advance(d) as f64 / NS)
    }

    /// Moves the clock forward by `ns` nanoseconds; returns the new time in nanoseconds.
    fn advance_ns(&self, ns: u64) -> u64 {
        self.inner.advance(ns)
    }

    /// Sets the clock to `seconds`.
    fn set(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.set(seconds_to_ns("seconds", seconds)?);
        Ok(())
    }

    /// Sets the clock to `ns` nanoseconds.
    fn set_ns(&self, ns: u64) {
        self.inner.set(ns)
    }

    /// The time, in seconds.
    fn now(&self) -> f64 {
        self.inner.now_ns() as f64 / NS
    }

    /// The time, in nanoseconds.
    fn now_ns(&self) -> u64 {
        self.inner.now_ns()
    }

    fn __repr__(&self) -> String {
        format!("<ManualClock now_ns={}>", self.inner.now_ns())
    }
}
