"""The counters exporters read: transitions, fallbacks, durations, limiter and bulkhead
results, the registry's three kinds, and the core's Backoff."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from fastbreaker import Bulkhead, CircuitBreaker, ManualClock, RateLimiter, Registry
from fastbreaker._native import Backoff


class Boom(Exception):
    pass


def fail() -> None:
    raise Boom


def test_transitions_are_counted_by_pair() -> None:
    b = CircuitBreaker("t", failure_threshold=1, wait_duration=3600.0)
    with pytest.raises(Boom):
        b.call(fail)
    b.half_open()
    b.call(lambda: None)
    b.trip()
    b.force_open()
    b.reset()
    b.reset()  # closed -> closed is no change
    m = b.metrics()
    assert m["transitions"] == {
        "closed": {"open": 2},
        "open": {"half_open": 1, "forced_open": 1},
        "half_open": {"closed": 1},
        "forced_open": {"closed": 1},
    }
    assert m["trips"] == 2
    json.dumps(m)


def test_trip_refuses_for_the_wait_then_probes() -> None:
    b = CircuitBreaker("trip", wait_duration=3600.0, success_threshold=2)
    b.trip()
    assert b.state == "open" and b.retry_after > 3500
    b.half_open()
    assert b.state == "half_open"
    b.call(lambda: None)
    assert b.state == "half_open"
    b.call(lambda: None)
    assert b.state == "closed"


async def test_fallbacks_are_counted_on_every_path() -> None:
    b = CircuitBreaker("fb", fallback=lambda *a, **k: "fallback")
    b.force_open()

    def plain() -> str:
        return "x"

    async def coro() -> str:
        return "x"

    def gen() -> Any:
        yield "x"

    assert b(plain)() == "fallback"
    assert b.call(plain) == "fallback"
    assert await b(coro)() == "fallback"
    assert await b.call_async(coro) == "fallback"

    b2 = CircuitBreaker("fb-gen", fallback=lambda: iter(["fallback"]))
    b2.force_open()
    assert list(b2(gen)()) == ["fallback"]

    assert b.metrics()["fallbacks"] == 4
    assert b2.metrics()["fallbacks"] == 1
    assert b.metrics()["rejected"] == 4


def test_durations_only_when_asked() -> None:
    quiet = CircuitBreaker("quiet")
    quiet.call(lambda: None)
    assert quiet.metrics()["durations"]["count"] == 0
    assert quiet.options()["measure_durations"] is False

    clock = ManualClock()
    b = CircuitBreaker("timed", measure_durations=True, failure_threshold=None, clock=clock)
    b.call(clock.advance, 0.012)  # 12 ms on the breaker's clock
    with pytest.raises(Boom):
        b.call(fail)
    with b:
        pass
    with pytest.raises(KeyboardInterrupt):
        b.call(lambda: (_ for _ in ()).throw(KeyboardInterrupt))
    d = b.metrics()["durations"]
    assert len(d["counts"]) == len(d["bounds"]) + 1 == 15
    assert d["bounds"][0] == 0.005 and d["bounds"][-1] == 10.0
    assert d["count"] == 3, "ignored outcomes (KeyboardInterrupt) are not observed"
    assert d["sum"] == pytest.approx(0.012)
    # The 12 ms call is above the 10 ms bound; the others are far below 5 ms.
    assert sum(d["counts"][2:]) == 1
    assert d["counts"][0] == 2


def test_limiter_results_and_waits() -> None:
    lim = RateLimiter(10, per=1.0, burst=2, name="api")
    assert lim.name == "api" and "api" in repr(lim)
    assert lim.try_acquire() and lim.try_acquire()
    assert not lim.try_acquire()
    with pytest.raises(Exception) as e:
        lim.acquire(timeout=0.0)
    assert type(e.value).__name__ == "RateLimitExceeded"
    lim.acquire()  # waits ~0.1 s for the next token
    m = lim.metrics()
    assert (m["allowed"], m["rejected"], m["delayed"], m["cancelled"]) == (2, 2, 1, 0)
    assert m["wait"]["count"] == 1 and 0.0 < m["wait"]["sum"] <= 0.2
    assert m["burst"] == 2 and m["rate"] == 10.0 and m["per"] == 1.0
    json.dumps(m)
    with pytest.raises(TypeError, match="name"):
        RateLimiter(1, name=3)  # type: ignore[arg-type]


async def test_limiter_cancelled_wait_is_counted() -> None:
    lim = RateLimiter(1, per=60.0, burst=1)
    assert lim.try_acquire()
    task = asyncio.ensure_future(lim.acquire_async())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    m = lim.metrics()
    assert (m["delayed"], m["cancelled"]) == (1, 1)
    assert m["name"] is None


def test_bulkhead_name_in_metrics() -> None:
    bh = Bulkhead(2, name="pool")
    with bh:
        assert bh.metrics() == {
            "name": "pool",
            "max_concurrent": 2,
            "in_flight": 1,
            "peak": 1,
            "acquired": 1,
            "rejected": 0,
        }
    assert Bulkhead(1).name is None


def test_registry_holds_three_kinds() -> None:
    r = Registry()
    b = r.get_or_create("svc")
    lim = r.get_or_create_limiter("svc", 5.0, per=1.0, burst=5)
    bh = r.get_or_create_bulkhead("svc", 3)
    assert r.get_or_create_limiter("svc", 5.0, per=1.0, burst=5) is lim
    assert r.get_or_create_bulkhead("svc", 3) is bh
    # Other settings under a live name are refused (issue 18), not silently ignored.
    with pytest.raises(ValueError, match="limiter 'svc' already exists"):
        r.get_or_create_limiter("svc", 1.0)
    with pytest.raises(ValueError, match="bulkhead 'svc' already exists"):
        r.get_or_create_bulkhead("svc", 9)
    assert r.breakers() == [b] and r.limiters() == [lim] and r.bulkheads() == [bh]
    assert lim.name == "svc" and bh.name == "svc"
    other = RateLimiter(1, name="other")
    assert r.register(other) is other and r.get_limiter("other") is other
    with pytest.raises(ValueError, match="name"):
        r.register(RateLimiter(1))
    with pytest.raises(TypeError, match="register"):
        r.register(object())  # type: ignore[type-var]
    assert list(r) == [b] and len(r) == 1
    r.clear()
    assert (r.breakers(), r.limiters(), r.bulkheads()) == ([], [], [])


def test_backoff_is_the_cores_arithmetic() -> None:
    b = Backoff(0.5, 10.0, multiplier=3.0, seed=1)
    assert [b.delay(i) for i in range(5)] == [0.5, 1.5, 4.5, 10.0, 10.0]
    assert b.delay(10**12) == 10.0
    assert (b.base_delay, b.max_delay, b.multiplier, b.jitter, b.seed) == (0.5, 10.0, 3.0, 0.0, 1)
    j = Backoff(1.0, 1.0, jitter=0.5, seed=42)
    delays = {j.delay(0, nonce) for nonce in range(200)}
    assert all(0.5 <= d <= 1.0 for d in delays) and len(delays) > 150
    assert j.delay(0, 7) == Backoff(1.0, 1.0, jitter=0.5, seed=42).delay(0, 7)
    assert j.delay(0, -1) == j.delay(0, 2**64 - 1), "nonces are taken modulo 2**64"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"base_delay": -1.0, "max_delay": 1.0}, "base_delay"),
        ({"base_delay": 2.0, "max_delay": 1.0}, "max_delay"),
        ({"base_delay": 1.0, "max_delay": 2.0, "multiplier": 0.9}, "multiplier"),
        ({"base_delay": 1.0, "max_delay": 2.0, "jitter": 1.5}, "jitter"),
        ({"base_delay": 1.0, "max_delay": 2.0, "seed": -3}, "seed"),
    ],
)
def test_backoff_errors_name_the_parameter(kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(ValueError, match=param):
        Backoff(**kwargs)


def test_backoff_attempt_must_be_an_int() -> None:
    b = Backoff(1.0, 2.0)
    with pytest.raises(ValueError, match="attempt"):
        b.delay(-1)
    with pytest.raises(TypeError, match="attempt"):
        b.delay("1")  # type: ignore[arg-type]
