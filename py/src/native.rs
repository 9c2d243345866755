//! The PyO3 module `fastbreaker._native`: frozen classes around the lock-free core.
//!
//! Nothing here takes a lock on a hot path: a decorated sync call is one `acquire` and one
//! `record` on the core, both compare-and-swap or plain loads. Listeners run after the core
//! has committed a change, with no lock held; a listener that raises is logged.

use std::ffi::CStr;

use fastbreaker as fb;
use fb::{Clock, MonotonicClock};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyTuple, PyType};

use crate::breaker::{Arg, PyBreaker, PyPermit};
use crate::clock::PyManualClock;
use crate::config::{describe, type_error};
use crate::limiter::{PyBulkhead, PyLimiter};
use crate::stats::{HistogramSnapshot, BOUNDS_NS};

const NS: f64 = 1e9;

// ----- errors -----

const ERRORS_PY: &CStr = c"
class FastbreakerError(Exception):
    '''Base class of every error fastbreaker raises.'''
    __module__ = 'fastbreaker'


class CircuitOpenError(FastbreakerError):
    '''A call refused by a breaker that is open, forced open, or half-open with every
    probe slot taken. args = (name, state, retry_after).'''
    __module__ = 'fastbreaker'
    __slots__ = ()

    @property
    def name(self):
        '''The name of the breaker that refused the call.'''
        return self.args[0]

    @property
    def state(self):
        '''Its state then: open, half_open or forced_open.'''
        return self.args[1]

    @property
    def retry_after(self):
        '''Seconds until it admits a probe (0.0 when unknown: half-open or forced open).'''
        return self.args[2]

    def __str__(self):
        return 'circuit %r is %s; retry after %.3f s' % self.args[:3]


class RateLimitExceeded(FastbreakerError):
    '''Tokens not available in time. args = (retry_after, requested).'''
    __module__ = 'fastbreaker'
    __slots__ = ()

    @property
    def retry_after(self):
        '''Seconds until the requested tokens could be taken.'''
        return self.args[0]

    @property
    def requested(self):
        '''How many tokens were asked for.'''
        return self.args[1]

    def __str__(self):
        return 'rate limit exceeded: %d token(s) available in %.3f s' % (self.args[1], self.args[0])


class BurstExceeded(FastbreakerError, ValueError):
    '''More tokens asked for at once than a rate limiter's burst: no wait can grant them.
    A ValueError too. args = (requested, burst).'''
    __module__ = 'fastbreaker'
    __slots__ = ()
    retry_after = None

    @property
    def requested(self):
        '''How many tokens were asked for.'''
        return self.args[0]

    @property
    def burst(self):
        '''The limiter's burst: the most tokens it can grant at once.'''
        return self.args[1]

    def __str__(self):
        return 'n = %d exceeds the burst of %d: no wait can grant it' % self.args[:2]


class BulkheadFull(FastbreakerError):
    '''Every slot of a bulkhead is taken. args = (max_concurrent,).'''
    __module__ = 'fastbreaker'
    __slots__ = ()
    retry_after = None

    @property
    def max_concurrent(self):
        '''The bulkhead's limit.'''
        return self.args[0]

    def __str__(self):
        return 'bulkhead full: %d call(s) in flight' % self.args[0]


class RegionError(FastbreakerError):
    '''A shared region or one of its slots could not be opened: a bad name, a full region,
    a file that is not a region of this version, a damaged one, a slot of another kind...
    args = (message, reason); reason is a short code such as 'invalid_name', 'full',
    'corrupt', 'version_mismatch', 'kind_mismatch', 'config_mismatch' or
    'reconfigure_unsupported'.'''
    __module__ = 'fastbreaker'
    __slots__ = ()

    @property
    def reason(self):
        '''A short code naming the problem.'''
        return self.args[1]

    def __str__(self):
        return self.args[0]


class RegionConfigMismatch(RegionError, ValueError):
    '''A slot of the region exists with another configuration than the one asked for.
    args = (message, 'config_mismatch', name, existing, requested); the message shows both
    configurations.'''
    __module__ = 'fastbreaker'
    __slots__ = ()

    @property
    def name(self):
        '''The slot's name.'''
        return self.args[2]

    @property
    def existing(self):
        '''The configuration in the region, as text.'''
        return self.args[3]

    @property
    def requested(self):
        '''The configuration asked for, as text.'''
        return self.args[4]
";

static FASTBREAKER_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
pub(crate) static CIRCUIT_OPEN_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
pub(crate) static RATE_LIMIT_EXCEEDED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
pub(crate) static BULKHEAD_FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
pub(crate) static BURST_EXCEEDED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
pub(crate) static REGION_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
pub(crate) static REGION_CONFIG_MISMATCH: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn error_type<'a, 'py>(
    py: Python<'py>,
    cell: &'a PyOnceLock<Py<PyType>>,
) -> &'a Bound<'py, PyType> {
    cell.get(py)
        .expect("fastbreaker._native initialised its error types")
        .bind(py)
}

pub(crate) fn make_error(
    py: Python<'_>,
    cell: &PyOnceLock<Py<PyType>>,
    args: Bound<'_, PyTuple>,
) -> PyErr {
    match error_type(py, cell).call1(args) {
        Ok(v) => PyErr::from_value(v),
        Err(e) => e,
    }
}

pub(crate) fn log_listener_error(
    py: Python<'_>,
    listener: &Bound<'_, PyAny>,
    hook: &str,
    err: PyErr,
) {
    let logged = LOGGER
        .get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            Ok(py
                .import("logging")?
                .call_method1("getLogger", ("fastbreaker",))?
                .unbind())
        })
        .and_then(|logger| {
            let kwargs = PyDict::new(py);
            kwargs.set_item("exc_info", err.value(py))?;
            logger.bind(py).call_method(
                "error",
                ("fastbreaker listener %r failed in %s", listener, hook),
                Some(&kwargs),
            )?;
            Ok(())
        });
    if let Err(e) = logged {
        e.write_unraisable(py, Some(listener));
    }
}

// ----- argument checking -----

fn value_error(name: &str, v: &Bound<'_, PyAny>, why: &str) -> PyErr {
    PyValueError::new_err(format!("{name} must be {why}, got {}", describe(v)))
}

/// A real number (int or float, not bool), finite.
fn number(name: &str, v: &Bound<'_, PyAny>) -> PyResult<f64> {
    if v.is_instance_of::<PyBool>()
        || !(v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>())
    {
        return Err(type_error(name, v, "a number"));
    }
    let x: f64 = v
        .extract()
        .map_err(|_| value_error(name, v, "a finite number"))?;
    if !x.is_finite() {
        return Err(value_error(name, v, "a finite number"));
    }
    Ok(x)
}

/// An int (not bool) in `lo..=hi`.
fn integer(name: &str, v: &Bound<'_, PyAny>, lo: i64, hi: i64) -> PyResult<i64> {
    if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
        return Err(type_error(name, v, "an int"));
    }
    match v.extract::<i64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(value_error(name, v, &format!("an int in {lo}..={hi}"))),
    }
}

/// Seconds > 0, as nanoseconds (at least 1).
fn seconds(name: &str, v: &Bound<'_, PyAny>) -> PyResult<u64> {
    let s = number(name, v)?;
    if s <= 0.0 {
        return Err(value_error(name, v, "a number of seconds > 0"));
    }
    let ns = (s * NS).round();
    if ns >= u64::MAX as f64 / 2.0 {
        return Err(value_error(name, v, "a number of seconds below 2^62 ns"));
    }
    Ok((ns as u64).max(1))
}

fn config_error(e: fb::ConfigError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

pub(crate) fn ns_to_s(ns: u64) -> f64 {
    ns as f64 / NS
}

/// `{"bounds": [s..], "counts": [per bucket, last = +Inf], "sum": s, "count": n}`.
pub(crate) fn histogram_dict<'py>(
    py: Python<'py>,
    h: &HistogramSnapshot,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let bounds: Vec<f64> = BOUNDS_NS.iter().map(|&b| ns_to_s(b)).collect();
    d.set_item("bounds", bounds)?;
    d.set_item("counts", h.counts.to_vec())?;
    d.set_item("sum", ns_to_s(h.sum_ns))?;
    d.set_item("count", h.count())?;
    Ok(d)
}

// ----- backoff -----

/// The core's exponential backoff (the type behind the breaker's open wait), in seconds.
#[pyclass(frozen, module = "fastbreaker._native", name = "Backoff")]
struct PyBackoff {
    inner: fb::Backoff,
    multiplier: f64,
    jitter: f64,
}

#[pymethods]
impl PyBackoff {
    #[new]
    #[pyo3(signature = (base_delay, max_delay, multiplier = Arg::Absent, jitter = Arg::Absent, seed = Arg::Absent))]
    fn new<'py>(
        base_delay: &Bound<'py, PyAny>,
        max_delay: &Bound<'py, PyAny>,
        multiplier: Arg<'py>,
        jitter: Arg<'py>,
        seed: Arg<'py>,
    ) -> PyResult<Self> {
        let base = seconds("base_delay", base_delay)?;
        let max = seconds("max_delay", max_delay)?;
        if max < base {
            return Err(value_error("max_delay", max_delay, "at least base_delay"));
        }
        let m = match multiplier.value() {
            Some(v) => {
                let m = number("multiplier", v)?;
                if !(1.0..=1000.0).contains(&m) {
                    return Err(value_error("multiplier", v, "a number in 1.0..=1000.0"));
                }
                m
            }
            None => 2.0,
        };
        let j = match jitter.value() {
            Some(v) => {
                let j = number("jitter", v)?;
                if !(0.0..=1.0).contains(&j) {
                    return Err(value_error("jitter", v, "a fraction in 0.0..=1.0"));
                }
                j
            }
            None => 0.0,
        };
        let seed = match seed.value() {
            Some(v) => integer("seed", v, 0, i64::MAX)? as u64,
            None => {
                use std::hash::{BuildHasher, RandomState};
                RandomState::new().hash_one(MonotonicClock.now_ns())
            }
        };
        let factor_milli = (m * 1000.0).round() as u32;
        let jitter_permille = (j * 1000.0).round() as u16;
        let inner = fb::Backoff::new(base, factor_milli, max, jitter_permille, seed)
            .map_err(config_error)?;
        Ok(PyBackoff {
            inner,
            multiplier: factor_milli as f64 / 1000.0,
            jitter: jitter_permille as f64 / 1000.0,
        })
    }

    /// Seconds to wait before retry number `attempt` (0-based): `base_delay *
    /// multiplier**attempt`, capped at `max_delay`, minus up to `jitter` of it, chosen by a
    /// hash of the seed and `nonce` (same inputs, same delay).
    /// Any int works as a nonce (it is reduced modulo 2**64).
    #[pyo3(signature = (attempt, nonce = None))]
    fn delay(&self, attempt: &Bound<'_, PyAny>, nonce: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        let step = integer("attempt", attempt, 0, i64::MAX)?.min(u32::MAX as i64) as u32;
        let nonce = match nonce {
            None => 0,
            Some(v) => {
                let i = v
                    .cast::<PyInt>()
                    .map_err(|_| type_error("nonce", v, "an int"))?;
                i.call_method1("__and__", (u64::MAX,))?.extract::<u64>()?
            }
        };
        Ok(ns_to_s(self.inner.delay(step, nonce)))
    }

    /// Delay of attempt 0, in seconds.
    #[getter]
    fn base_delay(&self) -> f64 {
        ns_to_s(self.inner.base_ns)
    }

    /// The cap before jitter, in seconds.
    #[getter]
    fn max_delay(&self) -> f64 {
        ns_to_s(self.inner.max_ns)
    }

    /// Growth per attempt (kept to thousandths).
    #[getter]
    fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// Largest fraction of a delay jitter takes away (kept to thousandths).
    #[getter]
    fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The jitter's seed.
    #[getter]
    fn seed(&self) -> u64 {
        self.inner.seed
    }

    fn __repr__(&self) -> String {
        format!(
            "<Backoff base_delay={} max_delay={} multiplier={} jitter={}>",
            self.base_delay(),
            self.max_delay(),
            self.multiplier,
            self.jitter
        )
    }
}

/// The core's table of defaults and limits (`fastbreaker::limits`), in the core's units
/// (nanoseconds, thousandths, percents), as a dict named like the Rust constants.
fn limits(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    use fb::limits::*;
    let d = PyDict::new(py);
    d.set_item("DEFAULT_FAILURE_THRESHOLD", DEFAULT_FAILURE_THRESHOLD)?;
    d.set_item("MAX_FAILURE_THRESHOLD", MAX_FAILURE_THRESHOLD)?;
    d.set_item("MAX_RATE_THRESHOLD", MAX_RATE_THRESHOLD)?;
    d.set_item("DEFAULT_MINIMUM_CALLS", DEFAULT_MINIMUM_CALLS)?;
    d.set_item(
        "DEFAULT_SLOW_CALL_DURATION_NS",
        DEFAULT_SLOW_CALL_DURATION_NS,
    )?;
    d.set_item("DEFAULT_WINDOW_SIZE", DEFAULT_WINDOW_SIZE)?;
    d.set_item("MAX_WINDOW_SIZE", MAX_WINDOW_SIZE)?;
    d.set_item("DEFAULT_WINDOW_BUCKETS", DEFAULT_WINDOW_BUCKETS)?;
    d.set_item("MAX_WINDOW_BUCKETS", MAX_WINDOW_BUCKETS)?;
    d.set_item("DEFAULT_BUCKET_DURATION_NS", DEFAULT_BUCKET_DURATION_NS)?;
    d.set_item("DEFAULT_WAIT_DURATION_NS", DEFAULT_WAIT_DURATION_NS)?;
    d.set_item("MAX_WAIT_DURATION_NS", MAX_WAIT_DURATION_NS)?;
    d.set_item("DEFAULT_BACKOFF_FACTOR_MILLI", DEFAULT_BACKOFF_FACTOR_MILLI)?;
    d.set_item("MIN_BACKOFF_FACTOR_MILLI", MIN_BACKOFF_FACTOR_MILLI)?;
    d.set_item("MAX_BACKOFF_STEPS", MAX_BACKOFF_STEPS)?;
    d.set_item("MAX_JITTER_PERMILLE", MAX_JITTER_PERMILLE)?;
    d.set_item("DEFAULT_HALF_OPEN_MAX_CALLS", DEFAULT_HALF_OPEN_MAX_CALLS)?;
    d.set_item("MAX_HALF_OPEN_MAX_CALLS", MAX_HALF_OPEN_MAX_CALLS)?;
    d.set_item("DEFAULT_SUCCESS_THRESHOLD", DEFAULT_SUCCESS_THRESHOLD)?;
    d.set_item("MAX_SUCCESS_THRESHOLD", MAX_SUCCESS_THRESHOLD)?;
    d.set_item("DEFAULT_PERIOD_NS", DEFAULT_PERIOD_NS)?;
    d.set_item("MAX_BURST", MAX_BURST)?;
    d.set_item("MIN_MAX_CONCURRENT", MIN_MAX_CONCURRENT)?;
    Ok(d)
}

/// Nanoseconds on the core's monotonic clock (CLOCK_MONOTONIC).
#[pyfunction]
fn monotonic_ns() -> u64 {
    MonotonicClock.now_ns()
}

#[pymodule(gil_used = false)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let errors = PyModule::from_code(
        py,
        ERRORS_PY,
        c"fastbreaker/_errors.py",
        c"fastbreaker._errors",
    )?;
    for (name, cell) in [
        ("FastbreakerError", &FASTBREAKER_ERROR),
        ("CircuitOpenError", &CIRCUIT_OPEN_ERROR),
        ("RateLimitExceeded", &RATE_LIMIT_EXCEEDED),
        ("BulkheadFull", &BULKHEAD_FULL),
        ("BurstExceeded", &BURST_EXCEEDED),
        ("RegionError", &REGION_ERROR),
        ("RegionConfigMismatch", &REGION_CONFIG_MISMATCH),
    ] {
        let t = errors.getattr(name)?.cast_into::<PyType>()?;
        let _ = cell.set(py, t.clone().unbind());
        m.add(name, t)?;
    }
    m.add("__version__", crate::VERSION)?;
    m.add("LIMITS", limits(py)?)?;
    m.add_class::<PyBreaker>()?;
    m.add_class::<PyPermit>()?;
    m.add_class::<PyLimiter>()?;
    m.add_class::<PyBulkhead>()?;
    m.add_class::<PyBackoff>()?;
    m.add_class::<PyManualClock>()?;
    m.add_class::<crate::region::PyRegion>()?;
    crate::guard::install(m)?;
    crate::sim::install(m)?;
    crate::keyed::install(m)?;
    crate::counters::install(m)?;
    crate::adaptive::install(m)?;
    m.add_function(wrap_pyfunction!(monotonic_ns, m)?)?;
    Ok(())
}
