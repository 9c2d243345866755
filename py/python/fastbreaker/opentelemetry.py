"""OpenTelemetry export: the figures of ``fastbreaker.prometheus`` as observable instruments.

>>> import fastbreaker.opentelemetry
>>> handle = fastbreaker.opentelemetry.instrument()  # doctest: +SKIP

Each Prometheus metric becomes an instrument named ``fastbreaker.<kind>.<rest>``: the
metric's name with its ``_total`` and ``_seconds`` suffixes dropped (the unit says seconds),
e.g. ``fastbreaker_breaker_calls_total`` -> ``fastbreaker.breaker.calls``. Gauges are
ObservableGauges, counters ObservableCounters, with the Prometheus labels as attributes.
The metrics API has no observable histogram, so each histogram is three ObservableCounters:
``<name>.bucket`` (cumulative count per bucket, attribute ``le`` as Prometheus writes it:
``"0.005"`` ... ``"+Inf"``), ``<name>.sum`` (seconds) and ``<name>.count``.

Values are read when the SDK collects, once per collection whatever the number of
instruments. Needs the extra ``fastbreaker[opentelemetry]`` (``opentelemetry-api``); this
module imports without it and says so when used.
"""

from __future__ import annotations

import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple, Optional

from ._forksafe import fork_safe_lock
from ._registry import Registry
from .prometheus import SPECS, HistogramValue, Series, Spec, _bound, _check_registry, read

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

__all__ = ["INSTRUMENTS", "InstrumentSpec", "Instrumentation", "instrument"]

_INSTALL_HINT = "pip install fastbreaker[opentelemetry]"


class InstrumentSpec(NamedTuple):
    """One instrument: name, kind (``gauge`` or ``counter``), unit, attributes, and where its
    values come from (the Prometheus spec and, for histograms, the part: bucket, sum, count).
    """

    name: str
    kind: str
    unit: str
    attributes: tuple[str, ...]
    description: str
    spec: Spec
    part: str  # "" for gauges and counters; "bucket", "sum" or "count" for histograms


def _instruments(spec: Spec) -> list[InstrumentSpec]:
    kind, _, rest = spec.name.partition("_")
    for suffix in ("_total", "_seconds"):
        rest = rest.removesuffix(suffix)
    base = f"fastbreaker.{kind}.{rest}"
    if spec.kind != "histogram":
        return [InstrumentSpec(base, spec.kind, spec.unit, spec.labels, spec.help, spec, "")]
    return [
        InstrumentSpec(
            f"{base}.bucket",
            "counter",
            "{observation}",
            (*spec.labels, "le"),
            f"{spec.help} Cumulative count per bucket (le: upper bound).",
            spec,
            "bucket",
        ),
        InstrumentSpec(
            f"{base}.sum", "counter", spec.unit, spec.labels, f"{spec.help} Sum.", spec, "sum"
        ),
        InstrumentSpec(
            f"{base}.count",
            "counter",
            "{observation}",
            spec.labels,
            f"{spec.help} Count.",
            spec,
            "count",
        ),
    ]


INSTRUMENTS: tuple[InstrumentSpec, ...] = tuple(i for s in SPECS for i in _instruments(s))
"""Every instrument ``instrument()`` creates, in creation order."""


def _otel_metrics() -> Any:
    try:
        from opentelemetry import metrics
    except ImportError as e:
        raise ImportError(
            f"fastbreaker.opentelemetry needs opentelemetry-api: {_INSTALL_HINT}"
        ) from e
    return metrics


class Instrumentation:
    """The handle ``instrument()`` returns: one per meter provider.

    ``instruments`` maps instrument names to the instruments; ``close()`` makes them report
    nothing (the metrics API cannot remove an instrument). ``instrument()`` on the same
    provider later reopens this handle, possibly on another registry.
    """

    def __init__(self, meter: Meter, registry: Registry) -> None:
        self.meter = meter
        self.registry = registry
        self.closed = False
        self._lock: threading.Lock = fork_safe_lock(self, "_lock")
        self._reading: Optional[dict[str, list[Series]]] = None
        self._consumed: set[str] = set()
        self.instruments: dict[str, Any] = {}
        for ispec in INSTRUMENTS:
            create: Callable[..., Any] = meter.create_observable_gauge
            if ispec.kind == "counter":
                create = meter.create_observable_counter
            self.instruments[ispec.name] = create(
                ispec.name,
                callbacks=[self._callback(ispec)],
                unit=ispec.unit,
                description=ispec.description,
            )

    def close(self) -> None:
        """Stops reporting: the instruments observe nothing from now on."""
        with self._lock:
            self.closed = True
            self._reading = None

    def _series(self, ispec: InstrumentSpec) -> list[Series]:
        # One registry read per collection: a collection asks each instrument once, in
        # creation order, so the first instrument, or one asked again, starts a new one.
        # (Without the first-instrument rule, an instrument skipped once, e.g. because its
        # read raised, would be served the previous collection's reading from then on.)
        with self._lock:
            if self.closed:
                return []
            if self._reading is None or ispec is INSTRUMENTS[0] or ispec.name in self._consumed:
                self._reading = read(self.registry)
                self._consumed = set()
            self._consumed.add(ispec.name)
            return self._reading[ispec.spec.name]

    def _callback(self, ispec: InstrumentSpec) -> Callable[[CallbackOptions], Iterable[Any]]:
        observation = _otel_metrics().Observation

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            out = []
            for label_values, value in self._series(ispec):
                attributes = dict(zip(ispec.spec.labels, label_values))
                if not isinstance(value, HistogramValue):
                    out.append(observation(value, attributes))
                elif ispec.part == "bucket":
                    for bound, n in value.buckets:
                        out.append(observation(n, {**attributes, "le": _bound(bound)}))
                elif ispec.part == "sum":
                    out.append(observation(value.sum, attributes))
                else:
                    out.append(observation(value.count, attributes))
            return out

        return observe


_lock: threading.Lock = fork_safe_lock(sys.modules[__name__], "_lock")
_handles: weakref.WeakKeyDictionary[Any, Instrumentation] = weakref.WeakKeyDictionary()


def instrument(
    registry: Optional[Registry] = None, *, meter_provider: Optional[MeterProvider] = None
) -> Instrumentation:
    """Reports ``registry`` (default ``fastbreaker.registry``) through ``meter_provider``.

    ``meter_provider`` defaults to the global one. The instruments live on the meter
    ``fastbreaker``. Idempotent per provider: again with the same registry returns the same
    handle; with another registry raises ValueError unless the handle was closed, in which
    case it is reopened on the new registry.
    """
    metrics = _otel_metrics()
    reg = _check_registry(registry)
    if meter_provider is not None and not isinstance(meter_provider, metrics.MeterProvider):
        raise TypeError(
            "meter_provider must be an opentelemetry MeterProvider or None, "
            f"got {meter_provider!r} ({type(meter_provider).__name__})"
        )
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    with _lock:
        handle = _handles.get(provider)
        if handle is None:
            from . import __version__

            meter = metrics.get_meter("fastbreaker", __version__, meter_provider=provider)
            handle = Instrumentation(meter, reg)
            _handles[provider] = handle
            return handle
        with handle._lock:
            if handle.closed:
                handle.registry = reg
                handle.closed = False
            elif handle.registry is not reg:
                raise ValueError(
                    "meter_provider already reports another fastbreaker registry; "
                    "close() its handle first"
                )
        return handle
