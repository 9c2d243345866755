//! `_native.replay`: a trace of calls replayed through many configurations at once (the
//! core's `fastbreaker::sim`), for `fastbreaker.simulate`.
//!
//! The trace arrives as four arrays read in place through the buffer protocol (`array.array`,
//! numpy arrays, memoryviews...), turned into the core's events once; the outages are read
//! from the trace once; then every configuration replays the same events with the GIL
//! released, spread over OS threads. The configurations are checked first, with the GIL,
//! through the constructors' own translation (`crate::config`), so that an invalid one is
//! the ValueError the constructor would raise, naming the same parameter.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use fastbreaker as fb;
use fb::sim::{self, Event, OutageRule, Report, Span, Subject};
use fb::{BreakerConfig, CountWindow1024, KeyedBuckets, TimeWindow64, WhenFull};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::breaker::Arg;
use crate::config::{breaker_config, bucket_config, describe, whole, BreakerArgs, Translation};

// ----- the buffer protocol -----
//
// PyO3 offers `PyBuffer` only off the limited API or from 3.11, and this module is built for
// the stable ABI of 3.9. `PyObject_GetBuffer`, `PyBuffer_Release` and the `Py_buffer` layout
// below are those of every CPython since 3.3 (and part of the stable ABI from 3.11).

/// CPython's `Py_buffer`.
#[repr(C)]
struct RawBuffer {
    buf: *mut c_void,
    obj: *mut pyo3::ffi::PyObject,
    len: isize,
    itemsize: isize,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut isize,
    strides: *mut isize,
    suboffsets: *mut isize,
    internal: *mut c_void,
}

extern "C" {
    fn PyObject_GetBuffer(
        obj: *mut pyo3::ffi::PyObject,
        view: *mut RawBuffer,
        flags: c_int,
    ) -> c_int;
    fn PyBuffer_Release(view: *mut RawBuffer);
}

/// `PyBUF_FORMAT | PyBUF_C_CONTIGUOUS` (read-only: no `PyBUF_WRITABLE`).
const FLAGS: c_int = 0x0004 | 0x0038;

/// A buffer export held for the life of the value (released on drop, with the GIL: it is
/// never sent to another thread, its raw pointers make it !Send).
struct View {
    raw: RawBuffer,
    /// Elements.
    len: usize,
    /// Bytes per element.
    size: usize,
    /// The element's format character ('B', 'Q', ...).
    code: u8,
}

impl Drop for View {
    fn drop(&mut self) {
        // SAFETY: `raw` was filled by a successful PyObject_GetBuffer and is released once;
        // a View lives only while its creator holds the GIL (it is !Send).
        unsafe { PyBuffer_Release(&mut self.raw) }
    }
}

impl View {
    /// The buffer of `obj`, one-dimensional and C-contiguous, of elements of `size` bytes
    /// whose format is one of `codes` (native byte order).
    fn of(
        name: &str,
        obj: &Bound<'_, PyAny>,
        size: usize,
        codes: &str,
        what: &str,
    ) -> PyResult<View> {
        let mut raw = RawBuffer {
            buf: std::ptr::null_mut(),
            obj: std::ptr::null_mut(),
            len: 0,
            itemsize: 0,
            readonly: 0,
            ndim: 0,
            format: std::ptr::null_mut(),
            shape: std::ptr::null_mut(),
            strides: std::ptr::null_mut(),
            suboffsets: std::ptr::null_mut(),
            internal: std::ptr::null_mut(),
        };
        // SAFETY: `obj` is a live object (we hold the GIL) and `raw` a writable Py_buffer.
        let rc = unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut raw, FLAGS) };
        if rc != 0 {
            let cause = PyErr::fetch(obj.py());
            let err = PyTypeError::new_err(format!(
                "{name} must be a contiguous buffer of {what}, got {}",
                describe(obj)
            ));
            err.set_cause(obj.py(), Some(cause));
            return Err(err);
        }
        let format = if raw.format.is_null() {
            "B".to_string()
        } else {
            // SAFETY: a non-null format is a NUL-terminated string owned by the export.
            unsafe { CStr::from_ptr(raw.format) }
                .to_string_lossy()
                .into_owned()
        };
        let mut view = View {
            raw,
            len: 0,
            size: 0,
            code: 0,
        };
        let bad = |why: String| {
            PyValueError::new_err(format!("{name} must be a buffer of {what}, got {why}"))
        };
        if view.raw.ndim != 1 {
            return Err(bad(format!("{} dimensions", view.raw.ndim)));
        }
        let swapped = if cfg!(target_endian = "little") {
            ">!"
        } else {
            "<"
        };
        let code = match format.as_bytes() {
            [c] => *c,
            [p, c] if b"@=<>!".contains(p) && !swapped.as_bytes().contains(p) => *c,
            _ => 0,
        };
        if view.raw.itemsize as usize != size || code == 0 || !codes.as_bytes().contains(&code) {
            return Err(bad(format!(
                "format {format:?} of {} byte(s) per item",
                view.raw.itemsize
            )));
        }
        view.size = size;
        view.len = view.raw.len as usize / size;
        view.code = code;
        Ok(view)
    }

    /// Element `i` (< len) as raw little-endian-or-native bits, widened to u64.
    #[inline]
    fn bits(&self, i: usize) -> u64 {
        debug_assert!(i < self.len);
        let p = self.raw.buf as *const u8;
        // SAFETY: i < len, so the `size` bytes at `i * size` are inside the export, which
        // lives as long as `self`; unaligned reads need no alignment.
        unsafe {
            let at = p.add(i * self.size);
            match self.size {
                8 => (at as *const u64).read_unaligned(),
                4 => (at as *const u32).read_unaligned() as u64,
                2 => (at as *const u16).read_unaligned() as u64,
                _ => at.read() as u64,
            }
        }
    }

    /// Whether the format is a signed integer.
    fn signed(&self) -> bool {
        self.code.is_ascii_lowercase()
    }
}

/// The events of the four arrays (checked: equal lengths, non-negative times in
/// non-decreasing order of start).
fn events(
    t_ns: &Bound<'_, PyAny>,
    duration_ns: &Bound<'_, PyAny>,
    failed: &Bound<'_, PyAny>,
    key: &Bound<'_, PyAny>,
) -> PyResult<Vec<Event>> {
    let u64s = "64-bit integers (array('Q'))";
    let t = View::of("t_ns", t_ns, 8, "QLql", u64s)?;
    let d = View::of("duration_ns", duration_ns, 8, "QLql", u64s)?;
    let f = View::of("failed", failed, 1, "B?b", "bytes, 1 = failed (array('B'))")?;
    let k = View::of("key", key, 4, "ILil", "32-bit integers (array('I'))")?;
    let n = t.len;
    for (name, v) in [("duration_ns", &d), ("failed", &f), ("key", &k)] {
        if v.len != n {
            return Err(PyValueError::new_err(format!(
                "the trace's arrays must have equal lengths: t_ns has {n} items, {name} has {}",
                v.len
            )));
        }
    }
    let negative = |name: &str, i: usize, x: u64| {
        PyValueError::new_err(format!(
            "{name} must be >= 0, got {name}[{i}] = {}",
            x as i64
        ))
    };
    let mut out = Vec::with_capacity(n);
    let mut last = 0u64;
    for i in 0..n {
        let ti = t.bits(i);
        let di = d.bits(i);
        if t.signed() && (ti as i64) < 0 {
            return Err(negative("t_ns", i, ti));
        }
        if d.signed() && (di as i64) < 0 {
            return Err(negative("duration_ns", i, di));
        }
        if ti < last {
            return Err(PyValueError::new_err(format!(
                "t_ns must be in non-decreasing order (calls in the order they start): \
                 t_ns[{i}] = {ti} < t_ns[{}] = {last}",
                i - 1
            )));
        }
        last = ti;
        out.push(Event {
            t_ns: ti,
            duration_ns: di,
            failed: f.bits(i) != 0,
            key: k.bits(i) as u32,
        });
    }
    Ok(out)
}

// ----- configurations -----

fn unexpected(kind: &str, key: &str, known: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "{kind} got an unexpected parameter '{key}' (its parameters: {known})"
    ))
}

const BREAKER_KEYS: &str = "failure_threshold, wait_duration, failure_rate_threshold, \
    slow_call_rate_threshold, slow_call_duration, minimum_calls, window, window_seconds, \
    buckets, backoff_factor, max_wait_duration, jitter, jitter_seed, half_open_max_calls, \
    success_threshold, wait_duration_ns, max_wait_duration_ns, slow_call_duration_ns, \
    bucket_duration_ns";

fn breaker<'py>(params: &Bound<'py, PyDict>) -> PyResult<Subject> {
    let mut a = BreakerArgs::default();
    for (k, v) in params.iter() {
        let key = k.cast::<PyString>()?.to_cow()?.into_owned();
        let slot = match key.as_str() {
            "failure_threshold" => &mut a.failure_threshold,
            "wait_duration" => &mut a.wait_duration,
            "wait_duration_ns" => &mut a.wait_duration_ns,
            "failure_rate_threshold" => &mut a.failure_rate_threshold,
            "slow_call_rate_threshold" => &mut a.slow_call_rate_threshold,
            "slow_call_duration" => &mut a.slow_call_duration,
            "slow_call_duration_ns" => &mut a.slow_call_duration_ns,
            "minimum_calls" => &mut a.minimum_calls,
            "window" => &mut a.window,
            "window_seconds" => &mut a.window_seconds,
            "bucket_duration_ns" => &mut a.bucket_duration_ns,
            "buckets" => &mut a.buckets,
            "backoff_factor" => &mut a.backoff_factor,
            "max_wait_duration" => &mut a.max_wait_duration,
            "max_wait_duration_ns" => &mut a.max_wait_duration_ns,
            "jitter" => &mut a.jitter,
            "jitter_seed" => &mut a.jitter_seed,
            "half_open_max_calls" => &mut a.half_open_max_calls,
            "success_threshold" => &mut a.success_threshold,
            _ => return Err(unexpected("breaker", &key, BREAKER_KEYS)),
        };
        *slot = Arg::Given(v);
    }
    let (c, time, tr) = breaker_config(&a, BreakerConfig::new(), None)?;
    // The checks the constructor makes (the window's capacity: as the constructor's widest).
    if time {
        fb::CircuitBreaker::<TimeWindow64>::new(c).map_err(|e| tr.error(e))?;
    } else {
        fb::CircuitBreaker::<CountWindow1024>::new(c).map_err(|e| tr.error(e))?;
    }
    tr.check_substitutions()?;
    Ok(if time {
        Subject::BreakerTime(c)
    } else {
        Subject::Breaker(c)
    })
}

fn limiter(params: &Bound<'_, PyDict>, keyed: bool) -> PyResult<Subject> {
    let kind = if keyed { "keyed-limiter" } else { "limiter" };
    let known = if keyed {
        "rate, per, burst, per_ns, capacity"
    } else {
        "rate, per, burst, per_ns"
    };
    let (mut rate, mut per, mut per_ns, mut burst, mut capacity) = (None, None, None, None, None);
    for (k, v) in params.iter() {
        let key = k.cast::<PyString>()?.to_cow()?.into_owned();
        let v = (!v.is_none()).then_some(v);
        match key.as_str() {
            "rate" => rate = v,
            "per" => per = v,
            "per_ns" => per_ns = v,
            "burst" => burst = v,
            "capacity" if keyed => capacity = v,
            _ => return Err(unexpected(kind, &key, known)),
        }
    }
    let rate = rate.ok_or_else(|| PyTypeError::new_err(format!("{kind} needs a rate")))?;
    let (_, config, tr) = bucket_config(
        Some(&rate),
        per.as_ref(),
        per_ns.as_ref(),
        burst.as_ref(),
        None,
    )?;
    fb::TokenBucket::new(config).map_err(|e| tr.error(e))?;
    tr.check_substitutions()?;
    if !keyed {
        return Ok(Subject::Limiter(config));
    }
    let mut tr = Translation::default();
    let capacity = match &capacity {
        Some(v) => {
            let (n, sub) = whole("capacity", v)?.fit(usize::MAX as u64);
            tr.note("capacity", "capacity", v, sub);
            n as usize
        }
        None => 65_536,
    };
    KeyedBuckets::with_capacity(config, WhenFull::Admit, 0, capacity).map_err(|e| tr.error(e))?;
    tr.check_substitutions()?;
    Ok(Subject::KeyedLimiter { config, capacity })
}

fn bulkhead(params: &Bound<'_, PyDict>) -> PyResult<Subject> {
    let mut max = None;
    for (k, v) in params.iter() {
        let key = k.cast::<PyString>()?.to_cow()?.into_owned();
        match key.as_str() {
            "max_concurrent" => max = Some(v),
            _ => return Err(unexpected("bulkhead", &key, "max_concurrent")),
        }
    }
    let v = max.ok_or_else(|| PyTypeError::new_err("bulkhead needs max_concurrent"))?;
    let mut tr = Translation::default();
    let (n, sub) = whole("max_concurrent", &v)?.fit(u32::MAX as u64);
    tr.note("max_concurrent", "max_concurrent", &v, sub);
    fb::Bulkhead::new(n as u32).map_err(|e| tr.error(e))?;
    tr.check_substitutions()?;
    Ok(Subject::Bulkhead(n as u32))
}

/// One `(kind, params)` pair of `subjects`.
fn subject(item: &Bound<'_, PyAny>) -> PyResult<Subject> {
    let pair = item
        .cast::<PyTuple>()
        .ok()
        .filter(|t| t.len() == 2)
        .ok_or_else(|| {
            PyTypeError::new_err(format!(
                "each subject must be a (kind, params) tuple, got {}",
                describe(item)
            ))
        })?;
    let kind_obj = pair.get_item(0)?;
    let kind = kind_obj
        .cast::<PyString>()
        .map_err(|_| {
            PyTypeError::new_err(format!("kind must be a str, got {}", describe(&kind_obj)))
        })?
        .to_cow()?
        .into_owned();
    let params_obj = pair.get_item(1)?;
    let params = params_obj.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!(
            "params must be a dict, got {}",
            describe(&params_obj)
        ))
    })?;
    match kind.as_str() {
        "breaker" => breaker(params),
        "limiter" => limiter(params, false),
        "keyed-limiter" | "keyed_limiter" => limiter(params, true),
        "bulkhead" => bulkhead(params),
        _ => Err(PyValueError::new_err(format!(
            "unknown kind {kind:?}: breaker, limiter, keyed-limiter or bulkhead"
        ))),
    }
}

// ----- the replay -----

fn report_dict<'py>(py: Python<'py>, r: &Report) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("calls", r.calls)?;
    d.set_item("admitted", r.admitted)?;
    d.set_item("rejected", r.rejected)?;
    d.set_item("false_rejections", r.false_rejections)?;
    d.set_item("missed_protection", r.missed_protection)?;
    d.set_item("trips", r.trips)?;
    d.set_item("time_open_ns", r.time_open_ns)?;
    d.set_item("tokens_granted", r.tokens_granted)?;
    d.set_item("tokens_rejected", r.tokens_rejected)?;
    d.set_item("end_ns", r.end_ns)?;
    let outages = PyList::empty(py);
    for o in &r.outages {
        outages.append((
            o.span.start_ns,
            o.span.end_ns,
            o.detected_after_ns,
            o.recovered_after_ns,
        ))?;
    }
    d.set_item("outages", outages)?;
    let transitions = PyList::empty(py);
    for (t, from, to) in &r.transitions {
        transitions.append((*t, from.as_str(), to.as_str()))?;
    }
    d.set_item("transitions", transitions)?;
    Ok(d)
}

/// The outages `(start_ns, end_ns)` and one report dict per subject.
type Replayed<'py> = (Vec<(u64, u64)>, Bound<'py, PyList>);

/// Replays the trace given as four arrays (`t_ns` and `duration_ns` of 64-bit integers,
/// `failed` of bytes, `key` of 32-bit integers, all of one length, read in place through the
/// buffer protocol) through each `(kind, params)` of `subjects`, with the GIL released, on
/// `threads` threads (default: the available parallelism). `progress(done, total)` is
/// called as configurations finish. Returns `(outages, reports)`: the outages read from the
/// trace as `(start_ns, end_ns)`, and one dict per subject, in order.
#[pyfunction]
#[pyo3(signature = (t_ns, duration_ns, failed, key, subjects, outage_bucket_ns = 1_000_000_000, outage_min_calls = 5, outage_threshold = 0.5, threads = None, progress = None))]
#[allow(clippy::too_many_arguments)]
fn replay<'py>(
    py: Python<'py>,
    t_ns: &Bound<'py, PyAny>,
    duration_ns: &Bound<'py, PyAny>,
    failed: &Bound<'py, PyAny>,
    key: &Bound<'py, PyAny>,
    subjects: &Bound<'py, PyAny>,
    outage_bucket_ns: u64,
    outage_min_calls: u32,
    outage_threshold: f64,
    threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Replayed<'py>> {
    if outage_bucket_ns == 0 {
        return Err(PyValueError::new_err("outage_bucket_ns must be > 0, got 0"));
    }
    if !(0.0..=1.0).contains(&outage_threshold) {
        return Err(PyValueError::new_err(format!(
            "outage_threshold must be a failure ratio in 0.0..=1.0, got {outage_threshold}"
        )));
    }
    if threads == Some(0) {
        return Err(PyValueError::new_err("threads must be >= 1, got 0"));
    }
    if let Some(p) = &progress {
        if !p.bind(py).is_callable() {
            return Err(PyTypeError::new_err(format!(
                "progress must be callable, got {}",
                describe(p.bind(py))
            )));
        }
    }
    let subjects: Vec<Subject> = subjects
        .try_iter()
        .map_err(|_| PyTypeError::new_err("subjects must be an iterable of (kind, params)"))?
        .map(|item| subject(&item?))
        .collect::<PyResult<_>>()?;
    let events = events(t_ns, duration_ns, failed, key)?;
    let rule = OutageRule {
        bucket_ns: outage_bucket_ns,
        min_calls: outage_min_calls,
        failure_ratio: outage_threshold,
    };
    let n = subjects.len();
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |p| p.get()))
        .clamp(1, n.max(1));
    let mut reports: Vec<Option<Report>> = vec![None; n];
    let (spans, outcome) = py.detach(|| {
        let spans: Vec<Span> = sim::outages(&events, &rule);
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let outcome = std::thread::scope(|s| -> PyResult<()> {
            let (tx, rx) = mpsc::channel();
            for _ in 0..threads {
                let tx = tx.clone();
                let (next, stop, subjects, events, spans) =
                    (&next, &stop, &subjects, &events, &spans);
                s.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= subjects.len() {
                            break;
                        }
                        let r = sim::replay(&subjects[i], events, spans);
                        if tx.send((i, r)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let stopping = |e: PyErr| {
                stop.store(true, Ordering::Relaxed);
                e
            };
            for (done, (i, r)) in (1usize..).zip(rx) {
                let r = r.map_err(|e| stopping(PyValueError::new_err(e.to_string())))?;
                reports[i] = Some(r);
                Python::attach(|py| -> PyResult<()> {
                    py.check_signals()?;
                    if let Some(p) = &progress {
                        p.call1(py, (done, n))?;
                    }
                    Ok(())
                })
                .map_err(stopping)?;
            }
            Ok(())
        });
        (spans, outcome)
    });
    outcome?;
    let list = PyList::empty(py);
    for r in reports {
        let r = r.expect("every subject was replayed");
        list.append(report_dict(py, &r)?)?;
    }
    Ok((spans.iter().map(|s| (s.start_ns, s.end_ns)).collect(), list))
}

/// Adds `replay` to the module.
pub(crate) fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(replay, m)?)
}
