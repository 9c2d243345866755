"""Replays a trace of calls through breaker, limiter and bulkhead configurations.

>>> from array import array
>>> from fastbreaker import simulate
>>> # 10 calls a second for 60 s, 1 ms each; every call from 20 s to 30 s fails.
>>> n = 600
>>> trace = {
...     "t_ns": array("Q", [i * 100_000_000 for i in range(n)]),
...     "duration_ns": array("Q", [1_000_000] * n),
...     "failed": array("B", [200 <= i < 300 for i in range(n)]),
... }
>>> results = simulate(trace, ["breaker:failure_threshold=5,wait_duration=2"])
>>> results.outages
[(20.0, 30.0)]
>>> row = results.rows[0]
>>> row["trips"], row["missed_protection"], row["false_rejections"], row["detect_mean"]
(5, 9, 9, 0.401)

The trace's calls go through the same core code that runs in production, with explicit time:
a call admitted at ``t`` finishes at ``t + duration`` and its outcome is recorded then (calls
overlap as in production); a refused call is never made. Outages are read from the trace
alone: runs of ``outage_bucket``-second buckets holding at least ``outage_min_calls`` calls
of which at least ``outage_threshold`` failed. Each configuration is replayed with the GIL
released, the configurations spread over threads.
"""

from __future__ import annotations

import importlib
import math
import re
from array import array
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from . import _native

__all__ = ["KINDS", "Results", "parse_spec", "simulate"]

#: The kinds of configuration: the primitive each replays the trace through.
KINDS: tuple[str, ...] = ("breaker", "limiter", "keyed-limiter", "bulkhead")

_NS = 1_000_000_000
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": _NS,
    "m": 60 * _NS,
    "h": 3600 * _NS,
}
_INT = r"[+-]?\d+"
_FLOAT = r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?"
_DURATION = r"(\d+\.?\d*|\.\d+)\s*(ns|us|µs|ms|s|m|h)"
_PERCENT = r"(\d+\.?\d*|\.\d+)\s*%"
# (Patterns compiled on first use, by re's cache: compiling them costs `import fastbreaker`
# milliseconds.)
# Names a spec may use besides the constructors' keywords.
_ALIASES = {"window_buckets": "buckets", "bucket_duration": "bucket_duration_ns"}

Config = Union[str, tuple[str, Union[str, Mapping[str, Any]]]]


def _kind(kind: str) -> str:
    k = kind.strip().replace("_", "-")
    if k not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    return k


def _value(name: str, text: str) -> Any:
    """A spec value: None, an int, a float, seconds (``30s``, ``300ms``; whole nanoseconds
    for a ``*_ns`` name), a percentage (``50%``), else the text (for the constructor to
    refuse, naming ``name``)."""
    t = text.strip()
    if t.lower() == "none":
        return None
    if re.fullmatch(_INT, t):
        return int(t)
    if re.fullmatch(_FLOAT, t):
        return float(t)
    m = re.fullmatch(_DURATION, t)
    if m:
        scale = _UNITS[m.group(2)]
        if name.endswith("_ns"):
            return round(float(m.group(1)) * scale)
        return float(m.group(1)) * scale / _NS
    m = re.fullmatch(_PERCENT, t)
    if m:
        x = float(m.group(1))
        return int(x) if x.is_integer() else x
    return t


def parse_spec(kind: str, text: str) -> dict[str, Any]:
    """The keyword arguments a spec's text stands for, in the constructors' names and units.

    ``parse_spec("breaker", "failure_rate_threshold=50,window=100,wait_duration=30s")`` is
    ``{"failure_rate_threshold": 50, "window": 100, "wait_duration": 30.0}``. ``text`` may
    carry the ``kind:`` prefix. Values are ints, floats, ``none``, durations with a unit
    (``ns``, ``us``, ``ms``, ``s``, ``m``, ``h``: seconds, or whole nanoseconds for a
    ``*_ns`` parameter) or percentages (``50%``). ``window=N`` is a count window of N calls
    and ``window=10s`` (a duration) a time window of 10 s (``window_seconds``);
    ``window_buckets`` is ``buckets`` and ``bucket_duration`` is ``bucket_duration_ns``.
    A bulkhead's spec may be just its ``max_concurrent``: ``"bulkhead:10"``. The values are
    checked by the constructors' own rules when the configuration is simulated.
    """
    k = _kind(kind)
    t = text.strip()
    head, colon, rest = t.partition(":")
    if colon and "=" not in head:
        if _kind(head) != k:
            raise ValueError(f"{text!r} is a spec for {head.strip()!r}, not {k}")
        t = rest.strip()
    if k == "bulkhead" and re.fullmatch(_INT, t):
        return {"max_concurrent": int(t)}
    params: dict[str, Any] = {}
    for item in t.split(","):
        item = item.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise ValueError(f"{text!r}: {item!r} is not NAME=VALUE")
        name = _ALIASES.get(name, name)
        v = _value(name, value)
        if name == "window" and k == "breaker" and re.fullmatch(_DURATION, value.strip()):
            name = "window_seconds"
        if name in params:
            raise ValueError(f"{text!r}: {name} is given twice")
        params[name] = v
    return params


def _config(c: Config) -> tuple[str, str, dict[str, Any]]:
    """(label, kind, params) of one configuration."""
    if isinstance(c, str):
        head, colon, rest = c.partition(":")
        if not colon:
            raise ValueError(f"configuration {c!r} is not KIND:PARAMS (like 'breaker:window=100')")
        kind = _kind(head)
        return c, kind, parse_spec(kind, rest)
    if isinstance(c, tuple) and len(c) == 2 and isinstance(c[0], str):
        kind = _kind(c[0])
        if isinstance(c[1], str):
            params = parse_spec(kind, c[1])
        elif isinstance(c[1], Mapping):
            params = dict(c[1])
        else:
            raise TypeError(f"the params of {c!r} must be a dict or a spec string")
        label = kind + ":" + ",".join(f"{k}={v}" for k, v in params.items())
        return label, kind, params
    raise TypeError(f"a configuration must be a spec string or a (kind, params) tuple, got {c!r}")


def _arrays(trace: Any) -> tuple[Any, Any, Any, Any]:
    """The four columns of a trace: a Trace, an object with those attributes (or a mapping
    with those keys), or an iterable of ``(t, outcome, duration, key)`` rows."""
    names = ("t_ns", "duration_ns", "failed")
    if isinstance(trace, Mapping) and all(n in trace for n in names):
        cols = [trace[n] for n in names]
        key = trace.get("key")
    elif all(hasattr(trace, n) for n in names):
        cols = [getattr(trace, n) for n in names]
        key = getattr(trace, "key", None)
    elif isinstance(trace, (str, bytes)) or not isinstance(trace, Iterable):
        raise TypeError(
            "trace must be a fastbreaker.trace.Trace, an object with t_ns, duration_ns and "
            f"failed arrays, or an iterable of (t, outcome, duration, key) rows; got {trace!r}"
        )
    else:
        from .trace import Trace

        t = Trace.from_rows(trace)
        return t.t_ns, t.duration_ns, t.failed, t.key
    if key is None:
        key = array("I", bytes(4 * len(cols[0])))
    return cols[0], cols[1], cols[2], key


def _seconds(ns: Optional[int]) -> Optional[float]:
    return None if ns is None else ns / _NS


def _mean(xs: Sequence[int]) -> Optional[float]:
    return sum(xs) / len(xs) / _NS if xs else None


def _row(label: str, kind: str, params: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
    detected = [o[2] for o in r["outages"] if o[2] is not None]
    recovered = [o[3] for o in r["outages"] if o[3] is not None]
    return {
        "label": label,
        "kind": kind,
        "params": params,
        "calls": r["calls"],
        "admitted": r["admitted"],
        "rejected": r["rejected"],
        "trips": r["trips"],
        "time_open": r["time_open_ns"] / _NS,
        "false_rejections": r["false_rejections"],
        "missed_protection": r["missed_protection"],
        "detect_mean": _mean(detected),
        "detect_max": _seconds(max(detected)) if detected else None,
        "recover_mean": _mean(recovered),
        "recover_max": _seconds(max(recovered)) if recovered else None,
        "undetected": len(r["outages"]) - len(detected),
        "tokens_granted": r["tokens_granted"],
        "tokens_rejected": r["tokens_rejected"],
    }


_TABLE = (
    ("label", "configuration"),
    ("admitted", "admitted"),
    ("rejected", "rejected"),
    ("trips", "trips"),
    ("time_open", "open s"),
    ("false_rejections", "false rej"),
    ("missed_protection", "missed prot"),
    ("detect_mean", "detect mean s"),
    ("detect_max", "detect max s"),
    ("undetected", "undetected"),
    ("recover_mean", "recover mean s"),
    ("recover_max", "recover max s"),
)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


class Results:
    """What each configuration did with the trace.

    ``rows``: one dict per configuration, in order: ``label`` (its spec), ``kind``,
    ``params`` (the constructor's keywords), ``calls``, ``admitted``, ``rejected``, ``trips``,
    ``time_open`` (seconds open), ``false_rejections`` (refused outside every outage),
    ``missed_protection`` (failed calls let through during an outage), ``detect_mean`` /
    ``detect_max`` (seconds from an outage's start to the first trip within it, over the
    outages detected; None if none), ``undetected`` (outages with no trip), ``recover_mean`` /
    ``recover_max`` (seconds from an outage's end until the breaker closed; 0 if it was
    closed), ``tokens_granted`` and ``tokens_rejected`` (limiters).
    ``outages``: ``(start, end)`` in seconds (the trace's clock). ``transitions``: per label,
    ``(t, from, to)`` with ``t`` in seconds and states named as ``CircuitBreaker.state``.
    ``reports``: the native reports, times in whole nanoseconds (``time_open_ns``, ``end_ns``,
    ``outages`` as ``(start_ns, end_ns, detected_after_ns, recovered_after_ns)``,
    ``transitions`` as ``(t_ns, from, to)``).
    """

    def __init__(
        self,
        rows: list[dict[str, Any]],
        outages: list[tuple[float, float]],
        transitions: dict[str, list[tuple[float, str, str]]],
        reports: list[dict[str, Any]],
    ) -> None:
        self.rows = rows
        self.outages = outages
        self.transitions = transitions
        self.reports = reports
        self._df: Any = None

    @property
    def df(self) -> Any:
        """``rows`` as a pandas DataFrame (one row per configuration), or None without pandas
        (imported on first use)."""
        if self._df is None:
            try:
                pandas = importlib.import_module("pandas")
            except ImportError:
                return None
            self._df = pandas.DataFrame(self.rows)
        return self._df

    def pareto(
        self, x: str = "false_rejections", y: str = "missed_protection"
    ) -> list[dict[str, Any]]:
        """The rows no other row beats on both ``x`` and ``y`` (both minimised: at most as
        large on both and smaller on one), by increasing ``x``. A None counts as infinite."""

        def key(r: dict[str, Any]) -> tuple[float, float]:
            a, b = r[x], r[y]
            return (math.inf if a is None else a, math.inf if b is None else b)

        front: list[dict[str, Any]] = []
        best_y = math.inf
        ordered = sorted(self.rows, key=key)
        i = 0
        while i < len(ordered):
            # Rows of equal x: those of the smallest y among them, if below every y before.
            kx = key(ordered[i])[0]
            j = i
            while j < len(ordered) and key(ordered[j])[0] == kx:
                j += 1
            group = ordered[i:j]
            low = key(group[0])[1]
            if low < best_y:
                front.extend(r for r in group if key(r)[1] == low)
                best_y = low
            i = j
        return front

    def table(self, rows: Optional[Sequence[dict[str, Any]]] = None) -> str:
        """An aligned text table of ``rows`` (default: every row), token columns when a
        limiter is among them."""
        rows = self.rows if rows is None else rows
        columns = list(_TABLE)
        if any(r["kind"] in ("limiter", "keyed-limiter") for r in rows):
            columns += [
                ("tokens_granted", "tokens granted"),
                ("tokens_rejected", "tokens rejected"),
            ]
        cells = [[title for _, title in columns]]
        cells += [[_cell(r.get(k)) for k, _ in columns] for r in rows]
        widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
        lines = []
        for line in cells:
            parts = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:], widths[1:])]
            lines.append("  ".join(parts).rstrip())
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return f"<Results {len(self.rows)} configuration(s), {len(self.outages)} outage(s)>"


def simulate(
    trace: Any,
    configs: Union[Config, Iterable[Config]],
    *,
    outage_bucket: float = 1.0,
    outage_min_calls: int = 5,
    outage_threshold: float = 0.5,
    threads: Optional[int] = None,
    progress: Optional[Callable[[int, int], object]] = None,
) -> Results:
    """Replays ``trace`` through each of ``configs`` and reports what each would have done.

    ``trace``: a :class:`fastbreaker.trace.Trace`; any object (or mapping) with the arrays
    ``t_ns`` and ``duration_ns`` (unsigned 64-bit, ``array('Q')`` or numpy ``uint64``),
    ``failed`` (bytes, 1 = failed) and optionally ``key`` (``array('I')``, 0 = no key), read
    in place; or an iterable of ``(t, outcome, duration, key)`` rows (``Trace.from_rows``).
    Calls must be in order of start (a ValueError names the first index out of order).

    ``configs``: spec strings (``"breaker:failure_rate_threshold=50,window=100"``,
    ``"limiter:rate=100,per=1,burst=20"``, ``"keyed-limiter:rate=10,burst=5,capacity=65536"``,
    ``"bulkhead:max_concurrent=10"``; see :func:`parse_spec`) or ``(kind, params)`` tuples
    whose params are the constructor's keywords. Every configuration is checked before any
    replay, by the constructors' rules (the same ValueError, naming the same parameter).

    ``outage_bucket`` (seconds), ``outage_min_calls``, ``outage_threshold``: how outages are
    read from the trace. ``threads``: OS threads to spread the configurations over (default:
    the available parallelism). ``progress(done, total)`` is called (in this thread) as
    configurations finish.
    """
    if isinstance(configs, (str, tuple)):
        configs = [configs]
    parsed = [_config(c) for c in configs]
    if (
        isinstance(outage_bucket, bool)
        or not isinstance(outage_bucket, (int, float))
        or not math.isfinite(outage_bucket)
        or round(outage_bucket * _NS) <= 0
        or outage_bucket * _NS >= 2.0**64
    ):
        raise ValueError(f"outage_bucket must be a number of seconds > 0, got {outage_bucket!r}")
    if isinstance(outage_min_calls, bool) or not isinstance(outage_min_calls, int):
        raise TypeError(f"outage_min_calls must be an int, got {outage_min_calls!r}")
    if not 0 <= outage_min_calls < 2**32:
        raise ValueError(f"outage_min_calls must be in 0..2**32-1, got {outage_min_calls!r}")
    if (
        isinstance(outage_threshold, bool)
        or not isinstance(outage_threshold, (int, float))
        or not 0.0 <= outage_threshold <= 1.0
    ):
        raise ValueError(
            f"outage_threshold must be a failure ratio in 0..1, got {outage_threshold!r}"
        )
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ValueError(f"threads must be an int >= 1 or None, got {threads!r}")
    t_ns, duration_ns, failed, key = _arrays(trace)
    spans, reports = _native.replay(
        t_ns,
        duration_ns,
        failed,
        key,
        [(kind, params) for _, kind, params in parsed],
        outage_bucket_ns=round(outage_bucket * _NS),
        outage_min_calls=outage_min_calls,
        outage_threshold=float(outage_threshold),
        threads=threads,
        progress=progress,
    )
    rows = [_row(label, kind, params, r) for (label, kind, params), r in zip(parsed, reports)]
    transitions: dict[str, list[tuple[float, str, str]]] = {}
    for row, r in zip(rows, reports):
        label, n = row["label"], 2
        while label in transitions:
            label, n = f"{row['label']}#{n}", n + 1
        row["label"] = label
        transitions[label] = [(t / _NS, a, b) for t, a, b in r["transitions"]]
    return Results(rows, [(a / _NS, b / _NS) for a, b in spans], transitions, reports)
