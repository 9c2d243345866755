"""Prometheus export of every breaker, limiter and bulkhead of a registry.

>>> from prometheus_client import start_http_server  # doctest: +SKIP
>>> import fastbreaker.prometheus
>>> fastbreaker.prometheus.register()  # doctest: +SKIP
>>> start_http_server(9100)  # doctest: +SKIP

Values are read from the native counters when Prometheus scrapes (``collect()``): nothing on
a call's path touches ``prometheus_client``. Needs the extra ``fastbreaker[prometheus]``;
this module imports without it and says so when used. The metrics are listed in
``docs/metrics.md``. ``SPECS`` and ``read()`` are the exporter-neutral part, shared with
``fastbreaker.opentelemetry``.

``region_exposition(name)`` renders the primitives of a shared region (``SharedRegion``) in
the Prometheus text format, under the same metric names and labels, plus ``REGION_SPECS``;
it needs only the standard library (``python -m fastbreaker exporter --region NAME`` serves
it over HTTP).
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import threading
import weakref
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterator, Mapping, NamedTuple, Optional, Union

from ._forksafe import fork_safe_lock
from ._region import SharedRegion
from ._registry import Registry
from ._registry import registry as _default_registry

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = [
    "REGION_SPECS",
    "SPECS",
    "STATES",
    "FastbreakerCollector",
    "HistogramValue",
    "Spec",
    "exposition_text",
    "health_score",
    "read",
    "read_region",
    "region_exposition",
    "register",
    "unregister",
]

STATES = ("closed", "open", "half_open", "forced_open", "disabled", "metrics_only")
"""Breaker states in the order of their numeric codes (``fastbreaker_breaker_state_code``)."""

# Health of each state before the failure pressure scales it down.
_STATE_HEALTH = {
    "closed": 1.0,
    "disabled": 1.0,
    "metrics_only": 1.0,
    "half_open": 0.5,
    "open": 0.0,
    "forced_open": 0.0,
}
# Transitions a breaker makes by itself: exported from the start (at 0) so that
# `increase()` sees the first one.
_AUTOMATIC_TRANSITIONS = (
    ("closed", "open"),
    ("open", "half_open"),
    ("half_open", "closed"),
    ("half_open", "open"),
)
_NAMESPACE_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_INSTALL_HINT = "pip install fastbreaker[prometheus]"


class Spec(NamedTuple):
    """One exported metric: its name without the namespace, type, labels, help and unit."""

    name: str
    kind: str  # "gauge", "counter" or "histogram"
    labels: tuple[str, ...]
    help: str
    unit: str  # UCUM, for OpenTelemetry


SPECS: tuple[Spec, ...] = (
    Spec("breaker_state", "gauge", ("name", "state"),
         "1 for the breaker's current state, 0 for the five others.", "1"),
    Spec("breaker_state_code", "gauge", ("name",),
         "The current state as a number: 0 closed, 1 open, 2 half_open, 3 forced_open, "
         "4 disabled, 5 metrics_only.", "1"),
    Spec("breaker_calls_total", "counter", ("name", "result"),
         "Calls by result: success, failure, ignored (an excluded exception or a "
         "cancellation), rejected (refused by the breaker).", "{call}"),
    Spec("breaker_slow_calls_total", "counter", ("name",),
         "Calls slower than slow_call_duration (each also counted as a success or a "
         "failure).", "{call}"),
    Spec("breaker_transitions_total", "counter", ("name", "from", "to"),
         "State transitions by old and new state.", "{transition}"),
    Spec("breaker_fallbacks_total", "counter", ("name",),
         "Rejected calls answered by the fallback.", "{call}"),
    Spec("breaker_call_duration_seconds", "histogram", ("name",),
         "Call durations (breakers built with measure_durations=True only).", "s"),
    Spec("breaker_failure_ratio", "gauge", ("name",),
         "Failures / calls in the sliding window (0 when it is empty).", "1"),
    Spec("breaker_slow_call_ratio", "gauge", ("name",),
         "Slow calls / calls in the sliding window (0 when it is empty).", "1"),
    Spec("breaker_health_score", "gauge", ("name",),
         "0..1: the state's health (1 closed, disabled, metrics_only; 0.5 half_open; "
         "0 open, forced_open) times (1 - the larger of breaker_failure_ratio and "
         "consecutive failures / failure_threshold).", "1"),
    Spec("limiter_acquisitions_total", "counter", ("name", "result"),
         "Acquisitions by result: allowed (at once), delayed (after a wait), rejected "
         "(try_acquire False or the wait exceeded the timeout).", "{acquisition}"),
    Spec("limiter_cancelled_total", "counter", ("name",),
         "Delayed acquisitions cancelled while waiting (their tokens refunded).",
         "{acquisition}"),
    Spec("limiter_wait_seconds", "histogram", ("name",),
         "Seconds waited by delayed acquisitions.", "s"),
    Spec("limiter_available_tokens", "gauge", ("name",),
         "Tokens that could be taken now.", "{token}"),
    Spec("bulkhead_acquisitions_total", "counter", ("name", "result"),
         "Acquisitions by result: acquired, rejected (the bulkhead was full).",
         "{acquisition}"),
    Spec("bulkhead_in_flight", "gauge", ("name",), "Calls holding a slot now.", "{call}"),
    Spec("bulkhead_peak_in_flight", "gauge", ("name",),
         "The most calls in flight at once since the bulkhead was created.", "{call}"),
    Spec("bulkhead_max_concurrent", "gauge", ("name",), "The bulkhead's limit.", "{call}"),
)  # fmt: skip
"""Every exported metric, in exposition order."""


@dataclass(frozen=True)
class HistogramValue:
    """A histogram reading: cumulative ``(upper bound, count)`` pairs ending at +Inf, the sum
    of the observations and their count (the +Inf bucket's)."""

    buckets: tuple[tuple[float, int], ...]
    sum: float
    count: int


Value = Union[int, float, HistogramValue]
Series = tuple[tuple[str, ...], Value]
"""Label values (in the spec's label order) and the value."""


def health_score(metrics: Mapping[str, Any], failure_threshold: Optional[int] = None) -> float:
    """A breaker's health in 0..1, from its ``metrics()`` dict (and its ``failure_threshold``).

    ``state health * (1 - pressure)``, where the state health is 1 for closed, disabled and
    metrics_only, 0.5 for half_open and 0 for open and forced_open, and the pressure is the
    larger of the window's failure ratio (0 when the window is empty) and
    ``consecutive_failures / failure_threshold`` (0 without a threshold): a breaker one
    failure from tripping scores low even when no rate rule fills its window.
    """
    state = metrics["state"]
    if state not in _STATE_HEALTH:
        raise ValueError(f"metrics['state'] must be one of {STATES}, got {state!r}")
    pressure = _ratio(metrics["window_failures"], metrics["window_calls"])
    if failure_threshold:
        pressure = max(pressure, min(1.0, metrics["consecutive_failures"] / failure_threshold))
    return _STATE_HEALTH[state] * (1.0 - pressure)


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _histogram(h: Mapping[str, Any]) -> HistogramValue:
    """Turns a native histogram dict (non-cumulative counts, last one +Inf) into a reading."""
    bounds = [float(b) for b in h["bounds"]] + [math.inf]
    counts = [int(c) for c in h["counts"]]
    if len(counts) != len(bounds):
        raise ValueError(f"a histogram needs len(bounds) + 1 counts, got {len(counts)}")
    total = 0
    buckets = []
    for bound, n in zip(bounds, counts):
        total += n
        buckets.append((bound, total))
    return HistogramValue(tuple(buckets), float(h["sum"]), total)


def _read_breaker(breaker: Any, out: dict[str, list[Series]]) -> None:
    m = breaker.metrics()
    name = str(m["name"])
    state = m["state"]
    for s in STATES:
        out["breaker_state"].append(((name, s), int(s == state)))
    out["breaker_state_code"].append(((name,), STATES.index(state)))
    for result, key in (
        ("success", "succeeded"),
        ("failure", "failed"),
        ("ignored", "ignored"),
        ("rejected", "rejected"),
    ):
        out["breaker_calls_total"].append(((name, result), int(m[key])))
    out["breaker_slow_calls_total"].append(((name,), int(m["slow"])))
    transitions = {pair: 0 for pair in _AUTOMATIC_TRANSITIONS}
    for old, row in m["transitions"].items():
        for new, n in row.items():
            transitions[(old, new)] = n
    for (old, new), n in transitions.items():
        out["breaker_transitions_total"].append(((name, old, new), int(n)))
    out["breaker_fallbacks_total"].append(((name,), int(m["fallbacks"])))
    options = breaker.options()
    if options.get("measure_durations"):
        out["breaker_call_duration_seconds"].append(((name,), _histogram(m["durations"])))
    # metrics() reports rates as ratios from 0 to 1 (from the integer counts), as Prometheus
    # expects: the gauges take them as they are.
    out["breaker_failure_ratio"].append(((name,), float(m["failure_rate"])))
    out["breaker_slow_call_ratio"].append(((name,), float(m["slow_call_rate"])))
    score = health_score(m, options.get("failure_threshold"))
    out["breaker_health_score"].append(((name,), score))


def _read_limiter(limiter: Any, out: dict[str, list[Series]]) -> None:
    m = limiter.metrics()
    name = str(m["name"])
    for result in ("allowed", "delayed", "rejected"):
        out["limiter_acquisitions_total"].append(((name, result), int(m[result])))
    out["limiter_cancelled_total"].append(((name,), int(m["cancelled"])))
    out["limiter_wait_seconds"].append(((name,), _histogram(m["wait"])))
    out["limiter_available_tokens"].append(((name,), int(m["available"])))


def _read_bulkhead(bulkhead: Any, out: dict[str, list[Series]]) -> None:
    m = bulkhead.metrics()
    name = str(m["name"])
    for result in ("acquired", "rejected"):
        out["bulkhead_acquisitions_total"].append(((name, result), int(m[result])))
    out["bulkhead_in_flight"].append(((name,), int(m["in_flight"])))
    out["bulkhead_peak_in_flight"].append(((name,), int(m["peak"])))
    out["bulkhead_max_concurrent"].append(((name,), int(m["max_concurrent"])))


def read(registry: Optional[Registry] = None) -> dict[str, list[Series]]:
    """Every series of every spec, read now from ``registry`` (default: ``fastbreaker.registry``).

    Keys are the spec names (without namespace); each object's ``metrics()`` is read once.
    """
    reg = _check_registry(registry)
    out: dict[str, list[Series]] = {spec.name: [] for spec in SPECS}
    for breaker in reg.breakers():
        _read_breaker(breaker, out)
    for limiter in reg.limiters():
        _read_limiter(limiter, out)
    for bulkhead in reg.bulkheads():
        _read_bulkhead(bulkhead, out)
    return out


def _check_registry(registry: Optional[Registry]) -> Registry:
    if registry is None:
        return _default_registry
    if not isinstance(registry, Registry):
        raise TypeError(
            f"registry must be a fastbreaker.Registry or None, got {registry!r} "
            f"({type(registry).__name__})"
        )
    return registry


def _check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE_RE.match(namespace):
        raise ValueError(
            f"namespace must be a Prometheus name ([a-zA-Z_][a-zA-Z0-9_]*), got {namespace!r}"
        )
    return namespace


def _prometheus_client() -> ModuleType:
    try:
        import prometheus_client
        import prometheus_client.metrics_core
    except ImportError as e:
        raise ImportError(f"fastbreaker.prometheus needs prometheus_client: {_INSTALL_HINT}") from e
    return prometheus_client


def _bound(b: float) -> str:
    """A bucket bound as Prometheus writes it: ``0.005``, ``1.0``, ``+Inf``."""
    return "+Inf" if b == math.inf else repr(float(b))


class FastbreakerCollector:
    """A ``prometheus_client`` collector of every breaker, limiter and bulkhead of a registry.

    ``FastbreakerCollector(registry=None, *, namespace="fastbreaker")``; the registry is read
    at each scrape, so objects added later show up at the next one. ``register()`` builds
    one and adds it to a Prometheus registry.
    """

    def __init__(self, registry: Optional[Registry] = None, *, namespace: str = "fastbreaker"):
        _prometheus_client()
        self.registry = _check_registry(registry)
        self.namespace = _check_namespace(namespace)

    def _families(self, reading: Optional[dict[str, list[Series]]]) -> Iterator[Metric]:
        core = _prometheus_client().metrics_core
        for spec in SPECS:
            name = f"{self.namespace}_{spec.name}"
            labels = list(spec.labels)
            family: Any
            if spec.kind == "counter":
                family = core.CounterMetricFamily(name, spec.help, labels=labels)
            elif spec.kind == "gauge":
                family = core.GaugeMetricFamily(name, spec.help, labels=labels)
            else:
                family = core.HistogramMetricFamily(name, spec.help, labels=labels)
            series = reading[spec.name] if reading is not None else []
            for label_values, value in series:
                if isinstance(value, HistogramValue):
                    buckets = [(_bound(b), float(n)) for b, n in value.buckets]
                    family.add_metric(list(label_values), buckets, value.sum)
                else:
                    family.add_metric(list(label_values), value)
            yield family

    def describe(self) -> Iterator[Metric]:
        """The metric families without samples (lets Prometheus registries detect clashes)."""
        return self._families(None)

    def collect(self) -> Iterator[Metric]:
        """The metric families, read from the native counters now."""
        return self._families(read(self.registry))


_lock: threading.Lock = fork_safe_lock(sys.modules[__name__], "_lock")
_registered: weakref.WeakKeyDictionary[Any, dict[str, FastbreakerCollector]] = (
    weakref.WeakKeyDictionary()
)


# Fork safety of the Prometheus registries this module registers into. `register` and
# `unregister` call prometheus_client under `_lock`, and prometheus_client takes its
# registry's own `_lock` inside: a fork while another thread is in there would leave the
# child's copy of that registry locked forever (`_forksafe` re-creates only our own locks).
# So, as the logging module does, a fork first takes `_lock` and the lock of every registry
# used here (waiting at most a few seconds for each), and both sides release them after.
_FORK_LOCK_WAIT = 5.0
_held_for_fork: list[Any] = []


def _before_fork() -> None:
    held = []
    if _lock.acquire(timeout=_FORK_LOCK_WAIT):
        held.append(_lock)
        for prom in list(_registered.keys()):
            lock = getattr(prom, "_lock", None)
            if lock is not None and lock.acquire(timeout=_FORK_LOCK_WAIT):
                held.append(lock)
    _held_for_fork[:] = held


def _after_fork() -> None:
    # In the child, `_forksafe` has already put a fresh `_lock` in place (its handler was
    # registered first); releasing the old one is then harmless.
    for lock in reversed(_held_for_fork):
        lock.release()
    _held_for_fork.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork
    )


def _prometheus_registry(prometheus_registry: Optional[CollectorRegistry]) -> CollectorRegistry:
    _prometheus_client()
    from prometheus_client import REGISTRY
    from prometheus_client.registry import CollectorRegistry

    if prometheus_registry is None:
        return REGISTRY
    if not isinstance(prometheus_registry, CollectorRegistry):
        raise TypeError(
            "prometheus_registry must be a prometheus_client.CollectorRegistry or None, "
            f"got {prometheus_registry!r} ({type(prometheus_registry).__name__})"
        )
    return prometheus_registry


def register(
    registry: Optional[Registry] = None,
    *,
    prometheus_registry: Optional[CollectorRegistry] = None,
    namespace: str = "fastbreaker",
) -> FastbreakerCollector:
    """Exports ``registry`` (default ``fastbreaker.registry``) to ``prometheus_registry``.

    ``prometheus_registry`` defaults to ``prometheus_client.REGISTRY``. Idempotent: the same
    call again returns the collector already registered; a different fastbreaker registry
    under the same namespace of the same Prometheus registry raises ValueError.
    """
    reg = _check_registry(registry)
    ns = _check_namespace(namespace)
    prom = _prometheus_registry(prometheus_registry)
    with _lock:
        by_namespace = _registered.setdefault(prom, {})
        existing = by_namespace.get(ns)
        if existing is not None:
            if existing.registry is not reg:
                raise ValueError(
                    f"namespace {ns!r} of this prometheus_registry already exports another "
                    "fastbreaker registry; unregister() it first or use another namespace"
                )
            return existing
        collector = FastbreakerCollector(reg, namespace=ns)
        prom.register(collector)
        by_namespace[ns] = collector
        return collector


def unregister(
    *, prometheus_registry: Optional[CollectorRegistry] = None, namespace: str = "fastbreaker"
) -> bool:
    """Removes the collector ``register()`` added; whether there was one."""
    ns = _check_namespace(namespace)
    prom = _prometheus_registry(prometheus_registry)
    with _lock:
        collector = _registered.get(prom, {}).pop(ns, None)
        if collector is None:
            return False
        prom.unregister(collector)
        return True


# ----- shared regions: read from the region's slots, rendered without prometheus_client -----

REGION_SPECS: tuple[Spec, ...] = (
    Spec("breaker_trips_total", "counter", ("name",),
         "Times the breaker opened: a trip rule fired, a probe failed, or trip() was called "
         "(forcing it open is not a trip).", "{trip}"),
    Spec("breaker_consecutive_failures", "gauge", ("name",),
         "Consecutive failures so far in the closed state.", "{call}"),
    Spec("breaker_retry_after_seconds", "gauge", ("name",),
         "Seconds until an open breaker admits a probe (0 otherwise).", "s"),
    Spec("limiter_burst_tokens", "gauge", ("name",),
         "The bucket's capacity: the most tokens that can be taken at once.", "{token}"),
    Spec("bulkhead_held_permits", "gauge", ("name", "pid"),
         "Permits held now, by owner process.", "{call}"),
    Spec("keyed_allowed_total", "counter", ("region", "name"),
         "Requests a keyed table granted to tracked keys, in every process.", "{request}"),
    Spec("keyed_rejected_total", "counter", ("region", "name"),
         "Requests a keyed table refused for want of tokens, in every process.", "{request}"),
    Spec("keyed_table_full_total", "counter", ("region", "name", "outcome"),
         "New keys that found every slot of their window held by a live key: refused "
         "(outcome rejected) or let through untracked (outcome admitted).", "{request}"),
    Spec("keyed_live_keys", "gauge", ("region", "name"),
         "Keys of a keyed table holding tokens now (a scan of the table).", "{key}"),
    Spec("keyed_capacity_slots", "gauge", ("region", "name"),
         "Slots of a keyed table: the most keys it tracks at once.", "{slot}"),
    Spec("region_capacity", "gauge", ("region",), "The region's number of slots.", "{slot}"),
    Spec("region_slots", "gauge", ("region", "kind"),
         "Slots in use by kind: breaker-count, breaker-time, bucket, bulkhead, or initialising, "
         "corrupt and unreadable for slots that cannot be exported.", "{slot}"),
)  # fmt: skip
"""The metrics only a shared region exports (``region_exposition``), after those of ``SPECS``."""

_BREAKER_KINDS = ("breaker-count", "breaker-time")
_FAILURE_THRESHOLD_RE = re.compile(r"\bfailure_threshold: Some\((\d+)\)")


def _read_region_breaker(slot: Mapping[str, Any], out: dict[str, list[Series]]) -> None:
    name = str(slot["name"])
    state = slot["state"]
    for s in STATES:
        out["breaker_state"].append(((name, s), int(s == state)))
    out["breaker_state_code"].append(((name,), STATES.index(state)))
    for result, key in (
        ("success", "succeeded"),
        ("failure", "failed"),
        ("ignored", "ignored"),
        ("rejected", "rejected"),
    ):
        if key in slot:
            out["breaker_calls_total"].append(((name, result), int(slot[key])))
    if "slow" in slot:
        out["breaker_slow_calls_total"].append(((name,), int(slot["slow"])))
    # The window's figures, when the region reports them: ratios and the health score.
    if "window_calls" in slot and "window_failures" in slot:
        calls = int(slot["window_calls"])
        out["breaker_failure_ratio"].append(((name,), _ratio(int(slot["window_failures"]), calls)))
        if "window_slow" in slot:
            slow = _ratio(int(slot["window_slow"]), calls)
            out["breaker_slow_call_ratio"].append(((name,), slow))
        found = _FAILURE_THRESHOLD_RE.search(str(slot.get("config", "")))
        threshold = int(found.group(1)) if found else None
        score = health_score(
            {
                "state": state,
                "window_calls": calls,
                "window_failures": int(slot["window_failures"]),
                "consecutive_failures": int(slot.get("consecutive_failures", 0)),
            },
            threshold,
        )
        out["breaker_health_score"].append(((name,), score))
    out["breaker_trips_total"].append(((name,), int(slot["trips"])))
    out["breaker_consecutive_failures"].append(((name,), int(slot["consecutive_failures"])))
    out["breaker_retry_after_seconds"].append(((name,), float(slot["retry_after"])))


def _read_region_bucket(slot: Mapping[str, Any], out: dict[str, list[Series]]) -> None:
    name = str(slot["name"])
    out["limiter_available_tokens"].append(((name,), int(slot["available"])))
    out["limiter_burst_tokens"].append(((name,), int(slot["burst"])))


def _read_region_bulkhead(slot: Mapping[str, Any], out: dict[str, list[Series]]) -> None:
    name = str(slot["name"])
    for result in ("acquired", "rejected"):
        out["bulkhead_acquisitions_total"].append(((name, result), int(slot[result])))
    out["bulkhead_in_flight"].append(((name,), int(slot["in_flight"])))
    out["bulkhead_peak_in_flight"].append(((name,), int(slot["peak"])))
    out["bulkhead_max_concurrent"].append(((name,), int(slot["max_concurrent"])))
    for pid, n in sorted(slot.get("held", {}).items()):
        out["bulkhead_held_permits"].append(((name, str(pid)), int(n)))


def _open_region(
    region: Union[str, SharedRegion], dir: Union[str, os.PathLike[str], None]
) -> SharedRegion:
    if isinstance(region, SharedRegion):
        if dir is not None:
            raise ValueError("dir is for a region given by name, not a SharedRegion")
        return region
    if not isinstance(region, str):
        raise TypeError(
            f"region must be a region name or a SharedRegion, got {region!r} "
            f"({type(region).__name__})"
        )
    return SharedRegion(region, dir=dir, create=False)


def read_region(
    region: Union[str, SharedRegion], dir: Union[str, os.PathLike[str], None] = None
) -> dict[str, list[Series]]:
    """Every series of ``SPECS`` and ``REGION_SPECS`` that region ``region`` holds, read now.

    ``region`` is a ``SharedRegion`` or the name of one under ``dir`` (default /dev/shm),
    which is opened without being created (``RegionError``, reason ``"not_found"``, if it
    does not exist). Keys are the spec names (without namespace). Only what the region
    holds is read: a breaker's state and counters, a bucket's tokens, a bulkhead's permits
    and counters, by owner process; what each process keeps for itself (transitions,
    fallbacks, durations, a limiter's acquisition counters) is not there, so those series
    are left empty.
    """
    opened = _open_region(region, dir)
    out: dict[str, list[Series]] = {spec.name: [] for spec in (*SPECS, *REGION_SPECS)}
    kinds: dict[str, int] = {}
    for slot in opened.slots():
        kind = str(slot["kind"])
        if slot.get("state") == "unreadable":
            kind = "unreadable"
        elif kind in _BREAKER_KINDS:
            _read_region_breaker(slot, out)
        elif kind == "bucket":
            _read_region_bucket(slot, out)
        elif kind == "bulkhead":
            _read_region_bulkhead(slot, out)
        kinds[kind] = kinds.get(kind, 0) + 1
    out["region_capacity"].append(((opened.name,), opened.capacity))
    for kind, n in sorted(kinds.items()):
        out["region_slots"].append(((opened.name, kind), n))
    _read_region_keyed(opened, out)
    return out


def _read_region_keyed(region: SharedRegion, out: dict[str, list[Series]]) -> None:
    """The ``keyed_*`` series of each keyed table of ``region`` (a table that cannot be
    read is left out, and logged)."""
    from ._native import RegionError
    from .region_cli import is_counters_table

    for table in region.keyed_tables():
        if is_counters_table(region, table):
            continue  # limits counters (fastbreaker+shm://): no token-bucket series
        try:
            m = region.keyed_table(table).metrics()
        except RegionError as exc:
            logging.getLogger("fastbreaker").warning(
                "region %r: keyed table %r cannot be read: %s", region.name, table, exc
            )
            continue
        labels = (region.name, table)
        out["keyed_allowed_total"].append((labels, m["allowed"]))
        out["keyed_rejected_total"].append((labels, m["limited"]))
        out["keyed_table_full_total"].append(((*labels, "rejected"), m["full_rejected"]))
        out["keyed_table_full_total"].append(((*labels, "admitted"), m["full_admitted"]))
        out["keyed_live_keys"].append((labels, m["live_keys"]))
        out["keyed_capacity_slots"].append((labels, m["capacity"]))


def _number(value: float) -> str:
    """A sample value as ``prometheus_client`` writes it (Go's float formatting)."""
    d = float(value)
    if d == math.inf:
        return "+Inf"
    if d == -math.inf:
        return "-Inf"
    if math.isnan(d):
        return "NaN"
    s = repr(d)
    dot = s.find(".")
    if d > 0 and dot > 6:  # Go switches to exponents sooner than Python
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return s


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _sample(name: str, labels: Mapping[str, str], value: float) -> str:
    if not labels:
        return f"{name} {_number(value)}\n"
    pairs = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{pairs}}} {_number(value)}\n"


def exposition_text(reading: Mapping[str, list[Series]], *, namespace: str = "fastbreaker") -> str:
    """``reading`` (as ``read()`` or ``read_region()`` return it) in the Prometheus text format
    (version 0.0.4), written as ``prometheus_client.generate_latest`` writes it; metrics
    without series are left out."""
    ns = _check_namespace(namespace)
    lines: list[str] = []
    for spec in (*SPECS, *REGION_SPECS):
        series = reading.get(spec.name)
        if not series:
            continue
        name = f"{ns}_{spec.name}"
        help_text = spec.help.replace("\\", r"\\").replace("\n", r"\n")
        lines.append(f"# HELP {name} {help_text}\n# TYPE {name} {spec.kind}\n")
        for label_values, value in series:
            labels = dict(zip(spec.labels, label_values))
            if isinstance(value, HistogramValue):
                for bound, n in value.buckets:
                    lines.append(_sample(f"{name}_bucket", {**labels, "le": _bound(bound)}, n))
                lines.append(_sample(f"{name}_count", labels, value.count))
                lines.append(_sample(f"{name}_sum", labels, value.sum))
            else:
                lines.append(_sample(name, labels, value))
    return "".join(lines)


def region_exposition(
    region: Union[str, SharedRegion],
    dir: Union[str, os.PathLike[str], None] = None,
    *,
    namespace: str = "fastbreaker",
) -> str:
    """The primitives of shared region ``region`` in the Prometheus text format, read now.

    The metric names and labels are those of ``register()``'s collector (``SPECS``), so one
    dashboard serves both, plus ``REGION_SPECS`` (trips, consecutive failures, retry-after,
    a bucket's burst, a bulkhead's permits by owner ``pid``, each keyed table's allowed,
    rejected and table-full counters, live keys and slots, the region's capacity and slots
    by kind). The region is shared by every process of the host, so this one reading
    reports the numbers of every worker. ``region`` and ``dir`` are as for ``read_region``
    (a missing region raises ``RegionError``, reason ``"not_found"``); needs only the
    standard library.
    """
    return exposition_text(read_region(region, dir), namespace=namespace)
