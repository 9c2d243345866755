"""fastbreaker.compat.circuitbreaker under concurrent calls, and what it keeps in memory.

Calls go through one circuit from many threads without a lock; the Python side keeps only the
last failure and the count of failed trials. These tests check that a storm leaves a circuit
whose state and count agree with its native breaker and that still opens and closes, that
calls do not grow memory, and that a circuit nothing refers to is freed with its last failure
(and the frames its traceback holds), as circuitbreaker's is.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
import weakref
from collections.abc import Iterator
from typing import Any, Callable

import circuitbreaker as real
import pytest

from fastbreaker.compat import circuitbreaker as compat

from conftest import run_mixed_calls


@pytest.fixture(autouse=True)
def isolated_monitors() -> Iterator[None]:
    """Both monitors are process-wide: start and end every test with them empty."""
    saved = dict(compat.CircuitBreakerMonitor.circuit_breakers)
    saved_real = dict(real.CircuitBreakerMonitor.circuit_breakers)
    compat.CircuitBreakerMonitor.clear()
    real.CircuitBreakerMonitor.circuit_breakers.clear()
    yield
    compat.CircuitBreakerMonitor.clear()
    compat.CircuitBreakerMonitor.circuit_breakers.update(saved)
    real.CircuitBreakerMonitor.circuit_breakers.clear()
    real.CircuitBreakerMonitor.circuit_breakers.update(saved_real)


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Makes the interpreter switch threads every few bytecodes, so that races happen."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def act(kind: int) -> int:
    if kind == 1:
        raise OSError("down")
    if kind == 2:
        raise KeyError("not expected")
    return kind


def drive(coro: Any) -> Any:
    """Runs a coroutine that never waits, without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine waited")


def hammer(c: compat.CircuitBreaker, threads: int = 8, calls: int = 1500) -> None:
    """Successes, expected and unexpected failures through every shape, from many threads."""
    plain = c(act)

    @c
    def items(kind: int) -> Iterator[int]:
        yield 0
        act(kind)

    @c
    async def coroutine(kind: int) -> int:
        return act(kind)

    def with_block(kind: int) -> None:
        with c:
            act(kind)

    ways: list[Callable[[int], Any]] = [
        plain,
        lambda kind: list(items(kind)),
        lambda kind: drive(coroutine(kind)),
        lambda kind: c.call(act, kind),
        with_block,
    ]
    run_mixed_calls(ways, threads, calls, (OSError, KeyError, compat.CircuitBreakerError))


@pytest.mark.parametrize("with_fallback", [False, True])
def test_a_storm_leaves_a_circuit_that_agrees_with_its_breaker_and_recovers(
    fast_switching: None, with_fallback: bool
) -> None:
    c = compat.CircuitBreaker(
        failure_threshold=3,
        recovery_timeout=0.001,
        expected_exception=OSError,
        name="storm",
        fallback_function=(lambda kind: [-1]) if with_fallback else None,
    )
    for _ in range(3):
        hammer(c, calls=1500)
        native = c.native.state
        if native == "closed":
            assert c.failure_count == c.native.metrics()["consecutive_failures"] < 3
        else:
            assert c.failure_count >= 3 and isinstance(c.last_failure, OSError)
        assert (c.last_failure is None) == (c.failure_count == 0)
    c.reset()
    assert (c.state, c.failure_count, c.last_failure) == ("closed", 0, None)
    for n in (1, 2, 3):
        with pytest.raises(OSError):
            c.call(act, 1)
        assert c.failure_count == n
    assert c.native.state == "open"
    c.native.half_open()
    assert c(act)(5) == 5 and (c.closed, c.failure_count) == (True, 0)


# ----- memory -----


def growth(step: Callable[[], Any], times: int) -> int:
    """Bytes still allocated after ``times`` steps (after a warm-up), per tracemalloc."""
    for _ in range(200):
        step()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(times):
            step()
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def test_calls_open_and_closed_do_not_grow_memory() -> None:
    c = compat.CircuitBreaker(failure_threshold=10**6, recovery_timeout=1000, name="mem")
    plain = c(act)

    @c
    def items(kind: int) -> Iterator[int]:
        yield act(kind)

    def mixed() -> None:
        for kind in (0, 1, 2):
            try:
                plain(kind)
                list(items(kind))
                c.call(act, kind)
            except (OSError, KeyError, compat.CircuitBreakerError):
                pass

    assert growth(mixed, 5_000) < 32_000
    c.native.trip()
    assert growth(mixed, 5_000) < 32_000


class Payload:
    """Something a failed call's frame refers to."""


def failing(payload: Payload) -> None:
    raise OSError("down")


@pytest.mark.parametrize("mod", [real, compat], ids=["circuitbreaker", "compat"])
@pytest.mark.parametrize("with_fallback", [False, True])
def test_a_circuit_nothing_refers_to_is_freed_with_its_last_failure(
    mod: Any, with_fallback: bool
) -> None:
    c = mod.CircuitBreaker(
        failure_threshold=1,
        expected_exception=OSError,
        name="short-lived",
        fallback_function=(lambda payload: None) if with_fallback else None,
    )
    payload = Payload()
    with pytest.raises(OSError):
        c.call(failing, payload)
    assert c.opened and c.last_failure is not None  # its traceback holds the payload
    circuit_ref, payload_ref = weakref.ref(c), weakref.ref(payload)
    del c, payload
    gc.collect()
    assert circuit_ref() is None and payload_ref() is None


def test_a_decorated_function_keeps_its_circuit() -> None:
    c = compat.CircuitBreaker(failure_threshold=1, expected_exception=OSError, name="kept")
    guarded = c(failing)
    compat.CircuitBreakerMonitor.clear()
    circuit_ref = weakref.ref(c)
    del c
    gc.collect()
    with pytest.raises(OSError):
        guarded(Payload())
    with pytest.raises(compat.CircuitBreakerError) as info:
        guarded(Payload())
    assert info.value.circuit_breaker is circuit_ref()
    assert info.value.circuit_breaker.failure_count == 1
