//! A breaker's listeners, with each hook looked up once, when the listener is added.
//!
//! Notifying is then: one relaxed load (does any listener have this hook?), an `Arc` clone
//! under a mutex held for that clone only, and a call per hook that exists. No attribute
//! lookup, no `AttributeError` for a missing hook, and no lock held while hooks run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use pyo3::{PyTraverseError, PyVisit};

use crate::native::log_listener_error;

/// The hooks a listener may have.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Hook {
    /// `on_state_change(name, old, new)`.
    StateChange = 0,
    /// `on_failure(name, exc)`.
    Failure = 1,
    /// `on_rejection(name, exc)`.
    Rejection = 2,
}

const HOOK_NAMES: [&str; 3] = ["on_state_change", "on_failure", "on_rejection"];

/// A listener and its bound hook methods (None where it has no such attribute).
struct Entry {
    listener: Py<PyAny>,
    hooks: [Option<Py<PyAny>>; 3],
}

impl Entry {
    /// The listener's hooks. TypeError if it has none of them, if a hook is not callable,
    /// or if it has another public `on_*` method (most likely a misspelt hook, which would
    /// otherwise never be called).
    fn new(listener: &Bound<'_, PyAny>) -> PyResult<Self> {
        let hooks = HOOK_NAMES.map(|h| listener.getattr(h).ok().filter(|v| !v.is_none()));
        let known = HOOK_NAMES.join(", ");
        let what = || crate::config::repr(listener);
        for (name, hook) in HOOK_NAMES.iter().zip(&hooks) {
            if let Some(h) = hook {
                if !h.is_callable() {
                    return Err(PyTypeError::new_err(format!(
                        "listener {}: {name} must be callable, got {}",
                        what(),
                        crate::config::repr(h)
                    )));
                }
            }
        }
        for attr in listener.dir()?.iter() {
            let attr = attr.to_string();
            if attr.starts_with("on_") && !HOOK_NAMES.contains(&attr.as_str()) {
                let callable = listener
                    .getattr(attr.as_str())
                    .map(|v| v.is_callable())
                    .unwrap_or(false);
                if callable {
                    return Err(PyTypeError::new_err(format!(
                        "listener {} has a method {attr}, which is not a hook: the hooks \
                         are {known}",
                        what()
                    )));
                }
            }
        }
        if hooks.iter().all(Option::is_none) {
            return Err(PyTypeError::new_err(format!(
                "listener {} has none of the hooks {known}",
                what()
            )));
        }
        Ok(Entry {
            listener: listener.clone().unbind(),
            hooks: hooks.map(|h| h.map(Bound::unbind)),
        })
    }

    fn clone_ref(&self, py: Python<'_>) -> Self {
        Entry {
            listener: self.listener.clone_ref(py),
            hooks: std::array::from_fn(|i| self.hooks[i].as_ref().map(|h| h.clone_ref(py))),
        }
    }
}

/// Whether some entry has hook number `i`.
fn has_hook(entries: &[Entry], i: usize) -> bool {
    entries.iter().any(|e| e.hooks[i].is_some())
}

/// The listener list, replaced whole on each change (copy on write).
pub(crate) struct Listeners {
    entries: Mutex<Arc<Vec<Entry>>>,
    /// Whether some listener has each hook: the fast exit of `notify`.
    has: [AtomicBool; 3],
}

impl Listeners {
    /// The listeners in `items`, in order.
    pub(crate) fn new(items: &[Bound<'_, PyAny>]) -> PyResult<Self> {
        let entries: Vec<Entry> = items.iter().map(Entry::new).collect::<PyResult<_>>()?;
        Ok(Listeners {
            has: std::array::from_fn(|i| AtomicBool::new(has_hook(&entries, i))),
            entries: Mutex::new(Arc::new(entries)),
        })
    }

    /// Installs `entries` in place of `cur` (the locked list) and updates the hook flags.
    fn install(&self, cur: &mut Arc<Vec<Entry>>, entries: Vec<Entry>) {
        for (i, has) in self.has.iter().enumerate() {
            has.store(has_hook(&entries, i), Ordering::Relaxed);
        }
        *cur = Arc::new(entries);
    }

    fn snapshot(&self) -> Arc<Vec<Entry>> {
        match self.entries.lock() {
            Ok(cur) => Arc::clone(&cur),
            Err(_) => Arc::new(Vec::new()),
        }
    }

    /// Adds `listener` at the end; its hooks are looked up now (see `Entry::new`).
    pub(crate) fn add(&self, listener: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = listener.py();
        let entry = Entry::new(listener)?;
        let Ok(mut cur) = self.entries.lock() else {
            return Ok(());
        };
        let mut entries: Vec<Entry> = cur.iter().map(|e| e.clone_ref(py)).collect();
        entries.push(entry);
        self.install(&mut cur, entries);
        Ok(())
    }

    /// Removes every entry that is `listener`; whether there was one.
    pub(crate) fn remove(&self, listener: &Bound<'_, PyAny>) -> bool {
        let py = listener.py();
        let Ok(mut cur) = self.entries.lock() else {
            return false;
        };
        let entries: Vec<Entry> = cur
            .iter()
            .filter(|e| !e.listener.is(listener))
            .map(|e| e.clone_ref(py))
            .collect();
        let removed = entries.len() != cur.len();
        self.install(&mut cur, entries);
        removed
    }

    /// Visits every listener and hook for the garbage collector (skipped if the list is
    /// being replaced at that moment: the collector then simply sees fewer references).
    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(cur) = self.entries.try_lock() {
            for e in cur.iter() {
                visit.call(&e.listener)?;
                for h in e.hooks.iter().flatten() {
                    visit.call(h)?;
                }
            }
        }
        Ok(())
    }

    /// The listeners, in order.
    pub(crate) fn list(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        self.snapshot()
            .iter()
            .map(|e| e.listener.clone_ref(py))
            .collect()
    }

    /// Calls `hook` of every listener that has it, with no lock held; errors are logged.
    #[inline]
    pub(crate) fn notify<'py>(
        &self,
        py: Python<'py>,
        hook: Hook,
        name: &Bound<'py, PyString>,
        call: impl Fn(&Bound<'py, PyAny>, &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>>,
    ) {
        if !self.has[hook as usize].load(Ordering::Relaxed) {
            return;
        }
        for e in self.snapshot().iter() {
            if let Some(method) = &e.hooks[hook as usize] {
                if let Err(err) = call(method.bind(py), name) {
                    log_listener_error(py, e.listener.bind(py), HOOK_NAMES[hook as usize], err);
                }
            }
        }
    }
}
