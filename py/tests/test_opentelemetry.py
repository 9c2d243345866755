"""fastbreaker.opentelemetry: collected with the SDK's InMemoryMetricReader."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Gauge, InMemoryMetricReader, Sum

import fastbreaker.opentelemetry as fb_otel
import fastbreaker.prometheus as fb_prom
from fastbreaker import CircuitOpenError, Registry

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"

Points = dict[frozenset[tuple[str, Any]], float]


class Setup:
    """A registry, an SDK provider with an in-memory reader, and the instrumentation handle."""

    def __init__(self) -> None:
        self.reg = Registry()
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.handle = fb_otel.instrument(self.reg, meter_provider=self.provider)

    def collect(self) -> dict[str, Any]:
        """Metric name -> the SDK's metric, for the meter ``fastbreaker``."""
        data = self.reader.get_metrics_data()
        out = {}
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                assert sm.scope.name == "fastbreaker"
                for m in sm.metrics:
                    out[m.name] = m
        return out


def points(metric: Any) -> Points:
    return {frozenset(p.attributes.items()): p.value for p in metric.data.data_points}


def key(**attributes: Any) -> frozenset[tuple[str, Any]]:
    return frozenset(attributes.items())


@pytest.fixture
def otel() -> Iterator[Setup]:
    setup = Setup()
    yield setup
    setup.handle.close()
    setup.provider.shutdown()


def drive(reg: Registry) -> None:
    db = reg.get_or_create("db", failure_threshold=2, wait_duration=600.0, measure_durations=True)
    for func in (lambda: 1, lambda: 1, lambda: 1 / 0, lambda: 1 / 0, lambda: 1):
        try:
            db.call(func)
        except (ZeroDivisionError, CircuitOpenError):
            pass
    limiter = reg.get_or_create_limiter("api", rate=1.0, per=1000.0, burst=2)
    assert limiter.try_acquire() and limiter.try_acquire() and not limiter.try_acquire()
    pool = reg.get_or_create_bulkhead("pool", 3)
    assert pool.try_acquire()


def expected_points(reg: Registry) -> dict[str, Points]:
    """What each instrument should report, derived from the Prometheus reading."""
    reading = fb_prom.read(reg)
    out: dict[str, Points] = {}
    for ispec in fb_otel.INSTRUMENTS:
        pts: Points = {}
        for label_values, value in reading[ispec.spec.name]:
            attrs = dict(zip(ispec.spec.labels, label_values))
            if isinstance(value, fb_prom.HistogramValue):
                if ispec.part == "bucket":
                    for bound, n in value.buckets:
                        le = "+Inf" if bound == float("inf") else repr(bound)
                        pts[key(**attrs, le=le)] = n
                else:
                    pts[key(**attrs)] = value.sum if ispec.part == "sum" else value.count
            else:
                pts[key(**attrs)] = value
        out[ispec.name] = pts
    return out


def test_known_sequence_exact_values(otel: Setup) -> None:
    drive(otel.reg)
    got = otel.collect()
    calls = points(got["fastbreaker.breaker.calls"])
    assert calls == {
        key(name="db", result="success"): 2,
        key(name="db", result="failure"): 2,
        key(name="db", result="ignored"): 0,
        key(name="db", result="rejected"): 1,
    }
    state = points(got["fastbreaker.breaker.state"])
    assert state[key(name="db", state="open")] == 1
    assert sum(state.values()) == 1
    assert points(got["fastbreaker.breaker.state_code"]) == {key(name="db"): 1}
    transitions = points(got["fastbreaker.breaker.transitions"])
    assert transitions[key(name="db", **{"from": "closed", "to": "open"})] == 1
    assert points(got["fastbreaker.breaker.health_score"]) == {key(name="db"): 0.0}
    assert points(got["fastbreaker.breaker.call_duration.count"]) == {key(name="db"): 4}
    buckets = points(got["fastbreaker.breaker.call_duration.bucket"])
    assert buckets[key(name="db", le="+Inf")] == 4
    assert len(buckets) == 15
    acquisitions = points(got["fastbreaker.limiter.acquisitions"])
    assert acquisitions == {
        key(name="api", result="allowed"): 2,
        key(name="api", result="delayed"): 0,
        key(name="api", result="rejected"): 1,
    }
    assert points(got["fastbreaker.limiter.available_tokens"]) == {key(name="api"): 0}
    assert points(got["fastbreaker.bulkhead.in_flight"]) == {key(name="pool"): 1}
    assert points(got["fastbreaker.bulkhead.max_concurrent"]) == {key(name="pool"): 3}


def test_every_instrument_reports_the_prometheus_figures(otel: Setup) -> None:
    drive(otel.reg)
    got = otel.collect()
    expected = expected_points(otel.reg)  # nothing moved since the collection
    expected["fastbreaker.limiter.available_tokens"] = points(
        got["fastbreaker.limiter.available_tokens"]  # the only figure that moves by itself
    )
    assert {name: points(m) for name, m in got.items()} == expected


def test_instrument_kinds_units_and_docs(otel: Setup) -> None:
    drive(otel.reg)
    got = otel.collect()
    assert set(got) == {i.name for i in fb_otel.INSTRUMENTS}
    for ispec in fb_otel.INSTRUMENTS:
        metric = got[ispec.name]
        assert metric.unit == ispec.unit
        if ispec.kind == "counter":
            assert isinstance(metric.data, Sum) and metric.data.is_monotonic, ispec.name
        else:
            assert isinstance(metric.data, Gauge), ispec.name
        for p in metric.data.data_points:
            assert set(p.attributes or {}) == set(ispec.attributes), ispec.name
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("| Instrument | Kind |") :].split("\n\n")[0].splitlines()[2:]
    rows = [[c.strip().strip("`") for c in row.strip("|").split("|")] for row in table]
    documented = {
        name: (kind, unit, frozenset(re.findall(r"[a-z_]+", attrs)), series)
        for name, kind, unit, attrs, series in rows
    }
    assert documented == {
        i.name: (
            "ObservableCounter" if i.kind == "counter" else "ObservableGauge",
            i.unit,
            frozenset(i.attributes),
            f"fastbreaker_{i.spec.name}" + (f"_{i.part}" if i.part else ""),
        )
        for i in fb_otel.INSTRUMENTS
    }


def test_one_registry_read_per_collection_and_fresh_values(
    otel: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = []
    real_read = fb_prom.read

    def counting_read(registry: Any = None) -> Any:
        reads.append(registry)
        return real_read(registry)

    monkeypatch.setattr(fb_otel, "read", counting_read)
    db = otel.reg.get_or_create("db")
    db.call(lambda: 1)
    first = otel.collect()
    assert len(reads) == 1
    assert points(first["fastbreaker.breaker.calls"])[key(name="db", result="success")] == 1
    db.call(lambda: 1)
    otel.reg.get_or_create("late")
    second = otel.collect()
    assert len(reads) == 2
    calls = points(second["fastbreaker.breaker.calls"])
    assert calls[key(name="db", result="success")] == 2
    assert calls[key(name="late", result="success")] == 0


def test_close_reopen_and_idempotence(otel: Setup) -> None:
    assert fb_otel.instrument(otel.reg, meter_provider=otel.provider) is otel.handle
    other = Registry()
    with pytest.raises(ValueError, match="another fastbreaker registry"):
        fb_otel.instrument(other, meter_provider=otel.provider)
    otel.reg.get_or_create("db")
    assert "fastbreaker.breaker.state" in otel.collect()
    otel.handle.close()
    assert otel.handle.closed
    assert all(not m.data.data_points for m in otel.collect().values())
    other.get_or_create("other")
    assert fb_otel.instrument(other, meter_provider=otel.provider) is otel.handle
    assert not otel.handle.closed
    codes = points(otel.collect()["fastbreaker.breaker.state_code"])
    assert codes == {key(name="other"): 0}


def test_another_provider_gets_its_own_handle(otel: Setup) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        handle = fb_otel.instrument(otel.reg, meter_provider=provider)
        assert handle is not otel.handle
        otel.reg.get_or_create("db")
        data = reader.get_metrics_data()
        assert data is not None
        names = {
            m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        }
        assert "fastbreaker.breaker.calls" in names
        handle.close()
    finally:
        provider.shutdown()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"registry": "db"}, "registry must be a fastbreaker.Registry .* got 'db'"),
        ({"meter_provider": object()}, "meter_provider must be .* got <object"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        fb_otel.instrument(**kwargs)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_global_meter_provider_by_default() -> None:
    result = run_python(
        """
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        import fastbreaker, fastbreaker.opentelemetry as o
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        handle = o.instrument()
        assert handle.registry is fastbreaker.registry
        fastbreaker.registry.get_or_create("global")
        data = reader.get_metrics_data()
        names = {p.attributes["name"] for rm in data.resource_metrics for sm in rm.scope_metrics
                 for m in sm.metrics if m.name == "fastbreaker.breaker.state_code"
                 for p in m.data.data_points}
        assert names == {"global"}, names
        """
    )
    assert result.returncode == 0, result.stderr


def test_module_imports_without_opentelemetry() -> None:
    result = run_python(
        """
        import sys
        sys.modules["opentelemetry"] = None  # makes `import opentelemetry` fail
        import fastbreaker.opentelemetry as o
        assert o.INSTRUMENTS
        try:
            o.instrument()
        except ImportError as e:
            assert "pip install fastbreaker[opentelemetry]" in str(e), e
        else:
            raise AssertionError("instrument() did not raise")
        """
    )
    assert result.returncode == 0, result.stderr


class FailingOnce(Registry):
    """A registry whose next ``breakers()`` raises when ``fail`` is set."""

    fail = False

    def breakers(self) -> list[Any]:
        if self.fail:
            self.fail = False
            raise RuntimeError("transient")
        return super().breakers()


def test_a_failed_read_does_not_leave_an_instrument_one_collection_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg = FailingOnce()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    handle = fb_otel.instrument(reg, meter_provider=provider)
    try:
        db = reg.get_or_create("db")

        def states() -> Points:
            data = reader.get_metrics_data()
            for rm in data.resource_metrics if data else ():
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name == "fastbreaker.breaker.state":
                            return points(m)
            return {}

        assert states()[key(name="db", state="closed")] == 1
        reg.fail = True
        with caplog.at_level("CRITICAL"):  # the SDK logs the failed callback
            assert states() == {}  # the first instrument's read raised: it reports nothing
        db.trip()
        now = states()
        assert now[key(name="db", state="open")] == 1, now
        assert now[key(name="db", state="closed")] == 0, now
    finally:
        handle.close()
        provider.shutdown()
