"""reconfigure(**changes): runtime configuration of every primitive, keeping its state."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import region_workers as workers

from fastbreaker import (
    Bulkhead,
    CircuitBreaker,
    ManualClock,
    RateLimiter,
    RegionConfigMismatch,
    RegionError,
    SharedRegion,
)


def fail(b: CircuitBreaker, n: int = 1) -> None:
    for _ in range(n):
        b.record(b.acquire(), "failure")


# ----- breaker -----


def test_breaker_keeps_its_failures_under_a_lower_threshold() -> None:
    b = CircuitBreaker("b", failure_threshold=5, clock=ManualClock())
    fail(b, 3)
    b.reconfigure(failure_threshold=4)
    assert b.state == "closed" and b.metrics()["consecutive_failures"] == 3
    fail(b)
    assert b.state == "open" and b.metrics()["trips"] == 1
    assert b.options()["failure_threshold"] == 4


def test_breaker_keys_not_given_keep_the_value_in_force() -> None:
    b = CircuitBreaker(
        "b",
        failure_threshold=7,
        wait_duration=12.0,
        failure_rate_threshold=50,
        window=20,
        minimum_calls=5,
        jitter=0.25,
        jitter_seed=9,
        clock=ManualClock(),
    )
    before = b.options()
    b.reconfigure(success_threshold=2)
    after = b.options()
    assert after == {**before, "success_threshold": 2}
    b.reconfigure()  # nothing given: nothing changes
    assert b.options() == after
    # None turns an optional rule off, as in the constructor.
    b.reconfigure(failure_rate_threshold=None, failure_threshold=None)
    assert b.options()["failure_rate_threshold"] is None
    assert b.options()["failure_threshold"] is None
    b.reconfigure(jitter_seed=None)
    assert b.options()["jitter_seed"] is None


def test_breaker_wait_change_on_an_open_breaker() -> None:
    clock = ManualClock()
    b = CircuitBreaker("b", failure_threshold=1, wait_duration=60.0, clock=clock)
    fail(b)
    clock.advance(5.0)
    assert b.retry_after == 55.0
    b.reconfigure(wait_duration=10.0)  # counted from when it opened
    assert b.retry_after == 5.0 and b.metrics()["retry_after"] == 5.0
    clock.advance(5.0)
    assert b.state == "open" and b.acquire().kind == "probe"
    assert b.options()["wait_duration"] == 10.0
    b2 = CircuitBreaker("b2", failure_threshold=1, wait_duration=1.0, clock=clock)
    fail(b2)
    b2.reconfigure(wait_duration_ns=3_000_000_000)
    assert b2.retry_after_ns == 3_000_000_000


def test_time_window_breaker() -> None:
    b = CircuitBreaker("t", window_seconds=10.0, buckets=5, failure_threshold=3)
    b.reconfigure(window_seconds=10.0, buckets=5, failure_threshold=2)  # the same window
    assert b.options()["failure_threshold"] == 2 and b.options()["window_seconds"] == 10.0
    with pytest.raises(ValueError, match=r"window_seconds = 20\.0.*cannot change at run time"):
        b.reconfigure(window_seconds=20.0)
    with pytest.raises(ValueError, match=r"buckets = 4.*cannot change at run time"):
        b.reconfigure(buckets=4)
    with pytest.raises(ValueError, match="window applies to a count window"):
        b.reconfigure(window=10)
    with pytest.raises(ValueError, match="window_seconds applies to a time window"):
        CircuitBreaker("c").reconfigure(window_seconds=1.0)


def test_breaker_errors_change_nothing() -> None:
    b = CircuitBreaker("b", failure_threshold=5, wait_duration=30.0, window=50)
    before = b.options()
    with pytest.raises(TypeError, match="unexpected keyword argument 'fail_max'"):
        b.reconfigure(fail_max=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'exclude'"):
        b.reconfigure(exclude=[OSError])  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        b.reconfigure(3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="failure_threshold must be an int"):
        b.reconfigure(failure_threshold="3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="give one of them"):
        b.reconfigure(wait_duration=1.0, wait_duration_ns=1)
    with pytest.raises(ValueError, match=r"invalid failure_threshold = 0\b"):
        b.reconfigure(failure_threshold=0, wait_duration=5.0)
    with pytest.raises(ValueError, match=r"invalid wait_duration = -1\b"):
        b.reconfigure(wait_duration=-1)
    with pytest.raises(ValueError, match=r"invalid window = 60 \(window_size = 60\): cannot"):
        b.reconfigure(window=60, failure_threshold=2)
    with pytest.raises(ValueError, match=r"invalid max_wait_duration = 1\.0.*wait_duration = 2"):
        b.reconfigure(wait_duration=2.0, max_wait_duration=1.0)
    with pytest.raises(ValueError, match="minimum_calls = 100"):
        b.reconfigure(failure_rate_threshold=50, minimum_calls=100)
    assert b.options() == before


# ----- rate limiter -----


def test_limiter_tokens_in_use_stay_in_use() -> None:
    clock = ManualClock()
    lim = RateLimiter(10, burst=10, clock=clock)
    assert lim.try_acquire(5)
    lim.reconfigure(rate=1)
    assert lim.available() == 5, "the 5 tokens in use stay in use"
    assert (lim.rate, lim.per, lim.burst) == (1.0, 1.0, 10)
    clock.advance(1.0)
    assert lim.available() == 6, "and drain at the new rate"
    lim.reconfigure(burst=3)  # below the tokens in use: over the limit until they drain
    assert lim.available() == 0 and lim.burst == 3
    clock.advance(1.0)
    assert lim.available() == 0, "3 in use"
    clock.advance(1.0)
    assert lim.available() == 1, "2 in use"
    m = lim.metrics()
    assert (m["rate"], m["per"], m["burst"]) == (1.0, 1.0, 3)


def test_limiter_rate_and_period_forms() -> None:
    lim = RateLimiter(5, per=2.0, burst=5, clock=ManualClock())
    lim.reconfigure(per=4.0)  # keeps the rate in force
    assert (lim.rate, lim.per, lim.per_ns, lim.burst) == (5.0, 4.0, 4_000_000_000, 5)
    lim.reconfigure(rate=2.5)  # a fractional rate, kept as given
    assert (lim.rate, lim.per) == (2.5, 4.0)
    assert "rate=2.5 per=4" in repr(lim)
    lim.reconfigure(per_ns=1_000)
    assert lim.per_ns == 1_000 and lim.rate == 2.5


def test_limiter_errors_change_nothing() -> None:
    lim = RateLimiter(10, burst=10, clock=ManualClock())
    assert lim.try_acquire(4)
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_concurrent'"):
        lim.reconfigure(max_concurrent=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"invalid rate = 0\b"):
        lim.reconfigure(rate=0, burst=3)
    with pytest.raises(ValueError, match=r"invalid burst = 0\b"):
        lim.reconfigure(burst=0)
    with pytest.raises(TypeError, match="give one of them"):
        lim.reconfigure(per=1.0, per_ns=1)
    with pytest.raises(ValueError, match=r"invalid per = -1"):
        lim.reconfigure(per=-1)
    assert (lim.rate, lim.per, lim.burst, lim.available()) == (10.0, 1.0, 10, 6)


# ----- bulkhead -----


def test_bulkhead_lowered_below_in_flight() -> None:
    bh = Bulkhead(3)
    assert bh.try_acquire() and bh.try_acquire() and bh.try_acquire()
    bh.reconfigure(max_concurrent=1)
    assert bh.max_concurrent == 1 and bh.in_flight == 3 and not bh.try_acquire()
    bh.release()
    bh.release()
    assert not bh.try_acquire(), "1 still in flight, the new limit"
    bh.release()
    assert bh.try_acquire()
    assert bh.metrics()["max_concurrent"] == 1 and "max_concurrent=1" in repr(bh)
    bh.reconfigure()  # nothing given: nothing changes
    assert bh.max_concurrent == 1


def test_bulkhead_errors_change_nothing() -> None:
    bh = Bulkhead(2)
    with pytest.raises(ValueError, match=r"invalid max_concurrent = 0\b"):
        bh.reconfigure(max_concurrent=0)
    with pytest.raises(TypeError, match="max_concurrent must be an int"):
        bh.reconfigure(max_concurrent=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword argument 'limit'"):
        bh.reconfigure(limit=1)  # type: ignore[call-arg]
    assert bh.max_concurrent == 2


# ----- shared -----


@pytest.fixture
def region_dir(tmp_path: Path) -> Iterator[str]:
    yield str(tmp_path)
    for f in tmp_path.glob("fastbreaker.*"):
        SharedRegion.unlink(f.name[len("fastbreaker.") :], dir=str(tmp_path))


def test_shared_reconfigure_in_this_process(region_dir: str) -> None:
    region = SharedRegion("app", dir=region_dir, capacity=8)
    b = region.breaker("pay", failure_threshold=5)
    other = CircuitBreaker("pay", failure_threshold=5, shared=region)  # another handle
    fail(b, 3)
    other.reconfigure(failure_threshold=4)
    assert b.options()["failure_threshold"] == 4
    fail(b)
    assert other.state == "open"
    with pytest.raises(ValueError, match=r"invalid window = 50 \(window_size = 50\)"):
        b.reconfigure(window=50)
    with pytest.raises(ValueError, match=r"invalid failure_threshold = 0\b"):
        b.reconfigure(failure_threshold=0)
    # The slot holds the new configuration: attaching with the old one is a mismatch.
    with pytest.raises(RegionConfigMismatch):
        CircuitBreaker("pay", failure_threshold=5, shared=region)
    slot = next(s for s in region.slots() if s["name"] == "pay")
    assert "Some(4)" in slot["config"]
    for key in ("ignored", "slow", "window_calls", "window_failures", "window_slow"):
        assert key in slot
    assert slot["half_open_in_flight"] == 0 and slot["state"] == "open"

    lim = region.rate_limiter("gh", rate=10, burst=10)
    assert lim.try_acquire(4)
    lim.reconfigure(rate=2.5, burst=5)
    assert (lim.rate, lim.burst) == (2.5, 5) and lim.available() <= 1
    lim.reconfigure(burst=6)
    assert (lim.rate, lim.per, lim.burst) == (2.5, 1.0, 6)
    bh = region.bulkhead("db", 2)
    assert bh.try_acquire() and bh.try_acquire()
    bh.reconfigure(max_concurrent=1)
    assert bh.max_concurrent == 1 and bh.in_flight == 2
    with pytest.raises(ValueError, match="invalid max_concurrent = 0"):
        bh.reconfigure(max_concurrent=0)
    bh.release()
    bh.release()
    assert isinstance(RegionError("x", "busy"), Exception)


def test_shared_reconfigure_across_processes(region_dir: str) -> None:
    region = SharedRegion("app", dir=region_dir, capacity=8)
    b = region.breaker("pay", failure_threshold=5)
    lim = region.rate_limiter("gh", rate=10, burst=10)
    bh = region.bulkhead("db", 2)
    fail(b, 3)
    assert lim.try_acquire(10) and bh.try_acquire()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:  # one process lowers every limit
        pool.apply(workers.reconfigure_all, ("app", region_dir))
    # This process reads the new configuration, and the state carried over.
    assert b.options()["failure_threshold"] == 4 and b.options()["wait_duration"] == 30.0
    assert b.state == "closed" and b.metrics()["consecutive_failures"] == 3
    assert (lim.rate, lim.per, lim.burst) == (1.0, 1.0, 3)
    assert lim.available() == 0, "the 10 tokens in use stay in use, at 1 token/s"
    assert bh.max_concurrent == 1 and not bh.try_acquire(), "1 in flight here"
    with ctx.Pool(1) as pool:  # another attaches with it and sees the behaviour
        seen: dict[str, Any] = pool.apply(workers.observe_reconfigured, ("app", region_dir))
    assert seen == {
        "state": "open",  # 3 failures here + 1 there reach the new threshold
        "failure_threshold": 4,
        "burst": 3,
        "rate": 1.0,
        "max_concurrent": 1,
        "bulkhead_admits": False,
    }
    assert b.state == "open" and 29.0 < b.retry_after <= 30.0
    bh.release()
