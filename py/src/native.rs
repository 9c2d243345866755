//! The PyO3 module `fastbreaker._native`: frozen classes around the lock-free core.
//!
//! Nothing here takes a lock on a hot path: a decorated sync call is one `acquire` and one
//! `record` on the core, both compare-and-swap or plain loads. Listeners run after the core
//! has committed a change, with no lock held; a listener that raises is logged.

use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};

use fastbreaker as fb;
use fb::{
    BreakerConfig, BucketConfig, Clock, MonotonicClock, Outcome, Permit, Rejected, State,
    Transition,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use crate::listeners::{Hook, Listeners};
use crate::stats::{Histogram, HistogramSnapshot, Transitions, BOUNDS_NS};

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
";

static FASTBREAKER_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CIRCUIT_OPEN_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static RATE_LIMIT_EXCEEDED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static BULKHEAD_FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static METHOD_TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static EXCEPTION_TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn error_type<'a, 'py>(
    py: Python<'py>,
    cell: &'a PyOnceLock<Py<PyType>>,
) -> &'a Bound<'py, PyType> {
    cell.get(py)
        .expect("fastbreaker._native initialised its error types")
        .bind(py)
}

fn make_error(py: Python<'_>, cell: &PyOnceLock<Py<PyType>>, args: Bound<'_, PyTuple>) -> PyErr {
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

fn describe(v: &Bound<'_, PyAny>) -> String {
    let repr = v
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<unrepresentable>".into());
    let ty = v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    format!("{repr} ({ty})")
}

fn value_error(name: &str, v: &Bound<'_, PyAny>, why: &str) -> PyErr {
    PyValueError::new_err(format!("{name} must be {why}, got {}", describe(v)))
}

fn type_error(name: &str, v: &Bound<'_, PyAny>, expected: &str) -> PyErr {
    PyTypeError::new_err(format!("{name} must be {expected}, got {}", describe(v)))
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

/// A percentage in (0, 100], rounded up to a whole percent.
fn percent(name: &str, v: &Bound<'_, PyAny>) -> PyResult<u8> {
    let p = number(name, v)?;
    if p <= 0.0 || p > 100.0 {
        return Err(value_error(name, v, "a percentage in (0, 100]"));
    }
    Ok(p.ceil() as u8)
}

/// A constructor argument: not given at all, or given (possibly as `None`).
enum Arg<'py> {
    Absent,
    Given(Bound<'py, PyAny>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Arg<'py> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Arg::Given(obj.to_owned()))
    }
}

impl<'py> Arg<'py> {
    /// The value, or `None` when absent or `None`.
    fn value(&self) -> Option<&Bound<'py, PyAny>> {
        match self {
            Arg::Given(v) if !v.is_none() => Some(v),
            _ => None,
        }
    }
}

// ----- the breaker -----

/// The core breaker behind a trait object, so that one Python class covers every window.
trait Core: Send + Sync {
    fn acquire(&self) -> Result<Permit, Rejected>;
    fn record(&self, permit: Permit, outcome: Outcome) -> Option<Transition>;
    fn record_timed(
        &self,
        permit: Permit,
        outcome: Outcome,
        duration_ns: u64,
        now: u64,
    ) -> Option<Transition>;
    fn state(&self) -> State;
    fn metrics(&self) -> fb::Metrics;
    fn retry_after(&self) -> u64;
    fn manual(&self, to: State) -> Option<Transition>;
}

impl<W: fb::Window + Send + Sync> Core for fb::CircuitBreaker<W> {
    #[inline]
    fn acquire(&self) -> Result<Permit, Rejected> {
        self.acquire_with(&MonotonicClock)
    }
    #[inline]
    fn record(&self, permit: Permit, outcome: Outcome) -> Option<Transition> {
        self.record_with(&MonotonicClock, permit, outcome)
    }
    #[inline]
    fn record_timed(
        &self,
        permit: Permit,
        outcome: Outcome,
        duration_ns: u64,
        now: u64,
    ) -> Option<Transition> {
        self.record_with_duration(permit, outcome, duration_ns, now)
    }
    fn state(&self) -> State {
        fb::CircuitBreaker::state(self)
    }
    fn metrics(&self) -> fb::Metrics {
        self.metrics_with(&MonotonicClock)
    }
    fn retry_after(&self) -> u64 {
        fb::CircuitBreaker::retry_after(self, MonotonicClock.now_ns())
    }
    fn manual(&self, to: State) -> Option<Transition> {
        let now = MonotonicClock.now_ns();
        match to {
            State::ForcedOpen => self.force_open(now),
            State::Disabled => self.disable(now),
            State::MetricsOnly => self.metrics_only(now),
            State::Open => self.trip(now),
            State::HalfOpen => self.half_open(now),
            State::Closed => self.reset(now),
        }
    }
}

/// Bucket counts offered for time windows (each is its own monomorphised window type).
const BUCKET_CHOICES: [u64; 6] = [1, 5, 10, 20, 30, 60];

fn build_core(
    config: BreakerConfig,
    window: Option<u64>,
    window_seconds: Option<(u64, u64)>,
) -> Result<Box<dyn Core>, fb::ConfigError> {
    use fb::{CircuitBreaker as CB, CountWindow1024, CountWindow128, TimeWindow};
    Ok(match (window_seconds, window) {
        (Some((span, buckets)), _) => {
            let config = BreakerConfig {
                bucket_duration_ns: (span / buckets).max(1),
                ..config
            };
            match buckets {
                1 => Box::new(CB::<TimeWindow<1>>::new(config)?),
                5 => Box::new(CB::<TimeWindow<5>>::new(config)?),
                10 => Box::new(CB::<TimeWindow<10>>::new(config)?),
                20 => Box::new(CB::<TimeWindow<20>>::new(config)?),
                30 => Box::new(CB::<TimeWindow<30>>::new(config)?),
                _ => Box::new(CB::<TimeWindow<60>>::new(config)?),
            }
        }
        (None, size) => {
            let size = size.unwrap_or(100);
            let config = BreakerConfig {
                window_size: Some(size as u16),
                ..config
            };
            if size <= 128 {
                Box::new(CB::<CountWindow128>::new(config)?)
            } else {
                Box::new(CB::<CountWindow1024>::new(config)?)
            }
        }
    })
}

fn config_error(e: fb::ConfigError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn ns_to_s(ns: u64) -> f64 {
    ns as f64 / NS
}

/// `{"bounds": [s..], "counts": [per bucket, last = +Inf], "sum": s, "count": n}`.
fn histogram_dict<'py>(py: Python<'py>, h: &HistogramSnapshot) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let bounds: Vec<f64> = BOUNDS_NS.iter().map(|&b| ns_to_s(b)).collect();
    d.set_item("bounds", bounds)?;
    d.set_item("counts", h.counts.to_vec())?;
    d.set_item("sum", ns_to_s(h.sum_ns))?;
    d.set_item("count", h.count())?;
    Ok(d)
}

/// A circuit breaker on the lock-free core (see the package docs for every option).
#[pyclass(
    frozen,
    subclass,
    module = "fastbreaker._native",
    name = "CircuitBreaker"
)]
struct PyBreaker {
    core: Box<dyn Core>,
    name: Py<PyString>,
    /// Exception types that do not count as failures, as one tuple for `isinstance`.
    exclude_types: Option<Py<PyTuple>>,
    /// Predicates `exc -> bool`: true means excluded.
    exclude_predicates: Vec<Py<PyAny>>,
    excluded_outcome: Outcome,
    fallback: Option<Py<PyAny>>,
    /// Builds the error of a refused call from (name, state, retry_after), if given.
    rejection_error: Option<Py<PyAny>>,
    listeners: Listeners,
    options: Py<PyDict>,
    /// State changes by (from, to), for exporters.
    transitions: Transitions,
    /// Rejected calls answered by the fallback.
    fallbacks: AtomicU64,
    /// Call durations, when built with `measure_durations=True`.
    durations: Option<Histogram>,
}

/// An admitted call, for the Python-level paths (async, generators, `with`).
#[pyclass(frozen, module = "fastbreaker._native", name = "Permit")]
struct PyPermit {
    permit: Permit,
    /// When the call started, if the breaker measures durations.
    started: Option<u64>,
}

impl PyBreaker {
    fn state_str(&self) -> &'static str {
        self.core.state().as_str()
    }

    /// The error for a refused call.
    fn rejection(&self, py: Python<'_>, r: Rejected) -> PyErr {
        let (state, retry_after) = match r {
            Rejected::Open { retry_after } => ("open", ns_to_s(retry_after)),
            Rejected::HalfOpenFull => ("half_open", 0.0),
            Rejected::ForcedOpen => ("forced_open", 0.0),
            _ => (self.state_str(), 0.0),
        };
        let args = match (self.name.bind(py), state, retry_after).into_pyobject(py) {
            Ok(args) => args,
            Err(e) => return e,
        };
        match &self.rejection_error {
            // A non-exception result becomes the TypeError raising it would give.
            Some(f) => match f.bind(py).call1(args) {
                Ok(v) => PyErr::from_value(v),
                Err(e) => e,
            },
            None => make_error(py, &CIRCUIT_OPEN_ERROR, args),
        }
    }

    /// A refused call: the fallback's result if there is a fallback, else the error.
    fn refused(
        &self,
        py: Python<'_>,
        r: Rejected,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let err = self.rejection(py, r);
        self.notify(py, Hook::Rejection, |l, name| {
            l.call1((name, err.value(py)))
        });
        match &self.fallback {
            Some(f) => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                Ok(f.bind(py).call(args, kwargs)?.unbind())
            }
            None => Err(err),
        }
    }

    fn acquire_permit(&self, py: Python<'_>) -> Result<Permit, Rejected> {
        let r = self.core.acquire();
        if let Ok(p) = &r {
            if let Some(t) = p.transition() {
                self.transitioned(py, t);
            }
        }
        r
    }

    /// How a raised exception counts.
    fn classify(&self, py: Python<'_>, err: &PyErr) -> Outcome {
        let value = err.value(py);
        let exception = EXCEPTION_TYPE.get(py).map(|t| t.bind(py));
        // BaseExceptions that are not Exceptions (cancellation, KeyboardInterrupt,
        // GeneratorExit) say nothing about the service: they count as Ignored.
        if let Some(t) = exception {
            if !value.is_instance(t).unwrap_or(true) {
                return Outcome::Ignored;
            }
        }
        if let Some(types) = &self.exclude_types {
            if value.is_instance(types.bind(py).as_any()).unwrap_or(false) {
                return self.excluded_outcome;
            }
        }
        for p in &self.exclude_predicates {
            match p.bind(py).call1((value,)).and_then(|r| r.is_truthy()) {
                Ok(true) => return self.excluded_outcome,
                Ok(false) => {}
                Err(e) => log_listener_error(py, p.bind(py), "exclude", e),
            }
        }
        Outcome::Failure
    }

    /// Records an outcome; `started`: when the call started, if durations are measured.
    fn finish(&self, py: Python<'_>, permit: Permit, err: Option<&PyErr>, started: Option<u64>) {
        let outcome = match err {
            None => Outcome::Success,
            Some(e) => self.classify(py, e),
        };
        let t = self.record_outcome(permit, outcome, started);
        if outcome == Outcome::Failure {
            if let Some(e) = err {
                self.notify(py, Hook::Failure, |l, name| l.call1((name, e.value(py))));
            }
        }
        if let Some(t) = t {
            self.transitioned(py, t);
        }
    }

    /// Records `outcome`, observing the duration if the breaker measures them.
    #[inline]
    fn record_outcome(
        &self,
        permit: Permit,
        outcome: Outcome,
        started: Option<u64>,
    ) -> Option<Transition> {
        match (&self.durations, started) {
            (Some(h), Some(start)) => {
                let now = MonotonicClock.now_ns();
                let d = now.saturating_sub(start);
                if outcome != Outcome::Ignored {
                    h.observe(d);
                }
                self.core.record_timed(permit, outcome, d, now)
            }
            _ => self.core.record(permit, outcome),
        }
    }

    /// When a call starts, if the breaker measures durations.
    #[inline]
    fn start(&self) -> Option<u64> {
        self.durations.as_ref().map(|_| MonotonicClock.now_ns())
    }

    fn transitioned(&self, py: Python<'_>, t: Transition) {
        self.transitions.count(t.from, t.to);
        self.notify(py, Hook::StateChange, |l, name| {
            l.call1((name, t.from.as_str(), t.to.as_str()))
        });
    }

    /// Calls `hook` on every listener that has it, after the fact and with no lock held.
    #[inline]
    fn notify<'py>(
        &self,
        py: Python<'py>,
        hook: Hook,
        call: impl Fn(&Bound<'py, PyAny>, &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>>,
    ) {
        self.listeners.notify(py, hook, self.name.bind(py), call)
    }

    #[inline]
    fn guarded_call(
        &self,
        py: Python<'_>,
        func: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let permit = match self.acquire_permit(py) {
            Ok(p) => p,
            Err(r) => return self.refused(py, r, args, kwargs),
        };
        let started = self.start();
        match func.call(args, kwargs) {
            Ok(v) => {
                if let Some(t) = self.record_outcome(permit, Outcome::Success, started) {
                    self.transitioned(py, t);
                }
                Ok(v.unbind())
            }
            Err(e) => {
                self.finish(py, permit, Some(&e), started);
                Err(e)
            }
        }
    }
}

#[pymethods]
impl PyBreaker {
    #[new]
    #[pyo3(signature = (
        name,
        failure_threshold = Arg::Absent,
        wait_duration = Arg::Absent,
        *,
        failure_rate_threshold = Arg::Absent,
        slow_call_rate_threshold = Arg::Absent,
        slow_call_duration = Arg::Absent,
        minimum_calls = Arg::Absent,
        window = Arg::Absent,
        window_seconds = Arg::Absent,
        buckets = Arg::Absent,
        backoff_factor = Arg::Absent,
        max_wait_duration = Arg::Absent,
        jitter = Arg::Absent,
        jitter_seed = Arg::Absent,
        half_open_max_calls = Arg::Absent,
        success_threshold = Arg::Absent,
        exclude = Arg::Absent,
        count_excluded_as_success = false,
        fallback = Arg::Absent,
        listeners = Arg::Absent,
        measure_durations = false,
        rejection_error = Arg::Absent,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new<'py>(
        py: Python<'py>,
        name: &Bound<'py, PyAny>,
        failure_threshold: Arg<'py>,
        wait_duration: Arg<'py>,
        failure_rate_threshold: Arg<'py>,
        slow_call_rate_threshold: Arg<'py>,
        slow_call_duration: Arg<'py>,
        minimum_calls: Arg<'py>,
        window: Arg<'py>,
        window_seconds: Arg<'py>,
        buckets: Arg<'py>,
        backoff_factor: Arg<'py>,
        max_wait_duration: Arg<'py>,
        jitter: Arg<'py>,
        jitter_seed: Arg<'py>,
        half_open_max_calls: Arg<'py>,
        success_threshold: Arg<'py>,
        exclude: Arg<'py>,
        count_excluded_as_success: bool,
        fallback: Arg<'py>,
        listeners: Arg<'py>,
        measure_durations: bool,
        rejection_error: Arg<'py>,
    ) -> PyResult<Self> {
        let name = name
            .cast::<PyString>()
            .map_err(|_| type_error("name", name, "a str"))?
            .clone();
        let options = PyDict::new(py);
        let mut c = BreakerConfig::new();
        c.failure_threshold = match &failure_threshold {
            Arg::Absent => Some(5),
            Arg::Given(v) if v.is_none() => None,
            Arg::Given(v) => Some(integer("failure_threshold", v, 1, u32::MAX as i64)? as u32),
        };
        options.set_item("failure_threshold", c.failure_threshold)?;
        if let Some(v) = wait_duration.value() {
            c.wait_duration_ns = seconds("wait_duration", v)?;
        }
        options.set_item("wait_duration", ns_to_s(c.wait_duration_ns))?;
        if let Some(v) = failure_rate_threshold.value() {
            c.failure_rate_threshold = Some(percent("failure_rate_threshold", v)?);
        }
        options.set_item("failure_rate_threshold", c.failure_rate_threshold)?;
        if let Some(v) = slow_call_rate_threshold.value() {
            c.slow_call_rate_threshold = Some(percent("slow_call_rate_threshold", v)?);
        }
        options.set_item("slow_call_rate_threshold", c.slow_call_rate_threshold)?;
        if let Some(v) = slow_call_duration.value() {
            c.slow_call_duration_ns = seconds("slow_call_duration", v)?;
        }
        options.set_item("slow_call_duration", ns_to_s(c.slow_call_duration_ns))?;
        if let Some(v) = minimum_calls.value() {
            c.minimum_calls = integer("minimum_calls", v, 1, u32::MAX as i64)? as u32;
        }
        options.set_item("minimum_calls", c.minimum_calls)?;
        let count_window = match window.value() {
            Some(v) => Some(integer("window", v, 1, 1024)? as u64),
            None => None,
        };
        let time_window = match window_seconds.value() {
            Some(v) => {
                if count_window.is_some() {
                    return Err(PyValueError::new_err(
                        "window and window_seconds are exclusive: give one of them",
                    ));
                }
                let span = seconds("window_seconds", v)?;
                let b = match buckets.value() {
                    Some(b) => {
                        let n = integer("buckets", b, 1, 60)? as u64;
                        if !BUCKET_CHOICES.contains(&n) {
                            return Err(value_error(
                                "buckets",
                                b,
                                &format!("one of {BUCKET_CHOICES:?}"),
                            ));
                        }
                        n
                    }
                    None => 10,
                };
                options.set_item("window_seconds", ns_to_s(span))?;
                options.set_item("buckets", b)?;
                Some((span, b))
            }
            None => {
                if let Some(b) = buckets.value() {
                    return Err(value_error("buckets", b, "given only with window_seconds"));
                }
                options.set_item("window", count_window.unwrap_or(100))?;
                None
            }
        };
        if let Some(v) = backoff_factor.value() {
            let f = number("backoff_factor", v)?;
            if !(1.0..=1000.0).contains(&f) {
                return Err(value_error("backoff_factor", v, "a number in 1.0..=1000.0"));
            }
            c.backoff_factor_milli = (f * 1000.0).round() as u32;
        }
        options.set_item("backoff_factor", c.backoff_factor_milli as f64 / 1000.0)?;
        if let Some(v) = max_wait_duration.value() {
            let m = seconds("max_wait_duration", v)?;
            if m < c.wait_duration_ns {
                return Err(value_error(
                    "max_wait_duration",
                    v,
                    "at least wait_duration",
                ));
            }
            c.max_wait_duration_ns = Some(m);
        }
        options.set_item("max_wait_duration", c.max_wait_duration_ns.map(ns_to_s))?;
        if let Some(v) = jitter.value() {
            let j = number("jitter", v)?;
            if !(0.0..=1.0).contains(&j) {
                return Err(value_error("jitter", v, "a fraction in 0.0..=1.0"));
            }
            c.jitter_permille = (j * 1000.0).round() as u16;
        }
        options.set_item("jitter", c.jitter_permille as f64 / 1000.0)?;
        c.jitter_seed = match jitter_seed.value() {
            Some(v) => integer("jitter_seed", v, 0, i64::MAX)? as u64,
            None => {
                use std::hash::{BuildHasher, RandomState};
                RandomState::new().hash_one(MonotonicClock.now_ns())
            }
        };
        if let Some(v) = half_open_max_calls.value() {
            c.half_open_max_calls = integer("half_open_max_calls", v, 1, 1023)? as u16;
        }
        options.set_item("half_open_max_calls", c.half_open_max_calls)?;
        if let Some(v) = success_threshold.value() {
            c.success_threshold = integer("success_threshold", v, 1, 1023)? as u16;
        }
        options.set_item("success_threshold", c.success_threshold)?;

        let mut types = Vec::new();
        let mut exclude_predicates = Vec::new();
        if let Some(v) = exclude.value() {
            let items: Vec<Bound<'py, PyAny>> = if v.is_instance_of::<PyType>() || v.is_callable() {
                vec![v.clone()]
            } else {
                v.try_iter()
                    .map_err(|_| type_error("exclude", v, "exception types and predicates"))?
                    .collect::<PyResult<_>>()?
            };
            let base = py.get_type::<pyo3::exceptions::PyBaseException>();
            for item in items {
                if let Ok(t) = item.cast::<PyType>() {
                    if !t.is_subclass(&base)? {
                        return Err(type_error(
                            "exclude",
                            &item,
                            "an exception type or a predicate",
                        ));
                    }
                    types.push(item);
                } else if item.is_callable() {
                    exclude_predicates.push(item.unbind());
                } else {
                    return Err(type_error(
                        "exclude",
                        &item,
                        "an exception type or a predicate",
                    ));
                }
            }
        }
        let exclude_types = if types.is_empty() {
            None
        } else {
            Some(PyTuple::new(py, types)?.unbind())
        };
        let fallback = match fallback.value() {
            Some(f) if f.is_callable() => Some(f.clone().unbind()),
            Some(f) => return Err(type_error("fallback", f, "callable")),
            None => None,
        };
        let rejection_error = match rejection_error.value() {
            Some(f) if f.is_callable() => Some(f.clone().unbind()),
            Some(f) => return Err(type_error("rejection_error", f, "callable")),
            None => None,
        };
        let mut ls = Vec::new();
        if let Some(v) = listeners.value() {
            for l in v
                .try_iter()
                .map_err(|_| type_error("listeners", v, "an iterable of listeners"))?
            {
                ls.push(l?);
            }
        }
        options.set_item("count_excluded_as_success", count_excluded_as_success)?;
        options.set_item("measure_durations", measure_durations)?;
        let core = build_core(c, count_window, time_window).map_err(config_error)?;
        Ok(PyBreaker {
            core,
            name: name.unbind(),
            exclude_types,
            exclude_predicates,
            excluded_outcome: if count_excluded_as_success {
                Outcome::Success
            } else {
                Outcome::Ignored
            },
            fallback,
            rejection_error,
            listeners: Listeners::new(&ls),
            options: options.unbind(),
            transitions: Transitions::default(),
            fallbacks: AtomicU64::new(0),
            durations: measure_durations.then(Histogram::default),
        })
    }

    /// The breaker's name.
    #[getter]
    fn name(&self, py: Python<'_>) -> Py<PyString> {
        self.name.clone_ref(py)
    }

    /// "closed", "open", "half_open", "forced_open", "disabled" or "metrics_only".
    #[getter]
    fn state(&self) -> &'static str {
        self.state_str()
    }

    /// Seconds until an open breaker admits a probe; 0.0 in every other state.
    #[getter]
    fn retry_after(&self) -> f64 {
        ns_to_s(self.core.retry_after())
    }

    /// The options the breaker was built with, normalised (a new dict).
    fn options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.options.bind(py).copy()
    }

    /// The fallback, or None.
    #[getter]
    fn fallback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.fallback.as_ref().map(|f| f.clone_ref(py))
    }

    /// A snapshot of the state and counters, as a JSON-serialisable dict.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.core.metrics();
        let d = PyDict::new(py);
        d.set_item("name", self.name.bind(py))?;
        d.set_item("state", m.state.as_str())?;
        d.set_item("generation", m.generation)?;
        d.set_item("permitted", m.permitted)?;
        d.set_item("rejected", m.rejected)?;
        d.set_item("succeeded", m.succeeded)?;
        d.set_item("failed", m.failed)?;
        d.set_item("ignored", m.ignored)?;
        d.set_item("slow", m.slow)?;
        d.set_item("trips", m.trips)?;
        d.set_item("consecutive_failures", m.consecutive_failures)?;
        d.set_item("half_open_in_flight", m.half_open_in_flight)?;
        d.set_item("window_calls", m.window.samples)?;
        d.set_item("window_failures", m.window.failures)?;
        d.set_item("window_slow", m.window.slow)?;
        d.set_item("failure_rate", m.window.failure_rate() as f64)?;
        d.set_item("slow_call_rate", m.window.slow_rate() as f64)?;
        d.set_item("retry_after", ns_to_s(m.retry_after))?;
        let age = m
            .last_transition_at
            .map(|t| ns_to_s(MonotonicClock.now_ns().saturating_sub(t)));
        d.set_item("seconds_in_state", age)?;
        d.set_item("fallbacks", self.fallbacks.load(Ordering::Relaxed))?;
        let transitions = PyDict::new(py);
        for (from, to, n) in self.transitions.nonzero() {
            let row = match transitions.get_item(from.as_str())? {
                Some(row) => row.cast_into::<PyDict>()?,
                None => {
                    let row = PyDict::new(py);
                    transitions.set_item(from.as_str(), &row)?;
                    row
                }
            };
            row.set_item(to.as_str(), n)?;
        }
        d.set_item("transitions", transitions)?;
        let durations = self
            .durations
            .as_ref()
            .map(Histogram::snapshot)
            .unwrap_or_default();
        d.set_item("durations", histogram_dict(py, &durations)?)?;
        Ok(d)
    }

    /// Calls `func(*args, **kwargs)` through the breaker.
    #[pyo3(signature = (func, /, *args, **kwargs))]
    fn call(
        &self,
        py: Python<'_>,
        func: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        self.guarded_call(py, func, args, kwargs)
    }

    /// Forces the breaker open until `reset()`.
    fn force_open(&self, py: Python<'_>) {
        self.manual(py, State::ForcedOpen)
    }

    /// Opens the breaker now, as if a rule had fired: calls are refused for `wait_duration`,
    /// then probes are admitted. Calling it while open restarts the wait.
    fn trip(&self, py: Python<'_>) {
        self.manual(py, State::Open)
    }

    /// Moves the breaker to half-open now: the next calls are probes.
    fn half_open(&self, py: Python<'_>) {
        self.manual(py, State::HalfOpen)
    }

    /// Counts a rejected call answered by the fallback (for wrappers written in Python).
    fn _note_fallback(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// Lets every call through and records nothing, until `reset()`.
    fn disable(&self, py: Python<'_>) {
        self.manual(py, State::Disabled)
    }

    /// Lets every call through, records outcomes, never trips, until `reset()`.
    fn metrics_only(&self, py: Python<'_>) {
        self.manual(py, State::MetricsOnly)
    }

    /// Back to closed with an empty window.
    fn reset(&self, py: Python<'_>) {
        self.manual(py, State::Closed)
    }

    /// Adds a listener (an object with any of on_state_change(name, old, new),
    /// on_failure(name, exc), on_rejection(name, exc)).
    /// Its hooks are looked up now: methods added to the object later are not called.
    fn add_listener(&self, listener: Bound<'_, PyAny>) {
        self.listeners.add(&listener)
    }

    /// Removes a listener added before (compared by identity); whether it was there.
    fn remove_listener(&self, listener: Bound<'_, PyAny>) -> bool {
        self.listeners.remove(&listener)
    }

    /// The listeners, as a new list.
    #[getter]
    fn listeners(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        self.listeners.list(py)
    }

    /// Wraps a sync callable natively: the decorator's hot path.
    fn _guard(slf: &Bound<'_, Self>, func: Bound<'_, PyAny>) -> Guarded {
        Guarded {
            breaker: slf.clone().unbind(),
            func: func.unbind(),
        }
    }

    /// Admits a call or raises CircuitOpenError (listeners notified either way).
    fn _acquire(&self, py: Python<'_>) -> PyResult<PyPermit> {
        match self.acquire_permit(py) {
            Ok(permit) => Ok(PyPermit {
                permit,
                started: self.start(),
            }),
            Err(r) => {
                let err = self.rejection(py, r);
                self.notify(py, Hook::Rejection, |l, name| {
                    l.call1((name, err.value(py)))
                });
                Err(err)
            }
        }
    }

    /// Records the outcome of an admitted call: `exc` is None on success.
    #[pyo3(signature = (permit, exc = None))]
    fn _record(&self, py: Python<'_>, permit: &Bound<'_, PyPermit>, exc: Option<Bound<'_, PyAny>>) {
        let (permit, started) = (permit.get().permit, permit.get().started);
        match exc {
            None => self.finish(py, permit, None, started),
            Some(e) => {
                let err = PyErr::from_value(e);
                self.finish(py, permit, Some(&err), started);
            }
        }
    }

    /// Lets the garbage collector see the objects the breaker holds, so that a cycle through
    /// it (say `fallback=self.method` on an object that holds the breaker) is collected.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.name)?;
        visit.call(&self.exclude_types)?;
        for p in &self.exclude_predicates {
            visit.call(p)?;
        }
        visit.call(&self.fallback)?;
        visit.call(&self.rejection_error)?;
        visit.call(&self.options)?;
        self.listeners.traverse(&visit)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<CircuitBreaker {:?} state={}>",
            self.name.bind(py).to_string(),
            self.state_str()
        )
    }
}

impl PyBreaker {
    fn manual(&self, py: Python<'_>, to: State) {
        if let Some(t) = self.core.manual(to) {
            self.transitioned(py, t);
        }
    }
}

/// A function wrapped by a breaker: calling it goes through the breaker.
#[pyclass(frozen, dict, module = "fastbreaker._native", name = "Guarded")]
struct Guarded {
    breaker: Py<PyBreaker>,
    func: Py<PyAny>,
}

#[pymethods]
impl Guarded {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        self.breaker
            .get()
            .guarded_call(py, self.func.bind(py), args, kwargs)
    }

    /// Binds like a function, so decorated methods get `self`.
    fn __get__(
        slf: &Bound<'_, Self>,
        obj: Option<&Bound<'_, PyAny>>,
        owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _ = owner;
        match obj {
            None => Ok(slf.clone().into_any().unbind()),
            Some(obj) => {
                let py = slf.py();
                let mt = METHOD_TYPE.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
                    Ok(py.import("types")?.getattr("MethodType")?.unbind())
                })?;
                Ok(mt.bind(py).call1((slf, obj))?.unbind())
            }
        }
    }

    /// Lets the garbage collector see the breaker and the function.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.breaker)?;
        visit.call(&self.func)
    }

    /// Pickles by reference, like a function: the decorated name in its module (so that
    /// multiprocessing can send decorated functions).
    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Ok(slf.getattr("__qualname__")?.unbind())
    }

    /// The breaker this function goes through.
    #[getter]
    fn breaker(&self, py: Python<'_>) -> Py<PyBreaker> {
        self.breaker.clone_ref(py)
    }
}

// ----- rate limiter -----

/// A GCRA token bucket: `rate` tokens every `per` seconds, at most `burst` at once.
#[pyclass(frozen, subclass, module = "fastbreaker._native", name = "RateLimiter")]
struct PyLimiter {
    bucket: fb::TokenBucket,
    rate: f64,
    per: f64,
    name: Option<Py<PyString>>,
    /// Granted at once.
    allowed: AtomicU64,
    /// Granted after a wait.
    delayed: AtomicU64,
    /// Refused: `try_acquire` false, or a wait longer than the timeout.
    rejected: AtomicU64,
    /// Waits given up (tokens refunded).
    cancelled: AtomicU64,
    /// Waits of delayed acquisitions.
    waits: Histogram,
}

/// An optional `name` keyword: a str or None.
fn optional_name(name: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyString>>> {
    if name.is_none() {
        return Ok(None);
    }
    name.cast::<PyString>()
        .map(|n| Some(n.clone().unbind()))
        .map_err(|_| type_error("name", name, "a str or None"))
}

fn tokens(n: i64) -> PyResult<u64> {
    u64::try_from(n).map_err(|_| PyValueError::new_err(format!("n must be an int >= 0, got {n}")))
}

impl PyLimiter {
    fn limit_error(&self, py: Python<'_>, r: Rejected, n: u64) -> PyErr {
        match r {
            Rejected::ExceedsCapacity {
                requested,
                capacity,
            } => PyValueError::new_err(format!(
                "n = {requested} exceeds the limiter's burst = {capacity}"
            )),
            other => {
                let wait = ns_to_s(other.retry_after().unwrap_or(0));
                match (wait, n).into_pyobject(py) {
                    Ok(args) => make_error(py, &RATE_LIMIT_EXCEEDED, args),
                    Err(e) => e,
                }
            }
        }
    }
}

#[pymethods]
impl PyLimiter {
    #[new]
    #[pyo3(signature = (rate, per = Arg::Absent, burst = Arg::Absent, *, name = None))]
    fn new<'py>(
        rate: &Bound<'py, PyAny>,
        per: Arg<'py>,
        burst: Arg<'py>,
        name: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let name = match name {
            Some(n) => optional_name(n)?,
            None => None,
        };
        let r = number("rate", rate)?;
        if r <= 0.0 {
            return Err(value_error("rate", rate, "a number > 0"));
        }
        let per_s = match per.value() {
            Some(v) => {
                let p = number("per", v)?;
                if p <= 0.0 {
                    return Err(value_error("per", v, "a number of seconds > 0"));
                }
                p
            }
            None => 1.0,
        };
        let period_ns = per_s * NS;
        let config = if r.fract() == 0.0 && r <= 1e15 && period_ns.fract() == 0.0 {
            (r as u64, period_ns as u64)
        } else {
            (1, (period_ns / r).round() as u64)
        };
        if config.1 == 0 || config.0 > config.1 {
            return Err(value_error(
                "rate",
                rate,
                "at most one token per nanosecond",
            ));
        }
        let burst = match burst.value() {
            Some(v) => integer("burst", v, 1, 1 << 32)? as u64,
            None => (r.ceil() as u64).clamp(1, 1 << 32),
        };
        let bucket = fb::TokenBucket::new(BucketConfig {
            rate: config.0,
            period_ns: config.1,
            burst,
        })
        .map_err(config_error)?;
        Ok(PyLimiter {
            bucket,
            rate: r,
            per: per_s,
            name,
            allowed: AtomicU64::new(0),
            delayed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            waits: Histogram::default(),
        })
    }

    /// The limiter's name, or None.
    #[getter]
    fn name(&self, py: Python<'_>) -> Option<Py<PyString>> {
        self.name.as_ref().map(|n| n.clone_ref(py))
    }

    /// Counters for exporters: allowed (at once), delayed (after a wait), rejected,
    /// cancelled (waits given up), the waits' histogram, and the tokens available now.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("name", self.name(py))?;
        d.set_item("rate", self.rate)?;
        d.set_item("per", self.per)?;
        d.set_item("burst", self.bucket.burst())?;
        d.set_item("available", self.available())?;
        d.set_item("allowed", self.allowed.load(Ordering::Relaxed))?;
        d.set_item("delayed", self.delayed.load(Ordering::Relaxed))?;
        d.set_item("rejected", self.rejected.load(Ordering::Relaxed))?;
        d.set_item("cancelled", self.cancelled.load(Ordering::Relaxed))?;
        d.set_item("wait", histogram_dict(py, &self.waits.snapshot())?)?;
        Ok(d)
    }

    /// Tokens per `per` seconds.
    #[getter]
    fn rate(&self) -> f64 {
        self.rate
    }

    /// The period of `rate`, in seconds.
    #[getter]
    fn per(&self) -> f64 {
        self.per
    }

    /// The most tokens that can be taken at once.
    #[getter]
    fn burst(&self) -> u64 {
        self.bucket.burst()
    }

    /// Takes `n` tokens if they are all there now; never waits.
    #[pyo3(signature = (n = 1))]
    fn try_acquire(&self, n: i64) -> PyResult<bool> {
        match self.bucket.try_acquire_with(tokens(n)?, &MonotonicClock) {
            Ok(()) => {
                self.allowed.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Err(Rejected::ExceedsCapacity { .. }) => Err(PyValueError::new_err(format!(
                "n = {n} exceeds the limiter's burst = {}",
                self.bucket.burst()
            ))),
            Err(_) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
        }
    }

    /// Seconds until `n` tokens could be taken (0.0 if now).
    #[pyo3(signature = (n = 1))]
    fn retry_after(&self, py: Python<'_>, n: i64) -> PyResult<f64> {
        let n = tokens(n)?;
        self.bucket
            .retry_after(n, MonotonicClock.now_ns())
            .map(ns_to_s)
            .map_err(|r| self.limit_error(py, r, n))
    }

    /// Tokens that could be taken now.
    fn available(&self) -> u64 {
        self.bucket.available(MonotonicClock.now_ns())
    }

    /// Reserves `n` tokens in queue order and returns the seconds to wait before using
    /// them; with `timeout`, raises RateLimitExceeded (taking nothing) if the wait is longer.
    #[pyo3(signature = (n = 1, timeout = None))]
    fn _reserve(
        &self,
        py: Python<'_>,
        n: i64,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<f64> {
        let n = tokens(n)?;
        let max_wait = match timeout {
            None => u64::MAX,
            Some(t) => {
                let s = number("timeout", t)?;
                if s < 0.0 {
                    return Err(value_error("timeout", t, "a number of seconds >= 0"));
                }
                (s * NS).min(u64::MAX as f64 / 2.0) as u64
            }
        };
        match self
            .bucket
            .reserve_within(n, MonotonicClock.now_ns(), max_wait)
        {
            Ok(0) => {
                self.allowed.fetch_add(1, Ordering::Relaxed);
                Ok(0.0)
            }
            Ok(wait) => {
                self.delayed.fetch_add(1, Ordering::Relaxed);
                self.waits.observe(wait);
                Ok(ns_to_s(wait))
            }
            Err(r) => {
                if !matches!(r, Rejected::ExceedsCapacity { .. }) {
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                }
                Err(self.limit_error(py, r, n))
            }
        }
    }

    /// Gives back `n` tokens of a reservation that will not be used.
    #[pyo3(signature = (n = 1))]
    fn _refund(&self, n: i64) -> PyResult<()> {
        self.bucket.refund(tokens(n)?, MonotonicClock.now_ns());
        self.cancelled.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<RateLimiter {}rate={} per={} burst={}>",
            repr_name(py, &self.name),
            self.rate,
            self.per,
            self.bucket.burst()
        )
    }
}

// ----- bulkhead -----

/// At most `max_concurrent` calls in flight.
#[pyclass(frozen, subclass, module = "fastbreaker._native", name = "Bulkhead")]
struct PyBulkhead {
    inner: fb::Bulkhead,
    name: Option<Py<PyString>>,
}

/// `"name" ` for a repr, or nothing.
fn repr_name(py: Python<'_>, name: &Option<Py<PyString>>) -> String {
    match name {
        Some(n) => format!("{:?} ", n.bind(py).to_string()),
        None => String::new(),
    }
}

#[pymethods]
impl PyBulkhead {
    #[new]
    #[pyo3(signature = (max_concurrent, *, name = None))]
    fn new(max_concurrent: &Bound<'_, PyAny>, name: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let n = integer("max_concurrent", max_concurrent, 1, u32::MAX as i64)? as u32;
        let name = match name {
            Some(n) => optional_name(n)?,
            None => None,
        };
        Ok(PyBulkhead {
            inner: fb::Bulkhead::new(n).map_err(config_error)?,
            name,
        })
    }

    /// The bulkhead's name, or None.
    #[getter]
    fn name(&self, py: Python<'_>) -> Option<Py<PyString>> {
        self.name.as_ref().map(|n| n.clone_ref(py))
    }

    /// The limit.
    #[getter]
    fn max_concurrent(&self) -> u32 {
        self.inner.max_concurrent()
    }

    /// Calls in flight now.
    #[getter]
    fn in_flight(&self) -> u32 {
        self.inner.in_flight()
    }

    /// Takes a slot if one is free; give it back with `release()`.
    fn try_acquire(&self) -> bool {
        self.inner.try_acquire_raw()
    }

    /// Gives back a slot taken by `try_acquire()`.
    fn release(&self) {
        self.inner.release()
    }

    /// Takes a slot or raises BulkheadFull.
    fn _enter(&self, py: Python<'_>) -> PyResult<()> {
        if self.inner.try_acquire_raw() {
            Ok(())
        } else {
            Err(make_error(
                py,
                &BULKHEAD_FULL,
                (self.inner.max_concurrent(),).into_pyobject(py)?,
            ))
        }
    }

    /// Counters: name, max_concurrent, in_flight, peak, acquired, rejected.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.inner.metrics();
        let d = PyDict::new(py);
        d.set_item("name", self.name(py))?;
        d.set_item("max_concurrent", m.max_concurrent)?;
        d.set_item("in_flight", m.in_flight)?;
        d.set_item("peak", m.peak)?;
        d.set_item("acquired", m.acquired)?;
        d.set_item("rejected", m.rejected)?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<Bulkhead {}max_concurrent={} in_flight={}>",
            repr_name(py, &self.name),
            self.inner.max_concurrent(),
            self.inner.in_flight()
        )
    }
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
    ] {
        let t = errors.getattr(name)?.cast_into::<PyType>()?;
        let _ = cell.set(py, t.clone().unbind());
        m.add(name, t)?;
    }
    let _ = EXCEPTION_TYPE.set(
        py,
        py.get_type::<pyo3::exceptions::PyException>()
            .into_any()
            .unbind(),
    );
    m.add("__version__", crate::VERSION)?;
    m.add_class::<PyBreaker>()?;
    m.add_class::<PyPermit>()?;
    m.add_class::<Guarded>()?;
    m.add_class::<PyLimiter>()?;
    m.add_class::<PyBulkhead>()?;
    m.add_class::<PyBackoff>()?;
    m.add_function(wrap_pyfunction!(monotonic_ns, m)?)?;
    Ok(())
}
