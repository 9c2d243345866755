//! `CircuitBreaker` and `Permit`: the core breaker behind one frozen class.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use fastbreaker as fb;
use fb::binding::{permit_from_parts, permit_into_parts};
use fb::limits::{DEFAULT_WINDOW_BUCKETS, DEFAULT_WINDOW_SIZE};
use fb::{BreakerConfig, Clock, Outcome, Permit, PermitKind, Rejected, State, Transition};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use crate::clock::{PyManualClock, TimeSource};
use crate::config::{
    breaker_config, call_duration, seconds_exact, type_error, BreakerArgs, Translation,
};
use crate::listeners::{Hook, Listeners};
use crate::native::{histogram_dict, log_listener_error, make_error, ns_to_s, CIRCUIT_OPEN_ERROR};
use crate::stats::{Histogram, Transitions};

/// The core breaker behind a trait object, so that one Python class covers every window.
pub(crate) trait Core: Send + Sync {
    fn acquire(&self, clock: &TimeSource) -> Result<Permit, Rejected>;
    fn record(&self, permit: Permit, outcome: Outcome, clock: &TimeSource) -> Option<Transition>;
    fn record_timed(
        &self,
        permit: Permit,
        outcome: Outcome,
        duration_ns: u64,
        now: u64,
    ) -> Option<Transition>;
    fn state(&self) -> State;
    fn metrics(&self, now: u64) -> fb::Metrics;
    fn retry_after(&self, now: u64) -> u64;
    fn manual(&self, to: State, now: u64) -> Option<Transition>;
    fn config(&self) -> BreakerConfig;
    fn reconfigure(&self, config: BreakerConfig) -> Result<(), fb::ReconfigureError>;
}

/// The core's `reconfigure`, which each window kind defines.
pub(crate) trait Reconfigure {
    fn reconfigure_core(&self, config: BreakerConfig) -> Result<(), fb::ReconfigureError>;
}

impl<const WORDS: usize> Reconfigure for fb::CircuitBreaker<fb::CountWindow<WORDS>> {
    fn reconfigure_core(&self, config: BreakerConfig) -> Result<(), fb::ReconfigureError> {
        self.reconfigure(config)
    }
}

impl<const B: usize> Reconfigure for fb::CircuitBreaker<fb::TimeWindow<B>> {
    fn reconfigure_core(&self, config: BreakerConfig) -> Result<(), fb::ReconfigureError> {
        self.reconfigure(config)
    }
}

impl<W: fb::Window + Send + Sync> Core for fb::CircuitBreaker<W>
where
    fb::CircuitBreaker<W>: Reconfigure,
{
    #[inline]
    fn acquire(&self, clock: &TimeSource) -> Result<Permit, Rejected> {
        self.acquire_with(clock)
    }
    #[inline]
    fn record(&self, permit: Permit, outcome: Outcome, clock: &TimeSource) -> Option<Transition> {
        self.record_with(clock, permit, outcome)
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
    fn metrics(&self, now: u64) -> fb::Metrics {
        fb::CircuitBreaker::metrics(self, now)
    }
    fn retry_after(&self, now: u64) -> u64 {
        fb::CircuitBreaker::retry_after(self, now)
    }
    fn manual(&self, to: State, now: u64) -> Option<Transition> {
        match to {
            State::ForcedOpen => self.force_open(now),
            State::Disabled => self.disable(now),
            State::MetricsOnly => self.metrics_only(now),
            State::Open => self.trip(now),
            State::HalfOpen => self.half_open(now),
            State::Closed => self.reset(now),
        }
    }
    fn config(&self) -> BreakerConfig {
        fb::CircuitBreaker::config(self)
    }
    fn reconfigure(&self, config: BreakerConfig) -> Result<(), fb::ReconfigureError> {
        self.reconfigure_core(config)
    }
}

/// A breaker in a shared region: the same calls, on the primitive in the mapping.
impl<W: fb::Window + Send + Sync> Core for fb::shm::Shared<fb::CircuitBreaker<W>>
where
    fb::CircuitBreaker<W>: Reconfigure,
{
    #[inline]
    fn acquire(&self, clock: &TimeSource) -> Result<Permit, Rejected> {
        Core::acquire(&**self, clock)
    }
    #[inline]
    fn record(&self, permit: Permit, outcome: Outcome, clock: &TimeSource) -> Option<Transition> {
        Core::record(&**self, permit, outcome, clock)
    }
    #[inline]
    fn record_timed(
        &self,
        permit: Permit,
        outcome: Outcome,
        duration_ns: u64,
        now: u64,
    ) -> Option<Transition> {
        Core::record_timed(&**self, permit, outcome, duration_ns, now)
    }
    fn state(&self) -> State {
        Core::state(&**self)
    }
    fn metrics(&self, now: u64) -> fb::Metrics {
        Core::metrics(&**self, now)
    }
    fn retry_after(&self, now: u64) -> u64 {
        Core::retry_after(&**self, now)
    }
    fn manual(&self, to: State, now: u64) -> Option<Transition> {
        Core::manual(&**self, to, now)
    }
    fn config(&self) -> BreakerConfig {
        Core::config(&**self)
    }
    /// In-process only: a shared breaker is reconfigured through its region (for every
    /// process, under the slot's writer lock).
    fn reconfigure(&self, config: BreakerConfig) -> Result<(), fb::ReconfigureError> {
        Core::reconfigure(&**self, config)
    }
}

/// The breaker in slot `name` of `region` (a count window holds up to 1024 outcomes).
fn shared_core(
    py: Python<'_>,
    region: &std::sync::Arc<fb::shm::Region>,
    name: &str,
    config: BreakerConfig,
    time: bool,
    reconfigure: bool,
    tr: &Translation,
) -> PyResult<Box<dyn Core>> {
    use fb::shm::SlotConfig;
    let slot = if time {
        SlotConfig::BreakerTime(config)
    } else {
        SlotConfig::BreakerCount(config)
    };
    if reconfigure {
        crate::region::reconfigure_slot(py, region, name, slot, tr)?;
    }
    let err = |e| crate::region::region_error(py, e);
    Ok(if time {
        Box::new(region.shared_breaker_time(name, &config).map_err(err)?)
    } else {
        Box::new(region.shared_breaker_count(name, &config).map_err(err)?)
    })
}

/// A breaker on a count window (`time = false`) or a time window, sized by `config`.
fn build_core(config: BreakerConfig, time: bool) -> Result<Box<dyn Core>, fb::ConfigError> {
    use fb::{CircuitBreaker as CB, CountWindow1024, CountWindow128, TimeWindow64};
    Ok(if time {
        Box::new(CB::<TimeWindow64>::new(config)?)
    } else if config.window_size.unwrap_or(DEFAULT_WINDOW_SIZE) <= 128 {
        Box::new(CB::<CountWindow128>::new(config)?)
    } else {
        Box::new(CB::<CountWindow1024>::new(config)?)
    })
}

/// A constructor argument: not given at all, or given (possibly as `None`).
#[derive(Default)]
pub(crate) enum Arg<'py> {
    #[default]
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
    pub(crate) fn value(&self) -> Option<&Bound<'py, PyAny>> {
        match self {
            Arg::Given(v) if !v.is_none() => Some(v),
            _ => None,
        }
    }
}

/// A `bool` option: only `True` or `False` (the message names the argument).
fn flag(name: &str, v: &Bound<'_, PyAny>) -> PyResult<bool> {
    v.cast::<pyo3::types::PyBool>()
        .map(|b| b.is_true())
        .map_err(|_| type_error(name, v, "a bool (True or False)"))
}

/// A circuit breaker on the lock-free core (see the package docs for every option).
#[pyclass(
    frozen,
    subclass,
    module = "fastbreaker._native",
    name = "CircuitBreaker"
)]
pub(crate) struct PyBreaker {
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
    /// The clock the breaker reads.
    pub(crate) clock: TimeSource,
    /// Whether the jitter seed in force was given (false: random per instance).
    seed_given: AtomicBool,
    /// Whether the window is a time window.
    time_window: bool,
    /// State changes by (from, to), for exporters.
    transitions: Transitions,
    /// Rejected calls answered by the fallback.
    fallbacks: AtomicU64,
    /// Call durations, when built with `measure_durations=True`.
    durations: Option<Histogram>,
    /// The region the breaker lives in, if it is shared.
    region: Option<std::sync::Arc<fb::shm::Region>>,
}

/// Leave to make one call, from `CircuitBreaker.acquire()`; hand it back with its outcome
/// to `CircuitBreaker.record()`.
///
/// A permit counts once: recording it a second time raises RuntimeError and changes
/// nothing. A permit that is never recorded (dropped) counts nowhere; a dropped half-open
/// probe keeps its probe slot until the breaker's wait has passed since the latest probe was
/// admitted, then the breaker presumes it hung and admits a new probe. Record it as
/// `"ignored"` to hand the slot back at once.
#[pyclass(frozen, module = "fastbreaker._native", name = "Permit")]
pub(crate) struct PyPermit {
    generation: u64,
    kind: PermitKind,
    started_at: u64,
    /// When the call started, if the breaker measures durations.
    started: Option<u64>,
    /// The breaker that issued it, so that it is recorded there only.
    owner: Py<PyBreaker>,
    used: AtomicBool,
}

#[pymethods]
impl PyPermit {
    /// What the permit admits: "normal" (closed), "probe" (half-open), "observe"
    /// (metrics-only) or "passive" (disabled).
    #[getter]
    fn kind(&self) -> &'static str {
        match self.kind {
            PermitKind::Normal => "normal",
            PermitKind::Probe => "probe",
            PermitKind::Observe => "observe",
            PermitKind::Passive => "passive",
        }
    }

    /// Whether the permit's outcome has been recorded.
    #[getter]
    fn recorded(&self) -> bool {
        self.used.load(Ordering::Relaxed)
    }

    /// Lets the garbage collector see the breaker the permit holds.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.owner)
    }

    fn __repr__(&self) -> String {
        format!(
            "<Permit kind={} generation={}{}>",
            self.kind(),
            self.generation,
            if self.recorded() { " recorded" } else { "" }
        )
    }
}

/// How `record()` was told the outcome.
enum Told<'py> {
    Outcome(Outcome),
    Exception(Bound<'py, PyAny>),
}

impl PyBreaker {
    fn state_str(&self) -> &'static str {
        self.core.state().as_str()
    }

    #[inline]
    fn now(&self) -> u64 {
        self.clock.now_ns()
    }

    /// The error for a refused call.
    pub(crate) fn rejection(&self, py: Python<'_>, r: Rejected) -> PyErr {
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

    /// The error of a refused call, after telling the listeners; and the fallback to call
    /// instead, if there is one (counted).
    pub(crate) fn refusal(&self, py: Python<'_>, r: Rejected) -> (PyErr, Option<&Py<PyAny>>) {
        let err = self.rejection(py, r);
        self.notify(py, Hook::Rejection, |l, name| {
            l.call1((name, err.value(py)))
        });
        if self.fallback.is_some() {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        (err, self.fallback.as_ref())
    }

    /// Asks the core for a permit; reports the state change the acquire made, if any.
    #[inline]
    pub(crate) fn acquire_permit(&self, py: Python<'_>) -> Result<Permit, Rejected> {
        let r = self.core.acquire(&self.clock);
        if let Ok(p) = &r {
            if let Some(t) = p.transition() {
                self.transitioned(py, t);
            }
        }
        r
    }

    /// How a raised exception counts.
    fn classify(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> Outcome {
        // BaseExceptions that are not Exceptions (cancellation, KeyboardInterrupt,
        // GeneratorExit) say nothing about the service: they count as Ignored.
        if !value
            .is_instance(&py.get_type::<pyo3::exceptions::PyException>())
            .unwrap_or(true)
        {
            return Outcome::Ignored;
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

    /// Records the outcome of a call that raised `exc` (None: it returned).
    pub(crate) fn finish(
        &self,
        py: Python<'_>,
        permit: Permit,
        exc: Option<&Bound<'_, PyAny>>,
        started: Option<u64>,
    ) {
        let outcome = match exc {
            None => Outcome::Success,
            Some(e) => self.classify(py, e),
        };
        let t = self.record_outcome(permit, outcome, started, None);
        if outcome == Outcome::Failure {
            if let Some(e) = exc {
                self.notify(py, Hook::Failure, |l, name| l.call1((name, e)));
            }
        }
        if let Some(t) = t {
            self.transitioned(py, t);
        }
    }

    /// Records `outcome`, observing the duration if the breaker measures them; `duration`:
    /// the call's duration if the caller gives it.
    #[inline]
    pub(crate) fn record_outcome(
        &self,
        permit: Permit,
        outcome: Outcome,
        started: Option<u64>,
        duration: Option<u64>,
    ) -> Option<Transition> {
        match (&self.durations, started, duration) {
            (_, _, Some(d)) => {
                if let (Some(h), true) = (&self.durations, outcome != Outcome::Ignored) {
                    h.observe(d);
                }
                self.core.record_timed(permit, outcome, d, self.now())
            }
            (Some(h), Some(start), None) => {
                let now = self.now();
                let d = now.saturating_sub(start);
                if outcome != Outcome::Ignored {
                    h.observe(d);
                }
                self.core.record_timed(permit, outcome, d, now)
            }
            _ => self.core.record(permit, outcome, &self.clock),
        }
    }

    /// When a call starts, if the breaker measures durations.
    #[inline]
    pub(crate) fn start(&self) -> Option<u64> {
        self.durations.as_ref().map(|_| self.now())
    }

    pub(crate) fn transitioned(&self, py: Python<'_>, t: Transition) {
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

    fn manual(&self, py: Python<'_>, to: State) {
        if let Some(t) = self.core.manual(to, self.now()) {
            self.transitioned(py, t);
        }
    }

    /// The outcome `record()` was told.
    fn told<'py>(&self, outcome: Option<Bound<'py, PyAny>>) -> PyResult<Told<'py>> {
        let Some(o) = outcome else {
            return Ok(Told::Outcome(Outcome::Success));
        };
        if let Ok(s) = o.cast::<PyString>() {
            return match &*s.to_cow()? {
                "success" => Ok(Told::Outcome(Outcome::Success)),
                "failure" => Ok(Told::Outcome(Outcome::Failure)),
                "ignored" => Ok(Told::Outcome(Outcome::Ignored)),
                _ => Err(PyValueError::new_err(format!(
                    "outcome must be None, \"success\", \"failure\", \"ignored\" or an \
                     exception, got {}",
                    crate::config::repr(&o)
                ))),
            };
        }
        let base = o.py().get_type::<pyo3::exceptions::PyBaseException>();
        if o.is_instance(&base)? {
            return Ok(Told::Exception(o));
        }
        Err(type_error(
            "outcome",
            &o,
            "None, \"success\", \"failure\", \"ignored\" or an exception",
        ))
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
        count_excluded_as_success = Arg::Absent,
        fallback = Arg::Absent,
        listeners = Arg::Absent,
        measure_durations = Arg::Absent,
        rejection_error = Arg::Absent,
        clock = Arg::Absent,
        shared = Arg::Absent,
        reconfigure = Arg::Absent,
        wait_duration_ns = Arg::Absent,
        max_wait_duration_ns = Arg::Absent,
        slow_call_duration_ns = Arg::Absent,
        bucket_duration_ns = Arg::Absent,
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
        count_excluded_as_success: Arg<'py>,
        fallback: Arg<'py>,
        listeners: Arg<'py>,
        measure_durations: Arg<'py>,
        rejection_error: Arg<'py>,
        clock: Arg<'py>,
        shared: Arg<'py>,
        reconfigure: Arg<'py>,
        wait_duration_ns: Arg<'py>,
        max_wait_duration_ns: Arg<'py>,
        slow_call_duration_ns: Arg<'py>,
        bucket_duration_ns: Arg<'py>,
    ) -> PyResult<Self> {
        let name = name
            .cast::<PyString>()
            .map_err(|_| type_error("name", name, "a str"))?
            .clone();
        let args = BreakerArgs {
            failure_threshold,
            wait_duration,
            wait_duration_ns,
            failure_rate_threshold,
            slow_call_rate_threshold,
            slow_call_duration,
            slow_call_duration_ns,
            minimum_calls,
            window,
            window_seconds,
            bucket_duration_ns,
            buckets,
            backoff_factor,
            max_wait_duration,
            max_wait_duration_ns,
            jitter,
            jitter_seed,
            half_open_max_calls,
            success_threshold,
        };
        let (c, time, tr) = breaker_config(&args, BreakerConfig::new(), None)?;
        let count_excluded_as_success = match count_excluded_as_success.value() {
            Some(v) => flag("count_excluded_as_success", v)?,
            None => false,
        };
        let measure_durations = match measure_durations.value() {
            Some(v) => flag("measure_durations", v)?,
            None => false,
        };

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
        let reconfigure = match reconfigure.value() {
            Some(v) => flag("reconfigure", v)?,
            None => false,
        };
        let region = crate::region::region_of(py, shared.value())?;
        if region.is_some() {
            crate::region::no_manual_clock(clock.value())?;
        }
        let clock = TimeSource::from_arg(clock.value())?;
        let mut core = build_core(c, time).map_err(|e| tr.error(e))?;
        tr.check_substitutions()?;
        if let Some(region) = &region {
            core = shared_core(py, region, &name.to_cow()?, c, time, reconfigure, &tr)?;
        }
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
            listeners: Listeners::new(&ls)?,
            clock,
            seed_given: AtomicBool::new(c.jitter_seed.is_some()),
            time_window: time,
            transitions: Transitions::default(),
            fallbacks: AtomicU64::new(0),
            durations: measure_durations.then(Histogram::default),
            region,
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
        ns_to_s(self.core.retry_after(self.now()))
    }

    /// `retry_after` in whole nanoseconds, exact: float seconds cannot hold every
    /// nanosecond past 2^53 ns (the longest wait is 2^54 ns).
    #[getter]
    fn retry_after_ns(&self) -> u64 {
        self.core.retry_after(self.now())
    }

    /// The name of the shared region the breaker lives in, or None (in-process).
    #[getter]
    fn shared(&self) -> Option<&str> {
        self.region.as_deref().map(fb::shm::Region::name)
    }

    /// The ManualClock the breaker reads, or None (the system's monotonic clock).
    #[getter]
    fn clock(&self, py: Python<'_>) -> Option<Py<PyManualClock>> {
        self.clock.object(py)
    }

    /// Every option the breaker was built with, read back from the core with the defaults
    /// resolved, in the constructor's units (a new dict): the keyword arguments that build
    /// an equivalent breaker, except the objects (exclude, fallback, listeners,
    /// rejection_error). ``window`` for a count window, ``window_seconds`` and ``buckets``
    /// for a time window; ``max_wait_duration`` None when the wait has no cap of its own;
    /// ``jitter_seed`` None when each instance draws a random one. A duration is in
    /// seconds, unless float seconds would not give back its exact nanoseconds (some values
    /// past 2^53 ns): then it is under its ``_ns`` name instead (``wait_duration_ns``,
    /// ``slow_call_duration_ns``, ``max_wait_duration_ns``, and ``bucket_duration_ns`` in
    /// place of ``window_seconds``).
    fn options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.core.config();
        let d = PyDict::new(py);
        let put = |s_name: &str, ns_name: &str, ns: u64| {
            if seconds_exact(ns) {
                d.set_item(s_name, ns_to_s(ns))
            } else {
                d.set_item(ns_name, ns)
            }
        };
        d.set_item("failure_threshold", c.failure_threshold)?;
        put("wait_duration", "wait_duration_ns", c.wait_duration_ns)?;
        d.set_item("failure_rate_threshold", c.failure_rate_threshold)?;
        d.set_item("slow_call_rate_threshold", c.slow_call_rate_threshold)?;
        put(
            "slow_call_duration",
            "slow_call_duration_ns",
            c.slow_call_duration_ns,
        )?;
        d.set_item("minimum_calls", c.minimum_calls)?;
        if self.time_window {
            let buckets = c.window_buckets.unwrap_or(DEFAULT_WINDOW_BUCKETS);
            let bucket = c.bucket_duration_ns;
            // window_seconds gives back the bucket's duration if the span survives float
            // seconds and divides back into it.
            let span = bucket.checked_mul(buckets as u64);
            match span {
                Some(span) if seconds_exact(span) => {
                    d.set_item("window_seconds", ns_to_s(span))?;
                }
                _ => d.set_item("bucket_duration_ns", bucket)?,
            }
            d.set_item("buckets", buckets)?;
        } else {
            d.set_item("window", c.window_size)?;
        }
        d.set_item("backoff_factor", c.backoff_factor_milli as f64 / 1000.0)?;
        match c.max_wait_duration_ns {
            Some(ns) => put("max_wait_duration", "max_wait_duration_ns", ns)?,
            None => d.set_item("max_wait_duration", None::<f64>)?,
        }
        d.set_item("jitter", c.jitter_permille as f64 / 1000.0)?;
        let seed = c
            .jitter_seed
            .filter(|_| self.seed_given.load(Ordering::Relaxed));
        d.set_item("jitter_seed", seed)?;
        d.set_item("half_open_max_calls", c.half_open_max_calls)?;
        d.set_item("success_threshold", c.success_threshold)?;
        d.set_item(
            "count_excluded_as_success",
            self.excluded_outcome == Outcome::Success,
        )?;
        d.set_item("measure_durations", self.durations.is_some())?;
        d.set_item("clock", self.clock(py))?;
        Ok(d)
    }

    /// Changes the configuration at run time, keeping the state (the state, window,
    /// consecutive failures, backoff step, probes and permits out carry over; the next
    /// decision is made on the new settings). Takes the constructor's configuration
    /// keywords, in its units; an option not given keeps the value in force (see
    /// ``options()``). ``None`` turns an optional rule off (``failure_threshold``, the rate
    /// thresholds, ``max_wait_duration``: no cap of its own, ``jitter_seed``: random). The
    /// window is fixed for the breaker's life: a different ``window`` / ``window_seconds``
    /// / ``buckets`` is a ValueError. An invalid value is a ValueError as in the
    /// constructor, and changes nothing. A shared breaker is reconfigured in its region,
    /// for every process (RegionError ``reason="busy"`` if another process holds the
    /// slot's writer lock too long); an in-process one raises RuntimeError if another
    /// reconfiguration holds it too long.
    #[pyo3(signature = (
        *,
        failure_threshold = Arg::Absent,
        wait_duration = Arg::Absent,
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
        wait_duration_ns = Arg::Absent,
        max_wait_duration_ns = Arg::Absent,
        slow_call_duration_ns = Arg::Absent,
        bucket_duration_ns = Arg::Absent,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn reconfigure<'py>(
        &self,
        py: Python<'py>,
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
        wait_duration_ns: Arg<'py>,
        max_wait_duration_ns: Arg<'py>,
        slow_call_duration_ns: Arg<'py>,
        bucket_duration_ns: Arg<'py>,
    ) -> PyResult<()> {
        let args = BreakerArgs {
            failure_threshold,
            wait_duration,
            wait_duration_ns,
            failure_rate_threshold,
            slow_call_rate_threshold,
            slow_call_duration,
            slow_call_duration_ns,
            minimum_calls,
            window,
            window_seconds,
            bucket_duration_ns,
            buckets,
            backoff_factor,
            max_wait_duration,
            max_wait_duration_ns,
            jitter,
            jitter_seed,
            half_open_max_calls,
            success_threshold,
        };
        let mut base = self.core.config();
        if !self.seed_given.load(Ordering::Relaxed) {
            // A seed drawn at random stays random (and is kept by the core).
            base.jitter_seed = None;
        }
        let (c, _, tr) = breaker_config(&args, base, Some(self.time_window))?;
        // Validated as the constructor validates (the same words), before anything changes.
        build_core(c, self.time_window).map_err(|e| tr.error(e))?;
        tr.check_substitutions()?;
        match &self.region {
            Some(region) => {
                use fb::shm::SlotConfig;
                let slot = if self.time_window {
                    SlotConfig::BreakerTime(c)
                } else {
                    SlotConfig::BreakerCount(c)
                };
                let name = self.name.bind(py).to_cow()?;
                crate::region::reconfigure_slot(py, region, &name, slot, &tr)?;
            }
            None => self.core.reconfigure(c).map_err(|e| match e {
                fb::ReconfigureError::Invalid(e) => tr.error(e),
                _ => PyRuntimeError::new_err(format!(
                    "breaker {:?}: another reconfiguration is under way and held it too \
                     long; nothing changed, try again",
                    self.name.bind(py).to_string()
                )),
            })?,
        }
        self.seed_given
            .store(c.jitter_seed.is_some(), Ordering::Relaxed);
        Ok(())
    }

    /// The fallback, or None.
    #[getter]
    fn fallback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.fallback.as_ref().map(|f| f.clone_ref(py))
    }

    /// A snapshot of the state and counters, as a JSON-serialisable dict (every key is
    /// described in py/docs/metrics.md). Rates are ratios from 0.0 to 1.0.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let now = self.now();
        let m = self.core.metrics(now);
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
        d.set_item("failure_rate", m.window.failure_rate())?;
        d.set_item("slow_call_rate", m.window.slow_rate())?;
        d.set_item("retry_after", ns_to_s(m.retry_after))?;
        let age = m.last_transition_at.map(|t| ns_to_s(now.saturating_sub(t)));
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

    /// Adds a listener: an object with at least one of the hooks on_state_change(name, old,
    /// new), on_failure(name, exc), on_rejection(name, exc). An object with none of them, or
    /// with another public ``on_*`` method (a misspelt hook), raises TypeError. Its hooks
    /// are looked up now: methods added to the object later are not called.
    fn add_listener(&self, listener: Bound<'_, PyAny>) -> PyResult<()> {
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

    /// Wraps a sync callable natively: the decorator's hot path (see `Guarded`).
    fn _guard(slf: &Bound<'_, Self>, func: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        crate::guard::new_guarded(slf, func)
    }

    /// Admits one call and returns its Permit, or raises CircuitOpenError (listeners are
    /// notified either way). Hand the permit back with its outcome to `record()`.
    fn acquire(slf: &Bound<'_, Self>) -> PyResult<PyPermit> {
        let py = slf.py();
        let this = slf.get();
        match this.acquire_permit(py) {
            Ok(permit) => {
                let started = this.start();
                let (generation, kind, started_at) = permit_into_parts(permit);
                Ok(PyPermit {
                    generation,
                    kind,
                    started_at,
                    started,
                    owner: slf.clone().unbind(),
                    used: AtomicBool::new(false),
                })
            }
            Err(r) => {
                let (err, _) = this.refusal_without_fallback(py, r);
                Err(err)
            }
        }
    }

    /// Records the outcome of a call admitted by `acquire()`: `outcome` is None or
    /// "success", "failure", "ignored", or the exception the call raised (counted by the
    /// breaker's exclude rules, like a decorated call's). `duration`: the call's duration in
    /// seconds, for slow-call detection (default: measured from the acquire on the
    /// breaker's clock); or `duration_ns`, the same in whole nanoseconds (not both). A
    /// permit counts once: a second record raises RuntimeError and changes nothing.
    #[pyo3(signature = (permit, outcome = None, *, duration = None, duration_ns = None))]
    fn record(
        slf: &Bound<'_, Self>,
        permit: &Bound<'_, PyAny>,
        outcome: Option<Bound<'_, PyAny>>,
        duration: Option<Bound<'_, PyAny>>,
        duration_ns: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let permit = permit
            .cast::<PyPermit>()
            .map_err(|_| type_error("permit", permit, "a Permit from acquire()"))?
            .get();
        if !permit.owner.is(slf) {
            return Err(PyValueError::new_err(
                "permit was issued by another breaker: record it there",
            ));
        }
        let told = this.told(outcome)?;
        let duration = duration.filter(|v| !v.is_none());
        let duration_ns = duration_ns.filter(|v| !v.is_none());
        let duration = call_duration(
            "duration",
            duration.as_ref(),
            "duration_ns",
            duration_ns.as_ref(),
        )?;
        if permit.used.swap(true, Ordering::Relaxed) {
            return Err(PyRuntimeError::new_err(
                "permit already recorded: a permit counts once",
            ));
        }
        let core_permit = permit_from_parts(permit.generation, permit.kind, permit.started_at);
        match told {
            Told::Exception(e) => {
                if duration.is_some() {
                    let outcome = this.classify(py, &e);
                    let t = this.record_outcome(core_permit, outcome, permit.started, duration);
                    if outcome == Outcome::Failure {
                        this.notify(py, Hook::Failure, |l, name| l.call1((name, &e)));
                    }
                    if let Some(t) = t {
                        this.transitioned(py, t);
                    }
                } else {
                    this.finish(py, core_permit, Some(&e), permit.started);
                }
            }
            Told::Outcome(o) => {
                if let Some(t) = this.record_outcome(core_permit, o, permit.started, duration) {
                    this.transitioned(py, t);
                }
            }
        }
        Ok(())
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
        visit.call(self.clock.py_object())?;
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
    /// The error of a refused `acquire()` (no fallback: the caller handles the refusal),
    /// after telling the listeners.
    fn refusal_without_fallback(&self, py: Python<'_>, r: Rejected) -> (PyErr, ()) {
        let err = self.rejection(py, r);
        self.notify(py, Hook::Rejection, |l, name| {
            l.call1((name, err.value(py)))
        });
        (err, ())
    }

    /// The callable a guarded call checks before it asks the breaker: a non-callable is the
    /// caller's mistake, not a failure of the service.
    pub(crate) fn check_callable(func: &Bound<'_, PyAny>) -> PyResult<()> {
        if func.is_callable() {
            Ok(())
        } else {
            Err(PyTypeError::new_err(format!(
                "func must be callable, got {}",
                crate::config::describe(func)
            )))
        }
    }
}
