from __future__ import annotations

import asyncio
import inspect
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbreaker import Bulkhead, BulkheadFull, FastbreakerError, RateLimiter, RateLimitExceeded


def test_try_acquire_burst_and_retry_after() -> None:
    lim = RateLimiter(rate=100, per=1.0, burst=10)
    assert lim.burst == 10 and lim.rate == 100 and lim.per == 1.0
    assert all(lim.try_acquire() for _ in range(10))
    assert not lim.try_acquire()
    assert 0.0 < lim.retry_after() <= 0.011
    assert lim.available() == 0


def test_acquire_waits_fairly() -> None:
    lim = RateLimiter(rate=200, burst=1)
    lim.try_acquire()
    t0 = time.perf_counter()
    lim.acquire(1)
    lim.acquire(1)
    elapsed = time.perf_counter() - t0
    assert 0.008 <= elapsed < 0.2


def test_acquire_timeout_raises_without_consuming() -> None:
    lim = RateLimiter(rate=10, burst=2)
    assert lim.try_acquire(2)
    with pytest.raises(RateLimitExceeded) as info:
        lim.acquire(1, timeout=0.01)
    assert isinstance(info.value, FastbreakerError)
    assert 0.05 < info.value.retry_after <= 0.1
    assert info.value.requested == 1
    before = lim.retry_after()
    with pytest.raises(RateLimitExceeded):
        lim.acquire(1, timeout=0.0)
    assert lim.retry_after() <= before  # nothing was taken


async def test_acquire_async_and_cancellation_refunds() -> None:
    lim = RateLimiter(rate=20, burst=1)
    lim.try_acquire()
    t0 = time.perf_counter()
    await lim.acquire_async()
    assert time.perf_counter() - t0 >= 0.04
    task = asyncio.ensure_future(lim.acquire_async(1))
    await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lim.retry_after() <= 0.05 + 1e-3  # the cancelled reservation was refunded
    with pytest.raises(RateLimitExceeded):
        await lim.acquire_async(1, timeout=0.0)


async def test_limiter_context_managers_and_decorators() -> None:
    lim = RateLimiter(rate=1000, burst=5)
    with lim:
        pass
    async with lim:
        pass

    @lim
    def f(x: int) -> int:
        return x

    @lim
    async def g(x: int) -> int:
        return x

    assert f(1) == 1 and await g(2) == 2
    assert inspect.iscoroutinefunction(g) and g.__name__ == "g"


def test_rate_is_respected_across_threads() -> None:
    lim = RateLimiter(rate=500, burst=5)
    count = 0
    lock = threading.Lock()
    deadline = time.monotonic() + 0.1

    def spin() -> None:
        nonlocal count
        while time.monotonic() < deadline:
            if lim.try_acquire():
                with lock:
                    count += 1

    threads = [threading.Thread(target=spin) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 5 <= count <= 5 + 500 * 0.1 * 1.5 + 5, count


@settings(max_examples=50, deadline=None)
@given(rate=st.integers(1, 10_000), burst=st.integers(1, 1000))
def test_burst_is_exact(rate: int, burst: int) -> None:
    lim = RateLimiter(rate=rate, per=1000.0, burst=burst)  # slow refill: no token comes back
    taken = sum(lim.try_acquire() for _ in range(burst + 5))
    assert taken == burst


def test_fractional_rates() -> None:
    lim = RateLimiter(rate=0.5, per=1.0)
    assert lim.burst == 1
    assert lim.try_acquire() and not lim.try_acquire()
    assert 1.9 < lim.retry_after() <= 2.0


def test_bulkhead() -> None:
    bh = Bulkhead(max_concurrent=2)
    assert bh.try_acquire() and bh.try_acquire() and not bh.try_acquire()
    bh.release()
    bh.release()
    with bh:
        assert bh.in_flight == 1
        with bh:
            with pytest.raises(BulkheadFull) as info, bh:
                pass
    assert info.value.max_concurrent == 2 and info.value.retry_after is None
    assert bh.in_flight == 0
    assert bh.metrics()["peak"] == 2


async def test_bulkhead_async_and_decorators() -> None:
    bh = Bulkhead(1)
    gate = asyncio.Event()

    @bh
    async def hold() -> str:
        await gate.wait()
        return "done"

    @bh
    def quick() -> int:
        return 1

    task = asyncio.ensure_future(hold())
    await asyncio.sleep(0)
    with pytest.raises(BulkheadFull):
        await hold()
    with pytest.raises(BulkheadFull):
        quick()
    gate.set()
    assert await task == "done"
    assert quick() == 1
    async with bh:
        assert bh.in_flight == 1
