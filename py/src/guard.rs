//! The guarded call paths (`@breaker` on a sync function, and `breaker.call`), entered from
//! Python through raw C slots instead of PyO3's trampolines.
//!
//! Why: CPython 3.9 to 3.13 end a daemon thread that tries to take the GIL during interpreter
//! finalization with `pthread_exit`, which on glibc is a *forced unwind* of the thread's
//! stack. A daemon thread that is inside a guarded function at that moment has this on its
//! stack: Python frames, the breaker's Rust frame, the user's function. PyO3's trampolines
//! wrap every call from Python into Rust in `catch_unwind` (and a panic trap whose drop
//! panics): the forced unwind reaches that `catch_unwind`, Rust's personality routine enters
//! its catch landing pad, and catching a foreign exception aborts the process (glibc prints
//! "FATAL: exception not rethrown"). So the process died with SIGABRT at exit.
//!
//! The slots below are `extern "C-unwind"` functions with no `catch_unwind` and no PyO3
//! trampoline anywhere between Python and the user's function, and the frame that calls the
//! user's function holds nothing that needs dropping: a forced unwind passes through it and
//! runs no code there. A Rust panic cannot be caught here either; the code is written not
//! to panic (no unwrap, no indexing, no arithmetic that overflows), and should one happen
//! anyway, `AbortOnPanic` ends the process rather than unwind into CPython's C frames.
//!
//! Listener hooks, exclude predicates and `rejection_error` factories are called from these
//! paths through PyO3 (frames that hold Python references, released as the thread unwinds);
//! py/tests/test_shutdown.py ends daemon threads inside listener hooks too.

use std::ffi::{c_void, CStr};
use std::ptr::null_mut;

use fastbreaker::{Outcome, Rejected};
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use pyo3::{PyTraverseError, PyVisit};

use crate::breaker::PyBreaker;

#[cfg(unix)]
extern "C-unwind" {
    /// `PyObject_Call`, declared as a function that may unwind (PyO3 declares it `"C"`,
    /// which tells Rust that no unwind ever leaves it). The forced unwind of `pthread_exit`
    /// leaves it when a daemon thread is ended inside the call: a call site Rust believes
    /// cannot unwind is missing from its frame's unwind table, and the unwinder aborts there.
    #[link_name = "PyObject_Call"]
    fn call_object(
        callable: *mut ffi::PyObject,
        args: *mut ffi::PyObject,
        kwargs: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject;
}

#[cfg(not(unix))]
use ffi::PyObject_Call as call_object;

/// Ends the process if a Rust panic unwinds through the frame that holds it: a panic must
/// not unwind into CPython's C frames, and these paths have no `catch_unwind` (see the
/// module docs). A forced unwind (`pthread_exit`) is not a panic: this guard lets it pass.
struct AbortOnPanic;

impl Drop for AbortOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            std::process::abort();
        }
    }
}

/// The base of `Guarded`: the breaker and the function, with everything but the call
/// itself (binding as a method, pickling, the garbage collector), through PyO3.
#[pyclass(
    frozen,
    dict,
    subclass,
    module = "fastbreaker._native",
    name = "_GuardedBase"
)]
pub(crate) struct GuardedBase {
    breaker: Py<PyBreaker>,
    func: Py<PyAny>,
}

static METHOD_TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// `fastbreaker._native.Guarded`: `GuardedBase` with the raw call slot.
static GUARDED_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

#[pymethods]
impl GuardedBase {
    #[new]
    fn new(breaker: Bound<'_, PyBreaker>, func: Bound<'_, PyAny>) -> PyResult<Self> {
        PyBreaker::check_callable(&func)?;
        Ok(GuardedBase {
            breaker: breaker.unbind(),
            func: func.unbind(),
        })
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

/// A new `Guarded` for `func` through `breaker`.
pub(crate) fn new_guarded(
    breaker: &Bound<'_, PyBreaker>,
    func: Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let py = breaker.py();
    let ty = GUARDED_TYPE
        .get(py)
        .ok_or_else(|| PyTypeError::new_err("fastbreaker._native is not initialised"))?;
    Ok(ty.bind(py).call1((breaker, func))?.unbind())
}

/// Records the outcome of a call whose result is `result` (NULL: it raised, with the
/// exception set) and returns what the call returns.
///
/// # Safety
/// The thread is attached to the interpreter; `result` is NULL with an exception set, or a
/// new reference.
unsafe fn settle(
    py: Python<'_>,
    breaker: &PyBreaker,
    permit: fastbreaker::Permit,
    started: Option<u64>,
    result: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    if !result.is_null() {
        if let Some(t) = breaker.record_outcome(permit, Outcome::Success, started, None) {
            breaker.transitioned(py, t);
        }
        return result;
    }
    let (mut ty, mut value, mut tb) = (null_mut(), null_mut(), null_mut());
    // SAFETY: the thread is attached; the three out-pointers are valid. Fetching (not
    // PyErr::take) keeps a PanicException raised by some other extension an ordinary
    // exception here, instead of resuming it as a Rust panic.
    unsafe {
        ffi::PyErr_Fetch(&mut ty, &mut value, &mut tb);
        ffi::PyErr_NormalizeException(&mut ty, &mut value, &mut tb);
    }
    if value.is_null() {
        // NULL without an exception: CPython raises SystemError for it; count a failure.
        let _ = breaker.record_outcome(permit, Outcome::Failure, started, None);
    } else {
        // SAFETY: `value` is a valid exception object we own a reference to (fetched above),
        // kept alive until PyErr_Restore below hands it back.
        let exc = unsafe { Borrowed::from_ptr(py, value) };
        breaker.finish(py, permit, Some(&exc), started);
    }
    // SAFETY: hands back the references fetched above (the error indicator is clear: the
    // code in between handles its own errors).
    unsafe { ffi::PyErr_Restore(ty, value, tb) };
    null_mut()
}

/// A refused call: the fallback's result, or NULL with the breaker's error set.
///
/// # Safety
/// The thread is attached; `args` is a tuple and `kwargs` NULL or a dict, borrowed.
unsafe fn refused(
    py: Python<'_>,
    breaker: &PyBreaker,
    r: Rejected,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let (err, fallback) = breaker.refusal(py, r);
    let Some(fallback) = fallback.map(|f| f.as_ptr()) else {
        err.restore(py);
        return null_mut();
    };
    drop(err);
    // SAFETY: the fallback is kept alive by the breaker, which the caller keeps alive for
    // the call; args and kwargs are valid (see above). Nothing in this frame needs
    // dropping while the fallback runs (see the module docs).
    unsafe { call_object(fallback, args, kwargs) }
}

/// `func(*args, **kwargs)` through `breaker`.
///
/// # Safety
/// The thread is attached; `func` is a live object, `args` a tuple and `kwargs` NULL or a
/// dict, all borrowed for the duration of the call.
#[inline]
unsafe fn call_through(
    py: Python<'_>,
    breaker: &PyBreaker,
    func: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let permit = match breaker.acquire_permit(py) {
        Ok(p) => p,
        // SAFETY: as for this function.
        Err(r) => return unsafe { refused(py, breaker, r, args, kwargs) },
    };
    let started = breaker.start();
    // SAFETY: as for this function. The values alive across this call (a permit, an
    // optional time, references) have no drop glue, so a forced unwind runs nothing here.
    let result = unsafe { call_object(func, args, kwargs) };
    // SAFETY: the thread is attached again; `result` is what PyObject_Call returned.
    unsafe { settle(py, breaker, permit, started, result) }
}

/// `tp_call` of `Guarded`.
///
/// # Safety
/// Called by CPython only, as the call slot of `Guarded`, with the thread attached: `slf`
/// is a `Guarded` (so a `GuardedBase`), `args` a tuple, `kwargs` NULL or a dict.
unsafe extern "C-unwind" fn guarded_call(
    slf: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let _abort = AbortOnPanic;
    // SAFETY: CPython calls slots with the thread attached.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: this slot is reachable only through `Guarded`, a subclass of `GuardedBase`
    // whose instances are laid out by PyO3 as `GuardedBase`; `slf` is borrowed for the call.
    let this = unsafe { Borrowed::from_ptr(py, slf).cast_unchecked::<GuardedBase>() };
    let g = this.get();
    // SAFETY: the breaker and the function are kept alive by `slf`, which the caller keeps
    // alive for the call; args and kwargs are as CPython passed them.
    unsafe { call_through(py, g.breaker.get(), g.func.as_ptr(), args, kwargs) }
}

/// `CircuitBreaker.call(func, /, *args, **kwargs)`, a METH_VARARGS | METH_KEYWORDS method.
///
/// # Safety
/// Called by CPython only, through the method descriptor made for `CircuitBreaker`'s type
/// (which checks that `slf` is an instance of it), with the thread attached.
unsafe extern "C-unwind" fn breaker_call(
    slf: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let _abort = AbortOnPanic;
    // SAFETY: CPython calls methods with the thread attached.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: the descriptor checked that `slf` is a CircuitBreaker (or a subclass), laid out
    // by PyO3 as PyBreaker; it is borrowed for the call.
    let this = unsafe { Borrowed::from_ptr(py, slf).cast_unchecked::<PyBreaker>() };
    let breaker = this.get();
    // SAFETY: `args` is the tuple of positional arguments CPython built for the call.
    let n = unsafe { ffi::PyTuple_Size(args) };
    if n < 1 {
        PyTypeError::new_err("call() missing 1 required positional argument: 'func'").restore(py);
        return null_mut();
    }
    // SAFETY: index 0 exists (checked above); the reference is borrowed from `args`.
    let func = unsafe { ffi::PyTuple_GetItem(args, 0) };
    if func.is_null() {
        return null_mut();
    }
    // SAFETY: `func` is a live object (borrowed from `args`).
    if unsafe { ffi::PyCallable_Check(func) } == 0 {
        // SAFETY: as above.
        let f = unsafe { Borrowed::from_ptr(py, func) };
        if let Err(e) = PyBreaker::check_callable(&f) {
            e.restore(py);
        }
        return null_mut();
    }
    // SAFETY: 1..=n is a valid slice of `args`; returns a new reference or NULL.
    let rest = unsafe { ffi::PyTuple_GetSlice(args, 1, n) };
    if rest.is_null() {
        return null_mut();
    }
    // SAFETY: `func` and `rest` are live for the call, `kwargs` is NULL or a dict.
    let result = unsafe { call_through(py, breaker, func, rest, kwargs) };
    // SAFETY: `rest` is the reference made above, no longer used.
    unsafe { ffi::Py_DECREF(rest) };
    result
}

const CALL_DOC: &CStr = c"call($self, func, /, *args, **kwargs)
--

Calls func(*args, **kwargs) through the breaker: raises CircuitOpenError (or returns the
fallback's result) when refused; a non-callable func raises TypeError and is not counted.";

const GUARDED_DOC: &CStr = c"A function wrapped by a breaker: calling it goes through the breaker.";

/// Makes `Guarded` (the raw call slot over `GuardedBase`) and installs the raw
/// `CircuitBreaker.call`; adds `Guarded` to the module.
pub(crate) fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let base = py.get_type::<GuardedBase>();
    // The spec, its slots and the method definition must outlive the types made from them:
    // made once per process and leaked on purpose.
    let slots: &'static mut [ffi::PyType_Slot] = Box::leak(Box::new([
        ffi::PyType_Slot {
            slot: ffi::Py_tp_call,
            pfunc: guarded_call as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_doc,
            pfunc: GUARDED_DOC.as_ptr() as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: 0,
            pfunc: null_mut(),
        },
    ]));
    let spec: &'static mut ffi::PyType_Spec = Box::leak(Box::new(ffi::PyType_Spec {
        name: c"fastbreaker._native.Guarded".as_ptr(),
        basicsize: 0, // inherited: the instance is laid out as GuardedBase
        itemsize: 0,
        flags: ffi::Py_TPFLAGS_DEFAULT as _,
        slots: slots.as_mut_ptr(),
    }));
    // A tuple of bases: Python 3.9 accepts nothing else.
    let bases = pyo3::types::PyTuple::new(py, [base])?;
    // SAFETY: the thread is attached; `spec` is a valid, 'static spec and `bases` a live
    // tuple holding the single base of the new type. Returns a new reference or NULL with
    // an error set.
    let ty = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyType_FromSpecWithBases(spec, bases.as_ptr()))?
    };
    let ty = ty.cast_into::<PyType>()?;
    let _ = GUARDED_TYPE.set(py, ty.clone().unbind());
    m.add("Guarded", ty)?;

    // SAFETY: "C-unwind" and "C" are the same calling convention; the difference only tells
    // Rust callers whether the function may unwind, and this pointer is called by CPython.
    let meth = unsafe {
        std::mem::transmute::<
            unsafe extern "C-unwind" fn(
                *mut ffi::PyObject,
                *mut ffi::PyObject,
                *mut ffi::PyObject,
            ) -> *mut ffi::PyObject,
            ffi::PyCFunctionWithKeywords,
        >(breaker_call)
    };
    let def: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: c"call".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionWithKeywords: meth,
        },
        ml_flags: ffi::METH_VARARGS | ffi::METH_KEYWORDS,
        ml_doc: CALL_DOC.as_ptr(),
    }));
    let breaker_type = py.get_type::<PyBreaker>();
    // SAFETY: the thread is attached; the type is live and `def` is 'static. Returns a new
    // reference or NULL with an error set.
    let descr = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(breaker_type.as_type_ptr(), def))?
    };
    breaker_type.setattr("call", descr)?;
    Ok(())
}
