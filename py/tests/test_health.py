"""health(), readiness(), liveness() and the HTTP helper serve_health()."""

from __future__ import annotations

import gc
import importlib
import json
import socket
import threading
import urllib.error
import urllib.request
import weakref
from typing import Any, Iterator

import pytest

import fastbreaker
from fastbreaker import BulkheadFull, Registry
from fastbreaker.health import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    HealthServer,
    health,
    liveness,
    readiness,
    serve_health,
)


@pytest.fixture
def reg() -> Registry:
    return Registry()


def test_an_empty_registry_is_healthy(reg: Registry) -> None:
    report = health(reg)
    assert report.status == HEALTHY
    assert report.ok
    assert report.to_dict() == {
        "status": "healthy",
        "reasons": [],
        "breakers": {},
        "limiters": {},
        "bulkheads": {},
    }
    assert readiness(reg).ok
    assert liveness(reg).ok


def test_closed_breakers_are_healthy_and_reported(reg: Registry) -> None:
    reg.get_or_create("db")
    report = health(reg)
    assert report.status == HEALTHY
    assert report.breakers == {"db": {"state": "closed", "retry_after": 0.0, "critical": False}}


def test_one_open_breaker_of_two_degrades(reg: Registry) -> None:
    reg.get_or_create("db")
    reg.get_or_create("search").trip()
    report = health(reg)
    assert report.status == DEGRADED
    assert report.reasons == ("breaker 'search' is open",)
    assert report.breakers["search"]["state"] == "open"
    assert report.breakers["search"]["retry_after"] > 0.0
    assert readiness(reg).ok
    assert liveness(reg).ok


@pytest.mark.parametrize("move", ["trip", "force_open", "half_open"])
def test_open_forced_open_and_half_open_degrade(reg: Registry, move: str) -> None:
    reg.get_or_create("db")
    getattr(reg.get_or_create("other"), move)()
    assert health(reg).status == DEGRADED


@pytest.mark.parametrize("move", ["disable", "metrics_only"])
def test_manual_bypass_states_are_healthy(reg: Registry, move: str) -> None:
    getattr(reg.get_or_create("db"), move)()
    assert health(reg).status == HEALTHY


def test_every_breaker_open_is_unhealthy_but_alive(reg: Registry) -> None:
    reg.get_or_create("a").trip()
    reg.get_or_create("b").force_open()
    report = health(reg)
    assert report.status == UNHEALTHY
    assert not report.ok
    assert report.reasons[0] == "every breaker is open (2)"
    probe = readiness(reg)
    assert (probe.ok, probe.status, bool(probe)) == (False, "not_ready", False)
    assert probe.reasons == report.reasons
    assert liveness(reg).ok  # open breakers must not get the process restarted


def test_every_breaker_half_open_is_only_degraded(reg: Registry) -> None:
    reg.get_or_create("a").half_open()
    assert health(reg).status == DEGRADED


def test_a_critical_open_breaker_is_unhealthy(reg: Registry) -> None:
    reg.get_or_create("db").trip()
    reg.get_or_create("cache")
    report = health(reg, critical=["db"])
    assert report.status == UNHEALTHY
    assert report.reasons == ("critical breaker 'db' is open",)
    assert report.breakers["db"]["critical"] is True
    assert report.breakers["cache"]["critical"] is False
    assert health(reg, critical="db").status == UNHEALTHY
    assert health(reg, critical=["cache"]).status == DEGRADED
    assert not readiness(reg, critical=["db"]).ok


def test_critical_names_replace_the_every_breaker_open_rule(reg: Registry) -> None:
    reg.get_or_create("a").trip()
    assert health(reg).status == UNHEALTHY
    assert health(reg, critical=()).status == DEGRADED
    assert readiness(reg, critical=()).ok


def test_a_half_open_critical_breaker_is_degraded(reg: Registry) -> None:
    reg.get_or_create("db").half_open()
    assert health(reg, critical=["db"]).status == DEGRADED


def test_limiter_rejections_are_measured_since_the_previous_call(reg: Registry) -> None:
    limiter = reg.get_or_create_limiter("api", rate=1, per=3600.0, burst=2)
    assert limiter.try_acquire() and limiter.try_acquire()
    assert not limiter.try_acquire()
    report = health(reg)  # 2 allowed, 1 rejected: 33 % is under 50 %
    assert report.status == HEALTHY
    assert report.limiters["api"] == {"admitted": 2, "rejected": 1, "rejection_ratio": 1 / 3}

    assert not limiter.try_acquire()
    report = health(reg)  # only this interval counts: 1 of 1 rejected
    assert report.status == DEGRADED
    assert report.reasons == ("limiter 'api' rejected 1 of 1 requests (100% > 50%)",)

    report = health(reg)  # nothing happened since: fine again
    assert report.status == HEALTHY
    assert report.limiters["api"] == {"admitted": 0, "rejected": 0, "rejection_ratio": 0.0}


def test_rejection_threshold_is_exclusive_and_configurable(reg: Registry) -> None:
    limiter = reg.get_or_create_limiter("api", rate=1, per=3600.0, burst=1)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    assert health(reg, rejection_threshold=0.5).status == HEALTHY  # exactly 50 %
    assert not limiter.try_acquire()
    assert health(reg, rejection_threshold=0.0).status == DEGRADED
    assert not limiter.try_acquire()
    assert health(reg, rejection_threshold=1.0).status == HEALTHY


def test_bulkhead_rejections_degrade(reg: Registry) -> None:
    bulkhead = reg.get_or_create_bulkhead("pool", 1)
    with bulkhead:
        for _ in range(2):
            with pytest.raises(BulkheadFull):
                bulkhead._enter()
    report = health(reg)
    assert report.status == DEGRADED
    assert report.bulkheads["pool"] == {"admitted": 1, "rejected": 2, "rejection_ratio": 2 / 3}
    assert "bulkhead 'pool' rejected 2 of 3 requests" in report.reasons[0]


def test_intervals_are_kept_per_registry_and_per_object(reg: Registry) -> None:
    other = Registry()
    limiter = reg.get_or_create_limiter("api", rate=1, per=3600.0, burst=1)
    other.register(limiter)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    assert not limiter.try_acquire()
    assert health(reg).status == DEGRADED
    assert health(other).status == DEGRADED  # its own first interval
    replacement = fastbreaker.RateLimiter(1, 3600.0, 1, name="api")
    reg.register(replacement)
    assert health(reg).limiters["api"]["admitted"] == 0  # a new object starts from zero


def test_default_registry_is_the_process_registry() -> None:
    breaker = fastbreaker.registry.get_or_create("test-health-default")
    try:
        assert "test-health-default" in health().breakers
        assert liveness().ok
        assert readiness(critical=()).ok
    finally:
        fastbreaker.registry.remove(breaker.name)


class BrokenRegistry(Registry):
    def breakers(self) -> list[Any]:
        raise RuntimeError("corrupted")


def test_an_unreadable_registry_is_not_ready_and_not_alive() -> None:
    broken = BrokenRegistry()
    probe = readiness(broken)
    assert (probe.ok, probe.status) == (False, "not_ready")
    assert "corrupted" in probe.reasons[0]
    probe = liveness(broken)
    assert (probe.ok, probe.status) == (False, "dead")
    assert probe.to_dict() == {
        "ok": False,
        "status": "dead",
        "reasons": ["registry unreadable: RuntimeError('corrupted')"],
    }


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"rejection_threshold": 1.5}, ValueError, r"rejection_threshold must be .*got 1.5"),
        ({"rejection_threshold": -0.1}, ValueError, r"rejection_threshold .*got -0.1"),
        ({"rejection_threshold": True}, TypeError, r"rejection_threshold .*got True \(bool\)"),
        ({"critical": [1]}, TypeError, r"critical must be breaker names \(str\), got 1"),
    ],
)
def test_bad_arguments_are_named(
    reg: Registry, kwargs: dict[str, Any], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        health(reg, **kwargs)
    with pytest.raises(error, match=message):
        readiness(reg, **kwargs)


# ----- HTTP -----

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with OPENER.open(request, timeout=30) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def server(reg: Registry) -> Iterator[HealthServer]:
    s = serve_health("127.0.0.1", 0, registry=reg, critical=["db"])
    try:
        yield s
    finally:
        s.close()


def test_http_probes(reg: Registry, server: HealthServer) -> None:
    db = reg.get_or_create("db")
    reg.get_or_create("search").trip()
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"

    code, body = get(server.url + "/healthz")
    assert (code, json.loads(body)) == (200, {"ok": True, "status": "alive", "reasons": []})
    code, body = get(server.url + "/readyz")
    assert (code, json.loads(body)["status"]) == (200, "ready")
    code, body = get(server.url + "/health?verbose=1")
    assert code == 200
    assert json.loads(body)["status"] == "degraded"

    db.trip()  # critical
    code, body = get(server.url + "/readyz")
    assert (code, json.loads(body)["status"]) == (503, "not_ready")
    code, body = get(server.url + "/health")
    payload = json.loads(body)
    assert (code, payload["status"]) == (503, "unhealthy")
    assert payload["breakers"]["db"]["critical"] is True
    code, body = get(server.url + "/healthz/")
    assert code == 200  # still alive


def test_http_head_unknown_paths_and_content_type(server: HealthServer) -> None:
    code, body = get(server.url + "/healthz", method="HEAD")
    assert (code, body) == (200, b"")
    code, body = get(server.url + "/metrics")
    assert (code, json.loads(body)) == (404, {"error": "not found: /metrics"})
    with OPENER.open(server.url + "/health", timeout=30) as response:
        assert response.headers["Content-Type"] == "application/json"


def test_close_is_idempotent_and_a_context_manager(reg: Registry) -> None:
    with serve_health(registry=reg) as s:
        assert get(s.url + "/healthz")[0] == 200
    s.close()
    assert s.host == "127.0.0.1"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"port": -1}, ValueError, r"port must be an int in 0..=65535, got -1"),
        ({"port": "80"}, TypeError, r"port must be an int .*got '80' \(str\)"),
        ({"host": 127}, TypeError, r"host must be a str, got 127 \(int\)"),
        ({"rejection_threshold": 2}, ValueError, r"rejection_threshold must be .*got 2"),
    ],
)
def test_serve_health_validates(kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        serve_health(**kwargs)


# ----- review fixes -----


def test_concurrent_health_calls_count_each_rejection_once(reg: Registry) -> None:
    # The kubelet's /readyz and a scraper's /health at once: the one that read the counters
    # first must not store them after the other, or the next call counts rejections again.
    paused = threading.Event()
    release = threading.Event()

    class PausingLimiter(fastbreaker.RateLimiter):
        def metrics(self) -> dict[str, Any]:
            m = super().metrics()
            if threading.current_thread().name == "first":
                paused.set()
                release.wait(30)
            return m

    limiter = reg.register(PausingLimiter(1, 3600.0, 1, name="api"))
    reports: dict[str, Any] = {}

    def check(label: str) -> None:
        reports[label] = health(reg).limiters["api"]

    first = threading.Thread(target=check, args=("first",), name="first")
    first.start()
    assert paused.wait(30)  # "first" has read the counters (nothing yet) and is paused
    assert limiter.try_acquire()
    for _ in range(3):
        assert not limiter.try_acquire()
    second = threading.Thread(target=check, args=("second",), name="second")
    second.start()
    second.join(0.5)  # lets it finish if nothing makes it wait for "first"
    release.set()
    first.join(30)
    second.join(30)
    check("third")
    assert sum(r["rejected"] for r in reports.values()) == 3, reports
    assert sum(r["admitted"] for r in reports.values()) == 1, reports


def test_health_does_not_keep_a_registry_alive() -> None:
    temporary = Registry()
    temporary.get_or_create_limiter("api", rate=1)
    health(temporary)
    ref = weakref.ref(temporary)
    del temporary
    gc.collect()
    assert ref() is None


def test_readiness_reads_critical_names_from_an_iterator(reg: Registry) -> None:
    reg.get_or_create("db").trip()
    reg.get_or_create("search")
    assert not readiness(reg, critical=iter(["db"])).ok
    assert not readiness(reg, critical=(name for name in ["db"])).ok


def test_http_health_answers_503_when_the_registry_cannot_be_read() -> None:
    with serve_health(registry=BrokenRegistry()) as s:
        code, body = get(s.url + "/health")
    payload = json.loads(body)
    assert (code, payload["status"]) == (503, "unhealthy")
    assert payload["reasons"] == ["health check failed: RuntimeError('corrupted')"]


def test_a_silent_client_is_disconnected(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    # (fastbreaker.health is the function; the module is reached by its full name)
    module = importlib.import_module("fastbreaker.health")
    monkeypatch.setattr(module, "_REQUEST_TIMEOUT", 0.2, raising=False)
    with serve_health(registry=reg) as s:
        with socket.create_connection((s.host, s.port), timeout=30) as silent:
            assert get(s.url + "/healthz")[0] == 200  # others are still served meanwhile
            silent.settimeout(10)
            # Without a request timeout the server would keep this connection (and its
            # thread) forever and recv() would time out here.
            assert silent.recv(1024) == b""


def test_serve_health_does_no_reverse_dns_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(name: str = "") -> str:
        raise AssertionError(f"getfqdn({name!r}) called")

    monkeypatch.setattr(socket, "getfqdn", no_dns)
    with serve_health() as s:
        assert get(s.url + "/healthz")[0] == 200
