//! `KeyedCounters`: the core's [`fastbreaker::KeyedCounters`] (fixed-window counters and
//! moving-window logs per key) in this process, or (with `shared=`) in a counter table of
//! a shared-memory region that every process shares. The `limits` storage
//! (`fastbreaker.limits_storage`) is built on it; times are ints of nanoseconds given by
//! the caller (that storage gives the wall clock, as `limits` reads it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use fastbreaker as fb;
use fb::shm::{CountersConfig, SharedCounters};
use fb::{CountersRejected, HeapCounters, WhenFull};
use pyo3::exceptions::{PyTimeoutError, PyValueError};
use pyo3::prelude::*;

use crate::config::repr;
use crate::region::{region_error, region_of};

/// How long an operation retries while the core answers `Busy` (a lock held by another
/// process): past the lease of a dead holder (500 ms), with room for a busy machine.
const BUSY_BUDGET: Duration = Duration::from_secs(2);

enum Table {
    Own(fb::KeyedCounters<HeapCounters>),
    Region(Arc<SharedCounters>),
}

macro_rules! on_table {
    ($t:expr, $m:ident($($a:expr),*)) => {
        match $t {
            Table::Own(t) => t.$m($($a),*),
            Table::Region(t) => t.$m($($a),*),
        }
    };
}

/// Per-key fixed-window counters and moving-window logs of at most `window_entries`
/// entries, for `capacity` keys at once: in this process, or with `shared=` (a
/// SharedRegion or a region name) in the region's counter table `name`, which every process
/// that opens it shares. `when_full` ("reject" or "admit") is what a new key gets when its
/// slots all hold live keys.
#[pyclass(frozen, module = "fastbreaker._native", name = "KeyedCounters")]
pub(crate) struct PyKeyedCounters {
    table: Table,
    path: Option<String>,
}

/// `v` as an int in 0..=i64::MAX, or a ValueError naming `name`.
fn arg(name: &str, v: &Bound<'_, PyAny>) -> PyResult<u64> {
    match v.extract::<i64>() {
        Ok(n) if n >= 0 => Ok(n as u64),
        _ => Err(PyValueError::new_err(format!(
            "{name} must be an int in 0..=2**63-1, got {}",
            repr(v)
        ))),
    }
}

fn when_full_of(s: &str) -> PyResult<WhenFull> {
    match s {
        "reject" => Ok(WhenFull::Reject),
        "admit" => Ok(WhenFull::Admit),
        other => Err(PyValueError::new_err(format!(
            "when_full must be \"reject\" or \"admit\", got {other:?}"
        ))),
    }
}

impl PyKeyedCounters {
    /// Runs `op` at `now` until it is not `Busy` (yielding, then sleeping without the
    /// GIL), for at most [`BUSY_BUDGET`]; then a TimeoutError. A retry runs at `now` plus
    /// the time spent since the first attempt, so that the lease of a lock whose holder died
    /// runs out for it.
    fn run<T>(
        &self,
        py: Python<'_>,
        now: u64,
        op: impl Fn(&Table, u64) -> Result<T, CountersRejected>,
    ) -> PyResult<Result<T, CountersRejected>> {
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            let at =
                now.saturating_add(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
            match op(&self.table, if attempt == 0 { now } else { at }) {
                Err(CountersRejected::Busy) => {}
                Err(CountersRejected::LimitTooLarge { limit, max }) => {
                    return Err(PyValueError::new_err(format!(
                        "limit={limit} is above this storage's window_entries={max}: a moving-window limit must be in 1..={max} (raise window_entries)"
                    )))
                }
                Err(CountersRejected::KeyTooLong { len }) => {
                    return Err(PyValueError::new_err(format!(
                        "key of {len} bytes: at most {} allowed",
                        fb::limits::MAX_KEY_LEN
                    )))
                }
                other => return Ok(other),
            }
            if start.elapsed() > BUSY_BUDGET {
                return Err(PyTimeoutError::new_err(format!(
                    "a key's lock stayed taken for {BUSY_BUDGET:?} (another process holds it)"
                )));
            }
            attempt += 1;
            if attempt < 8 {
                std::thread::yield_now();
            } else {
                py.detach(|| std::thread::sleep(Duration::from_micros(200)));
            }
        }
    }
}

#[pymethods]
impl PyKeyedCounters {
    #[new]
    #[pyo3(signature = (capacity, window_entries, when_full = "reject", *, shared = None, name = "limits", seed = None))]
    fn new(
        py: Python<'_>,
        capacity: &Bound<'_, PyAny>,
        window_entries: &Bound<'_, PyAny>,
        when_full: &str,
        shared: Option<&Bound<'_, PyAny>>,
        name: &str,
        seed: Option<u64>,
    ) -> PyResult<Self> {
        let cap = arg("capacity", capacity)?;
        let entries = arg("window_entries", window_entries)?;
        let when_full = when_full_of(when_full)?;
        let too_big = |name: &str, v: &Bound<'_, PyAny>, max: usize| {
            PyValueError::new_err(format!(
                "{name} must be an int in 1..={max}, got {}",
                repr(v)
            ))
        };
        if cap == 0 || cap > fb::MAX_COUNTER_CAPACITY as u64 {
            return Err(too_big("capacity", capacity, fb::MAX_COUNTER_CAPACITY));
        }
        if entries == 0 || entries > fb::MAX_WINDOW_ENTRIES as u64 {
            return Err(too_big(
                "window_entries",
                window_entries,
                fb::MAX_WINDOW_ENTRIES,
            ));
        }
        let (cap, entries) = (cap as usize, entries as usize);
        match region_of(py, shared)? {
            None => {
                let seed = match seed {
                    Some(s) => s,
                    None => {
                        let b = py.import("os")?.getattr("urandom")?.call1((8,))?;
                        let b: Vec<u8> = b.extract()?;
                        u64::from_ne_bytes(b[..8].try_into().expect("8 bytes"))
                    }
                };
                let t = fb::KeyedCounters::with_capacity(when_full, seed, cap, entries)
                    .map_err(|e| PyValueError::new_err(e.to_string()))?;
                Ok(PyKeyedCounters {
                    table: Table::Own(t),
                    path: None,
                })
            }
            Some(region) => {
                let config = CountersConfig {
                    capacity: cap,
                    window_entries: entries,
                    when_full,
                };
                let t = region
                    .keyed_counters(name, config)
                    .map_err(|e| region_error(py, e))?;
                let path = t.storage().path().to_string_lossy().into_owned();
                Ok(PyKeyedCounters {
                    table: Table::Region(Arc::new(t)),
                    path: Some(path),
                })
            }
        }
    }

    /// Adds `amount` to `key`'s counter at `now_ns` (a window of `expiry_ns` starts if it
    /// had expired or was at 0); the count, or None if the table is full (when_full
    /// "reject"; "admit" answers `amount`).
    fn incr(
        &self,
        py: Python<'_>,
        key: &[u8],
        expiry_ns: &Bound<'_, PyAny>,
        amount: &Bound<'_, PyAny>,
        now_ns: &Bound<'_, PyAny>,
    ) -> PyResult<Option<u64>> {
        let (e, a, now) = (
            arg("expiry_ns", expiry_ns)?,
            arg("amount", amount)?,
            arg("now_ns", now_ns)?,
        );
        Ok(self
            .run(py, now, |t, now| on_table!(t, incr(key, e, a, now)))?
            .ok())
    }

    /// Takes `amount` from `key`'s counter (not below 0); the count (0 if absent).
    fn decr(
        &self,
        py: Python<'_>,
        key: &[u8],
        amount: &Bound<'_, PyAny>,
        now_ns: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let (a, now) = (arg("amount", amount)?, arg("now_ns", now_ns)?);
        Ok(self
            .run(py, now, |t, now| on_table!(t, decr(key, a, now)))?
            .unwrap_or(0))
    }

    /// `key`'s count at `now_ns` (0: absent or expired).
    fn get(&self, py: Python<'_>, key: &[u8], now_ns: &Bound<'_, PyAny>) -> PyResult<u64> {
        let now = arg("now_ns", now_ns)?;
        Ok(self
            .run(py, now, |t, now| on_table!(t, get(key, now)))?
            .unwrap_or(0))
    }

    /// When `key`'s counter expires (ns), or None if it is not live at `now_ns`.
    fn expiry(
        &self,
        py: Python<'_>,
        key: &[u8],
        now_ns: &Bound<'_, PyAny>,
    ) -> PyResult<Option<u64>> {
        let now = arg("now_ns", now_ns)?;
        Ok(self
            .run(py, now, |t, now| on_table!(t, expiry(key, now)))?
            .unwrap_or(None))
    }

    /// Adds `amount` entries at `now_ns` to `key`'s moving window of `expiry_ns` if that
    /// keeps it within `limit` entries; whether it did (False too for a new key of a full
    /// table with when_full "reject"). A limit above `window_entries` is a ValueError.
    fn acquire_entry(
        &self,
        py: Python<'_>,
        key: &[u8],
        limit: &Bound<'_, PyAny>,
        expiry_ns: &Bound<'_, PyAny>,
        amount: &Bound<'_, PyAny>,
        now_ns: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let (l, e, a, now) = (
            arg("limit", limit)?,
            arg("expiry_ns", expiry_ns)?,
            arg("amount", amount)?,
            arg("now_ns", now_ns)?,
        );
        Ok(self
            .run(py, now, |t, now| {
                on_table!(t, acquire_entry(key, l, e, a, now))
            })?
            .unwrap_or(false))
    }

    /// `(start_ns, count)` of `key`'s moving window of `expiry_ns` at `now_ns`: its entries
    /// and the oldest one's time, `(now_ns, 0)` when empty.
    fn moving_window(
        &self,
        py: Python<'_>,
        key: &[u8],
        expiry_ns: &Bound<'_, PyAny>,
        now_ns: &Bound<'_, PyAny>,
    ) -> PyResult<(u64, u64)> {
        let (e, now) = (arg("expiry_ns", expiry_ns)?, arg("now_ns", now_ns)?);
        Ok(self
            .run(py, now, |t, now| on_table!(t, moving_window(key, e, now)))?
            .unwrap_or((now, 0)))
    }

    /// Empties `key`'s counter and log; whether it was in the table.
    fn clear(&self, py: Python<'_>, key: &[u8], now_ns: &Bound<'_, PyAny>) -> PyResult<bool> {
        let now = arg("now_ns", now_ns)?;
        Ok(self
            .run(py, now, |t, now| on_table!(t, clear(key, now)))?
            .unwrap_or(false))
    }

    /// Empties every key (for every process, if shared); how many were live at `now_ns`.
    fn clear_all(&self, py: Python<'_>, now_ns: &Bound<'_, PyAny>) -> PyResult<usize> {
        let now = arg("now_ns", now_ns)?;
        Ok(self
            .run(py, now, |t, now| on_table!(t, clear_all(now)))?
            .unwrap_or(0))
    }

    /// Keys with a live counter or moving-window entry at `now_ns` (a scan of the table).
    fn live_keys(&self, now_ns: &Bound<'_, PyAny>) -> PyResult<usize> {
        let now = arg("now_ns", now_ns)?;
        Ok(on_table!(&self.table, live_keys(now)))
    }

    /// Keys the table tracks at once.
    #[getter]
    fn capacity(&self) -> usize {
        on_table!(&self.table, capacity())
    }

    /// Moving-window entries per key (the largest moving-window limit).
    #[getter]
    fn window_entries(&self) -> usize {
        on_table!(&self.table, window_entries())
    }

    /// "reject" or "admit".
    #[getter]
    fn when_full(&self) -> &'static str {
        match on_table!(&self.table, when_full()) {
            WhenFull::Reject => "reject",
            WhenFull::Admit => "admit",
        }
    }

    /// The shared table's file, or None in this process.
    #[getter]
    fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    fn __repr__(&self) -> String {
        format!(
            "<KeyedCounters capacity={} window_entries={} when_full={} path={}>",
            self.capacity(),
            self.window_entries(),
            self.when_full(),
            self.path
                .as_deref()
                .map_or_else(|| "None".to_string(), |p| format!("{p:?}"))
        )
    }
}

/// Adds the class to the module.
pub(crate) fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyKeyedCounters>()
}
