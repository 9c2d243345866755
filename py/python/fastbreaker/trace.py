"""Call traces for the simulator: read them from logs, or generate synthetic ones.

A :class:`Trace` is a list of calls in columns: the start of each call (ns since the Unix
epoch), its duration (ns), whether it failed, and an optional client key. The simulator
(:func:`fastbreaker.sim.simulate`) replays one against breaker, limiter and bulkhead
configurations.

:func:`read_trace` reads four formats (``format="auto"`` tells them apart by the file name and
the first line):

``csv``
    A header row naming the columns, then one call a row. Columns: ``timestamp`` (also ``t`` or
    ``time``; Unix seconds such as ``1700000000.25``, or ISO-8601 such as
    ``2023-11-14T22:13:20.25Z``, UTC when no offset is given), ``outcome`` (also ``status``:
    ``success``/``ok``, ``failure``/``error``, ``timeout``, or an HTTP status code),
    ``duration`` (seconds such as ``0.05``, or with a unit: ``50ms``, ``0.05s``, ``50000us``,
    ``50000000ns``) and optionally ``key`` (a client name; empty for none). The timestamp is the
    start of the call.
``jsonl``
    One JSON object a line with the same fields (numbers or strings).
``nginx``
    The combined log format with ``$request_time`` appended::

        log_format timed '$remote_addr - $remote_user [$time_local] "$request" '
                         '$status $body_bytes_sent "$http_referer" "$http_user_agent" '
                         '$request_time';

    nginx writes a line when the request ends and ``$time_local`` is that end, so the start is
    ``$time_local - $request_time``. The key is ``$remote_addr``.
``apache``
    The combined log format with ``%D`` (microseconds) appended::

        LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-agent}i\\" %D" timed

    ``%t`` is the time the request was received, the start. The key is ``%h``.

With ``fields`` the CSV and JSON field names are mapped, e.g.
``fields={"t": "ts", "outcome": "status", "duration": "request_time", "key": "client"}``.
A status is failed when it is in ``failure_statuses`` (default: 429 and 500 to 599); a
``timeout`` or ``failure`` outcome always is. Calls are sorted by start time (stable), since
access logs are written in the order the requests end.

:func:`generate_trace` makes a synthetic trace: Poisson arrivals, a healthy failure ratio,
outages, brownouts, flapping and a latency distribution, seeded.
"""

from __future__ import annotations

import bisect
import csv
import datetime as _dt
import gzip
import json
import math
import os
import random
import re
import sys
from array import array
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Optional,
    Sequence,
    TextIO,
    Union,
)

__all__ = [
    "DEFAULT_FAILURE_STATUSES",
    "FORMATS",
    "Trace",
    "TraceError",
    "generate_trace",
    "parse_duration",
    "read_trace",
]

#: The HTTP statuses counted as failed unless ``failure_statuses`` says otherwise.
DEFAULT_FAILURE_STATUSES: frozenset[int] = frozenset({429, *range(500, 600)})
#: The formats :func:`read_trace` reads (besides ``"auto"``).
FORMATS: tuple[str, ...] = ("csv", "jsonl", "nginx", "apache")
#: The logical field names that ``fields`` maps.
FIELD_NAMES: tuple[str, ...] = ("t", "outcome", "duration", "key")

_NS = 1_000_000_000
_U64_MAX = (1 << 64) - 1
_DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "t": ("timestamp", "t", "time"),
    "outcome": ("outcome", "status"),
    "duration": ("duration",),
    "key": ("key",),
}
_OUTCOMES = {"success": False, "ok": False, "failure": True, "error": True, "timeout": True}
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": _NS, "m": 60 * _NS}
_UNITS["h"] = 3600 * _NS
_NUMBER_UNIT = re.compile(r"\s*([0-9]*\.?[0-9]*(?:[eE][+-]?[0-9]+)?)\s*(ns|us|µs|ms|s|m|h)?\s*")
_ISO = re.compile(
    r"\s*([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:[.,]([0-9]{1,9}))?\s*(Z|z|[+-][0-9]{2}:?[0-9]{2})?\s*"
)
_CLF_TIME = re.compile(
    r"([0-9]{2})/([A-Za-z]{3})/([0-9]{4}):([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r" ([+-])([0-9]{2})([0-9]{2})"
)
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    )
}
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_COMBINED = r"(\S+) \S+ \S+ \[([^\]]*)\] " + _QUOTED + r" ([0-9]{3}) \S+ " + _QUOTED + " " + _QUOTED
_NGINX = re.compile(_COMBINED + r" ([0-9]+(?:\.[0-9]+)?|-)\s*")
_APACHE = re.compile(_COMBINED + r" ([0-9]+|-)\s*")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


class TraceError(ValueError):
    """A trace that cannot be read: names the line and what is wrong with it."""

    def __init__(self, message: str, line: Optional[int] = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


@dataclass
class Trace:
    """Calls in columns, sorted by start time.

    ``t_ns`` is each call's start in ns since the Unix epoch, ``duration_ns`` its duration,
    ``failed`` 1 when it failed (else 0), ``key`` 0 for no key or ``1 + i`` for the client
    ``key_names[i]``.
    """

    t_ns: array[int] = field(default_factory=lambda: array("Q"))
    duration_ns: array[int] = field(default_factory=lambda: array("Q"))
    failed: array[int] = field(default_factory=lambda: array("B"))
    key: array[int] = field(default_factory=lambda: array("I"))
    key_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.t_ns)

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[tuple[Any, Any, Any, Optional[str]]],
        *,
        failure_statuses: Optional[Collection[int]] = None,
    ) -> Trace:
        """A trace from ``(t, outcome, duration, key)`` rows, sorted by ``t`` (stable).

        ``t`` is the start in Unix seconds (a number, or a string: decimal seconds or ISO-8601),
        ``outcome`` ``"success"``, ``"failure"``, ``"timeout"`` or an HTTP status (failed when
        in ``failure_statuses``, default :data:`DEFAULT_FAILURE_STATUSES`), ``duration`` in
        seconds (a number, or a string with an optional unit such as ``"50ms"``), ``key`` a
        client name or None. A bad row raises :class:`TraceError` naming its (1-based) index.
        """
        statuses = _statuses(failure_statuses)
        builder = _Builder()
        for i, row in enumerate(rows, 1):
            try:
                t, outcome, duration, key = row
                builder.add(
                    _time_ns(t),
                    _failed(outcome, statuses),
                    _duration_ns(duration),
                    None if key is None else str(key),
                )
            except (TraceError, ValueError, TypeError) as exc:
                raise TraceError(f"row {i}: {_reason(exc)}") from None
        return builder.build()

    @property
    def start_ns(self) -> int:
        """The first call's start (0 for an empty trace)."""
        return self.t_ns[0] if self.t_ns else 0

    @property
    def end_ns(self) -> int:
        """The latest end of a call (0 for an empty trace)."""
        if not self.t_ns:
            return 0
        return max(t + d for t, d in zip(self.t_ns, self.duration_ns))

    def to_csv(self, out: TextIO) -> None:
        """Writes the trace as CSV that :func:`read_trace` reads back exactly (timestamps and
        durations in seconds with 9 decimals, outcome ``success``/``failure``)."""
        out.write("timestamp,outcome,duration,key\n")
        names = [""]
        for name in self.key_names:
            if any(c in name for c in ',"\r\n'):
                name = '"' + name.replace('"', '""') + '"'
            names.append(name)
        outcome = ("success", "failure")
        columns = (self.t_ns, self.duration_ns, self.failed, self.key)
        chunk = 1 << 16
        for i in range(0, len(self.t_ns), chunk):
            out.write(
                "".join(
                    [
                        f"{t // _NS}.{t % _NS:09d},{outcome[f]},{d // _NS}.{d % _NS:09d},"
                        f"{names[k]}\n"
                        for t, d, f, k in zip(*(c[i : i + chunk] for c in columns))
                    ]
                )
            )


class _Builder:
    """Collects calls, interns keys, then sorts them by start (stable) into a Trace."""

    def __init__(self) -> None:
        self.t: list[int] = []
        self.d: list[int] = []
        self.f: list[int] = []
        self.k: list[int] = []
        self.names: list[str] = []
        self.index: dict[str, int] = {}

    def add(self, t_ns: int, failed: bool, duration_ns: int, key: Optional[str]) -> None:
        if key:
            k = self.index.get(key)
            if k is None:
                if len(self.names) >= 0xFFFF_FFFE:
                    raise TraceError("more than 2^32 - 2 distinct keys")
                self.names.append(key)
                k = self.index[key] = len(self.names)
        else:
            k = 0
        self.t.append(t_ns)
        self.d.append(duration_ns)
        self.f.append(1 if failed else 0)
        self.k.append(k)

    def build(self) -> Trace:
        t = self.t
        if all(t[i] <= t[i + 1] for i in range(len(t) - 1)):
            order: Sequence[int] = range(len(t))
        else:
            order = sorted(range(len(t)), key=t.__getitem__)
        d, f, k = self.d, self.f, self.k
        return Trace(
            array("Q", [t[i] for i in order]),
            array("Q", [d[i] for i in order]),
            array("B", [f[i] for i in order]),
            array("I", [k[i] for i in order]),
            self.names,
        )


# -- field parsers -----------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


def _statuses(failure_statuses: Optional[Collection[int]]) -> Collection[int]:
    if failure_statuses is None:
        return DEFAULT_FAILURE_STATUSES
    statuses = frozenset(failure_statuses)
    for s in statuses:
        if not isinstance(s, int) or isinstance(s, bool) or not 100 <= s <= 599:
            raise ValueError(
                f"failure_statuses: {s!r} is not an HTTP status (an int from 100 to 599)"
            )
    return statuses


def _decimal_ns(text: str, scale: int) -> Optional[int]:
    """``text`` (a plain decimal such as ``12.5``) times ``scale`` ns, exactly (rounded to the
    nearest ns); None if ``text`` is not a plain decimal."""
    whole, _, frac = text.partition(".")
    if not (whole.isascii() and frac.isascii()):
        return None
    if (whole and not whole.isdigit()) or (frac and not frac.isdigit()) or not (whole or frac):
        return None
    if len(whole) > 30:
        return _U64_MAX + 1  # out of range, and int() of a very long string is refused
    ns = int(whole) * scale if whole else 0
    if frac:
        if scale == _NS and len(frac) <= 9:
            return ns + int(frac.ljust(9, "0"))
        frac = frac[:30]
        ns += (int(frac) * scale * 2 + 10 ** len(frac)) // (2 * 10 ** len(frac))
    return ns


def _number_ns(seconds: Union[int, float]) -> int:
    """Finite seconds >= 0 in ns (above 2^64 - 1 when too large for a float)."""
    if isinstance(seconds, int):
        return seconds * _NS
    ns = seconds * _NS
    return round(ns) if math.isfinite(ns) else _U64_MAX + 1


def _check_u64(ns: int, what: str) -> int:
    if ns > _U64_MAX:
        raise TraceError(f"{what} is out of range (above 2^64 - 1 ns)")
    return ns


def parse_duration(value: Union[str, float, int], *, what: str = "duration") -> int:
    """A duration in ns from seconds (a number or a decimal string) or a string with a unit:
    ``ns``, ``us``, ``ms``, ``s``, ``m`` or ``h`` (``"300ms"``, ``"1.5s"``, ``"2m"``).
    Raises :class:`TraceError` (a ValueError) naming ``what`` if it is not a duration >= 0."""
    if isinstance(value, bool):
        raise TraceError(f"{what} {value!r} is not a duration (seconds, or with a unit: 50ms)")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise TraceError(f"{what} {value!r} is not a finite number of seconds >= 0")
        return _check_u64(_number_ns(value), what)
    if not isinstance(value, str):
        raise TraceError(f"{what} {value!r} is not a duration (seconds, or with a unit: 50ms)")
    text = value.strip()
    exact = _decimal_ns(text, _NS)
    if exact is not None:
        return _check_u64(exact, what)
    m = _NUMBER_UNIT.fullmatch(text)
    if m is None or not m.group(1) or m.group(1) == ".":
        raise TraceError(
            f"{what} {value!r} is not a duration (seconds, or with a unit ns/us/ms/s/m/h: 50ms)"
        )
    scale = _UNITS[m.group(2) or "s"]
    ns = _decimal_ns(m.group(1), scale)
    if ns is None:
        try:
            x = float(m.group(1)) * scale
        except (ValueError, OverflowError):
            x = math.inf
        if not math.isfinite(x):
            raise TraceError(f"{what} {value!r} is out of range")
        ns = round(x)
    return _check_u64(ns, what)


def _duration_ns(value: Any) -> int:
    return parse_duration(value, what="duration")


def _iso_ns(m: re.Match[str]) -> int:
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if second > 60:
        raise TraceError(f"timestamp {m.group(0).strip()!r}: second must be in 0..60")
    try:
        dt = _dt.datetime(year, month, day, hour, minute, min(second, 59), tzinfo=_dt.timezone.utc)
    except ValueError as exc:
        raise TraceError(f"timestamp {m.group(0).strip()!r}: {exc}") from None
    if second == 60:  # a leap second
        dt += _dt.timedelta(seconds=1)
    offset = m.group(8)
    off_s = 0
    if offset and offset not in ("Z", "z"):
        digits = offset[1:].replace(":", "")
        oh, om = int(digits[:2]), int(digits[2:])
        if oh > 23 or om > 59:
            raise TraceError(f"timestamp {m.group(0).strip()!r}: bad UTC offset {offset!r}")
        off_s = (oh * 3600 + om * 60) * (1 if offset[0] == "+" else -1)
    delta = dt - _EPOCH
    seconds = delta.days * 86400 + delta.seconds - off_s
    frac = m.group(7) or ""
    ns = seconds * _NS + (int(frac.ljust(9, "0")) if frac else 0)
    if ns < 0:
        raise TraceError(f"timestamp {m.group(0).strip()!r} is before 1970-01-01T00:00:00Z")
    return ns


def _time_ns(value: Any) -> int:
    """A start time in ns since the epoch from Unix seconds or ISO-8601."""
    if isinstance(value, bool):
        raise TraceError(f"timestamp {value!r} is not Unix seconds or ISO-8601")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise TraceError(f"timestamp {value!r} is not Unix seconds >= 0")
        return _check_u64(_number_ns(value), "timestamp")
    if not isinstance(value, str):
        raise TraceError(f"timestamp {value!r} is not Unix seconds or ISO-8601")
    text = value.strip()
    exact = _decimal_ns(text, _NS)
    if exact is not None:
        return _check_u64(exact, "timestamp")
    m = _ISO.fullmatch(value)
    if m is not None:
        return _check_u64(_iso_ns(m), "timestamp")
    if text and text[0] not in "+-" and _NUMBER_UNIT.fullmatch(text) and "e" in text.lower():
        try:
            x = float(text)
        except ValueError:
            x = math.nan
        if math.isfinite(x) and 0 <= x * _NS <= _U64_MAX:
            return round(x * _NS)
    raise TraceError(
        f"timestamp {value!r} is not Unix seconds (>= 0) or ISO-8601 (2023-11-14T22:13:20Z)"
    )


def _failed(value: Any, statuses: Collection[int]) -> bool:
    if isinstance(value, bool):
        raise TraceError(
            f"outcome {value!r} is not success, failure, timeout or an HTTP status (100-599)"
        )
    if isinstance(value, str):
        text = value.strip()
        known = _OUTCOMES.get(text.lower())
        if known is not None:
            return known
        if len(text) == 3 and text.isascii() and text.isdigit():
            value = int(text)
    if isinstance(value, int) and 100 <= value <= 599:
        return value in statuses
    raise TraceError(
        f"outcome {value!r} is not success, failure, timeout or an HTTP status (100-599)"
    )


# -- readers -----------------------------------------------------------------------------------


def _columns(fields: Optional[Mapping[str, str]]) -> dict[str, tuple[str, ...]]:
    columns = dict(_DEFAULT_COLUMNS)
    for name, column in (fields or {}).items():
        if name not in FIELD_NAMES:
            raise ValueError(
                f"fields: unknown field {name!r}; the fields are {', '.join(FIELD_NAMES)}"
            )
        if not isinstance(column, str) or not column:
            raise ValueError(f"fields: the column for {name!r} must be a non-empty string")
        columns[name] = (column,)
    return columns


def _read_csv(
    lines: Iterator[str], columns: dict[str, tuple[str, ...]], emit: _Emit, first_line: int
) -> None:
    reader = csv.reader(lines, strict=True)
    decimal, add = _decimal_ns, emit.builder.add
    ti = oi = di = 0
    index_ready = False
    header: Optional[list[str]] = None
    index: dict[str, Optional[int]] = {}
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            emit.bad(reader.line_num + first_line - 1, f"not CSV: {exc}")
            if header is None:
                return
            continue
        line = reader.line_num + first_line - 1
        if not row or all(not c.strip() for c in row):
            continue
        if header is None:
            header = [c.strip().lstrip("\ufeff") for c in row]
            for name, candidates in columns.items():
                found = next((header.index(c) for c in candidates if c in header), None)
                if found is None and name != "key":
                    raise TraceError(
                        f"the CSV header has no column for {name} (looked for "
                        f"{', '.join(repr(c) for c in candidates)}; the header is "
                        f"{', '.join(repr(c) for c in header)})",
                        line,
                    )
                index[name] = found
            continue
        if not index_ready:
            ti, oi, di = index["t"] or 0, index["outcome"] or 0, index["duration"] or 0
            index_ready = True
        if len(row) != len(header):
            emit.bad(line, f"{len(row)} columns, the header has {len(header)}")
            continue
        ki = index["key"]
        t, outcome, duration = row[ti], row[oi], row[di]
        key = row[ki].strip() if ki is not None else None
        # The common case (plain decimal seconds, a word outcome) without the checks' calls.
        at, d, failed = decimal(t, _NS), decimal(duration, _NS), _OUTCOMES.get(outcome)
        if at is None or d is None or failed is None or at > _U64_MAX or d > _U64_MAX:
            emit.call(line, t, outcome, duration, key)
        else:
            add(at, failed, d, key)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _read_jsonl(
    lines: Iterator[str], columns: dict[str, tuple[str, ...]], emit: _Emit, first_line: int
) -> None:
    for n, text in enumerate(lines, first_line):
        if not text.strip():
            continue
        try:
            obj = json.loads(text, parse_float=str, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            emit.bad(n, f"not JSON: {_reason(exc)}")
            continue
        if not isinstance(obj, dict):
            emit.bad(n, f"not a JSON object but {type(obj).__name__}")
            continue
        values: dict[str, Any] = {}
        missing = None
        for name, candidates in columns.items():
            found = next((c for c in candidates if c in obj), None)
            if found is None:
                if name != "key":
                    missing = (name, candidates)
                    break
                values[name] = None
            else:
                values[name] = obj[found]
        if missing is not None:
            emit.bad(
                n,
                f"no {missing[0]} field (looked for {', '.join(repr(c) for c in missing[1])})",
            )
            continue
        key = values["key"]
        if key is not None and not isinstance(key, (str, int)):
            emit.bad(n, f"key {key!r} is not a string or an integer")
            continue
        emit.call(
            n,
            values["t"],
            values["outcome"],
            values["duration"],
            None if key is None else str(key),
        )


def _clf_ns(text: str) -> int:
    m = _CLF_TIME.fullmatch(text)
    month = _MONTHS.get(m.group(2)) if m else None
    if m is None or month is None:
        raise TraceError(f"time {text!r} is not like 10/Oct/2023:13:55:36 +0000")
    iso = (
        f"{m.group(3)}-{month:02d}-{m.group(1)}T{m.group(4)}:{m.group(5)}:{m.group(6)}"
        f"{m.group(7)}{m.group(8)}:{m.group(9)}"
    )
    iso_m = _ISO.fullmatch(iso)
    assert iso_m is not None
    return _iso_ns(iso_m)


def _read_access(
    lines: Iterator[str], pattern: re.Pattern[str], emit: _Emit, first_line: int, nginx: bool
) -> None:
    what = (
        "an nginx combined line with $request_time appended"
        if nginx
        else "an Apache combined line with %D appended"
    )
    for n, text in enumerate(lines, first_line):
        if not text.strip():
            continue
        m = pattern.fullmatch(text.rstrip("\r\n"))
        if m is None:
            emit.bad(n, f"not {what}")
            continue
        last = m.group(7)
        if last == "-":
            emit.bad(n, "no request time ('-')")
            continue
        try:
            at = _clf_ns(m.group(2))
        except TraceError as exc:
            emit.bad(n, str(exc))
            continue
        duration: Any = last if nginx else int(last) * 1000
        if not nginx:
            duration = f"{duration}ns"
        emit.call(n, None, m.group(4), duration, m.group(1), at_ns=at, end=nginx)


class _Emit:
    """Parses one call's fields into the builder; counts or raises on bad lines."""

    def __init__(self, builder: _Builder, statuses: Collection[int], skip_bad: bool) -> None:
        self.builder = builder
        self.statuses = statuses
        self.skip_bad = skip_bad
        self.skipped = 0

    def bad(self, line: int, message: str) -> None:
        if not self.skip_bad:
            raise TraceError(message, line)
        self.skipped += 1

    def call(
        self,
        line: int,
        t: Any,
        outcome: Any,
        duration: Any,
        key: Optional[str],
        *,
        at_ns: Optional[int] = None,
        end: bool = False,
    ) -> None:
        """One call; ``at_ns`` (ns) instead of ``t`` (seconds or ISO-8601) when already known,
        and ``end`` when that time is the call's end rather than its start."""
        try:
            at = at_ns if at_ns is not None else _time_ns(t)
            d = _duration_ns(duration)
            failed = _failed(outcome, self.statuses)
            if end:
                if d > at:
                    raise TraceError(
                        f"the request time {d / _NS:g} s is longer than the time since 1970"
                    )
                at -= d
        except TraceError as exc:
            self.bad(line, str(exc))
            return
        self.builder.add(at, failed, d, key)


def _detect(first: str, name: str) -> str:
    lower = name.lower()
    for suffix, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".csv", "csv")):
        if lower.endswith(suffix) or lower.endswith(suffix + ".gz"):
            return fmt
    text = first.rstrip("\r\n")
    if text.lstrip().startswith("{"):
        return "jsonl"
    if _NGINX.fullmatch(text) and "." in text.rsplit(" ", 1)[-1]:
        return "nginx"
    if _APACHE.fullmatch(text):
        return "apache"
    return "csv"


def read_trace(
    source: Union[str, os.PathLike[str], TextIO],
    *,
    format: str = "auto",
    fields: Optional[Mapping[str, str]] = None,
    skip_bad: bool = False,
    failure_statuses: Optional[Collection[int]] = None,
) -> tuple[Trace, int]:
    """Reads a trace; returns it with the number of bad lines skipped.

    ``source`` is a path (``.gz`` is decompressed), ``"-"`` for standard input, or a text file
    object. ``format`` is ``"auto"`` or one of :data:`FORMATS` (see the module docstring).
    ``fields`` maps the logical fields ``t``, ``outcome``, ``duration`` and ``key`` to the CSV
    column or JSON field names. A bad line raises :class:`TraceError` (``"line N: ..."``), or
    with ``skip_bad=True`` is skipped and counted. ``failure_statuses`` are the HTTP statuses
    counted as failed (default :data:`DEFAULT_FAILURE_STATUSES`).
    """
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"format: {format!r} is not auto or one of {', '.join(FORMATS)}")
    columns = _columns(fields)
    statuses = _statuses(failure_statuses)
    opened: Optional[TextIO] = None
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if name == "-":
            stream: TextIO = sys.stdin
        elif name.endswith(".gz"):
            opened = stream = gzip.open(name, "rt", encoding="utf-8", errors="replace")
        else:
            opened = stream = open(name, encoding="utf-8", errors="replace", newline="")
    else:
        stream, name = source, str(getattr(source, "name", ""))
    try:
        return _read_stream(stream, name, format, columns, statuses, skip_bad)
    finally:
        if opened is not None:
            opened.close()


def _read_stream(
    stream: TextIO,
    name: str,
    format: str,
    columns: dict[str, tuple[str, ...]],
    statuses: Collection[int],
    skip_bad: bool,
) -> tuple[Trace, int]:
    lines: Iterator[str] = iter(stream)
    first_line = 1
    head: list[str] = []
    if format == "auto":
        for text in lines:
            head.append(text)
            if text.strip():
                break
        format = _detect(head[-1] if head else "", name)
        lines = _chain(head, lines)
    elif format in ("nginx", "apache") and _fields_given(columns):
        raise ValueError(f"fields: applies to csv and jsonl, not {format}")
    builder = _Builder()
    emit = _Emit(builder, statuses, skip_bad)
    if format == "csv":
        _read_csv(lines, columns, emit, first_line)
    elif format == "jsonl":
        _read_jsonl(lines, columns, emit, first_line)
    elif format == "nginx":
        _read_access(lines, _NGINX, emit, first_line, nginx=True)
    else:
        _read_access(lines, _APACHE, emit, first_line, nginx=False)
    return builder.build(), emit.skipped


def _fields_given(columns: dict[str, tuple[str, ...]]) -> bool:
    return columns != _DEFAULT_COLUMNS


def _chain(head: list[str], rest: Iterator[str]) -> Iterator[str]:
    yield from head
    yield from rest


# -- generator ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    start_ns: int
    end_ns: int
    value: float  # the failure ratio (outage, flap) or the added latency in ns (brownout)


def _window(text: str, what: str, value: Callable[[str], float]) -> _Window:
    """``LENGTH@START:VALUE``."""
    m = re.fullmatch(r"\s*([^@:]+)@([^@:]+):(.+)", text)
    if m is None:
        raise ValueError(f"{what}: {text!r} is not LENGTH@START:VALUE (like 120s@600s:0.9)")
    length = parse_duration(m.group(1), what=f"{what} length")
    start = parse_duration(m.group(2), what=f"{what} start")
    return _Window(start, start + length, value(m.group(3)))


def _ratio(what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            x = math.nan
        if not 0.0 <= x <= 1.0:
            raise ValueError(f"{what}: failure ratio {text!r} is not a number from 0 to 1")
        return x

    return parse


_LATENCY_KINDS = ("lognormal", "const", "exp")


def _latency(spec: str) -> Callable[[random.Random, int], list[float]]:
    """A sampler of ``n`` latencies in ns from ``lognormal:MEDIAN[:SIGMA]``, ``const:D`` or
    ``exp:MEAN``."""
    parts = spec.split(":")
    kind = parts[0].strip()
    if kind not in _LATENCY_KINDS or len(parts) < 2 or (kind != "lognormal" and len(parts) > 2):
        raise ValueError(
            f"latency: {spec!r} is not lognormal:MEDIAN[:SIGMA], const:D or exp:MEAN "
            "(like lognormal:50ms)"
        )
    scale = float(parse_duration(parts[1], what="latency"))
    if kind == "const":
        return lambda rng, n: [scale] * n
    if kind == "exp":
        if scale <= 0:
            raise ValueError(f"latency: the mean of {spec!r} must be > 0")
        lam = 1.0 / scale
        return lambda rng, n: [rng.expovariate(lam) for _ in range(n)]
    sigma = 0.5
    if len(parts) == 3:
        try:
            sigma = float(parts[2])
        except ValueError:
            sigma = math.nan
        if not 0.0 <= sigma <= 10.0:
            raise ValueError(f"latency: sigma {parts[2]!r} of {spec!r} is not from 0 to 10")
    if scale <= 0:
        raise ValueError(f"latency: the median of {spec!r} must be > 0")
    mu = math.log(scale)
    exp = math.exp

    def lognormal(rng: random.Random, n: int) -> list[float]:
        gauss = rng.gauss
        return [exp(mu + sigma * gauss(0.0, 1.0)) for _ in range(n)]

    return lognormal


def _as_list(value: Union[str, Sequence[str], None]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def generate_trace(
    duration: Union[str, float] = "3600s",
    rate: float = 100.0,
    healthy: float = 0.01,
    *,
    outages: Union[str, Sequence[str], None] = None,
    brownouts: Union[str, Sequence[str], None] = None,
    flapping: Union[str, Sequence[str], None] = None,
    latency: str = "lognormal:50ms",
    keys: int = 0,
    seed: int = 0,
    start: Union[str, float] = 1_700_000_000,
) -> Trace:
    """A synthetic trace, the same for the same arguments.

    ``duration``: its length (seconds or ``"3600s"``); ``rate``: calls per second (Poisson
    arrivals); ``healthy``: the failure ratio outside outages. ``outages``:
    ``"LENGTH@START:RATIO"`` (``"120s@600s:0.9"``: from 600 s in, for 120 s, 90 % fail);
    ``brownouts``: ``"LENGTH@START:EXTRA"`` (``"60s@1200s:300ms"``: calls succeed as usual but
    take 300 ms longer); ``flapping``: ``"LENGTH@START:PERIOD[:RATIO]"`` (``"300s@1800s:10s"``:
    for 300 s, alternately 10 s healthy and 10 s failing, at RATIO, default 1). Each of these
    is one string or a list. ``latency``: ``"lognormal:MEDIAN[:SIGMA]"`` (sigma default 0.5),
    ``"const:D"`` or ``"exp:MEAN"``. ``keys``: that many clients ``client-0``... picked with
    Zipf weights (1/rank), 0 for none. ``seed`` seeds :class:`random.Random`. ``start``: the
    first instant in Unix seconds (default 1700000000, 2023-11-14T22:13:20Z).
    """
    span = parse_duration(duration, what="duration")
    t0 = _time_ns(start) if not isinstance(start, str) else parse_duration(start, what="start")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1e7:
        raise ValueError(f"rate: {rate!r} is not a number of calls per second in (0, 1e7]")
    if isinstance(healthy, bool) or not isinstance(healthy, (int, float)):
        raise ValueError(f"healthy: {healthy!r} is not a failure ratio from 0 to 1")
    if not 0.0 <= healthy <= 1.0:
        raise ValueError(f"healthy: {healthy!r} is not a failure ratio from 0 to 1")
    if isinstance(keys, bool) or not isinstance(keys, int) or not 0 <= keys <= 10_000_000:
        raise ValueError(f"keys: {keys!r} is not a number of clients from 0 to 10000000")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: {seed!r} is not an integer")
    if t0 + span + 1000 * _NS > _U64_MAX:
        raise ValueError("start + duration is out of range (above 2^64 ns)")
    failing = [_window(s, "outage", _ratio("outage")) for s in _as_list(outages)]
    slow = [
        _window(s, "brownout", lambda v: float(parse_duration(v, what="brownout latency")))
        for s in _as_list(brownouts)
    ]
    for text in _as_list(flapping):
        parts = text.rsplit(":", 2)
        ratio = 1.0
        head = text
        if len(parts) == 3 and "@" not in parts[1] and "@" in parts[0]:
            head = parts[0] + ":" + parts[1]
            ratio = _ratio("flapping")(parts[2])
        flap = _window(head, "flapping", lambda v: float(parse_duration(v, what="flap period")))
        period = int(flap.value)
        if period <= 0:
            raise ValueError(f"flapping: the period of {text!r} must be > 0")
        # Healthy first, then failing, alternately.
        at = flap.start_ns + period
        while at < flap.end_ns:
            failing.append(_Window(at, min(at + period, flap.end_ns), ratio))
            at += 2 * period
    sample = _latency(latency)
    rng = random.Random(seed)
    # Time-ordered change points: the failure ratio and added latency per segment.
    cuts = sorted(
        {0, span}
        | {w.start_ns for w in failing + slow if w.start_ns < span}
        | {w.end_ns for w in failing + slow if w.end_ns < span}
    )
    seg_ratio: list[float] = []
    seg_extra: list[float] = []
    for a in cuts[:-1]:
        ratios = [w.value for w in failing if w.start_ns <= a < w.end_ns]
        seg_ratio.append(max(ratios) if ratios else healthy)
        seg_extra.append(sum(w.value for w in slow if w.start_ns <= a < w.end_ns))
    # Arrivals first, then per segment of constant ratio and latency: durations, outcomes.
    expo = rng.expovariate
    rand = rng.random
    lam = rate / _NS
    times: list[int] = []
    push = times.append
    t = expo(lam)
    while t < span:
        push(int(t))
        t += expo(lam)
    n = len(times)
    durations: list[int] = []
    failed: list[int] = []
    for seg, (a, b) in enumerate(zip(cuts, cuts[1:])):
        lo, hi = bisect.bisect_left(times, a), bisect.bisect_left(times, b)
        ratio, extra = seg_ratio[seg], seg_extra[seg]
        durations.extend(int(d + extra) for d in sample(rng, hi - lo))
        failed.extend([1 if rand() < ratio else 0 for _ in range(lo, hi)])
    if keys:
        cum: list[float] = []
        total = 0.0
        for i in range(keys):
            total += 1.0 / (i + 1)
            cum.append(total)
        where = bisect.bisect_left
        last = keys - 1
        key = [1 + min(where(cum, rand() * total), last) for _ in range(n)]
    else:
        key = [0] * n
    t_out = array("Q", [t0 + x for x in times])
    names = [f"client-{i}" for i in range(keys)] if keys else []
    return Trace(t_out, array("Q", durations), array("B", failed), array("I", key), names)
