"""fastbreaker.prometheus: scraped over HTTP from a real exporter and parsed back."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

import fastbreaker
import fastbreaker.prometheus as fb_prom
from fastbreaker import BulkheadFull, CircuitOpenError, RateLimitExceeded, Registry

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
BOUNDS = ["0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1.0",
          "2.5", "5.0", "7.5", "10.0", "+Inf"]  # fmt: skip

Scrape = Callable[[], "Scraped"]


class Scraped:
    """One scrape: the parsed families, and sample lookups by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in self.families.values():
            for s in family.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def get(self, metric: str, /, **labels: str) -> float:
        """The value of the sample ``metric`` with exactly ``labels`` (KeyError if absent)."""
        return self.samples[(metric, frozenset(labels.items()))]

    def names(self, metric: str) -> set[str]:
        """The ``name`` label values of the samples called ``metric``."""
        return {dict(k[1])["name"] for k in self.samples if k[0] == metric}


@pytest.fixture
def reg() -> Registry:
    return Registry()


@pytest.fixture(scope="module")
def exporter() -> Iterator[tuple[CollectorRegistry, str]]:
    """A real exporter on 127.0.0.1 (ephemeral port) serving a private registry."""
    prom = CollectorRegistry()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=prom)
    yield prom, f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)


@pytest.fixture
def scrape(reg: Registry, exporter: tuple[CollectorRegistry, str]) -> Iterator[Scrape]:
    """Exports ``reg`` through the exporter for one test; calling it scrapes over HTTP."""
    prom, url = exporter
    fb_prom.register(reg, prometheus_registry=prom)

    def get() -> Scraped:
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
            return Scraped(response.read().decode("utf-8"))

    yield get
    assert fb_prom.unregister(prometheus_registry=prom)


def ok() -> str:
    return "ok"


def fail() -> None:
    raise RuntimeError("down")


def ignored() -> None:
    raise KeyError("excluded")


def call(breaker: fastbreaker.CircuitBreaker, func: Callable[[], Any]) -> None:
    try:
        breaker.call(func)
    except (RuntimeError, KeyError, CircuitOpenError):
        pass


def doc_table(heading: str) -> list[list[str]]:
    """The rows of the first table after ``heading`` in docs/metrics.md, cells stripped."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(heading)
    rows = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    assert len(rows) > 2, f"no table after {heading!r}"
    return rows[2:]  # without the header and the --- line


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    """Metric name -> (type, labels) from the doc's metric reference."""
    out = {}
    for name, kind, labels, _ in doc_table("### Metric reference"):
        out[name.strip("`")] = (kind, frozenset(re.findall(r"`([a-z_]+)`", labels)))
    return out


def exposed_name(family: Any) -> str:
    """The family's name as written in the exposition (counters with ``_total``)."""
    return f"{family.name}_total" if family.type == "counter" else str(family.name)


def populate(reg: Registry) -> None:
    reg.get_or_create("db", measure_durations=True)
    reg.get_or_create_limiter("api", rate=10.0)
    reg.get_or_create_bulkhead("pool", 2)


# ----- breakers -----


def test_breaker_through_a_known_sequence(reg: Registry, scrape: Scrape) -> None:
    db = reg.get_or_create("db", failure_threshold=2, wait_duration=600.0, exclude=KeyError)
    for func in (ok, ok, ok, ignored, fail, fail, ok, ok):  # trips at the 2nd failure
        call(db, func)
    s = scrape()
    calls = "fastbreaker_breaker_calls_total"
    assert s.get(calls, name="db", result="success") == 3
    assert s.get(calls, name="db", result="failure") == 2
    assert s.get(calls, name="db", result="ignored") == 1
    assert s.get(calls, name="db", result="rejected") == 2
    assert s.get("fastbreaker_breaker_slow_calls_total", name="db") == 0
    for state in fb_prom.STATES:
        expected = 1 if state == "open" else 0
        assert s.get("fastbreaker_breaker_state", name="db", state=state) == expected
    assert s.get("fastbreaker_breaker_state_code", name="db") == 1
    t = "fastbreaker_breaker_transitions_total"
    assert s.get(t, name="db", **{"from": "closed", "to": "open"}) == 1
    for old, new in (("open", "half_open"), ("half_open", "closed"), ("half_open", "open")):
        assert s.get(t, name="db", **{"from": old, "to": new}) == 0  # exported before use
    assert s.get("fastbreaker_breaker_health_score", name="db") == 0
    assert s.get("fastbreaker_breaker_fallbacks_total", name="db") == 0

    db.half_open()
    call(db, ok)  # the probe closes it
    s = scrape()
    assert s.get(t, name="db", **{"from": "open", "to": "half_open"}) == 1
    assert s.get(t, name="db", **{"from": "half_open", "to": "closed"}) == 1
    assert s.get("fastbreaker_breaker_state", name="db", state="closed") == 1
    assert s.get("fastbreaker_breaker_calls_total", name="db", result="success") == 4
    assert s.get("fastbreaker_breaker_health_score", name="db") == 1

    db.force_open()  # a manual transition appears once it has happened
    s = scrape()
    assert s.get(t, name="db", **{"from": "closed", "to": "forced_open"}) == 1
    assert s.get("fastbreaker_breaker_state_code", name="db") == 3
    assert len([k for k in s.samples if k[0] == t]) == 5


@pytest.mark.parametrize(
    ("action", "state", "code", "ratio", "health"),
    [
        ("reset", "closed", 0, 0.0, 1.0),  # reset and trip start a new window
        ("trip", "open", 1, 0.0, 0.0),
        ("half_open", "half_open", 2, 0.25, 0.5 * 0.75),
        ("force_open", "forced_open", 3, 0.25, 0.0),
        ("disable", "disabled", 4, 0.25, 0.75),
        ("metrics_only", "metrics_only", 5, 0.25, 0.75),
    ],
)
def test_state_code_one_hot_and_health(
    reg: Registry, scrape: Scrape, action: str, state: str, code: int, ratio: float, health: float
) -> None:
    db = reg.get_or_create(
        "db", failure_threshold=None, failure_rate_threshold=50, minimum_calls=10, window=10
    )
    for func in (ok, ok, ok, fail):  # window: 4 calls, 1 failure
        call(db, func)
    getattr(db, action)()
    s = scrape()
    assert db.state == state
    assert s.get("fastbreaker_breaker_state_code", name="db") == code
    one_hot = {st: s.get("fastbreaker_breaker_state", name="db", state=st) for st in fb_prom.STATES}
    assert one_hot == {st: (1 if st == state else 0) for st in fb_prom.STATES}
    assert s.get("fastbreaker_breaker_failure_ratio", name="db") == ratio
    assert s.get("fastbreaker_breaker_health_score", name="db") == pytest.approx(health)


def test_fallbacks_and_rejections(reg: Registry, scrape: Scrape) -> None:
    cached = reg.get_or_create("cached", fallback=lambda: "cached")
    cached.force_open()
    assert [cached.call(ok) for _ in range(3)] == ["cached"] * 3
    s = scrape()
    assert s.get("fastbreaker_breaker_fallbacks_total", name="cached") == 3
    assert s.get("fastbreaker_breaker_calls_total", name="cached", result="rejected") == 3


def test_slow_calls_and_durations(reg: Registry, scrape: Scrape) -> None:
    db = reg.get_or_create(
        "db",
        failure_threshold=None,
        slow_call_rate_threshold=100,
        slow_call_duration=0.0001,
        minimum_calls=100,
        measure_durations=True,
        exclude=KeyError,
        clock=(clock := fastbreaker.ManualClock()),
    )

    def sleepy() -> None:
        clock.advance(0.001)  # 1 ms on the breaker's clock: slower than 0.1 ms

    for func in (sleepy, sleepy, fail, ignored):
        call(db, func)
    s = scrape()
    assert s.get("fastbreaker_breaker_slow_calls_total", name="db") == 2
    assert s.get("fastbreaker_breaker_slow_call_ratio", name="db") > 0
    h = "fastbreaker_breaker_call_duration_seconds"
    # successes and failures are timed, ignored calls are not
    assert s.get(f"{h}_count", name="db") == 3
    assert s.get(f"{h}_bucket", name="db", le="+Inf") == 3
    assert s.get(f"{h}_sum", name="db") == pytest.approx(0.002)


def test_durations_only_for_measuring_breakers(reg: Registry, scrape: Scrape) -> None:
    reg.get_or_create("timed", measure_durations=True)
    reg.get_or_create("untimed")
    s = scrape()
    assert s.names("fastbreaker_breaker_call_duration_seconds_count") == {"timed"}
    assert s.names("fastbreaker_breaker_state_code") == {"timed", "untimed"}


# ----- limiters and bulkheads -----


def test_limiter_results_and_waits(reg: Registry, scrape: Scrape) -> None:
    slow = reg.get_or_create_limiter("slow", rate=1.0, per=1000.0, burst=2)
    assert slow.try_acquire() and slow.try_acquire()
    assert not slow.try_acquire()
    with pytest.raises(RateLimitExceeded):
        slow.acquire(timeout=0.0)
    fast = reg.get_or_create_limiter("fast", rate=1000.0, burst=1)
    assert fast.try_acquire()
    fast.acquire()  # waits at most one emission interval, 1 ms
    s = scrape()
    acq = "fastbreaker_limiter_acquisitions_total"
    assert s.get(acq, name="slow", result="allowed") == 2
    assert s.get(acq, name="slow", result="delayed") == 0
    assert s.get(acq, name="slow", result="rejected") == 2
    assert s.get("fastbreaker_limiter_available_tokens", name="slow") == 0
    assert s.get("fastbreaker_limiter_wait_seconds_count", name="slow") == 0
    delayed = s.get(acq, name="fast", result="delayed")
    assert s.get(acq, name="fast", result="allowed") + delayed == 2
    assert s.get("fastbreaker_limiter_wait_seconds_count", name="fast") == delayed
    assert s.get("fastbreaker_limiter_wait_seconds_bucket", name="fast", le="0.005") == delayed
    assert s.get("fastbreaker_limiter_wait_seconds_sum", name="fast") <= 0.001 * delayed + 1e-9


async def test_limiter_cancelled_wait(reg: Registry, scrape: Scrape) -> None:
    limiter = reg.get_or_create_limiter("queue", rate=1.0, per=1000.0, burst=1)
    assert limiter.try_acquire()
    task = asyncio.ensure_future(limiter.acquire_async())  # waits ~1000 s
    await asyncio.sleep(0)  # runs the task up to its sleep
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    s = await asyncio.get_running_loop().run_in_executor(None, scrape)
    assert s.get("fastbreaker_limiter_acquisitions_total", name="queue", result="delayed") == 1
    assert s.get("fastbreaker_limiter_cancelled_total", name="queue") == 1
    assert s.get("fastbreaker_limiter_wait_seconds_bucket", name="queue", le="10.0") == 0
    assert s.get("fastbreaker_limiter_wait_seconds_bucket", name="queue", le="+Inf") == 1
    assert s.get("fastbreaker_limiter_wait_seconds_sum", name="queue") > 900


def test_bulkhead_counts_and_in_flight(reg: Registry, scrape: Scrape) -> None:
    pool = reg.get_or_create_bulkhead("pool", 2)
    with pool, pool:
        assert not pool.try_acquire()
        with pytest.raises(BulkheadFull):
            pool._enter()
        s = scrape()
        assert s.get("fastbreaker_bulkhead_in_flight", name="pool") == 2
    s2 = scrape()
    for scraped, in_flight in ((s, 2), (s2, 0)):
        assert scraped.get("fastbreaker_bulkhead_in_flight", name="pool") == in_flight
        assert scraped.get("fastbreaker_bulkhead_peak_in_flight", name="pool") == 2
        assert scraped.get("fastbreaker_bulkhead_max_concurrent", name="pool") == 2
        assert (
            scraped.get("fastbreaker_bulkhead_acquisitions_total", name="pool", result="acquired")
            == 2
        )
        assert (
            scraped.get("fastbreaker_bulkhead_acquisitions_total", name="pool", result="rejected")
            == 2
        )


def test_objects_created_after_registering_show_up(reg: Registry, scrape: Scrape) -> None:
    assert scrape().samples == {}
    populate(reg)
    s = scrape()
    assert s.names("fastbreaker_breaker_state_code") == {"db"}
    assert s.names("fastbreaker_limiter_available_tokens") == {"api"}
    assert s.names("fastbreaker_bulkhead_in_flight") == {"pool"}
    reg.get_or_create("late")
    assert scrape().names("fastbreaker_breaker_state_code") == {"db", "late"}
    reg.remove("late")
    assert scrape().names("fastbreaker_breaker_state_code") == {"db"}


# ----- the documented set -----


def test_docs_and_exposition_list_the_same_metrics(reg: Registry, scrape: Scrape) -> None:
    populate(reg)
    s = scrape()
    docs = documented()
    exposed = {exposed_name(f): f for f in s.families.values()}
    assert set(exposed) == set(docs)
    assert {f"fastbreaker_{spec.name}" for spec in fb_prom.SPECS} == set(docs)
    for name, family in exposed.items():
        kind, labels = docs[name]
        assert family.type == kind, name
        assert family.samples, name
        for sample in family.samples:
            extra = {"le"} if sample.name.endswith("_bucket") else set()
            assert set(sample.labels) == labels | extra, sample


def test_histogram_buckets_are_consistent(reg: Registry, scrape: Scrape) -> None:
    populate(reg)
    db = reg.get_or_create("db")
    for _ in range(5):
        db.call(ok)
    s = scrape()
    histograms = [f for f in s.families.values() if f.type == "histogram"]
    assert {f.name for f in histograms} == {
        "fastbreaker_breaker_call_duration_seconds",
        "fastbreaker_limiter_wait_seconds",
    }
    for family in histograms:
        buckets = [x for x in family.samples if x.name.endswith("_bucket")]
        assert [b.labels["le"] for b in buckets] == BOUNDS
        counts = [b.value for b in buckets]
        assert counts == sorted(counts)
        count = s.get(f"{family.name}_count", name=buckets[0].labels["name"])
        assert counts[-1] == count
        assert s.get(f"{family.name}_sum", name=buckets[0].labels["name"]) >= 0
    assert s.get("fastbreaker_breaker_call_duration_seconds_count", name="db") == 5


# ----- registration -----


def test_register_is_idempotent_and_unregister_removes(reg: Registry) -> None:
    prom = CollectorRegistry()
    collector = fb_prom.register(reg, prometheus_registry=prom)
    assert isinstance(collector, fb_prom.FastbreakerCollector)
    assert fb_prom.register(reg, prometheus_registry=prom) is collector
    with pytest.raises(ValueError, match="namespace 'fastbreaker'"):
        fb_prom.register(Registry(), prometheus_registry=prom)
    other = fb_prom.register(Registry(), prometheus_registry=prom, namespace="other")
    populate(reg)
    assert prom.get_sample_value("fastbreaker_breaker_state_code", {"name": "db"}) == 0
    assert prom.get_sample_value("other_breaker_state_code", {"name": "db"}) is None
    assert other.namespace == "other"
    assert fb_prom.unregister(prometheus_registry=prom)
    assert not fb_prom.unregister(prometheus_registry=prom)
    assert prom.get_sample_value("fastbreaker_breaker_state_code", {"name": "db"}) is None
    assert fb_prom.register(reg, prometheus_registry=prom) is not collector
    assert fb_prom.unregister(prometheus_registry=prom)
    assert fb_prom.unregister(prometheus_registry=prom, namespace="other")


def test_default_registries() -> None:
    from prometheus_client import REGISTRY

    collector = fb_prom.register()
    try:
        assert collector.registry is fastbreaker.registry
        assert fb_prom.register(fastbreaker.registry) is collector
        fastbreaker.registry.get_or_create("test_prometheus_default")
        value = REGISTRY.get_sample_value(
            "fastbreaker_breaker_state_code", {"name": "test_prometheus_default"}
        )
        assert value == 0
    finally:
        fastbreaker.registry.remove("test_prometheus_default")
        assert fb_prom.unregister()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"namespace": "bad-name"}, ValueError, "namespace must be .* got 'bad-name'"),
        ({"namespace": ""}, ValueError, "namespace"),
        ({"namespace": 3}, ValueError, "namespace .* got 3"),
        ({"registry": {}}, TypeError, r"registry must be a fastbreaker.Registry .* got \{\}"),
        ({"prometheus_registry": "x"}, TypeError, "prometheus_registry must be .* got 'x'"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    kwargs.setdefault("prometheus_registry", CollectorRegistry())
    with pytest.raises(error, match=match):
        fb_prom.register(**kwargs)


def test_health_score_formula() -> None:
    def m(state: str, calls: int, failures: int, consecutive: int = 0) -> dict[str, Any]:
        return {
            "state": state,
            "window_calls": calls,
            "window_failures": failures,
            "consecutive_failures": consecutive,
        }

    assert fb_prom.health_score(m("closed", 0, 0)) == 1.0
    assert fb_prom.health_score(m("closed", 10, 2)) == pytest.approx(0.8)
    assert fb_prom.health_score(m("half_open", 4, 1)) == pytest.approx(0.375)
    assert fb_prom.health_score(m("open", 4, 1)) == 0.0
    assert fb_prom.health_score(m("forced_open", 0, 0)) == 0.0
    assert fb_prom.health_score(m("disabled", 0, 0)) == 1.0
    assert fb_prom.health_score(m("metrics_only", 2, 2)) == 0.0
    with pytest.raises(ValueError, match="got 'weird'"):
        fb_prom.health_score(m("weird", 0, 0))
    # The consecutive rule: the nearer the trip, the lower the score.
    assert fb_prom.health_score(m("closed", 0, 0, consecutive=4), 5) == pytest.approx(0.2)
    assert fb_prom.health_score(m("closed", 10, 5, consecutive=1), 5) == pytest.approx(0.5)
    assert fb_prom.health_score(m("closed", 0, 0, consecutive=4)) == 1.0
    assert fb_prom.health_score(m("metrics_only", 0, 0, consecutive=9), 5) == 0.0


def test_health_score_of_a_consecutive_only_breaker_is_scraped(
    reg: Registry, scrape: Scrape
) -> None:
    b = reg.get_or_create("near", failure_threshold=4)
    for _ in range(21):
        call(b, ok)
    for _ in range(3):
        call(b, fail)
    s = scrape()
    # 3 of 24 calls failed (window pressure 0.125), but 3 of 4 in a row: pressure 0.75.
    assert s.get("fastbreaker_breaker_health_score", name="near") == pytest.approx(0.25)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_module_imports_without_prometheus_client() -> None:
    result = run_python(
        """
        import sys
        sys.modules["prometheus_client"] = None  # makes `import prometheus_client` fail
        import fastbreaker.prometheus as p
        assert p.read()["breaker_state"] == []
        for make in (p.register, p.FastbreakerCollector):
            try:
                make()
            except ImportError as e:
                assert "pip install fastbreaker[prometheus]" in str(e), e
            else:
                raise AssertionError(f"{make} did not raise")
        """
    )
    assert result.returncode == 0, result.stderr


def test_docs_python_blocks_run(tmp_path: Path) -> None:
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.M | re.S)
    assert len(blocks) >= 2
    for i, code in enumerate(blocks):
        script = tmp_path / f"block{i}.py"
        script.write_text(code, encoding="utf-8")
        result = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"docs/metrics.md block {i}:\n{code}\n{result.stderr}"


def test_health_score_help_states_the_formula_in_use(reg: Registry, scrape: Scrape) -> None:
    reg.get_or_create("db", failure_threshold=5)
    help_text = scrape().families["fastbreaker_breaker_health_score"].documentation
    assert "consecutive failures / failure_threshold" in help_text
    assert "breaker_failure_ratio" in help_text
