//! `SharedRegion`: a named shared-memory region (the core's `shm` feature) whose breakers,
//! buckets and bulkheads every process of the host that opens it shares.
//!
//! The native classes `CircuitBreaker`, `RateLimiter` and `Bulkhead` take `shared=` (a
//! region or a region name) and then hold a [`Shared`] handle to the primitive in the
//! region instead of a primitive of their own. Nothing here takes a lock: the region cache
//! for `shared="name"` is a Python dict, and the owned bulkhead permits are counted per
//! handle in the core's tally word (no allocation per permit).

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use fastbreaker as fb;
use fb::binding::{bulkhead_release, bulkhead_try_acquire};
use fb::shm::{
    BulkheadSlot, Region, RegionError, RegionOptions, Shared, SlotConfig, SlotEntry, MAX_CAPACITY,
};
use fb::{Bulkhead, Clock, MonotonicClock};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString};

use crate::config::type_error;
use crate::native::{make_error, ns_to_s, REGION_CONFIG_MISMATCH, REGION_ERROR};

/// The Python error for a region error: `RegionConfigMismatch` (a ValueError too) for a
/// slot that exists with another configuration, `RegionError` otherwise; `reason` is a
/// short code.
pub(crate) fn region_error(py: Python<'_>, e: RegionError) -> PyErr {
    let reason = match &e {
        RegionError::InvalidName { .. } => "invalid_name",
        RegionError::InvalidOptions { .. } => "invalid_options",
        RegionError::Io { .. } => "io",
        RegionError::NotFound { .. } => "not_found",
        RegionError::Untrusted { .. } => "untrusted",
        RegionError::BadMagic { .. } => "bad_magic",
        RegionError::VersionMismatch { .. } => "version_mismatch",
        RegionError::ChecksumMismatch { .. } => "corrupt",
        RegionError::LayoutMismatch { .. } => "layout_mismatch",
        RegionError::CorruptHeader { .. } => "corrupt",
        RegionError::Truncated { .. } => "truncated",
        RegionError::CorruptSlot { .. } => "corrupt_slot",
        RegionError::Full { .. } => "full",
        RegionError::SlotBusy { .. } => "busy",
        RegionError::InvalidConfig { .. } => "invalid_config",
        RegionError::KindMismatch { .. } => "kind_mismatch",
        RegionError::ConfigMismatch { .. } => "config_mismatch",
        RegionError::KeyedConfigMismatch { .. } => "config_mismatch",
        _ => "other",
    };
    let message = e.to_string();
    let args = match &e {
        RegionError::ConfigMismatch {
            name,
            existing,
            requested,
        } => (
            message,
            reason,
            name.as_str(),
            existing.to_string(),
            requested.to_string(),
        )
            .into_pyobject(py)
            .map(|t| (t, &REGION_CONFIG_MISMATCH)),
        RegionError::KeyedConfigMismatch {
            name,
            existing,
            requested,
        } => (
            message,
            reason,
            name.as_str(),
            existing.to_string(),
            requested.to_string(),
        )
            .into_pyobject(py)
            .map(|t| (t, &REGION_CONFIG_MISMATCH)),
        _ => (message, reason)
            .into_pyobject(py)
            .map(|t| (t, &REGION_ERROR)),
    };
    match args {
        Ok((args, cell)) => make_error(py, cell, args),
        Err(e) => e,
    }
}

/// An open region.
#[pyclass(
    frozen,
    subclass,
    module = "fastbreaker._native",
    name = "SharedRegion"
)]
pub(crate) struct PyRegion {
    pub(crate) region: Arc<Region>,
}

/// Regions opened by name for `shared="name"`, by name (a dict: no Rust lock).
static BY_NAME: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

fn options(
    dir: Option<&Bound<'_, PyAny>>,
    capacity: Option<&Bound<'_, PyAny>>,
) -> PyResult<RegionOptions> {
    let mut o = RegionOptions::new();
    if let Some(d) = dir.filter(|d| !d.is_none()) {
        let path: PathBuf = d
            .extract()
            .map_err(|_| type_error("dir", d, "a str, an os.PathLike or None"))?;
        o = o.dir(path);
    }
    if let Some(c) = capacity.filter(|c| !c.is_none()) {
        let n = crate::config::whole("capacity", c)?;
        let n = match n {
            crate::config::Wide::Fits(n) if (1..=MAX_CAPACITY as u64).contains(&n) => n as u32,
            _ => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "capacity must be an int in 1..={MAX_CAPACITY}, got {}",
                    crate::config::repr(c)
                )))
            }
        };
        o = o.capacity(n);
    }
    Ok(o)
}

/// The region `shared=` names: a `SharedRegion`, or a region name (opened with the
/// defaults once per process); `None` when not shared.
pub(crate) fn region_of(
    py: Python<'_>,
    shared: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Arc<Region>>> {
    let Some(s) = shared.filter(|s| !s.is_none()) else {
        return Ok(None);
    };
    if let Ok(r) = s.cast::<PyRegion>() {
        return Ok(Some(Arc::clone(&r.get().region)));
    }
    let Ok(name) = s.cast::<PyString>() else {
        return Err(type_error(
            "shared",
            s,
            "a SharedRegion, a region name (str) or None",
        ));
    };
    let cache = BY_NAME
        .get_or_init(py, || PyDict::new(py).unbind())
        .bind(py);
    if let Some(found) = cache.get_item(name)? {
        if let Ok(r) = found.cast::<PyRegion>() {
            return Ok(Some(Arc::clone(&r.get().region)));
        }
    }
    let region =
        Region::open(&name.to_cow()?, &RegionOptions::new()).map_err(|e| region_error(py, e))?;
    let region = Arc::new(region);
    let obj = Bound::new(
        py,
        PyRegion {
            region: Arc::clone(&region),
        },
    )?;
    // Another thread may have opened it meanwhile: keep the first, use it.
    let kept = cache.call_method1("setdefault", (name, obj))?;
    Ok(Some(Arc::clone(&kept.cast::<PyRegion>()?.get().region)))
}

/// Gives slot `name` the configuration `config` for every process (`reconfigure()` of a
/// shared primitive): an invalid configuration is a ValueError worded by `tr` (the
/// caller's Translation of the values given), a slot whose writer lock another live
/// process holds too long a RegionError with reason "busy", anything else the region's
/// error.
pub(crate) fn reconfigure_slot(
    py: Python<'_>,
    region: &Region,
    name: &str,
    config: SlotConfig,
    tr: &crate::config::Translation,
) -> PyResult<()> {
    match region.reconfigure(name, config) {
        Ok(()) => Ok(()),
        Err(RegionError::InvalidConfig { error, .. }) => Err(tr.error(error)),
        Err(RegionError::SlotBusy { name, pid, .. }) => {
            let message = format!(
                "slot {name:?} of region {:?}: another reconfiguration (pid {pid}) holds its \
                 writer lock and has not finished in time; nothing changed, try again",
                region.name()
            );
            match (message, "busy").into_pyobject(py) {
                Ok(args) => Err(make_error(py, &REGION_ERROR, args)),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(region_error(py, e)),
    }
}

/// The ValueError for a shared primitive given a clock.
pub(crate) fn no_manual_clock(clock: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    match clock {
        Some(c) if !c.is_none() => Err(pyo3::exceptions::PyValueError::new_err(
            "a shared primitive reads CLOCK_MONOTONIC, the clock every process of the host \
             shares: clock= cannot be given with shared=",
        )),
        _ => Ok(()),
    }
}

#[pymethods]
impl PyRegion {
    #[new]
    #[pyo3(signature = (name, *, capacity = None, dir = None, create = true))]
    fn new(
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        capacity: Option<&Bound<'_, PyAny>>,
        dir: Option<&Bound<'_, PyAny>>,
        create: bool,
    ) -> PyResult<Self> {
        let name = name
            .cast::<PyString>()
            .map_err(|_| type_error("name", name, "a str"))?;
        let o = options(dir, capacity)?.create(create);
        let region = Region::open(&name.to_cow()?, &o).map_err(|e| region_error(py, e))?;
        Ok(PyRegion {
            region: Arc::new(region),
        })
    }

    /// Removes region ``name``'s file (under ``dir``, default /dev/shm); whether there was
    /// one. Processes that have it open keep using it; the next opening creates a new one.
    #[staticmethod]
    #[pyo3(signature = (name, *, dir = None))]
    fn unlink(
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        dir: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let name = name
            .cast::<PyString>()
            .map_err(|_| type_error("name", name, "a str"))?;
        let o = options(dir, None)?;
        if let Some(cache) = BY_NAME.get(py) {
            if o.dir.is_none() {
                cache.bind(py).del_item(name).ok();
            }
        }
        Region::unlink(&name.to_cow()?, &o).map_err(|e| region_error(py, e))
    }

    /// A ``KeyedRateLimiter`` (token buckets per key) on this region's keyed table
    /// ``name``, shared by every process that opens it: ``KeyedRateLimiter(rate, per,
    /// burst, capacity=capacity, when_full=when_full, name=name, shared=self)``.
    #[pyo3(
        signature = (name, rate, per = None, burst = None, *, capacity = None, when_full = None),
        text_signature = "($self, name, rate, per=1.0, burst=None, *, capacity=65536, when_full='reject')"
    )]
    #[allow(clippy::too_many_arguments)]
    fn keyed_rate_limiter<'py>(
        slf: &Bound<'py, Self>,
        name: &Bound<'py, PyAny>,
        rate: &Bound<'py, PyAny>,
        per: Option<&Bound<'py, PyAny>>,
        burst: Option<&Bound<'py, PyAny>>,
        capacity: Option<&Bound<'py, PyAny>>,
        when_full: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let kwargs = PyDict::new(py);
        kwargs.set_item("name", name)?;
        kwargs.set_item("shared", slf)?;
        if let Some(c) = capacity {
            kwargs.set_item("capacity", c)?;
        }
        if let Some(w) = when_full {
            kwargs.set_item("when_full", w)?;
        }
        if let Some(p) = per {
            kwargs.set_item("per", p)?;
        }
        if let Some(b) = burst {
            kwargs.set_item("burst", b)?;
        }
        py.get_type::<crate::keyed::PyKeyedLimiter>()
            .call((rate,), Some(&kwargs))
    }

    /// The names of this region's keyed tables (their files beside the region's), sorted.
    fn keyed_tables(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.region.keyed_tables().map_err(|e| region_error(py, e))
    }

    /// The region's existing keyed table ``name`` as a ``KeyedRateLimiter`` with the
    /// configuration its file holds (rate as whole tokens per ``per_ns``, burst, capacity,
    /// when_full): for tools that list or export a region's tables without knowing how
    /// they were made. Never creates a table: ``RegionError`` (reason ``"not_found"``) if
    /// there is none.
    fn keyed_table(
        &self,
        py: Python<'_>,
        name: &str,
    ) -> PyResult<Py<crate::keyed::PyKeyedLimiter>> {
        let limiter = crate::keyed::PyKeyedLimiter::attached(py, &self.region, name)
            .map_err(|e| region_error(py, e))?;
        Py::new(py, limiter)
    }

    /// The path of region ``name``'s file (under ``dir``, default /dev/shm), after
    /// checking the name.
    #[staticmethod]
    #[pyo3(signature = (name, *, dir = None))]
    fn path_of(
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        dir: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let name = name
            .cast::<PyString>()
            .map_err(|_| type_error("name", name, "a str"))?;
        let o = options(dir, None)?;
        o.path(&name.to_cow()?)
            .map(|p| p.display().to_string())
            .map_err(|e| region_error(py, e))
    }

    /// The region's name.
    #[getter]
    fn name(&self) -> &str {
        self.region.name()
    }

    /// The region's file.
    #[getter]
    fn path(&self) -> String {
        self.region.path().display().to_string()
    }

    /// Its number of slots (fixed when it was created).
    #[getter]
    fn capacity(&self) -> u32 {
        self.region.capacity()
    }

    /// Whether this opening created the region.
    #[getter]
    fn created(&self) -> bool {
        self.region.created()
    }

    /// Every used slot, in index order, as dicts: ``index``, ``name``, ``kind``
    /// ("breaker-count", "breaker-time", "bucket", "bulkhead", "initialising" or
    /// "corrupt"), ``config`` (the stored configuration, as text) and the primitive's
    /// shared state and counters (``state`` and the breaker's counters, a bucket's
    /// ``available`` tokens, a bulkhead's ``in_flight`` and permits ``held`` per pid).
    fn slots<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        let now = MonotonicClock.now_ns();
        for entry in self.region.list() {
            let d = PyDict::new(py);
            match entry {
                SlotEntry::Ready(info) => {
                    d.set_item("index", info.index)?;
                    d.set_item("name", &info.name)?;
                    d.set_item("kind", info.config.kind().as_str())?;
                    d.set_item("config", info.config.to_string())?;
                    describe_slot(py, &self.region, &info.name, &info.config, now, &d)?;
                }
                SlotEntry::Initialising { index, pid } => {
                    d.set_item("index", index)?;
                    d.set_item("name", py.None())?;
                    d.set_item("kind", "initialising")?;
                    d.set_item("pid", pid)?;
                }
                SlotEntry::Corrupt { index, reason } => {
                    d.set_item("index", index)?;
                    d.set_item("name", py.None())?;
                    d.set_item("kind", "corrupt")?;
                    d.set_item("reason", reason)?;
                }
                _ => continue,
            }
            out.append(d)?;
        }
        Ok(out)
    }

    /// Releases now every bulkhead permit held by a process that is gone; returns how many
    /// (a full bulkhead also does this by itself, at most every 100 ms).
    fn reap(&self) -> u64 {
        let mut n = 0;
        for entry in self.region.list() {
            if let SlotEntry::Ready(info) = entry {
                if let SlotConfig::Bulkhead { max_concurrent } = info.config {
                    if let Ok(b) = self.region.owned_bulkhead(&info.name, max_concurrent) {
                        n += b.reap();
                    }
                }
            }
        }
        n
    }

    fn __repr__(&self) -> String {
        format!(
            "<SharedRegion {:?} path={:?} capacity={}>",
            self.region.name(),
            self.region.path().display().to_string(),
            self.region.capacity()
        )
    }
}

/// The state and counters of slot `name` into `d`.
fn describe_slot(
    _py: Python<'_>,
    region: &Region,
    name: &str,
    config: &SlotConfig,
    now: u64,
    d: &Bound<'_, PyDict>,
) -> PyResult<()> {
    fn breaker<W: fb::Window>(
        b: &fb::CircuitBreaker<W>,
        now: u64,
        d: &Bound<'_, PyDict>,
    ) -> PyResult<()> {
        let m = b.metrics(now);
        d.set_item("state", m.state.as_str())?;
        d.set_item("permitted", m.permitted)?;
        d.set_item("rejected", m.rejected)?;
        d.set_item("succeeded", m.succeeded)?;
        d.set_item("failed", m.failed)?;
        d.set_item("trips", m.trips)?;
        d.set_item("ignored", m.ignored)?;
        d.set_item("slow", m.slow)?;
        d.set_item("consecutive_failures", m.consecutive_failures)?;
        d.set_item("half_open_in_flight", m.half_open_in_flight)?;
        d.set_item("window_calls", m.window.samples)?;
        d.set_item("window_failures", m.window.failures)?;
        d.set_item("window_slow", m.window.slow)?;
        d.set_item("retry_after", ns_to_s(m.retry_after))?;
        Ok(())
    }
    let attached = match config {
        SlotConfig::BreakerCount(c) => region.breaker_count(name, c).map(|b| breaker(b, now, d)),
        SlotConfig::BreakerTime(c) => region.breaker_time(name, c).map(|b| breaker(b, now, d)),
        SlotConfig::Bucket(c) => region.bucket(name, *c).map(|b| -> PyResult<()> {
            d.set_item("state", "ok")?;
            d.set_item("available", b.available(now))?;
            d.set_item("burst", b.burst())?;
            Ok(())
        }),
        SlotConfig::Bulkhead { max_concurrent } => region
            .owned_bulkhead(name, *max_concurrent)
            .map(|b| -> PyResult<()> {
                let m = b.bulkhead().metrics();
                d.set_item(
                    "state",
                    if m.in_flight >= m.max_concurrent {
                        "full"
                    } else {
                        "ok"
                    },
                )?;
                d.set_item("max_concurrent", m.max_concurrent)?;
                d.set_item("in_flight", m.in_flight)?;
                d.set_item("peak", m.peak)?;
                d.set_item("acquired", m.acquired)?;
                d.set_item("rejected", m.rejected)?;
                let held = PyDict::new(d.py());
                for (pid, n) in b.held_by_owners() {
                    held.set_item(pid, n)?;
                }
                d.set_item("held", held)?;
                Ok(())
            }),
    };
    match attached {
        Ok(r) => r,
        Err(e) => {
            d.set_item("state", "unreadable")?;
            d.set_item("reason", e.to_string())
        }
    }
}

// ----- the bulkhead of a native `Bulkhead`: its own, or a slot in a region -----

/// Where a `Bulkhead` keeps its count.
pub(crate) enum BulkheadStore {
    Own(Bulkhead),
    Region(Box<RegionBulkhead>),
}

/// A bulkhead in a region, whose permits record this process as their owner.
pub(crate) struct RegionBulkhead {
    slot: Shared<BulkheadSlot>,
    /// The core's tally of the permits this process took through this handle and has not
    /// given back (see `OwnedBulkhead::try_acquire_tallied`; a forked child's copy counts
    /// none of its parent's). Permits still out when the handle is dropped stay out, until
    /// this process is gone and they are reaped.
    tally: AtomicU64,
}

impl BulkheadStore {
    pub(crate) fn shared(slot: Shared<BulkheadSlot>) -> Self {
        BulkheadStore::Region(Box::new(RegionBulkhead {
            slot,
            tally: AtomicU64::new(0),
        }))
    }

    #[inline]
    pub(crate) fn bulkhead(&self) -> &Bulkhead {
        match self {
            BulkheadStore::Own(b) => b,
            BulkheadStore::Region(r) => r.slot.bulkhead(),
        }
    }

    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        match self {
            BulkheadStore::Own(b) => bulkhead_try_acquire(b),
            BulkheadStore::Region(r) => r.try_acquire(),
        }
    }

    #[inline]
    pub(crate) fn release(&self) -> bool {
        match self {
            BulkheadStore::Own(b) => bulkhead_release(b),
            BulkheadStore::Region(r) => r.release(),
        }
    }
}

impl RegionBulkhead {
    pub(crate) fn region_name(&self) -> &str {
        self.slot.region().name()
    }

    pub(crate) fn region(&self) -> &Region {
        self.slot.region()
    }

    /// More permits out in this process through one handle than this are untracked (as
    /// the core's when its owner table is full).
    const TRACKED: u16 = u16::MAX;

    #[inline]
    fn try_acquire(&self) -> bool {
        self.slot
            .owned()
            .try_acquire_tallied(&self.tally, Self::TRACKED)
            .is_ok()
    }

    #[inline]
    fn release(&self) -> bool {
        self.slot.owned().release_tallied(&self.tally) == Some(true)
    }
}
