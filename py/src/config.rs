//! Translation of the Python constructors' arguments into the core's configuration.
//!
//! The translation converts types and units only (seconds to nanoseconds, fractions to
//! thousandths, ints to the core's widths); every rule and range is checked by the core,
//! and its `ConfigError` is reworded in Python terms: the Python parameter, the value as
//! given and, when the units differ, the value the core saw. A value that does not fit the
//! core field's type is handed to the core as the nearest end of that type, so that the
//! core's own reason is what the user reads.

use fastbreaker as fb;
use fb::limits::{MAX_WINDOW_BUCKETS, MAX_WINDOW_SIZE};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt};

const NS: f64 = 1e9;

/// The repr of a Python value (for messages).
pub(crate) fn repr(v: &Bound<'_, PyAny>) -> String {
    v.repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<unrepresentable>".into())
}

/// `"{repr} ({type})"`.
pub(crate) fn describe(v: &Bound<'_, PyAny>) -> String {
    let ty = v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    format!("{} ({ty})", repr(v))
}

/// The TypeError for an argument of the wrong type; the message names the argument.
pub(crate) fn type_error(name: &str, v: &Bound<'_, PyAny>, expected: &str) -> PyErr {
    PyTypeError::new_err(format!("{name} must be {expected}, got {}", describe(v)))
}

/// A Python number converted to a core integer, or the end of the core type it fell past.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wide {
    /// Fits in a u64.
    Fits(u64),
    /// Below 0.
    Below,
    /// Above u64::MAX (or not finite).
    Above,
}

impl Wide {
    /// The value for a core field whose type holds at most `max`, and whether it had to be
    /// replaced by an end of that type.
    pub(crate) fn fit(self, max: u64) -> (u64, bool) {
        match self {
            Wide::Fits(n) if n <= max => (n, false),
            Wide::Below => (0, true),
            _ => (max, true),
        }
    }
}

/// An int, not a bool.
pub(crate) fn whole(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Wide> {
    if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
        return Err(type_error(name, v, "an int"));
    }
    if let Ok(n) = v.extract::<u64>() {
        return Ok(Wide::Fits(n));
    }
    Ok(if v.lt(0)? { Wide::Below } else { Wide::Above })
}

/// An int or float, not a bool.
pub(crate) fn real(name: &str, v: &Bound<'_, PyAny>) -> PyResult<f64> {
    if v.is_instance_of::<PyBool>()
        || !(v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>())
    {
        return Err(type_error(name, v, "a number"));
    }
    v.extract::<f64>()
        .map_err(|_| PyValueError::new_err(format!("{name} is too large, got {}", repr(v))))
}

/// `x * scale`, rounded to an integer.
pub(crate) fn scaled(x: f64, scale: f64) -> Wide {
    let y = (x * scale).round();
    if y.is_nan() || y >= 18_446_744_073_709_551_616.0 {
        Wide::Above
    } else if y < 0.0 {
        Wide::Below
    } else {
        Wide::Fits(y as u64)
    }
}

/// Seconds as nanoseconds.
pub(crate) fn seconds(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Wide> {
    Ok(scaled(real(name, v)?, NS))
}

/// A duration that has two forms: `s_name` in seconds (int or float) and `ns_name` in whole
/// nanoseconds (an int, exact: float seconds cannot hold every nanosecond past 2^53). At
/// most one is given (a TypeError names both); the one given, as (its name, its value, the
/// nanoseconds), or None.
pub(crate) fn duration<'a, 'py>(
    s_name: &'static str,
    s: Option<&'a Bound<'py, PyAny>>,
    ns_name: &'static str,
    ns: Option<&'a Bound<'py, PyAny>>,
) -> PyResult<Option<(&'static str, &'a Bound<'py, PyAny>, Wide)>> {
    match (s, ns) {
        (Some(_), Some(_)) => Err(PyTypeError::new_err(format!(
            "{s_name} and {ns_name} are one option, in seconds and in nanoseconds: give one \
             of them"
        ))),
        (Some(v), None) => Ok(Some((s_name, v, seconds(s_name, v)?))),
        (None, Some(v)) => Ok(Some((ns_name, v, whole(ns_name, v)?))),
        (None, None) => Ok(None),
    }
}

/// The duration argument of a call (not a configuration field), in either form (see
/// [`duration`]): nanoseconds >= 0, saturating above u64::MAX; None when neither is given.
pub(crate) fn call_duration(
    s_name: &'static str,
    s: Option<&Bound<'_, PyAny>>,
    ns_name: &'static str,
    ns: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<u64>> {
    match duration(s_name, s, ns_name, ns)? {
        None => Ok(None),
        Some((_, _, Wide::Fits(n))) => Ok(Some(n)),
        Some((_, _, Wide::Above)) => Ok(Some(u64::MAX)),
        Some((name, v, Wide::Below)) => {
            let what = if name == s_name {
                "a number of seconds"
            } else {
                "an int of nanoseconds"
            };
            Err(PyValueError::new_err(format!(
                "{name} must be {what} >= 0, got {}",
                repr(v)
            )))
        }
    }
}

/// Whether `ns`, reported as float seconds (`ns_to_s`), builds the same nanoseconds again
/// through [`seconds`] (not every value past 2^53 ns does).
pub(crate) fn seconds_exact(ns: u64) -> bool {
    matches!(scaled(ns as f64 / NS, NS), Wide::Fits(n) if n == ns)
}

/// A whole percentage: an int, or a float with no fractional part (the core counts whole
/// percents; a fraction is refused rather than rounded).
pub(crate) fn whole_percent(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Wide> {
    if v.is_instance_of::<PyFloat>() {
        let p: f64 = v.extract()?;
        if !p.is_finite() || p.fract() != 0.0 {
            return Err(PyValueError::new_err(format!(
                "{name} must be a whole percentage (the core counts whole percents), got {}",
                repr(v)
            )));
        }
        return Ok(scaled(p, 1.0));
    }
    whole(name, v)
}

/// What the constructor gave for one core field.
struct Given {
    core: &'static str,
    py: &'static str,
    repr: String,
    /// The value did not fit the core field's type and was replaced by an end of it.
    substituted: bool,
    /// The core field holds the value in other units than the Python one.
    converted: bool,
}

/// The Python side of each core field set, to word the core's errors.
#[derive(Default)]
pub(crate) struct Translation {
    given: Vec<Given>,
    /// (field, other): a rule on `field` that involves `other` (a range bounded by it).
    related: Vec<(&'static str, &'static str)>,
}

impl Translation {
    /// Notes that core field `core` came from Python argument `py` = `v`.
    pub(crate) fn note(
        &mut self,
        core: &'static str,
        py: &'static str,
        v: &Bound<'_, PyAny>,
        substituted: bool,
    ) {
        self.given.push(Given {
            core,
            py,
            repr: repr(v),
            substituted,
            converted: core != py,
        });
    }

    /// Notes that the core's rule on `field` involves `other`, so that an error on `field`
    /// also shows the value given for `other`.
    pub(crate) fn relate(&mut self, field: &'static str, other: &'static str) {
        self.related.push((field, other));
    }

    /// The ValueError for the core's error `e`, in Python terms.
    pub(crate) fn error(&self, e: fb::ConfigError) -> PyErr {
        let mut reason = e.reason.to_string();
        match e.field {
            "window_size" => reason.push_str(&format!(" ({MAX_WINDOW_SIZE})")),
            "window_buckets" => reason.push_str(&format!(" ({MAX_WINDOW_BUCKETS})")),
            _ => {}
        }
        let msg = match self.given.iter().rev().find(|g| g.core == e.field) {
            Some(g) if g.substituted => format!("invalid {} = {}: {reason}", g.py, g.repr),
            Some(g) if g.converted => format!(
                "invalid {} = {} ({} = {}): {reason}",
                g.py, g.repr, e.field, e.value
            ),
            _ => format!("invalid {} = {}: {reason}", e.field, e.value),
        };
        let mut msg = msg;
        for (_, other) in self.related.iter().filter(|(f, _)| *f == e.field) {
            if let Some(g) = self.given.iter().rev().find(|g| g.core == *other) {
                msg.push_str(&format!(" (given {} = {})", g.py, g.repr));
            }
        }
        PyValueError::new_err(msg)
    }

    /// After the core accepted the configuration: a value that did not fit its field's type
    /// was accepted only as that type's end, which is not what was asked.
    pub(crate) fn check_substitutions(&self) -> PyResult<()> {
        match self.given.iter().find(|g| g.substituted) {
            Some(g) => Err(PyValueError::new_err(format!(
                "invalid {} = {}: out of the range of the core's {}",
                g.py, g.repr, g.core
            ))),
            None => Ok(()),
        }
    }
}
