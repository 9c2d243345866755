//! `RateLimiter` (a GCRA token bucket) and `Bulkhead` (a limit on calls in flight).

use std::sync::atomic::{AtomicU64, Ordering};

use fastbreaker as fb;
use fb::{BucketRejected, Clock};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::breaker::Arg;
use crate::clock::{PyManualClock, TimeSource};
use crate::config::{
    bucket_config, call_duration, repr, type_error, whole, Rate, Translation, Wide,
};
use crate::native::{
    histogram_dict, make_error, ns_to_s, BULKHEAD_FULL, BURST_EXCEEDED, RATE_LIMIT_EXCEEDED,
};
use crate::region::BulkheadStore;
use crate::stats::Histogram;

const NS: f64 = 1e9;

/// A GCRA token bucket: `rate` tokens every `per` seconds (or every `per_ns` nanoseconds),
/// at most `burst` at once.
#[pyclass(frozen, subclass, module = "fastbreaker._native", name = "RateLimiter")]
pub(crate) struct PyLimiter {
    bucket: Bucket,
    /// The rate as given (f64 bits) and its period in ns: what `rate` and `per` report
    /// while the core's configuration is the one they make (see [`PyLimiter::shown`]).
    rate_bits: AtomicU64,
    per_ns: AtomicU64,
    name: Option<Py<PyString>>,
    clock: TimeSource,
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

/// Where a limiter's bucket lives: in the object, or in a shared region.
enum Bucket {
    Own(fb::TokenBucket),
    Region(fb::shm::Shared<fb::TokenBucket>),
}

impl std::ops::Deref for Bucket {
    type Target = fb::TokenBucket;
    #[inline]
    fn deref(&self) -> &fb::TokenBucket {
        match self {
            Bucket::Own(b) => b,
            Bucket::Region(b) => b,
        }
    }
}

/// A shared primitive needs a name: its slot's.
fn slot_name(what: &str, name: &Option<Py<PyString>>, py: Python<'_>) -> PyResult<String> {
    match name {
        Some(n) => Ok(n.bind(py).to_cow()?.into_owned()),
        None => Err(PyValueError::new_err(format!(
            "a shared {what} needs a name= (the name of its slot in the region)"
        ))),
    }
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

/// `"name" ` for a repr, or nothing.
fn repr_name(py: Python<'_>, name: &Option<Py<PyString>>) -> String {
    match name {
        Some(n) => format!("{:?} ", n.bind(py).to_string()),
        None => String::new(),
    }
}

impl PyLimiter {
    /// The rate as the API reports it: as given, while the core's configuration is the one
    /// it makes; else (another process reconfigured the shared bucket) the core's.
    fn shown(&self) -> Rate {
        let given = Rate {
            rate: f64::from_bits(self.rate_bits.load(Ordering::Relaxed)),
            period_ns: self.per_ns.load(Ordering::Relaxed),
        };
        let c = self.bucket.config();
        if given.core() == (c.rate, c.period_ns) {
            given
        } else {
            Rate {
                rate: c.rate as f64,
                period_ns: c.period_ns,
            }
        }
    }

    /// The error for `n` tokens above the burst.
    fn burst_exceeded(&self, py: Python<'_>, n: &Bound<'_, PyAny>) -> PyErr {
        match (n, self.bucket.burst()).into_pyobject(py) {
            Ok(args) => make_error(py, &BURST_EXCEEDED, args),
            Err(e) => e,
        }
    }

    /// `n` as a token count: an int >= 0 (never an OverflowError: more tokens than a u64
    /// holds are more than the burst).
    fn tokens(&self, py: Python<'_>, n: &Bound<'_, PyAny>) -> PyResult<u64> {
        match whole("n", n)? {
            Wide::Fits(k) => Ok(k),
            Wide::Below => Err(PyValueError::new_err(format!(
                "n must be an int >= 0, got {}",
                repr(n)
            ))),
            Wide::Above => Err(self.burst_exceeded(py, n)),
        }
    }

    /// Takes `n` tokens (default 1) if the wait is at most `max_wait` ns (None: any wait);
    /// the wait in nanoseconds.
    fn reserve_within(
        &self,
        py: Python<'_>,
        n: Option<&Bound<'_, PyAny>>,
        max_wait: Option<u64>,
    ) -> PyResult<u64> {
        let one = 1u64.into_pyobject(py)?.into_any();
        let n = n.unwrap_or(&one);
        let k = self.tokens(py, n)?;
        let max_wait = max_wait.unwrap_or(u64::MAX);
        match self.bucket.reserve_within(k, self.clock.now_ns(), max_wait) {
            Ok(0) => {
                self.allowed.fetch_add(1, Ordering::Relaxed);
                Ok(0)
            }
            Ok(wait) => {
                self.delayed.fetch_add(1, Ordering::Relaxed);
                self.waits.observe(wait);
                Ok(wait)
            }
            Err(r) => {
                if matches!(r, BucketRejected::RateLimited { .. }) {
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                }
                Err(self.limit_error(py, r, n))
            }
        }
    }

    fn limit_error(&self, py: Python<'_>, r: BucketRejected, n: &Bound<'_, PyAny>) -> PyErr {
        match r {
            BucketRejected::RateLimited { retry_after } => {
                match (ns_to_s(retry_after), n).into_pyobject(py) {
                    Ok(args) => make_error(py, &RATE_LIMIT_EXCEEDED, args),
                    Err(e) => e,
                }
            }
            _ => self.burst_exceeded(py, n),
        }
    }
}

#[pymethods]
impl PyLimiter {
    #[new]
    #[pyo3(signature = (rate, per = Arg::Absent, burst = Arg::Absent, *, per_ns = None, name = None, clock = None, shared = None, reconfigure = false))]
    #[allow(clippy::too_many_arguments)]
    fn new<'py>(
        py: Python<'py>,
        rate: &Bound<'py, PyAny>,
        per: Arg<'py>,
        burst: Arg<'py>,
        per_ns: Option<&Bound<'py, PyAny>>,
        name: Option<&Bound<'py, PyAny>>,
        clock: Option<&Bound<'py, PyAny>>,
        shared: Option<&Bound<'py, PyAny>>,
        reconfigure: bool,
    ) -> PyResult<Self> {
        let name = optional_name(name)?;
        let per_ns = per_ns.filter(|v| !v.is_none());
        let (shown, config, tr) =
            bucket_config(Some(rate), per.value(), per_ns, burst.value(), None)?;
        let bucket = fb::TokenBucket::new(config).map_err(|e| tr.error(e))?;
        tr.check_substitutions()?;
        let region = crate::region::region_of(py, shared)?;
        let bucket = match &region {
            None => Bucket::Own(bucket),
            Some(region) => {
                crate::region::no_manual_clock(clock)?;
                let slot = slot_name("rate limiter", &name, py)?;
                let err = |e| crate::region::region_error(py, e);
                if reconfigure {
                    crate::region::reconfigure_slot(
                        py,
                        region,
                        &slot,
                        fb::shm::SlotConfig::Bucket(config),
                        &tr,
                    )?;
                }
                Bucket::Region(region.shared_bucket(&slot, config).map_err(err)?)
            }
        };
        Ok(PyLimiter {
            bucket,
            rate_bits: AtomicU64::new(shown.rate.to_bits()),
            per_ns: AtomicU64::new(shown.period_ns),
            name,
            clock: TimeSource::from_arg(clock)?,
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

    /// The name of the shared region the limiter lives in, or None (in-process).
    #[getter]
    fn shared(&self) -> Option<&str> {
        match &self.bucket {
            Bucket::Own(_) => None,
            Bucket::Region(b) => Some(b.region().name()),
        }
    }

    /// The ManualClock the limiter reads, or None (the system's monotonic clock).
    #[getter]
    fn clock(&self, py: Python<'_>) -> Option<Py<PyManualClock>> {
        self.clock.object(py)
    }

    /// Counters for exporters: allowed (at once), delayed (after a wait), rejected,
    /// cancelled (waits given up), the waits' histogram, and the tokens available now.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("name", self.name(py))?;
        let shown = self.shown();
        d.set_item("rate", shown.rate)?;
        d.set_item("per", shown.period_ns as f64 / NS)?;
        d.set_item("burst", self.bucket.burst())?;
        d.set_item("available", self.available())?;
        d.set_item("allowed", self.allowed.load(Ordering::Relaxed))?;
        d.set_item("delayed", self.delayed.load(Ordering::Relaxed))?;
        d.set_item("rejected", self.rejected.load(Ordering::Relaxed))?;
        d.set_item("cancelled", self.cancelled.load(Ordering::Relaxed))?;
        d.set_item("wait", histogram_dict(py, &self.waits.snapshot())?)?;
        Ok(d)
    }

    /// Tokens per `per` seconds (as given, or as the core holds it after another
    /// process reconfigured a shared limiter).
    #[getter]
    fn rate(&self) -> f64 {
        self.shown().rate
    }

    /// The period of `rate`, in seconds.
    #[getter]
    fn per(&self) -> f64 {
        self.shown().period_ns as f64 / NS
    }

    /// The period of `rate`, in whole nanoseconds.
    #[getter]
    fn per_ns(&self) -> u64 {
        self.shown().period_ns
    }

    /// Changes the rate, period and burst at run time, keeping the state: the tokens in
    /// use stay in use (counted at the new rate), so lowering the rate never hands out a
    /// burst and raising it frees nothing early; a burst lowered below the tokens in use
    /// leaves the bucket over its limit until they drain. Takes the constructor's keywords
    /// (``rate``, ``per`` or ``per_ns``, ``burst``); one not given keeps the value in force
    /// (``burst`` included: it is not recomputed from a new rate). An invalid value is a
    /// ValueError as in the constructor, and changes nothing. A shared limiter is
    /// reconfigured in its region, for every process (RegionError ``reason="busy"`` if
    /// another process holds the slot's writer lock too long); an in-process one raises
    /// RuntimeError if another reconfiguration holds it too long.
    #[pyo3(signature = (*, rate = None, per = None, burst = None, per_ns = None))]
    fn reconfigure(
        &self,
        py: Python<'_>,
        rate: Option<&Bound<'_, PyAny>>,
        per: Option<&Bound<'_, PyAny>>,
        burst: Option<&Bound<'_, PyAny>>,
        per_ns: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let base = (self.shown(), self.bucket.config());
        let (shown, config, tr) = bucket_config(rate, per, per_ns, burst, Some(base))?;
        fb::TokenBucket::new(config).map_err(|e| tr.error(e))?;
        tr.check_substitutions()?;
        match &self.bucket {
            Bucket::Own(b) => b
                .reconfigure(config, self.clock.now_ns())
                .map_err(|e| match e {
                    fb::ReconfigureError::Invalid(e) => tr.error(e),
                    _ => PyRuntimeError::new_err(
                        "another reconfiguration of this limiter is under way and held it \
                         too long; nothing changed, try again",
                    ),
                })?,
            Bucket::Region(b) => {
                let slot = slot_name("rate limiter", &self.name, py)?;
                crate::region::reconfigure_slot(
                    py,
                    b.region(),
                    &slot,
                    fb::shm::SlotConfig::Bucket(config),
                    &tr,
                )?;
            }
        }
        // Torn with a concurrent reconfiguration, `shown` falls back to the core's values.
        self.rate_bits
            .store(shown.rate.to_bits(), Ordering::Relaxed);
        self.per_ns.store(shown.period_ns, Ordering::Relaxed);
        Ok(())
    }

    /// The most tokens that can be taken at once.
    #[getter]
    fn burst(&self) -> u64 {
        self.bucket.burst()
    }

    /// Takes `n` tokens if they are all there now; never waits. False when they are not
    /// there yet; `n` above the burst can never succeed and raises BurstExceeded.
    #[pyo3(signature = (n = None))]
    fn try_acquire(&self, py: Python<'_>, n: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let (k, r) = match n {
            None => (1, self.bucket.try_acquire_with(1, &self.clock)),
            Some(n) => {
                let k = self.tokens(py, n)?;
                (k, self.bucket.try_acquire_with(k, &self.clock))
            }
        };
        match r {
            Ok(()) => {
                self.allowed.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Err(BucketRejected::RateLimited { .. }) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
            Err(_) => Err(match n {
                Some(n) => self.burst_exceeded(py, n),
                None => self.burst_exceeded(py, &k.into_pyobject(py)?.into_any()),
            }),
        }
    }

    /// Seconds until `n` tokens could be taken (0.0 if now); BurstExceeded above the burst.
    #[pyo3(signature = (n = None))]
    fn retry_after(&self, py: Python<'_>, n: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        self.retry_after_ns(py, n).map(ns_to_s)
    }

    /// `retry_after(n)` in whole nanoseconds, exact (float seconds cannot hold every
    /// nanosecond past 2^53 ns).
    #[pyo3(signature = (n = None))]
    fn retry_after_ns(&self, py: Python<'_>, n: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
        let one = 1u64.into_pyobject(py)?.into_any();
        let n = n.unwrap_or(&one);
        let k = self.tokens(py, n)?;
        self.bucket
            .retry_after(k, self.clock.now_ns())
            .map_err(|r| self.limit_error(py, r, n))
    }

    /// Tokens that could be taken now.
    fn available(&self) -> u64 {
        self.bucket.available(self.clock.now_ns())
    }

    /// Refills the bucket completely.
    fn reset(&self) {
        self.bucket.reset()
    }

    /// Takes `n` tokens now, in the queue's order, and returns the seconds to wait before
    /// using them (0.0: now); what `acquire()` sleeps for. With `timeout`, raises
    /// RateLimitExceeded (taking nothing) if the wait would be longer. Give the tokens of a
    /// reservation that will not be used back with `refund(n)`.
    #[pyo3(signature = (n = None, timeout = None))]
    fn reserve(
        &self,
        py: Python<'_>,
        n: Option<&Bound<'_, PyAny>>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<f64> {
        let timeout = timeout.filter(|t| !t.is_none());
        let max_wait = call_duration("timeout", timeout, "timeout_ns", None)?;
        self.reserve_within(py, n, max_wait).map(ns_to_s)
    }

    /// `reserve(n, timeout)` in whole nanoseconds, exact: `timeout_ns` and the wait
    /// returned are ints of nanoseconds.
    #[pyo3(signature = (n = None, timeout_ns = None))]
    fn reserve_ns(
        &self,
        py: Python<'_>,
        n: Option<&Bound<'_, PyAny>>,
        timeout_ns: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let timeout_ns = timeout_ns.filter(|t| !t.is_none());
        let max_wait = call_duration("timeout", None, "timeout_ns", timeout_ns)?;
        self.reserve_within(py, n, max_wait)
    }

    /// Gives back `n` tokens of a reservation that will not be used (never filling the
    /// bucket above full).
    #[pyo3(signature = (n = None))]
    fn refund(&self, py: Python<'_>, n: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let k = match n {
            None => 1,
            Some(n) => self.tokens(py, n)?,
        };
        self.bucket.refund(k, self.clock.now_ns());
        self.cancelled.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<RateLimiter {}rate={} per={} burst={}>",
            repr_name(py, &self.name),
            self.rate(),
            self.per(),
            self.bucket.burst()
        )
    }
}

// ----- bulkhead -----

/// At most `max_concurrent` calls in flight.
#[pyclass(frozen, subclass, module = "fastbreaker._native", name = "Bulkhead")]
pub(crate) struct PyBulkhead {
    inner: BulkheadStore,
    name: Option<Py<PyString>>,
    clock: TimeSource,
}

#[pymethods]
impl PyBulkhead {
    #[new]
    #[pyo3(signature = (max_concurrent, *, name = None, clock = None, shared = None, reconfigure = false))]
    fn new(
        py: Python<'_>,
        max_concurrent: &Bound<'_, PyAny>,
        name: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
        shared: Option<&Bound<'_, PyAny>>,
        reconfigure: bool,
    ) -> PyResult<Self> {
        let mut tr = Translation::default();
        let (n, sub) = whole("max_concurrent", max_concurrent)?.fit(u32::MAX as u64);
        tr.note("max_concurrent", "max_concurrent", max_concurrent, sub);
        let own = fb::Bulkhead::new(n as u32).map_err(|e| tr.error(e))?;
        tr.check_substitutions()?;
        let name = optional_name(name)?;
        let inner = match crate::region::region_of(py, shared)? {
            None => BulkheadStore::Own(own),
            Some(region) => {
                crate::region::no_manual_clock(clock)?;
                let slot = slot_name("bulkhead", &name, py)?;
                let max_concurrent = n as u32;
                if reconfigure {
                    crate::region::reconfigure_slot(
                        py,
                        &region,
                        &slot,
                        fb::shm::SlotConfig::Bulkhead { max_concurrent },
                        &tr,
                    )?;
                }
                let shared = region
                    .shared_bulkhead(&slot, max_concurrent)
                    .map_err(|e| crate::region::region_error(py, e))?;
                BulkheadStore::shared(shared)
            }
        };
        Ok(PyBulkhead {
            inner,
            name,
            clock: TimeSource::from_arg(clock)?,
        })
    }

    /// The bulkhead's name, or None.
    #[getter]
    fn name(&self, py: Python<'_>) -> Option<Py<PyString>> {
        self.name.as_ref().map(|n| n.clone_ref(py))
    }

    /// The ManualClock given, or None. A bulkhead reads no clock; it accepts one so that
    /// every primitive takes the same `clock=`.
    #[getter]
    fn clock(&self, py: Python<'_>) -> Option<Py<PyManualClock>> {
        self.clock.object(py)
    }

    /// The name of the shared region the bulkhead lives in, or None (in-process).
    #[getter]
    fn shared(&self) -> Option<&str> {
        match &self.inner {
            BulkheadStore::Own(_) => None,
            BulkheadStore::Region(r) => Some(r.region_name()),
        }
    }

    /// The limit.
    #[getter]
    fn max_concurrent(&self) -> u32 {
        self.inner.bulkhead().max_concurrent()
    }

    /// Changes the limit at run time: permits out stay out (a limit lowered below them
    /// admits no one until enough are released). An invalid value is a ValueError as in
    /// the constructor, and changes nothing. A shared bulkhead is reconfigured in its
    /// region, for every process (RegionError ``reason="busy"`` if another process holds
    /// the slot's writer lock too long).
    #[pyo3(signature = (*, max_concurrent = None))]
    fn reconfigure(
        &self,
        py: Python<'_>,
        max_concurrent: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let Some(v) = max_concurrent else {
            return Ok(());
        };
        let mut tr = Translation::default();
        let (n, sub) = whole("max_concurrent", v)?.fit(u32::MAX as u64);
        tr.note("max_concurrent", "max_concurrent", v, sub);
        fb::Bulkhead::new(n as u32).map_err(|e| tr.error(e))?;
        tr.check_substitutions()?;
        match &self.inner {
            BulkheadStore::Own(b) => b.reconfigure(n as u32).map_err(|e| tr.error(e)),
            BulkheadStore::Region(r) => {
                let slot = slot_name("bulkhead", &self.name, py)?;
                crate::region::reconfigure_slot(
                    py,
                    r.region(),
                    &slot,
                    fb::shm::SlotConfig::Bulkhead {
                        max_concurrent: n as u32,
                    },
                    &tr,
                )
            }
        }
    }

    /// Calls in flight now (in every process, for a shared bulkhead).
    #[getter]
    fn in_flight(&self) -> u32 {
        self.inner.bulkhead().in_flight()
    }

    /// Takes a slot if one is free; give it back with `release()`. A shared bulkhead's
    /// slots are counted under this process, and come back if it dies holding them.
    fn try_acquire(&self) -> bool {
        self.inner.try_acquire()
    }

    /// Gives back a slot taken by `try_acquire()`. A release with no slot out (through
    /// this object, for a shared bulkhead) raises RuntimeError and changes nothing.
    fn release(&self) -> PyResult<()> {
        if self.inner.release() {
            Ok(())
        } else {
            Err(PyRuntimeError::new_err(
                "release() without a slot out: every release must follow a try_acquire()",
            ))
        }
    }

    /// Takes a slot or raises BulkheadFull.
    fn _enter(&self, py: Python<'_>) -> PyResult<()> {
        if self.inner.try_acquire() {
            Ok(())
        } else {
            Err(make_error(
                py,
                &BULKHEAD_FULL,
                (self.inner.bulkhead().max_concurrent(),).into_pyobject(py)?,
            ))
        }
    }

    /// Counters: name, max_concurrent, in_flight, peak, acquired, rejected.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.inner.bulkhead().metrics();
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
            self.inner.bulkhead().max_concurrent(),
            self.inner.bulkhead().in_flight()
        )
    }
}
