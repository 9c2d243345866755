"""retry(): backoff from the core, retry_after floors, time budget, hooks and validation."""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any

import pytest

from fastbreaker import CircuitBreaker, CircuitOpenError, RateLimitExceeded
from fastbreaker._native import Backoff
from fastbreaker.retry import retry


class FakeTime:
    """A manual monotonic clock whose sleeps advance it and are recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def hooks(self) -> dict[str, Any]:
        return {"sleep": self.sleep, "async_sleep": self.async_sleep, "clock": self.clock}


class Flaky:
    """Raises the given errors in turn, then returns "ok"; counts calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def notes(exc: BaseException) -> list[str]:
    return list(getattr(exc, "__notes__", []))


@pytest.fixture
def ft() -> FakeTime:
    return FakeTime()


def test_success_first_time_does_not_sleep(ft: FakeTime) -> None:
    flaky = Flaky()
    assert retry(**ft.hooks())(flaky)() == "ok"
    assert flaky.calls == 1
    assert ft.sleeps == []


def test_waits_grow_exponentially_and_are_capped(ft: FakeTime) -> None:
    flaky = Flaky(*[OSError(i) for i in range(5)])
    f = retry(attempts=6, base_delay=1.0, max_delay=5.0, multiplier=2.0, jitter=0.0, **ft.hooks())(
        flaky
    )
    assert f() == "ok"
    assert flaky.calls == 6
    assert ft.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_jittered_waits_are_the_core_backoff_with_a_nonce_per_sequence_and_attempt(
    ft: FakeTime,
) -> None:
    deco = retry(attempts=3, base_delay=1.0, jitter=0.5, seed=11, **ft.hooks())
    f = deco(Flaky(OSError(), OSError()))
    g = deco(Flaky(OSError(), OSError()))
    f()
    g()
    reference = Backoff(1.0, 60.0, 2.0, 0.5, 11)
    # Nonce = sequence << 32 | attempt (attempt counted from 1).
    expected = [reference.delay(a, n << 32 | (a + 1)) for n in (0, 1) for a in (0, 1)]
    assert ft.sleeps == expected
    assert all(0.5 * 2**a <= w <= 2**a for w, a in zip(ft.sleeps, [0, 1, 0, 1]))
    assert ft.sleeps[0] != ft.sleeps[2]  # two sequences do not wait in lockstep
    # ... and within one sequence each wait has its own jitter draw.
    assert ft.sleeps[1] / 2 != ft.sleeps[0]


def test_a_seeded_run_repeats() -> None:
    def run() -> list[float]:
        ft = FakeTime()
        deco = retry(attempts=4, base_delay=0.5, jitter=1.0, seed=3, **ft.hooks())
        for _ in range(3):
            deco(Flaky(OSError(), OSError(), OSError()))()
        return ft.sleeps

    first = run()
    assert len(first) == 9
    assert first == run()


def test_gives_up_after_attempts_with_the_last_error_and_a_note(ft: FakeTime) -> None:
    last = ConnectionError("third")
    flaky = Flaky(ConnectionError("first"), ConnectionError("second"), last)
    with pytest.raises(ConnectionError) as info:
        retry(attempts=3, **ft.hooks())(flaky)()
    assert info.value is last
    assert flaky.calls == 3
    assert len(ft.sleeps) == 2
    assert notes(last) == ["fastbreaker.retry: gave up after 3 attempt(s)"]


def test_attempts_one_means_no_retry(ft: FakeTime) -> None:
    flaky = Flaky(OSError())
    with pytest.raises(OSError):
        retry(attempts=1, **ft.hooks())(flaky)()
    assert flaky.calls == 1
    assert ft.sleeps == []


def test_errors_not_in_retry_on_propagate_at_once_without_a_note(ft: FakeTime) -> None:
    error = KeyError("k")
    flaky = Flaky(error)
    with pytest.raises(KeyError) as info:
        retry(retry_on=OSError, **ft.hooks())(flaky)()
    assert info.value is error
    assert flaky.calls == 1
    assert notes(error) == []


def test_retry_on_predicates_and_mixtures(ft: FakeTime) -> None:
    def transient(exc: BaseException) -> bool:
        return getattr(exc, "status", 0) >= 500

    class HTTPError(Exception):
        def __init__(self, status: int) -> None:
            super().__init__(status)
            self.status = status

    flaky = Flaky(HTTPError(503), TimeoutError(), HTTPError(404))
    f = retry(attempts=5, retry_on=[TimeoutError, transient], **ft.hooks())(flaky)
    with pytest.raises(HTTPError, match="404"):
        f()
    assert flaky.calls == 3
    assert retry(retry_on=transient, **ft.hooks())(Flaky(HTTPError(500)))() == "ok"


def test_base_exceptions_are_never_retried(ft: FakeTime) -> None:
    flaky = Flaky(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        retry(**ft.hooks())(flaky)()
    assert flaky.calls == 1


@pytest.mark.parametrize(
    "error",
    [CircuitOpenError("svc", "open", 7.5), RateLimitExceeded(7.5, 1)],
    ids=["CircuitOpenError", "RateLimitExceeded"],
)
def test_waits_at_least_retry_after(ft: FakeTime, error: Exception) -> None:
    flaky = Flaky(error)
    assert retry(base_delay=1.0, max_delay=2.0, jitter=0.0, **ft.hooks())(flaky)() == "ok"
    assert ft.sleeps == [7.5]


def test_a_short_retry_after_does_not_shorten_the_backoff(ft: FakeTime) -> None:
    flaky = Flaky(OSError(), CircuitOpenError("svc", "open", 0.1))
    retry(base_delay=1.0, jitter=0.0, **ft.hooks())(flaky)()
    assert ft.sleeps == [1.0, 2.0]


def test_gives_up_at_once_when_the_budget_cannot_cover_the_next_wait(ft: FakeTime) -> None:
    calls = 0

    def slow() -> None:
        nonlocal calls
        calls += 1
        ft.now += 1.5  # each call takes 1.5 s
        raise OSError(calls)

    f = retry(attempts=10, base_delay=1.0, jitter=0.0, timeout=10.0, **ft.hooks())(slow)
    with pytest.raises(OSError) as info:
        f()
    # t=1.5 wait 1 -> t=4 wait 2 -> t=7.5: the next wait (4 s) ends past t=10
    assert calls == 3
    assert ft.sleeps == [1.0, 2.0]
    assert "gave up after 3 attempt(s): the next wait (4.000 s) exceeds" in notes(info.value)[0]
    assert "remaining budget (2.500 s of timeout=10.0)" in notes(info.value)[0]


def test_retry_after_longer_than_the_budget_gives_up_at_once(ft: FakeTime) -> None:
    error = CircuitOpenError("svc", "open", 30.0)
    flaky = Flaky(error)
    with pytest.raises(CircuitOpenError) as info:
        retry(timeout=5.0, **ft.hooks())(flaky)()
    assert info.value is error
    assert flaky.calls == 1
    assert ft.sleeps == []


def test_the_budget_restarts_with_each_call(ft: FakeTime) -> None:
    f = retry(attempts=2, base_delay=3.0, jitter=0.0, timeout=4.0, **ft.hooks())
    assert f(Flaky(OSError()))() == "ok"
    assert f(Flaky(OSError()))() == "ok"
    assert ft.sleeps == [3.0, 3.0]


async def test_async_functions_are_retried_with_async_sleep(ft: FakeTime) -> None:
    calls = 0

    async def fetch(x: int) -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TimeoutError
        return x * 2

    f = retry(attempts=3, base_delay=0.5, jitter=0.0, **ft.hooks())(fetch)
    assert inspect.iscoroutinefunction(f)
    assert await f(21) == 42
    assert ft.sleeps == [0.5, 1.0]


async def test_async_gives_up_with_the_last_error(ft: FakeTime) -> None:
    error = RateLimitExceeded(100.0, 1)

    async def fetch() -> None:
        raise error

    with pytest.raises(RateLimitExceeded) as info:
        await retry(timeout=50.0, **ft.hooks())(fetch)()
    assert info.value is error
    assert "gave up after 1 attempt(s)" in notes(error)[0]


def test_default_sleep_is_time_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    assert retry(base_delay=0.25, jitter=0.0)(Flaky(OSError()))() == "ok"
    assert slept == [0.25]


async def test_default_async_sleep_is_asyncio_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError
        return "ok"

    assert await retry(base_delay=0.25, jitter=0.0)(fetch)() == "ok"
    assert slept == [0.25]


def test_wrapper_keeps_the_function_metadata(ft: FakeTime) -> None:
    def original(a: int) -> int:
        """Doc."""
        return a

    f = retry(**ft.hooks())(original)
    assert f.__name__ == "original"
    assert f.__doc__ == "Doc."
    assert f.__wrapped__ is original  # type: ignore[attr-defined]


def test_with_a_breaker_the_wait_covers_the_open_wait(ft: FakeTime) -> None:
    breaker = CircuitBreaker("retry-open", failure_threshold=1, wait_duration=30.0)
    calls = 0

    @retry(attempts=2, base_delay=0.1, **ft.hooks())
    @breaker
    def call() -> None:
        nonlocal calls
        calls += 1

    breaker.trip()
    with pytest.raises(CircuitOpenError):
        call()
    assert calls == 0
    assert len(ft.sleeps) == 1
    assert 20.0 < ft.sleeps[0] <= 30.0  # the breaker's retry_after, read on a real clock


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"attempts": 0}, ValueError, r"attempts must be an int >= 1, got 0 \(int\)"),
        ({"attempts": 2.0}, TypeError, r"attempts must be an int >= 1, got 2.0 \(float\)"),
        ({"attempts": True}, TypeError, r"attempts must be an int >= 1, got True \(bool\)"),
        ({"attempts": print}, TypeError, r"write @retry\(\), not @retry"),
        ({"base_delay": 0}, ValueError, r"base_delay must be .*got 0 \(int\)"),
        ({"base_delay": "1"}, TypeError, r"base_delay must be a number, got '1' \(str\)"),
        ({"max_delay": 0.5}, ValueError, r"max_delay must be at least base_delay, got 0.5"),
        ({"multiplier": 0.5}, ValueError, r"multiplier must be .*got 0.5"),
        ({"jitter": 1.5}, ValueError, r"jitter must be a fraction .*got 1.5"),
        ({"seed": -1}, ValueError, r"seed must be .*got -1"),
        ({"timeout": 0}, ValueError, r"timeout must be None or a finite .*got 0 \(int\)"),
        ({"timeout": float("inf")}, ValueError, r"timeout must be .*got inf \(float\)"),
        ({"timeout": "5"}, TypeError, r"timeout must be None or a number .*got '5' \(str\)"),
        ({"retry_on": "OSError"}, TypeError, r"retry_on must be .*got 'OSError' \(str\)"),
        ({"retry_on": int}, TypeError, r"retry_on must be Exception subclasses.*int"),
        ({"retry_on": KeyboardInterrupt}, TypeError, r"retry_on must be Exception subclasses"),
        ({"retry_on": ()}, ValueError, r"retry_on must be .*got \(\) \(tuple\)"),
        ({"retry_on": [OSError, 3]}, TypeError, r"retry_on must be .*got 3 \(int\)"),
        ({"sleep": 1}, TypeError, r"sleep must be callable or None, got 1 \(int\)"),
        ({"async_sleep": 1}, TypeError, r"async_sleep must be callable or None"),
        ({"clock": "now"}, TypeError, r"clock must be callable or None, got 'now'"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        retry(**kwargs)


def test_generators_and_non_callables_are_refused() -> None:
    def gen() -> Any:
        yield 1

    with pytest.raises(TypeError, match="func must be a function or coroutine function"):
        retry()(gen)
    with pytest.raises(TypeError, match="func must be callable, got 3"):
        retry()(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [CircuitOpenError("svc", "open", float("inf")), RateLimitExceeded(float("inf"), 1)],
    ids=["CircuitOpenError", "RateLimitExceeded"],
)
def test_an_endless_retry_after_gives_up_at_once(ft: FakeTime, error: Exception) -> None:
    flaky = Flaky(error)
    with pytest.raises(type(error)) as info:
        retry(**ft.hooks())(flaky)()  # no timeout: only the infinite wait can stop it
    assert info.value is error
    assert (flaky.calls, ft.sleeps) == (1, [])
    assert notes(error) == ["fastbreaker.retry: gave up after 1 attempt(s): retry_after=inf"]


async def test_cancellation_is_never_retried_and_interrupts_the_backoff(ft: FakeTime) -> None:
    calls = 0

    async def cancelled() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await retry(retry_on=lambda e: True, **ft.hooks())(cancelled)()  # matches anything
    assert (calls, ft.sleeps) == (1, [])

    sleeping = asyncio.Event()

    async def endless_sleep(seconds: float) -> None:
        assert not sleeping.is_set(), "retried after the cancellation"
        sleeping.set()
        await asyncio.Event().wait()

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise OSError("down")

    f = retry(attempts=5, async_sleep=endless_sleep, clock=ft.clock)(failing)
    task = asyncio.ensure_future(f())
    await sleeping.wait()  # the first call failed; the wrapper is in its backoff sleep
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 2  # one call each: the cancelled sleep was not followed by a retry
