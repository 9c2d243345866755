from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import threading
import time
import traceback
import tracemalloc
from typing import Any, AsyncIterator, Iterator

import pytest

from fastbreaker import CircuitBreaker, CircuitOpenError, FastbreakerError, ManualClock, registry

from conftest import Recorder


class Boom(Exception):
    pass


def fail() -> None:
    raise Boom("down")


def trip(b: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            b.call(fail)


def test_states_and_transitions(recorder: Recorder) -> None:
    clock = ManualClock()
    b = CircuitBreaker(
        "t", failure_threshold=3, wait_duration=0.05, listeners=[recorder], clock=clock
    )
    assert b.state == "closed" and b.retry_after == 0.0
    trip(b, 2)
    assert b.state == "closed"
    trip(b, 1)
    assert b.state == "open"
    assert b.retry_after == 0.05
    clock.advance(0.01)
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: 1)
    err = info.value
    assert isinstance(err, FastbreakerError)
    assert (err.name, err.state) == ("t", "open")
    assert err.retry_after == pytest.approx(0.04)
    assert "retry after" in str(err)
    clock.advance(0.04)
    assert b.call(lambda: 42) == 42
    assert b.state == "closed"
    assert ("state", "t", "closed", "open") in recorder.events
    assert ("state", "t", "open", "half_open") in recorder.events
    assert ("state", "t", "half_open", "closed") in recorder.events
    assert ("failure", "t", "Boom") in recorder.events
    assert ("rejection", "t", "CircuitOpenError") in recorder.events
    m = b.metrics()
    assert m["failed"] == 3 and m["rejected"] == 1 and m["trips"] == 1 and m["succeeded"] == 1
    json.dumps(m)


def test_half_open_probe_failure_reopens() -> None:
    clock = ManualClock()
    b = CircuitBreaker("p", failure_threshold=1, wait_duration=0.02, clock=clock)
    trip(b, 1)
    clock.advance(0.02)
    trip(b, 1)  # the probe fails
    assert b.state == "open"


def test_manual_states() -> None:
    b = CircuitBreaker("m")
    b.force_open()
    assert b.state == "forced_open"
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: None)
    assert info.value.state == "forced_open"
    b.disable()
    assert b.state == "disabled"
    trip(b, 10)
    assert b.state == "disabled"
    b.metrics_only()
    assert b.state == "metrics_only"
    trip(b, 10)
    assert b.state == "metrics_only" and b.metrics()["failed"] == 10
    b.reset()
    assert b.state == "closed"


def test_failure_rate_on_count_window() -> None:
    b = CircuitBreaker(
        "r", failure_threshold=None, failure_rate_threshold=50, minimum_calls=4, window=4
    )
    b.call(lambda: 1)
    b.call(lambda: 1)
    trip(b, 1)
    assert b.state == "closed"
    trip(b, 1)
    assert b.state == "open"


def test_time_window_and_slow_calls() -> None:
    b = CircuitBreaker(
        "s",
        failure_threshold=None,
        slow_call_rate_threshold=100,
        slow_call_duration=0.001,
        minimum_calls=2,
        window_seconds=10.0,
        buckets=10,
        clock=(clock := ManualClock()),
    )
    b.call(clock.advance, 0.002)  # the call takes 2 ms on the breaker's clock
    b.call(clock.advance, 0.002)
    assert b.state == "open"
    assert b.metrics()["slow"] == 2
    assert b.options()["buckets"] == 10


def test_backoff_grows_the_wait() -> None:
    clock = ManualClock()
    b = CircuitBreaker(
        "bo",
        failure_threshold=1,
        wait_duration=0.02,
        backoff_factor=2.0,
        max_wait_duration=1.0,
        clock=clock,
    )
    trip(b, 1)
    clock.advance(0.02)
    trip(b, 1)  # probe fails: the wait doubles
    assert b.retry_after == 0.04


def test_success_threshold_and_half_open_max_calls() -> None:
    clock = ManualClock()
    b = CircuitBreaker(
        "h",
        failure_threshold=1,
        wait_duration=0.01,
        half_open_max_calls=2,
        success_threshold=2,
        clock=clock,
    )
    trip(b, 1)
    clock.advance(0.01)
    p1 = b.acquire()
    p2 = b.acquire()
    assert b.state == "half_open"
    with pytest.raises(CircuitOpenError) as info:
        b.acquire()
    assert info.value.state == "half_open"
    b.record(p1)
    assert b.state == "half_open"
    b.record(p2)
    assert b.state == "closed"


def test_exclude_types_and_predicates() -> None:
    b = CircuitBreaker("e", failure_threshold=1, exclude=[KeyError, lambda e: "ok" in str(e)])
    with pytest.raises(KeyError):
        b.call(lambda: {"y": 1}["x"])
    with pytest.raises(Boom):
        b.call(lambda: (_ for _ in ()).throw(Boom("ok then")))
    assert b.state == "closed"
    assert b.metrics()["ignored"] == 2
    s = CircuitBreaker("e2", failure_threshold=1, exclude=KeyError, count_excluded_as_success=True)
    with pytest.raises(KeyError):
        s.call(lambda: {"y": 1}["x"])
    assert s.metrics()["succeeded"] == 1
    one = CircuitBreaker("e3", failure_threshold=1, exclude=lambda e: isinstance(e, KeyError))
    with pytest.raises(KeyError):
        one.call(lambda: {"y": 1}["x"])
    assert one.state == "closed" and one.metrics()["ignored"] == 1


def test_base_exceptions_are_ignored() -> None:
    b = CircuitBreaker("k", failure_threshold=1)

    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        b.call(interrupt)
    assert b.state == "closed" and b.metrics()["ignored"] == 1


def test_fallback() -> None:
    b = CircuitBreaker("f", failure_threshold=1, fallback=lambda x: f"fallback {x}")

    @b
    def work(x: int) -> str:
        raise Boom

    with pytest.raises(Boom):
        work(1)
    assert work(2) == "fallback 2"


def test_decorator_keeps_metadata_and_binds_methods() -> None:
    b = CircuitBreaker("d")

    @b
    def add(x: int, y: int = 2) -> int:
        """Adds."""
        return x + y

    assert add(1) == 3
    assert add.__name__ == "add" and add.__doc__ == "Adds."
    assert inspect.signature(add) == inspect.signature(add.__wrapped__)  # type: ignore[attr-defined]
    assert list(inspect.signature(add).parameters) == ["x", "y"]
    assert not inspect.iscoroutinefunction(add)

    class K:
        @b
        def m(self, v: int) -> int:
            return v * 2

    assert K().m(4) == 8


async def test_async_decorator_call_async_and_async_with(recorder: Recorder) -> None:
    b = CircuitBreaker("a", failure_threshold=1, listeners=[recorder])

    @b
    async def get(x: int) -> int:
        await asyncio.sleep(0)
        return x

    assert inspect.iscoroutinefunction(get)
    assert get.__name__ == "get"
    assert await get(3) == 3
    assert await b.call_async(get, 4) == 4

    async def bad() -> None:
        raise Boom

    with pytest.raises(Boom):
        async with b:
            await bad()
    assert b.state == "open"
    with pytest.raises(CircuitOpenError):
        await get(1)
    b.reset()
    async with b:
        await asyncio.sleep(0)
    assert b.metrics()["succeeded"] >= 3


async def test_async_fallback_may_be_async() -> None:
    async def fb(x: int) -> str:
        return f"fb{x}"

    b = CircuitBreaker("af", fallback=fb)
    b.force_open()

    @b
    async def get(x: int) -> str:
        return "real"

    assert await get(1) == "fb1"
    assert await b.call_async(get, 2) == "fb2"


async def test_cancellation_is_ignored() -> None:
    b = CircuitBreaker("c", failure_threshold=1)

    @b
    async def slow() -> None:
        await asyncio.sleep(10)

    task = asyncio.ensure_future(slow())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.state == "closed" and b.metrics()["ignored"] == 1


def test_generators() -> None:
    b = CircuitBreaker("g", failure_threshold=1)

    @b
    def gen(n: int) -> Iterator[int]:
        yield from range(n)

    assert inspect.isgeneratorfunction(gen)
    assert list(gen(3)) == [0, 1, 2]

    @b
    def bad() -> Iterator[int]:
        yield 1
        raise Boom

    with pytest.raises(Boom):
        list(bad())
    assert b.state == "open"
    with pytest.raises(CircuitOpenError):
        list(gen(1))


async def test_async_generators() -> None:
    b = CircuitBreaker("ag", failure_threshold=1)

    @b
    async def agen(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    assert inspect.isasyncgenfunction(agen)
    assert [i async for i in agen(3)] == [0, 1, 2]
    assert b.metrics()["succeeded"] == 1


def test_with_block_nested_and_threads() -> None:
    b = CircuitBreaker("w", failure_threshold=2)
    with b:
        with b:
            pass
    assert b.metrics()["succeeded"] == 2
    with pytest.raises(Boom), b:
        raise Boom
    assert b.metrics()["failed"] == 1


def test_listener_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Bad:
        def on_failure(self, name: str, exc: BaseException) -> None:
            raise RuntimeError("listener bug")

    b = CircuitBreaker("l", listeners=[Bad()])
    with caplog.at_level(logging.ERROR, logger="fastbreaker"):
        with pytest.raises(Boom):
            b.call(fail)
    assert "listener" in caplog.text and "listener bug" in caplog.text
    rec = Recorder()
    b.add_listener(rec)
    with pytest.raises(Boom):
        b.call(fail)
    assert ("failure", "l", "Boom") in rec.events
    assert b.remove_listener(rec)


def test_listener_runs_outside_any_lock() -> None:
    seen: list[str] = []

    class Reentrant:
        def on_state_change(self, name: str, old: str, new: str) -> None:
            seen.append(b.state)  # reading the breaker from a listener must not deadlock
            b.metrics()

    b = CircuitBreaker("re", failure_threshold=1, listeners=[Reentrant()])
    trip(b, 1)
    assert seen == ["open"]


def test_threads_are_not_serialised() -> None:
    b = CircuitBreaker("th")
    work = functools.partial(time.sleep, 0.005)
    guarded = b(work)

    def run(fn: Any) -> float:
        def loop() -> None:
            for _ in range(20):
                fn()

        threads = [threading.Thread(target=loop) for _ in range(2)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - t0

    bare = run(work)
    protected = run(guarded)
    # A breaker that serialised the threads would take about twice as long (0.2 s vs 0.1 s).
    assert protected < bare * 1.5 + 0.02, (bare, protected)


def test_rejections_allocate_fresh_short_errors_and_do_not_leak() -> None:
    b = CircuitBreaker("mem")
    b.force_open()
    guarded = b(lambda: None)
    errors = []
    for _ in range(2):
        try:
            guarded()
        except CircuitOpenError as e:
            errors.append(e)
    assert errors[0] is not errors[1]
    tb = traceback.extract_tb(errors[0].__traceback__)
    assert len(tb) <= 2, tb

    def reject_many(n: int) -> None:
        for _ in range(n):
            try:
                guarded()
            except CircuitOpenError:
                pass

    reject_many(10_000)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    reject_many(200_000)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert after - before < 256 * 1024, after - before


def test_registry() -> None:
    registry.clear()
    a = registry.get_or_create("svc", failure_threshold=2)
    assert registry.get_or_create("svc") is a
    assert "svc" in registry and len(registry) == 1
    assert [x.name for x in registry] == ["svc"]
    snap = registry.snapshot()
    assert snap["svc"]["state"] == "closed"
    assert json.loads(json.dumps(snap)) == snap
    assert registry.remove("svc") and registry.get("svc") is None


def test_rejection_error_builds_the_refusal() -> None:
    class Refused(Exception):
        pass

    seen: list[tuple[str, str, float]] = []

    def make(name: str, state: str, retry_after: float) -> BaseException:
        seen.append((name, state, retry_after))
        return Refused(name)

    b = CircuitBreaker("r", rejection_error=make, wait_duration=60.0)
    b.trip()
    with pytest.raises(Refused):
        b.call(lambda: None)
    with pytest.raises(Refused):
        b(lambda: None)()
    assert [s[:2] for s in seen] == [("r", "open"), ("r", "open")]
    assert 0 < seen[0][2] <= 60.0
    assert b.metrics()["rejected"] == 2 and b.metrics()["fallbacks"] == 0
    with pytest.raises(TypeError, match="rejection_error"):
        CircuitBreaker("bad", rejection_error=3)  # type: ignore[arg-type]
    odd = CircuitBreaker("odd", rejection_error=lambda *a: "not an exception")  # type: ignore[arg-type]
    odd.force_open()
    with pytest.raises(TypeError):
        odd.call(lambda: None)


pickled_breaker = CircuitBreaker("pickled")


@pickled_breaker
def pickled_function(x: int) -> int:
    return x + 1


def test_decorated_functions_pickle_by_reference() -> None:
    import pickle

    again = pickle.loads(pickle.dumps(pickled_function))
    assert again is pickled_function and again(1) == 2


def test_listener_hooks_are_looked_up_when_added() -> None:
    events: list[str] = []

    class OnlyRejections:
        def on_rejection(self, name: str, exc: BaseException) -> None:
            events.append(f"rejected {name}")

    b = CircuitBreaker("hooks", failure_threshold=1)
    partial = OnlyRejections()
    b.add_listener(partial)
    with pytest.raises(Boom):
        b.call(fail)  # a failure and a transition: this listener has neither hook
    with pytest.raises(CircuitOpenError):
        b.call(lambda: None)
    assert events == ["rejected hooks"]
    partial.on_state_change = lambda *a: events.append("late hook")  # type: ignore[attr-defined]
    b.reset()
    assert events == ["rejected hooks"], "hooks are bound when the listener is added"
    assert b.remove_listener(partial) and not b.remove_listener(partial)
    b.trip()
    with pytest.raises(CircuitOpenError):
        b.call(lambda: None)
    assert events == ["rejected hooks"] and b.listeners == []


def test_decorating_in_a_loop_does_not_leak() -> None:
    import gc
    import tracemalloc

    b = CircuitBreaker("wrap-loop")

    def f() -> int:
        return 1

    def wrap_many() -> None:
        for _ in range(20_000):
            b(f)

    wrap_many()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        wrap_many()
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    # pyo3 0.28 leaked each native wrapper's __dict__ (128 B each: 2.5 MB here).
    assert growth < 64 * 1024, f"{growth} bytes for 20k wrappers"


def test_cycles_through_a_breaker_are_collected() -> None:
    import gc
    import weakref

    class Service:
        def __init__(self) -> None:
            self.breaker = CircuitBreaker("svc", fallback=self.cached, listeners=[self])
            self.fetch = self.breaker(self.cached)

        def cached(self) -> str:
            return "cached"

        def on_state_change(self, name: str, old: str, new: str) -> None:
            pass

    s = Service()
    assert s.fetch() == "cached"
    ref = weakref.ref(s)
    del s
    gc.collect()
    assert ref() is None, "service -> breaker -> fallback/listener -> service was not collected"
