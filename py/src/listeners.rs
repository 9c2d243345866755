//! A breaker's listeners, with each hook looked up once, when the listener is added.
//!
//! Notifying is then: one acquire load of the current list (which says whether any
//! listener has this hook) and a call per hook that exists. No attribute lookup, no
//! `AttributeError` for a missing hook, and no lock at all (so none to inherit locked
//! across `fork`).

use std::sync::atomic::{AtomicPtr, Ordering};

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

/// One version of the listener list, with whether some listener has each hook (the fast
/// exit of `notify`).
struct List {
    entries: Vec<Entry>,
    has: [bool; 3],
}

impl List {
    fn new(entries: Vec<Entry>) -> *mut List {
        let has = std::array::from_fn(|i| has_hook(&entries, i));
        Box::into_raw(Box::new(List { entries, has }))
    }
}

/// A replaced version, kept until the breaker goes (a reader may still be walking it).
struct Retired {
    list: *mut List,
    next: *mut Retired,
}

/// The listener list, replaced whole on each change (copy on write), with no lock: a
/// reader loads the current version; a writer builds the next one and swaps it in with a
/// compare-and-swap. Replaced versions are freed with the breaker (listeners are added and
/// removed rarely), so no reader ever sees a freed one, and a fork at any moment leaves
/// nothing locked in the child.
pub(crate) struct Listeners {
    /// Never null.
    current: AtomicPtr<List>,
    /// Replaced versions: a stack that is only pushed to until `drop`.
    retired: AtomicPtr<Retired>,
}

// SAFETY: the raw pointers are owned boxes of `List`s (of `Py` objects, which are `Send`
// and `Sync`) shared only through atomics, and freed only in `drop` (`&mut self`).
unsafe impl Send for Listeners {}
// SAFETY: as above.
unsafe impl Sync for Listeners {}

impl Drop for Listeners {
    fn drop(&mut self) {
        let cur = *self.current.get_mut();
        // SAFETY: `current` holds a box from `List::new`, freed only here.
        drop(unsafe { Box::from_raw(cur) });
        let mut r = *self.retired.get_mut();
        while !r.is_null() {
            // SAFETY: every `retired` node is a box from `retire`, holding a replaced list
            // box; each is freed once, here.
            let node = unsafe { Box::from_raw(r) };
            // SAFETY: as above.
            drop(unsafe { Box::from_raw(node.list) });
            r = node.next;
        }
    }
}

impl Listeners {
    /// The listeners in `items`, in order.
    pub(crate) fn new(items: &[Bound<'_, PyAny>]) -> PyResult<Self> {
        let entries: Vec<Entry> = items.iter().map(Entry::new).collect::<PyResult<_>>()?;
        Ok(Listeners {
            current: AtomicPtr::new(List::new(entries)),
            retired: AtomicPtr::new(std::ptr::null_mut()),
        })
    }

    /// The current version.
    #[inline]
    fn current(&self) -> &List {
        // Acquire: pairs with the AcqRel compare-and-swap in `update`, so the list it
        // installed is seen whole.
        let p = self.current.load(Ordering::Acquire);
        // SAFETY: never null; a version is freed only in `drop`, which cannot run while
        // `&self` is borrowed.
        unsafe { &*p }
    }

    /// Replaces the list by `change(current)`, retrying if another writer got there first;
    /// returns what `change` returned with the list it installed.
    fn update<T>(&self, mut change: impl FnMut(&[Entry]) -> (Vec<Entry>, T)) -> T {
        let mut cur = self.current.load(Ordering::Acquire);
        loop {
            // SAFETY: as in `current`.
            let (entries, out) = change(&unsafe { &*cur }.entries);
            let next = List::new(entries);
            match self
                .current
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(old) => {
                    self.retire(old);
                    return out;
                }
                Err(actual) => {
                    // SAFETY: `next` was never published.
                    drop(unsafe { Box::from_raw(next) });
                    cur = actual;
                }
            }
        }
    }

    fn retire(&self, list: *mut List) {
        let node = Box::into_raw(Box::new(Retired {
            list,
            next: std::ptr::null_mut(),
        }));
        let mut head = self.retired.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` is ours until the compare-and-swap publishes it.
            unsafe { (*node).next = head };
            // Release: pairs with the Acquire load in `traverse`.
            match self.retired.compare_exchange_weak(
                head,
                node,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }

    /// Adds `listener` at the end; its hooks are looked up now (see `Entry::new`).
    pub(crate) fn add(&self, listener: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = listener.py();
        let entry = Entry::new(listener)?;
        self.update(|cur| {
            let mut entries: Vec<Entry> = cur.iter().map(|e| e.clone_ref(py)).collect();
            entries.push(entry.clone_ref(py));
            (entries, ())
        });
        Ok(())
    }

    /// Removes every entry that is `listener`; whether there was one.
    pub(crate) fn remove(&self, listener: &Bound<'_, PyAny>) -> bool {
        let py = listener.py();
        self.update(|cur| {
            let entries: Vec<Entry> = cur
                .iter()
                .filter(|e| !e.listener.is(listener))
                .map(|e| e.clone_ref(py))
                .collect();
            let removed = entries.len() != cur.len();
            (entries, removed)
        })
    }

    /// Visits every listener and hook the breaker holds (current and replaced versions)
    /// for the garbage collector.
    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        let visit_list = |list: &List| -> Result<(), PyTraverseError> {
            for e in &list.entries {
                visit.call(&e.listener)?;
                for h in e.hooks.iter().flatten() {
                    visit.call(h)?;
                }
            }
            Ok(())
        };
        visit_list(self.current())?;
        // Acquire: pairs with the Release compare-and-swap in `retire`.
        let mut r = self.retired.load(Ordering::Acquire);
        while !r.is_null() {
            // SAFETY: retired nodes and their lists live until `drop`.
            let node = unsafe { &*r };
            // SAFETY: as above.
            visit_list(unsafe { &*node.list })?;
            r = node.next;
        }
        Ok(())
    }

    /// The listeners, in order.
    pub(crate) fn list(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        self.current()
            .entries
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
        let list = self.current();
        if !list.has[hook as usize] {
            return;
        }
        for e in &list.entries {
            if let Some(method) = &e.hooks[hook as usize] {
                if let Err(err) = call(method.bind(py), name) {
                    log_listener_error(py, e.listener.bind(py), HOOK_NAMES[hook as usize], err);
                }
            }
        }
    }
}
