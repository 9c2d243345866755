"""fastbreaker.compat.circuitbreaker: the API of circuitbreaker 2.x on the native core.

Sequences compared step by step with the real package are in test_circuitbreaker_parity.py;
this file covers the rest of the surface, the mapping onto the native breaker, bad
arguments, and the documented differences.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import logging
import pickle
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Generator, Iterator
from unittest import mock

import circuitbreaker as real
import pytest

from fastbreaker import CircuitOpenError, FastbreakerError
from fastbreaker.compat.circuitbreaker import (
    STATE_CLOSED,
    STATE_HALF_OPEN,
    STATE_OPEN,
    CircuitBreaker,
    CircuitBreakerError,
    CircuitBreakerMonitor,
    build_failure_predicate,
    circuit,
    in_exception_list,
)


@pytest.fixture(autouse=True)
def isolated_monitor() -> Iterator[None]:
    """The monitor is process-wide: every test starts and ends with it empty."""
    saved = dict(CircuitBreakerMonitor.circuit_breakers)
    saved_real = dict(real.CircuitBreakerMonitor.circuit_breakers)
    CircuitBreakerMonitor.clear()
    real.CircuitBreakerMonitor.circuit_breakers.clear()
    yield
    CircuitBreakerMonitor.clear()
    CircuitBreakerMonitor.circuit_breakers.update(saved)
    real.CircuitBreakerMonitor.circuit_breakers.clear()
    real.CircuitBreakerMonitor.circuit_breakers.update(saved_real)


class Down(OSError):
    pass


def fail() -> None:
    raise Down("down")


def trip(func: Any, times: int) -> None:
    for _ in range(times):
        with pytest.raises(Down):
            func()


# ----- construction and the native mapping -----


def test_bare_decorator_defaults_and_native_options() -> None:
    @circuit
    def fetch() -> None:
        """Fetches."""
        fail()

    breaker = CircuitBreakerMonitor.get(fetch.__qualname__)
    assert isinstance(breaker, CircuitBreaker)
    assert breaker.name == fetch.__qualname__ == str(breaker)
    assert breaker.state == STATE_CLOSED and breaker.closed and not breaker.opened
    assert breaker.fallback_function is None
    options = breaker.native.options()
    assert breaker.native.name == breaker.name
    assert options["failure_threshold"] == 5
    assert options["wait_duration"] == 30.0
    assert options["backoff_factor"] == 1.0
    assert options["jitter"] == 0.0
    assert options["success_threshold"] == 1
    assert options["half_open_max_calls"] == 1
    assert options["count_excluded_as_success"] is True
    trip(fetch, 4)
    assert breaker.closed and breaker.failure_count == 4
    trip(fetch, 1)
    assert breaker.opened and breaker.state == STATE_OPEN and breaker.failure_count == 5
    with pytest.raises(CircuitBreakerError):
        fetch()
    assert breaker.native.metrics()["failed"] == 5


def test_arguments_map_onto_the_native_breaker() -> None:
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=0.25, name="db")
    options = breaker.native.options()
    assert (options["failure_threshold"], options["wait_duration"]) == (2, 0.25)
    assert breaker.native.name == "db"


def test_registered_when_it_decorates_not_before() -> None:
    for mod in (real, __import__("fastbreaker.compat.circuitbreaker", fromlist=["_"])):
        breaker = mod.CircuitBreaker(name="late")
        assert mod.CircuitBreakerMonitor.get("late") is None
        breaker(fail)
        assert mod.CircuitBreakerMonitor.get("late") is breaker


def test_unnamed_circuit_takes_the_first_function_name() -> None:
    breaker = CircuitBreaker()
    assert breaker.name is None and str(breaker) == "unnamed_CircuitBreaker"

    def first() -> int:
        return 1

    def second() -> int:
        return 2

    f, g = breaker(first), breaker(second)
    assert breaker.name == first.__qualname__ == breaker.native.name
    assert CircuitBreakerMonitor.get(first.__qualname__) is breaker
    assert f() == 1 and g() == 2
    assert breaker.native.metrics()["succeeded"] == 2  # one native breaker for both


def test_state_gathered_before_the_first_decoration_is_kept() -> None:
    breaker = CircuitBreaker(failure_threshold=3)
    with pytest.raises(Down), breaker:
        fail()
    native = breaker.native
    guarded = breaker(fail)
    assert breaker.native is native and native.name == "unnamed_CircuitBreaker"
    assert breaker.failure_count == 1
    trip(guarded, 2)
    assert breaker.opened


BAD_ARGUMENTS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"failure_threshold": "3"}, TypeError, r"failure_threshold must be an int >= 1, got '3'"),
    ({"failure_threshold": 2.5}, TypeError, r"failure_threshold .* got 2\.5 \(float\)"),
    ({"failure_threshold": True}, TypeError, r"failure_threshold .* got True \(bool\)"),
    ({"failure_threshold": -1}, ValueError, r"failure_threshold must be an int >= 1, got -1"),
    ({"recovery_timeout": -1}, ValueError, r"recovery_timeout must be .* got -1 \(int\)"),
    ({"recovery_timeout": "30"}, TypeError, r"recovery_timeout must be .* got '30' \(str\)"),
    ({"recovery_timeout": float("inf")}, ValueError, r"recovery_timeout .* got inf"),
    ({"recovery_timeout": float("nan")}, ValueError, r"recovery_timeout .* got nan"),
    ({"recovery_timeout": 1e10}, ValueError, r"recovery_timeout .* got 10000000000\.0"),
    ({"name": 42}, TypeError, r"name must be a str, got 42 \(int\)"),
    ({"fallback_function": 42}, TypeError, r"fallback_function must be callable, got 42"),
    ({"expected_exception": "OSError"}, ValueError, r"cannot be a string.*'OSError'"),
    ({"expected_exception": 42}, ValueError, r"does not look like a predicate.*42 \(int\)"),
    ({"expected_exception": int}, ValueError, r"does not look like a predicate.*int"),
    ({"expected_exception": [OSError, "x"]}, TypeError, r"must be exception types, got 'x'"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_ARGUMENTS)
def test_bad_arguments_raise_clear_errors(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        CircuitBreaker(**kwargs)
    with pytest.raises(error, match=match):
        circuit(**kwargs)


def test_falsy_arguments_take_the_class_attributes() -> None:
    breaker = CircuitBreaker(failure_threshold=0, recovery_timeout=0, expected_exception=())
    options = breaker.native.options()
    assert (options["failure_threshold"], options["wait_duration"]) == (5, 30.0)
    assert breaker.is_failure(KeyError, KeyError())


def test_bad_class_attributes_are_named() -> None:
    class NoThreshold(CircuitBreaker):
        FAILURE_THRESHOLD = 0

    class WordyTimeout(CircuitBreaker):
        RECOVERY_TIMEOUT = "30"  # type: ignore[assignment]

    with pytest.raises(ValueError, match="FAILURE_THRESHOLD must be an int >= 1, got 0"):
        NoThreshold()
    with pytest.raises(TypeError, match="RECOVERY_TIMEOUT must be a number"):
        WordyTimeout()


def test_decorating_a_non_callable_raises() -> None:
    with pytest.raises(TypeError, match=r"decorates callables, got 42 \(int\)"):
        CircuitBreaker()(42)  # type: ignore[type-var]


# ----- expected exceptions, subclasses, fallbacks -----


def test_predicate_gets_type_and_value_and_only_exceptions() -> None:
    seen: list[tuple[type[BaseException], BaseException]] = []

    def is_rate_limited(thrown_type: type[BaseException], thrown: BaseException) -> bool:
        seen.append((thrown_type, thrown))
        return bool(getattr(thrown, "status", 0) == 429)

    class HTTPError(Exception):
        def __init__(self, status: int) -> None:
            super().__init__(status)
            self.status = status

    @circuit(failure_threshold=2, expected_exception=is_rate_limited)
    def get(status: int) -> None:
        if status == -1:
            raise KeyboardInterrupt
        raise HTTPError(status)

    breaker = CircuitBreakerMonitor.get(get.__qualname__)
    assert breaker is not None
    with pytest.raises(HTTPError):
        get(429)
    assert breaker.failure_count == 1 and seen[0][0] is HTTPError
    with pytest.raises(HTTPError):
        get(500)  # not a failure: counts as a success
    assert breaker.failure_count == 0 and breaker.last_failure is None
    with pytest.raises(KeyboardInterrupt):
        get(-1)
    assert len(seen) == 2  # BaseExceptions never reach the predicate


def test_a_raising_predicate_is_logged_and_counts_as_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(thrown_type: type[BaseException], thrown: BaseException) -> bool:
        raise RuntimeError("bug in the predicate")

    guarded = circuit(failure_threshold=3, expected_exception=broken)(fail)
    with caplog.at_level(logging.ERROR, logger="fastbreaker"), pytest.raises(Down):
        guarded()
    assert "bug in the predicate" in caplog.text or any(
        r.exc_info and "bug in the predicate" in str(r.exc_info[1]) for r in caplog.records
    )
    assert CircuitBreakerMonitor.get(fail.__qualname__).failure_count == 1  # type: ignore[union-attr]


def test_expected_exception_is_inherited_by_subclasses_of_subclasses() -> None:
    # Intended difference: circuitbreaker falls back to Exception for the grandchild.
    class OnlyOSErrors(CircuitBreaker):
        EXPECTED_EXCEPTION = OSError

    class Quick(OnlyOSErrors):
        FAILURE_THRESHOLD = 1

    breaker = Quick()
    assert not breaker.is_failure(KeyError, KeyError())
    assert breaker.is_failure(Down, Down())


def test_predicate_as_class_attribute_is_not_bound() -> None:
    def only_down(thrown_type: type[BaseException], thrown: BaseException) -> bool:
        return issubclass(thrown_type, Down)

    for mod in (real, __import__("fastbreaker.compat.circuitbreaker", fromlist=["_"])):

        class Picky(mod.CircuitBreaker):  # type: ignore[name-defined, misc]
            EXPECTED_EXCEPTION = only_down
            FAILURE_THRESHOLD = 1

        guarded = Picky()(fail)
        with pytest.raises(Down):
            guarded()
        assert mod.CircuitBreakerMonitor.get(fail.__qualname__).opened


def test_fallback_class_attribute_binds_like_a_method_as_in_circuitbreaker() -> None:
    def plain(*args: Any) -> tuple[Any, ...]:
        return args

    for mod in (real, __import__("fastbreaker.compat.circuitbreaker", fromlist=["_"])):

        class WithFallback(mod.CircuitBreaker):  # type: ignore[name-defined, misc]
            FAILURE_THRESHOLD = 1
            FALLBACK_FUNCTION = plain

        breaker = WithFallback()
        guarded = breaker(fail)
        with pytest.raises(Down):
            guarded()
        assert guarded("x") == (breaker, "x")  # self is passed, as circuitbreaker does


def test_fallback_gets_the_call_arguments_including_self() -> None:
    calls: list[tuple[Any, ...]] = []

    def answer(*args: Any, **kwargs: Any) -> str:
        calls.append((args, kwargs))
        return "cached"

    class Client:
        @circuit(failure_threshold=1, fallback_function=answer, name="client")
        def get(self, key: str, *, fresh: bool = False) -> str:
            raise Down(key)

    client = Client()
    with pytest.raises(Down):
        client.get("a")
    assert client.get("b", fresh=True) == "cached"
    assert calls == [((client, "b"), {"fresh": True})]


# ----- states, timing properties, the error -----


def test_open_remaining_and_open_until() -> None:
    guarded = circuit(failure_threshold=1, recovery_timeout=60)(fail)
    breaker = CircuitBreakerMonitor.get(fail.__qualname__)
    assert breaker is not None
    assert breaker.open_remaining == 0  # intended difference: 0 unless open
    with pytest.raises(Down):
        guarded()
    assert 55 <= breaker.open_remaining <= 60
    until = breaker.open_until
    assert until.tzinfo is timezone.utc
    now = datetime.now(timezone.utc)
    assert now + timedelta(seconds=50) <= until <= now + timedelta(seconds=61)
    breaker.reset()
    assert breaker.closed and breaker.open_remaining == 0 and breaker.failure_count == 0
    assert breaker.last_failure is None


def test_error_carries_the_circuit() -> None:
    guarded = circuit(failure_threshold=1, recovery_timeout=60, name="api")(fail)
    with pytest.raises(Down):
        guarded()
    with pytest.raises(CircuitBreakerError) as info:
        guarded()
    error = info.value
    breaker = CircuitBreakerMonitor.get("api")
    assert error._circuit_breaker is breaker and error.circuit_breaker is breaker
    assert isinstance(error, CircuitOpenError) and isinstance(error, FastbreakerError)
    assert error.args == ()
    assert error.name == "api" and error.state == STATE_OPEN and 55 < error.retry_after <= 60
    assert str(error).startswith('Circuit "api" OPEN until ')
    assert "(1 failures, " in str(error) and "(last_failure: Down('down'))" in str(error)
    assert breaker is not None
    assert CircuitBreakerError(breaker, "extra").args == ("extra",)
    with pytest.raises(TypeError):
        CircuitBreakerError(breaker, extra=1)


def test_one_trial_at_a_time_while_half_open() -> None:
    # Intended difference: circuitbreaker lets every concurrent call through when half-open.
    breaker = CircuitBreaker(failure_threshold=1, name="stream")

    @breaker
    def stream(fail_it: bool) -> Iterator[int]:
        yield 1
        if fail_it:
            raise Down("down")
        yield 2

    plain = breaker(lambda: "plain")
    with pytest.raises(Down):
        list(stream(True))
    assert breaker.opened
    breaker.native.half_open()  # what the end of the recovery timeout does
    assert breaker.state == STATE_HALF_OPEN and not breaker.opened
    trial = stream(False)
    assert next(trial) == 1  # the trial is in flight
    with pytest.raises(CircuitBreakerError):
        plain()
    assert breaker.state == STATE_HALF_OPEN
    assert list(trial) == [2]
    assert breaker.closed and plain() == "plain"


def test_a_hung_trial_does_not_wedge_the_circuit() -> None:
    # Real clock: the trial holds its slot; after another recovery timeout a new one may go.
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=0.5, name="hung")

    @breaker
    def stream() -> Generator[int, None, None]:
        yield 1

    guarded = breaker(fail)
    with pytest.raises(Down):
        guarded()
    deadline = time.monotonic() + 30
    while breaker.state != STATE_HALF_OPEN and time.monotonic() < deadline:
        time.sleep(0.01)
    hung = stream()
    assert next(hung) == 1  # the trial, never finished
    with pytest.raises(CircuitBreakerError):
        list(stream())
    admitted: list[int] = []
    while not admitted and time.monotonic() < deadline:
        time.sleep(0.02)
        try:
            admitted = list(stream())
        except CircuitBreakerError:
            pass
    assert admitted == [1] and breaker.closed
    hung.close()


def test_base_exceptions_are_neither_success_nor_failure() -> None:
    # Intended difference: circuitbreaker counts them as successes.
    breaker = CircuitBreaker(failure_threshold=2, name="b")

    @breaker
    def work(exc: BaseException | None) -> int:
        if exc is not None:
            raise exc
        return 1

    @breaker
    def items() -> Generator[int, None, None]:
        yield 1
        yield 2

    with pytest.raises(Down):
        work(Down())
    with pytest.raises(KeyboardInterrupt):
        work(KeyboardInterrupt())
    assert breaker.failure_count == 1 and repr(breaker.last_failure) == "Down()"
    with pytest.raises(Down):
        work(Down())
    breaker.native.half_open()
    trial = items()
    assert next(trial) == 1
    trial.close()  # GeneratorExit: the trial slot is handed back
    assert breaker.state == STATE_HALF_OPEN and breaker.failure_count == 2
    assert work(None) == 1 and breaker.closed


# ----- the monitor -----


def test_monitor() -> None:
    a = circuit(failure_threshold=1, name="a")(fail)
    circuit(name="b")(lambda: None)
    assert sorted(str(c) for c in CircuitBreakerMonitor.get_circuits()) == ["a", "b"]
    assert CircuitBreakerMonitor.all_closed()
    assert sorted(c.name for c in CircuitBreakerMonitor.get_closed()) == ["a", "b"]  # type: ignore[type-var]
    with pytest.raises(Down):
        a()
    assert [c.name for c in CircuitBreakerMonitor.get_open()] == ["a"]
    assert [c.name for c in CircuitBreakerMonitor.get_closed()] == ["b"]
    assert not CircuitBreakerMonitor.all_closed()
    assert CircuitBreakerMonitor.get("missing") is None
    replacement = CircuitBreaker(name="a")
    replacement(documented)
    assert CircuitBreakerMonitor.get("a") is replacement  # the last one under a name wins
    assert CircuitBreakerMonitor.all_closed()
    CircuitBreakerMonitor.clear()
    assert list(CircuitBreakerMonitor.get_circuits()) == []


def test_monitor_starts_empty_in_every_test() -> None:
    assert list(CircuitBreakerMonitor.get_circuits()) == []
    circuit(name="leak?")(fail)
    assert CircuitBreakerMonitor.get("leak?") is not None


def test_monitor_starts_empty_in_the_next_test_too() -> None:
    assert CircuitBreakerMonitor.get("leak?") is None


# ----- call(), with, and the other shapes -----


def test_call_and_with_record_but_never_refuse() -> None:
    breaker = CircuitBreaker(failure_threshold=2, name="manual")
    guarded = breaker(fail)
    trip(guarded, 2)
    assert breaker.opened
    with pytest.raises(CircuitBreakerError):
        guarded()
    assert breaker.call(lambda x: x + 1, 1) == 2  # runs although open, and closes it
    assert breaker.closed and breaker.failure_count == 0
    with pytest.raises(Down), breaker:
        fail()
    with pytest.raises(Down):
        breaker.call(fail)
    assert breaker.opened and breaker.failure_count == 2
    with pytest.raises(Down), breaker:
        fail()
    assert breaker.opened and breaker.failure_count == 3
    breaker.__enter__()
    assert breaker.__exit__(None, None, None) is False
    assert breaker.closed


async def test_call_variants_for_generators_and_async() -> None:
    breaker = CircuitBreaker(failure_threshold=1, name="variants")

    def numbers(n: int) -> Iterator[int]:
        yield from range(n)

    async def double(n: int) -> int:
        await asyncio.sleep(0)
        return 2 * n

    async def anumbers(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async def broken() -> None:
        raise Down("down")

    assert list(breaker.call_generator(numbers, 3)) == [0, 1, 2]
    assert await breaker.call_async(double, 4) == 8
    assert [i async for i in breaker.call_async_generator(anumbers, 2)] == [0, 1]
    with pytest.raises(Down):
        await breaker.call_async(broken)
    assert breaker.opened
    assert await breaker.call_async(double, 1) == 2
    assert breaker.closed


async def test_coroutines_on_an_event_loop() -> None:
    async def cached(key: str) -> str:
        return f"cached {key}"

    @circuit(failure_threshold=1, fallback_function=cached, name="llm")
    async def complete(key: str) -> str:
        await asyncio.sleep(0)
        if key == "bad":
            raise Down(key)
        return key.upper()

    @circuit(failure_threshold=1, fallback_function=lambda key: f"sync {key}", name="lenient")
    async def lenient(key: str) -> str:
        raise Down(key)

    assert inspect.iscoroutinefunction(complete) and complete.__name__ == "complete"
    assert await complete("hi") == "HI"
    with pytest.raises(Down):
        await complete("bad")
    assert await complete("hi") == "cached hi"
    with pytest.raises(Down):
        await lenient("x")
    assert await lenient("x") == "sync x"  # a plain fallback for a coroutine is allowed


async def test_cancellation_does_not_count() -> None:
    started = asyncio.Event()

    @circuit(failure_threshold=1, name="slow")
    async def slow() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.ensure_future(slow())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    breaker = CircuitBreakerMonitor.get("slow")
    assert breaker is not None and breaker.closed and breaker.failure_count == 0


async def test_async_generators_and_fallback() -> None:
    async def backup(n: int) -> AsyncIterator[str]:
        yield "backup"

    @circuit(failure_threshold=1, fallback_function=backup, name="feed")
    async def feed(n: int) -> AsyncIterator[Any]:
        for i in range(n):
            yield i
        if n == 0:
            raise Down("empty")

    assert [i async for i in feed(2)] == [0, 1]
    with pytest.raises(Down):
        [i async for i in feed(0)]
    assert [i async for i in feed(2)] == ["backup"]


class Marked:
    """A callable marked the way asyncio.iscoroutinefunction (used by circuitbreaker) sees."""

    _is_coroutine = getattr(asyncio.coroutines, "_is_coroutine", None)
    __qualname__ = "Marked"

    def __call__(self) -> Any:
        return asyncio.sleep(0, result=4)


async def test_coroutine_functions_are_recognised_as_circuitbreaker_does() -> None:
    for mod in (real, __import__("fastbreaker.compat.circuitbreaker", fromlist=["_"])):
        wrapped = mod.circuit(name="mocked")(mock.AsyncMock(return_value=3))
        assert inspect.iscoroutinefunction(wrapped)
        assert await wrapped() == 3
        marked = mod.circuit(name="marked")(Marked())
        assert inspect.iscoroutinefunction(marked)
        assert await marked() == 4


def test_generators_forward_send_and_the_return_value() -> None:
    @circuit(name="echo")
    def echo() -> Any:
        got = yield "ready"
        return f"got {got}"

    gen = echo()
    assert next(gen) == "ready"
    with pytest.raises(StopIteration) as done:
        gen.send("x")
    assert done.value.value == "got x"


# ----- the decorated function itself -----


def documented(a: int, b: str = "x") -> str:
    """Documentation."""
    return f"{a}{b}"


documented_guarded = circuit(name="documented")(documented)


@circuit(name="module_level")
def module_level(n: int) -> int:
    return n


class Service:
    @circuit(name="service.method")
    def method(self, n: int) -> tuple[Service, int]:
        return self, n


def test_wrapper_keeps_metadata_and_binds_as_a_method() -> None:
    assert documented_guarded.__name__ == "documented"
    assert documented_guarded.__doc__ == "Documentation."
    assert documented_guarded.__wrapped__ is documented  # type: ignore[attr-defined]
    assert inspect.signature(documented_guarded) == inspect.signature(documented)
    assert documented_guarded(1) == "1x"
    s = Service()
    assert s.method(3) == (s, 3)
    assert inspect.ismethod(s.method)


def test_decorated_functions_pickle_and_copy_by_name() -> None:
    # As for functions, by qualified name: the decorated object must be what the name holds.
    for obj in (module_level, Service.method):
        assert pickle.loads(pickle.dumps(obj)) is obj
        assert copy.copy(obj) is obj and copy.deepcopy(obj) is obj
    s = Service()
    assert pickle.loads(pickle.dumps(s.method)).__self__.__class__ is Service


def test_no_lock_is_held_across_the_call() -> None:
    inside = threading.Barrier(2, timeout=10)

    @circuit(name="parallel")
    def meet() -> bool:
        inside.wait()  # both threads must be inside at once, or this times out
        return True

    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(meet())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [True, True]


# ----- the public helpers -----


def test_failure_predicate_helpers() -> None:
    pred = in_exception_list(KeyError, OSError)
    assert pred(Down, Down()) and not pred(ValueError, ValueError())
    assert build_failure_predicate(OSError)(Down, Down())
    assert build_failure_predicate((KeyError,))(KeyError, KeyError())
    custom = functools.partial(lambda flag, t, v: flag, True)
    assert build_failure_predicate(custom) is custom


def test_repr_and_str() -> None:
    breaker = CircuitBreaker(name="shown")
    assert repr(breaker) == "<CircuitBreaker 'shown' state=closed>"
    assert str(breaker) == "shown"
