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
"""

from __future__ import annotations

import math
import re
import sys
import threading
import weakref
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterator, Mapping, NamedTuple, Optional, Union

from ._forksafe import fork_safe_lock
from ._registry import Registry
from ._registry import registry as _default_registry

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = [
    "SPECS",
    "STATES",
    "FastbreakerCollector",
    "HistogramValue",
    "Spec",
    "health_score",
    "read",
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
