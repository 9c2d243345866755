//! `KeyedRateLimiter`: one GCRA token bucket per key (a client address, an API key), in the
//! core's fixed-capacity [`fastbreaker::KeyedBuckets`] table: in this process, or (with
//! `shared=`) in a keyed table of a shared-memory region that every process shares.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fastbreaker as fb;
use fb::limits::MAX_KEY_LEN;
use fb::{Clock, KeyedRejected, WhenFull};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::breaker::Arg;
use crate::clock::{PyManualClock, TimeSource};
use crate::config::{bucket_config, repr, type_error, whole, Rate, Translation, Wide};
use crate::native::{make_error, ns_to_s, BURST_EXCEEDED};

const NS: f64 = 1e9;
/// The prefix of a digested key: a key longer than [`MAX_KEY_LEN`] bytes, or one that
/// starts with this prefix, is stored as the prefix and the key's SHA-256.
const DIGEST_PREFIX: &[u8] = b"\x00sha256:";
/// Attempts of a decision that the core answered `Busy` (a claim of another key with the
/// same home slot held its lock), before the request is refused and counted as limited.
const BUSY_ATTEMPTS: u32 = 8;
/// The default number of slots.
const DEFAULT_CAPACITY: u64 = 1 << 16;

static SHA256: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A key as the table stores it: the bytes as given (a str's UTF-8, borrowed from the str),
/// or their digest.
enum Key<'a> {
    Bytes(&'a [u8]),
    Digest(Vec<u8>),
}

impl Key<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Key::Bytes(b) => b,
            Key::Digest(d) => d,
        }
    }
}

// Part of the limited API from 3.10 only (so pyo3's abi3-py39 build does not declare it),
// but exported by every CPython 3 (3.3 on) this module can be loaded into.
extern "C" {
    fn PyUnicode_AsUTF8AndSize(
        unicode: *mut pyo3::ffi::PyObject,
        size: *mut pyo3::ffi::Py_ssize_t,
    ) -> *const std::os::raw::c_char;
}

/// The UTF-8 bytes of `s` without copying them: a compact ASCII str's own data, else the
/// UTF-8 copy CPython caches in the str (made once, on first use).
fn utf8_of<'a>(s: &'a Bound<'_, PyString>) -> PyResult<&'a [u8]> {
    let mut len: pyo3::ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a str (checked by the cast that made it) and we hold the GIL (a
    // `Bound` proves it). The call returns NULL with an exception set (a lone surrogate
    // cannot be encoded), or a pointer to `len` bytes owned by the str, which stay valid
    // and unchanged while the str lives: at least as long as the borrow `'a` of `s`.
    unsafe {
        let data = PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut len);
        if data.is_null() {
            return Err(PyErr::fetch(s.py()));
        }
        let len = usize::try_from(len).unwrap_or(0);
        Ok(std::slice::from_raw_parts(data.cast::<u8>(), len))
    }
}

/// `key` (a str or bytes) as the table's key: as is if it is at most [`MAX_KEY_LEN`] bytes
/// and does not start with [`DIGEST_PREFIX`], else the prefix and its SHA-256 (so the
/// mapping is one-to-one but for SHA-256 collisions).
fn table_key<'a>(py: Python<'_>, key: &'a Bound<'_, PyAny>) -> PyResult<Key<'a>> {
    let k = if let Ok(s) = key.cast::<PyString>() {
        Key::Bytes(utf8_of(s)?)
    } else if let Ok(b) = key.cast::<PyBytes>() {
        Key::Bytes(b.as_bytes())
    } else {
        return Err(type_error("key", key, "a str or bytes"));
    };
    let b = k.bytes();
    if b.len() <= MAX_KEY_LEN && !b.starts_with(DIGEST_PREFIX) {
        return Ok(k);
    }
    let sha256 = SHA256.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("hashlib")?.getattr("sha256")?.unbind())
    })?;
    let digest = sha256
        .bind(py)
        .call1((PyBytes::new(py, b),))?
        .call_method0("digest")?;
    let mut out = DIGEST_PREFIX.to_vec();
    out.extend_from_slice(digest.cast::<PyBytes>()?.as_bytes());
    Ok(Key::Digest(out))
}

/// A random 64-bit seed from `os.urandom`.
fn random_seed(py: Python<'_>) -> PyResult<u64> {
    let b = py.import("os")?.getattr("urandom")?.call1((8,))?;
    let b = b.cast::<PyBytes>()?.as_bytes();
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    Ok(u64::from_ne_bytes(w))
}

/// The table: this process's, or a region's (shared by every process that opens it).
enum Table {
    Own(fb::KeyedBuckets<Box<[fb::KeySlot]>>),
    Region {
        table: Arc<fb::shm::SharedKeyed>,
        region: String,
    },
}

/// Calls `$m` on whichever table it is.
macro_rules! on_table {
    ($t:expr, $m:ident($($a:expr),*)) => {
        match $t {
            Table::Own(t) => t.$m($($a),*),
            Table::Region { table, .. } => table.$m($($a),*),
        }
    };
}

impl Table {
    fn try_acquire(&self, key: &[u8], n: u64, now: u64) -> Result<(), KeyedRejected> {
        on_table!(self, try_acquire(key, n, now))
    }
    fn retry_after(&self, key: &[u8], n: u64, now: u64) -> Result<u64, KeyedRejected> {
        on_table!(self, retry_after(key, n, now))
    }
    fn state(&self, key: &[u8], now: u64) -> Result<fb::BucketState, KeyedRejected> {
        on_table!(self, state(key, now))
    }
    fn reset(&self, key: &[u8]) -> Result<bool, KeyedRejected> {
        on_table!(self, reset(key))
    }
    fn live_keys(&self, now: u64) -> usize {
        on_table!(self, live_keys(now))
    }
    fn metrics(&self) -> fb::KeyedMetrics {
        on_table!(self, metrics())
    }
    fn config(&self) -> (fb::BucketConfig, WhenFull) {
        on_table!(self, config())
    }
    fn capacity(&self) -> usize {
        on_table!(self, capacity())
    }
}

/// Token buckets per key: `rate` tokens every `per` seconds (or `per_ns` nanoseconds), at
/// most `burst` at once, for each key, in a table of `capacity` slots of this process, or
/// with `shared=` (a SharedRegion or a region name, and a `name=`) in the region's keyed
/// table `name`, which every process that opens it shares (keys and counters).
#[pyclass(frozen, module = "fastbreaker._native", name = "KeyedRateLimiter")]
pub(crate) struct PyKeyedLimiter {
    table: Table,
    shown: Rate,
    name: Option<Py<PyString>>,
    clock: TimeSource,
    /// Requests refused because the core stayed `Busy` (counted as limited too).
    busy: AtomicU64,
}

impl PyKeyedLimiter {
    /// The error for `n` tokens above the burst.
    fn burst_exceeded(&self, py: Python<'_>, n: &Bound<'_, PyAny>) -> PyErr {
        match (n, self.table.config().0.burst).into_pyobject(py) {
            Ok(args) => make_error(py, &BURST_EXCEEDED, args),
            Err(e) => e,
        }
    }

    /// `n` as a token count (default 1): an int >= 0 (more than a u64 holds is more than
    /// the burst).
    fn tokens(&self, py: Python<'_>, n: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
        let Some(n) = n else { return Ok(1) };
        match whole("n", n)? {
            Wide::Fits(k) => Ok(k),
            Wide::Below => Err(PyValueError::new_err(format!(
                "n must be an int >= 0, got {}",
                repr(n)
            ))),
            Wide::Above => Err(self.burst_exceeded(py, n)),
        }
    }

    /// The error for a refusal that is not a bool answer.
    fn error(&self, py: Python<'_>, r: KeyedRejected, n: Option<&Bound<'_, PyAny>>) -> PyErr {
        match r {
            KeyedRejected::ExceedsCapacity { requested, .. } => match n {
                Some(n) => self.burst_exceeded(py, n),
                None => {
                    let n = requested.into_pyobject(py).expect("an int");
                    self.burst_exceeded(py, n.as_any())
                }
            },
            other => PyValueError::new_err(other.to_string()),
        }
    }

    /// Takes `k` tokens of `key` at `now`: whether granted (see `try_acquire`).
    fn acquire(
        &self,
        py: Python<'_>,
        key: &[u8],
        k: u64,
        now: u64,
        n: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        for attempt in 0..BUSY_ATTEMPTS {
            match self.table.try_acquire(key, k, now) {
                Ok(()) => return Ok(true),
                Err(KeyedRejected::RateLimited { .. } | KeyedRejected::TableFull) => {
                    return Ok(false)
                }
                Err(KeyedRejected::Busy) => {
                    if attempt + 1 < BUSY_ATTEMPTS {
                        std::thread::yield_now();
                    }
                }
                Err(r) => return Err(self.error(py, r, n)),
            }
        }
        self.busy.fetch_add(1, Ordering::Relaxed);
        Ok(false)
    }

    /// A limiter over `region`'s existing keyed table `name`, with the configuration its
    /// file holds (for `SharedRegion.keyed_table`).
    pub(crate) fn attached(
        py: Python<'_>,
        region: &fb::shm::Region,
        name: &str,
    ) -> Result<Self, fb::shm::RegionError> {
        let table = region.open_keyed(name)?;
        let (config, _) = table.config();
        Ok(PyKeyedLimiter {
            table: Table::Region {
                table: Arc::new(table),
                region: region.name().to_string(),
            },
            shown: Rate {
                rate: config.rate as f64,
                period_ns: config.period_ns,
            },
            name: Some(PyString::new(py, name).unbind()),
            clock: TimeSource::Monotonic,
            busy: AtomicU64::new(0),
        })
    }

    fn state_at(&self, key: &[u8], now: u64) -> PyResult<fb::BucketState> {
        self.table
            .state(key, now)
            .map_err(|r| PyValueError::new_err(r.to_string()))
    }
}

#[pymethods]
impl PyKeyedLimiter {
    #[new]
    #[pyo3(
        signature = (rate, per = Arg::Absent, burst = Arg::Absent, *, per_ns = None, capacity = None, when_full = None, clock = None, name = None, shared = None),
        text_signature = "(rate, per=1.0, burst=None, *, per_ns=None, capacity=65536, when_full='reject', clock=None, name=None, shared=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new<'py>(
        py: Python<'py>,
        rate: &Bound<'py, PyAny>,
        per: Arg<'py>,
        burst: Arg<'py>,
        per_ns: Option<&Bound<'py, PyAny>>,
        capacity: Option<&Bound<'py, PyAny>>,
        when_full: Option<&Bound<'py, PyAny>>,
        clock: Option<&Bound<'py, PyAny>>,
        name: Option<&Bound<'py, PyAny>>,
        shared: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let name = match name {
            Some(n) if !n.is_none() => Some(
                n.cast::<PyString>()
                    .map_err(|_| type_error("name", n, "a str or None"))?
                    .clone()
                    .unbind(),
            ),
            _ => None,
        };
        let when_full = match when_full {
            None => WhenFull::Reject,
            Some(v) => match v.extract::<String>().as_deref() {
                Ok("reject") => WhenFull::Reject,
                Ok("admit") => WhenFull::Admit,
                _ => {
                    return Err(PyValueError::new_err(format!(
                        "when_full must be \"reject\" or \"admit\", got {}",
                        repr(v)
                    )))
                }
            },
        };
        let per_ns = per_ns.filter(|v| !v.is_none());
        let (shown, config, mut tr): (Rate, fb::BucketConfig, Translation) =
            bucket_config(Some(rate), per.value(), per_ns, burst.value(), None)?;
        let slots = match capacity {
            None => DEFAULT_CAPACITY,
            Some(v) => {
                let (n, sub) = whole("capacity", v)?.fit(u64::MAX);
                tr.note("capacity", "capacity", v, sub);
                n
            }
        };
        // Checked by the core before it allocates; a count past usize is past its range.
        let slots = usize::try_from(slots).unwrap_or(usize::MAX);
        let table = match crate::region::region_of(py, shared)? {
            None => Table::Own(
                fb::KeyedBuckets::with_capacity(config, when_full, random_seed(py)?, slots)
                    .map_err(|e| tr.error(e))?,
            ),
            Some(region) => {
                crate::region::no_manual_clock(clock)?;
                // Errors worded as for a table of this process: the core checks the
                // capacity (before it allocates anything), then the configuration.
                let check = if (1..=fb::limits::MAX_KEYED_CAPACITY).contains(&slots) {
                    1
                } else {
                    slots
                };
                fb::KeyedBuckets::with_capacity(config, when_full, 0, check)
                    .map_err(|e| tr.error(e))?;
                let Some(table_name) = &name else {
                    return Err(PyValueError::new_err(
                        "a shared keyed rate limiter needs a name= (the name of its table in \
                         the region)",
                    ));
                };
                let table_name = table_name.bind(py).to_cow()?.into_owned();
                let table = region
                    .shared_keyed(&table_name, config, when_full, slots)
                    .map_err(|e| crate::region::region_error(py, e))?;
                Table::Region {
                    table,
                    region: region.name().to_string(),
                }
            }
        };
        tr.check_substitutions()?;
        Ok(PyKeyedLimiter {
            table,
            shown,
            name,
            clock: TimeSource::from_arg(clock)?,
            busy: AtomicU64::new(0),
        })
    }

    /// The limiter's name, or None.
    #[getter]
    fn name(&self, py: Python<'_>) -> Option<Py<PyString>> {
        self.name.as_ref().map(|n| n.clone_ref(py))
    }

    /// The name of the shared region whose keyed table the limiter uses, or None (a table
    /// of this process).
    #[getter]
    fn shared(&self) -> Option<&str> {
        match &self.table {
            Table::Own(_) => None,
            Table::Region { region, .. } => Some(region),
        }
    }

    /// The ManualClock the limiter reads, or None (the system's monotonic clock).
    #[getter]
    fn clock(&self, py: Python<'_>) -> Option<Py<PyManualClock>> {
        self.clock.object(py)
    }

    /// Tokens per `per` seconds, for each key.
    #[getter]
    fn rate(&self) -> f64 {
        self.shown.rate
    }

    /// The period of `rate`, in seconds.
    #[getter]
    fn per(&self) -> f64 {
        self.shown.period_ns as f64 / NS
    }

    /// The period of `rate`, in whole nanoseconds.
    #[getter]
    fn per_ns(&self) -> u64 {
        self.shown.period_ns
    }

    /// The most tokens a key can take at once.
    #[getter]
    fn burst(&self) -> u64 {
        self.table.config().0.burst
    }

    /// Slots in the table: the most keys tracked at once.
    #[getter]
    fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// What a new key gets when its slots are all held by live keys: "reject" or "admit".
    #[getter]
    fn when_full(&self) -> &'static str {
        match self.table.config().1 {
            WhenFull::Reject => "reject",
            WhenFull::Admit => "admit",
        }
    }

    /// Takes `n` tokens (default 1) of `key`'s bucket if they are all there now; never
    /// waits. False when they are not there yet; also False for a new key that finds the
    /// table full with when_full="reject" (True, untracked, with "admit"), and for a
    /// request whose slot stayed busy through a few retries (counted as limited). `n`
    /// above the burst raises BurstExceeded.
    #[pyo3(signature = (key, n = None))]
    fn try_acquire(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        n: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let k = self.tokens(py, n)?;
        let key = table_key(py, key)?;
        self.acquire(py, key.bytes(), k, self.clock.now_ns(), n)
    }

    /// `try_acquire(key, n)` and the key's state right after it, at one instant:
    /// `(granted, limit, remaining, reset_after_ns, retry_after_ns)` (for response headers).
    #[pyo3(signature = (key, n = None))]
    fn check_ns(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        n: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(bool, u64, u64, u64, u64)> {
        let k = self.tokens(py, n)?;
        let key = table_key(py, key)?;
        let key = key.bytes();
        let now = self.clock.now_ns();
        let granted = self.acquire(py, key, k, now, n)?;
        let s = self.state_at(key, now)?;
        Ok((granted, s.limit, s.remaining, s.reset_after, s.retry_after))
    }

    /// Seconds until `n` tokens of `key` could be taken (0.0 if now; a key not in the
    /// table is full); BurstExceeded above the burst.
    #[pyo3(signature = (key, n = None))]
    fn retry_after(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        n: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<f64> {
        self.retry_after_ns(py, key, n).map(ns_to_s)
    }

    /// `retry_after(key, n)` in whole nanoseconds, exact.
    #[pyo3(signature = (key, n = None))]
    fn retry_after_ns(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        n: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let k = self.tokens(py, n)?;
        let key = table_key(py, key)?;
        self.table
            .retry_after(key.bytes(), k, self.clock.now_ns())
            .map_err(|r| self.error(py, r, n))
    }

    /// `(limit, remaining, reset_after, retry_after)` of `key` now: the burst, the tokens
    /// it could take now, the seconds until its bucket is full again, and the seconds until
    /// one token is there (0.0 if one is).
    fn state(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<(u64, u64, f64, f64)> {
        let (limit, remaining, reset, retry) = self.state_ns(py, key)?;
        Ok((limit, remaining, ns_to_s(reset), ns_to_s(retry)))
    }

    /// `state(key)` with the durations in whole nanoseconds.
    fn state_ns(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<(u64, u64, u64, u64)> {
        let key = table_key(py, key)?;
        let s = self.state_at(key.bytes(), self.clock.now_ns())?;
        Ok((s.limit, s.remaining, s.reset_after, s.retry_after))
    }

    /// Refills `key`'s bucket (its slot is free for another key). False if the key was
    /// not in the table.
    fn reset(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = table_key(py, key)?;
        let bytes = key.bytes();
        for _ in 0..BUSY_ATTEMPTS {
            match self.table.reset(bytes) {
                Err(KeyedRejected::Busy) => std::thread::yield_now(),
                r => return r.map_err(|r| PyValueError::new_err(r.to_string())),
            }
        }
        Err(pyo3::exceptions::PyRuntimeError::new_err(
            "the key's slot stayed busy: try again",
        ))
    }

    /// Keys holding tokens now (a scan of the whole table).
    fn live_keys(&self) -> usize {
        self.table.live_keys(self.clock.now_ns())
    }

    /// Counters: name, rate, per, burst, capacity, when_full, allowed (granted to tracked
    /// keys), limited (refused for want of tokens, busy included), busy (refused because
    /// the slot stayed busy), full_rejected (new keys refused: table full), full_admitted
    /// (new keys let through untracked: table full), live_keys (a scan of the table).
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.table.metrics();
        let busy = self.busy.load(Ordering::Relaxed);
        let d = PyDict::new(py);
        d.set_item("name", self.name(py))?;
        d.set_item("rate", self.rate())?;
        d.set_item("per", self.per())?;
        d.set_item("burst", self.burst())?;
        d.set_item("capacity", m.capacity)?;
        d.set_item("when_full", self.when_full())?;
        d.set_item("allowed", m.allowed)?;
        d.set_item("limited", m.limited + busy)?;
        d.set_item("busy", busy)?;
        d.set_item("full_rejected", m.full_rejected)?;
        d.set_item("full_admitted", m.full_admitted)?;
        d.set_item("live_keys", self.live_keys())?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let name = match &self.name {
            Some(n) => format!("{:?} ", n.bind(py).to_string()),
            None => String::new(),
        };
        format!(
            "<KeyedRateLimiter {name}rate={} per={} burst={} capacity={}>",
            self.rate(),
            self.per(),
            self.burst(),
            self.capacity()
        )
    }
}

/// Adds the class to the module.
pub(crate) fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyKeyedLimiter>()
}
