"""Functions run in child processes by test_shared_region.py (importable under spawn)."""

from __future__ import annotations

import time
from typing import Any

import fastbreaker


def trip(name: str, d: str) -> str:
    """Trips breaker ``pay`` of region ``name`` (threshold 2); returns its state."""
    breaker = fastbreaker.SharedRegion(name, dir=d).breaker("pay", failure_threshold=2)
    for _ in range(2):
        try:
            breaker.call(lambda: 1 / 0)
        except ZeroDivisionError:
            pass
    return breaker.state


def state(name: str, d: str) -> str:
    """The state of breaker ``pay`` as this process sees it."""
    return fastbreaker.SharedRegion(name, dir=d).breaker("pay", failure_threshold=2).state


def grab(
    name: str, d: str, rate: int, burst: int, seconds: float, start: Any
) -> tuple[int, int, int]:
    """Takes tokens from limiter ``gh`` for ``seconds``; (granted, first try ns, last try ns)."""
    limiter = fastbreaker.SharedRegion(name, dir=d).rate_limiter("gh", rate=rate, burst=burst)
    start.wait(30)
    granted = 0
    first = fastbreaker.monotonic_ns()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if limiter.try_acquire():
            granted += 1
    last = fastbreaker.monotonic_ns()
    return granted, first, last


def crowd(name: str, d: str, limit: int, rounds: int, lock: Any, inside: Any, peak: Any) -> int:
    """Enters bulkhead ``db`` ``rounds`` times (where it can), counting calls inside."""
    bulkhead = fastbreaker.SharedRegion(name, dir=d).bulkhead("db", max_concurrent=limit)
    entered = 0
    for _ in range(rounds):
        try:
            with bulkhead:
                with lock:
                    inside.value += 1
                    peak.value = max(peak.value, inside.value)
                entered += 1
                time.sleep(0.0005)
                with lock:
                    inside.value -= 1
        except fastbreaker.BulkheadFull:
            pass
    return entered


def hold(name: str, d: str, limit: int, ready: Any) -> None:
    """Takes every permit of bulkhead ``db`` and sleeps until killed."""
    bulkhead = fastbreaker.SharedRegion(name, dir=d).bulkhead("db", max_concurrent=limit)
    for _ in range(limit):
        bulkhead._enter()
    ready.set()
    time.sleep(600)


def reconfigure_all(name: str, d: str) -> None:
    """Attaches to breaker ``pay`` (threshold 5), limiter ``gh`` (10/s, burst 10) and
    bulkhead ``db`` (2) of region ``name`` and lowers them: threshold 4 and a 30 s wait,
    1 token/s with a burst of 3, 1 in flight."""
    region = fastbreaker.SharedRegion(name, dir=d)
    region.breaker("pay", failure_threshold=5).reconfigure(failure_threshold=4, wait_duration=30.0)
    region.rate_limiter("gh", rate=10, burst=10).reconfigure(rate=1, burst=3)
    region.bulkhead("db", 2).reconfigure(max_concurrent=1)


def observe_reconfigured(name: str, d: str) -> dict[str, Any]:
    """Attaches with the configuration ``reconfigure_all`` gave, fails once through the
    breaker and tries the bulkhead: what this process sees."""
    region = fastbreaker.SharedRegion(name, dir=d)
    breaker = region.breaker("pay", failure_threshold=4, wait_duration=30.0)
    limiter = region.rate_limiter("gh", rate=1, burst=3)
    bulkhead = region.bulkhead("db", 1)
    try:
        breaker.call(lambda: 1 / 0)
    except ZeroDivisionError:
        pass
    return {
        "state": breaker.state,
        "failure_threshold": breaker.options()["failure_threshold"],
        "burst": limiter.burst,
        "rate": limiter.rate,
        "max_concurrent": bulkhead.max_concurrent,
        "bulkhead_admits": bulkhead.try_acquire(),
    }
