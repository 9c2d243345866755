"""fastbreaker.compat.pybreaker against the real pybreaker 1.4, side by side.

Most tests run the same script through both modules (the ``mod`` fixture) and assert one set of
expected results, so each assertion is evidence that both behave that way. The differential
test drives both breakers in lockstep with random operations and compares every observation.
Timeouts are either far away (1000 s) or long past (1 ms, then a sleep of 2+ ms): no race.
"""

from __future__ import annotations

import functools
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import pybreaker as real
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbreaker
import fastbreaker.compat.pybreaker as compat

MODULES: list[Any] = [real, compat]
NEVER = 1000.0  # a reset_timeout that never elapses during a test
SOON = 0.001  # one that has always elapsed after past()
UTC = timezone.utc


def past() -> None:
    """Lets a SOON timeout elapse."""
    time.sleep(0.003)


@pytest.fixture(params=MODULES, ids=["pybreaker", "compat"])
def mod(request: pytest.FixtureRequest) -> Any:
    return request.param


class Abort(BaseException):
    """Not an Exception: pybreaker still counts it as a failure."""


def ok() -> int:
    return 1


def fail() -> int:
    raise ValueError("boom")


def excluded() -> int:
    raise KeyError("k")


def teapot() -> int:
    raise OSError(418, "teapot")


def type_error() -> int:
    raise TypeError("t")


def abort() -> int:
    raise Abort()


OUTCOMES: dict[str, Callable[[], int]] = {
    "ok": ok,
    "fail": fail,
    "excluded": excluded,
    "teapot": teapot,
    "type_error": type_error,
    "abort": abort,
}


def is_teapot(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) == 418


class Log:
    """A listener (duck-typed, as pybreaker allows) that writes every event to a list."""

    def __init__(self, tag: str = "", events: list[tuple[Any, ...]] | None = None) -> None:
        self.tag = tag
        self.events: list[tuple[Any, ...]] = [] if events is None else events

    def before_call(self, cb: Any, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.events.append((self.tag, "before_call", func.__name__, args, kwargs))

    def success(self, cb: Any) -> None:
        self.events.append((self.tag, "success", cb.current_state))

    def failure(self, cb: Any, exc: BaseException) -> None:
        self.events.append((self.tag, "failure", type(exc).__name__, cb.fail_counter))

    def state_change(self, cb: Any, old: Any, new: Any) -> None:
        self.events.append((self.tag, "state_change", old and old.name, new.name))

    def take(self) -> tuple[tuple[Any, ...], ...]:
        out = tuple(self.events)
        self.events.clear()
        return out


def outcome(thunk: Callable[[], Any]) -> tuple[str, ...]:
    """What a call did: ("ok", repr(result)) or (exception name, message)."""
    try:
        return ("ok", repr(thunk()))
    except BaseException as exc:
        return (type(exc).__name__, str(exc))


def counters(b: Any) -> tuple[str, int, int]:
    return (b.current_state, b.fail_counter, b.success_counter)


def trip(b: Any, n: int) -> list[tuple[str, ...]]:
    return [outcome(lambda: b.call(fail)) for _ in range(n)]


# ----- calls, trips and exclusions -----


def test_the_call_that_reaches_fail_max_raises_circuit_breaker_error(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=3, reset_timeout=NEVER)
    assert b.call(ok) == 1
    assert trip(b, 2) == [("ValueError", "boom")] * 2
    assert counters(b) == ("closed", 2, 0)
    assert outcome(lambda: b.call(fail)) == (
        "CircuitBreakerError",
        "Failures threshold reached, circuit breaker opened",
    )
    assert counters(b) == ("open", 3, 0)
    called: list[int] = []
    assert outcome(lambda: b.call(called.append, 1)) == (
        "CircuitBreakerError",
        "Timeout not elapsed yet, circuit breaker still open",
    )
    assert called == []
    assert isinstance(b.state, mod.CircuitOpenState) and b.state.name == mod.STATE_OPEN


def test_listener_events_in_pybreakers_order(mod: Any) -> None:
    log = Log()
    b = mod.CircuitBreaker(fail_max=2, reset_timeout=NEVER, listeners=[log])
    b.call(ok)
    trip(b, 2)
    assert outcome(lambda: b.call(ok))[0] == "CircuitBreakerError"  # no listener event
    assert log.take() == (
        ("", "before_call", "ok", (), {}),
        ("", "success", "closed"),
        ("", "before_call", "fail", (), {}),
        ("", "failure", "ValueError", 1),
        ("", "before_call", "fail", (), {}),
        ("", "failure", "ValueError", 2),
        ("", "state_change", "closed", "open"),
    )


def test_the_tripping_error_keeps_the_original_as_context(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=1, reset_timeout=NEVER)
    with pytest.raises(mod.CircuitBreakerError) as info:
        b.call(fail)
    assert isinstance(info.value.__context__, ValueError)


def test_throw_new_error_on_trip_false_raises_the_original_error(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=2, reset_timeout=NEVER, throw_new_error_on_trip=False)
    assert trip(b, 2) == [("ValueError", "boom")] * 2
    assert b.current_state == "open"
    assert b.open() is False
    assert outcome(lambda: b.call(ok))[0] == "CircuitBreakerError"
    b.half_open()
    assert outcome(lambda: b.call(fail)) == ("ValueError", "boom")
    assert counters(b) == ("open", 3, 0)


def test_excluded_exceptions_count_as_success_and_reset_the_count(mod: Any) -> None:
    log = Log()
    b = mod.CircuitBreaker(
        fail_max=3, reset_timeout=NEVER, exclude=[LookupError, is_teapot], listeners=[log]
    )
    trip(b, 2)
    log.take()
    assert outcome(lambda: b.call(excluded)) == ("KeyError", "'k'")  # a LookupError
    assert counters(b) == ("closed", 0, 0)
    assert log.take() == (("", "before_call", "excluded", (), {}), ("", "success", "closed"))
    trip(b, 2)
    assert outcome(lambda: b.call(teapot)) == ("OSError", "[Errno 418] teapot")
    assert counters(b) == ("closed", 0, 0)
    assert b.excluded_exceptions == (LookupError, is_teapot)


def test_excluded_exception_in_half_open_counts_toward_closing(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=1, reset_timeout=NEVER, success_threshold=2, exclude=[KeyError])
    b.half_open()
    assert outcome(lambda: b.call(excluded))[0] == "KeyError"
    assert counters(b) == ("half-open", 0, 1)
    assert outcome(lambda: b.call(excluded))[0] == "KeyError"
    assert counters(b) == ("closed", 0, 0)


def test_exclusions_can_be_added_and_removed(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=5, reset_timeout=NEVER)
    b.add_excluded_exceptions(TypeError, is_teapot)
    b.add_excluded_exception(KeyError)
    assert b.excluded_exceptions == (TypeError, is_teapot, KeyError)
    trip(b, 1)
    outcome(lambda: b.call(type_error))
    assert b.fail_counter == 0
    b.remove_excluded_exception(TypeError)
    outcome(lambda: b.call(type_error))
    assert b.fail_counter == 1
    assert b.is_system_error(TypeError()) and not b.is_system_error(OSError(418, "x"))
    with pytest.raises(ValueError):
        b.remove_excluded_exception(TypeError)


def test_base_exceptions_are_failures(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=2, reset_timeout=NEVER)
    assert outcome(lambda: b.call(abort)) == ("Abort", "")
    assert b.fail_counter == 1
    assert outcome(lambda: b.call(abort))[0] == "CircuitBreakerError"


def test_excluded_base_exceptions_count_as_success(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=3, reset_timeout=NEVER, exclude=[Abort])
    trip(b, 2)
    assert outcome(lambda: b.call(abort)) == ("Abort", "")
    assert counters(b) == ("closed", 0, 0)


def test_an_open_error_raised_by_the_function_is_a_failure(mod: Any) -> None:
    inner = fastbreaker.CircuitBreaker("inner")
    inner.force_open()
    calls: list[int] = []

    def nested() -> int:
        calls.append(1)
        return int(inner.call(ok))

    b = mod.CircuitBreaker(fail_max=2, reset_timeout=NEVER)
    decorated = b(nested)
    assert outcome(lambda: b.call(nested))[0] == "CircuitOpenError"
    assert (calls, b.fail_counter) == ([1], 1)
    assert outcome(decorated)[0] == "CircuitBreakerError"
    assert (calls, counters(b)) == ([1, 1], ("open", 2, 0))


def test_an_overridden_is_system_error_decides(mod: Any) -> None:
    class Lenient(mod.CircuitBreaker):  # type: ignore[misc]
        def is_system_error(self, exception: BaseException) -> bool:
            return not isinstance(exception, ValueError)

    b = Lenient(fail_max=1, reset_timeout=NEVER, exclude=[TypeError])
    assert outcome(lambda: b.call(fail)) == ("ValueError", "boom")
    assert b.current_state == "closed"
    assert outcome(lambda: b.call(type_error))[0] == "CircuitBreakerError"


def test_an_overridden_call_is_used_by_the_decorator(mod: Any) -> None:
    seen: list[str] = []

    class Traced(mod.CircuitBreaker):  # type: ignore[misc]
        def call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append(func.__name__)
            return super().call(func, *args, **kwargs)

    b = Traced()
    assert b(ok)() == 1 and seen == ["ok"]


# ----- open, half-open, close and the timeout -----


def test_trial_after_the_timeout_closes_or_reopens(mod: Any) -> None:
    log = Log()
    b = mod.CircuitBreaker(fail_max=1, reset_timeout=SOON, listeners=[log])
    trip(b, 1)
    past()
    assert b.current_state == "open"  # lazily: the next call moves it
    log.take()
    assert outcome(lambda: b.call(fail)) == (
        "CircuitBreakerError",
        "Trial call failed, circuit breaker opened",
    )
    assert counters(b) == ("open", 2, 0)
    assert log.take() == (
        ("", "state_change", "open", "half-open"),
        ("", "before_call", "fail", (), {}),
        ("", "failure", "ValueError", 2),
        ("", "state_change", "half-open", "open"),
    )
    past()
    assert b.call(ok) == 1
    assert counters(b) == ("closed", 0, 0)
    assert log.take() == (
        ("", "state_change", "open", "half-open"),
        ("", "before_call", "ok", (), {}),
        ("", "state_change", "half-open", "closed"),
        ("", "success", "closed"),
    )


def test_success_threshold_needs_that_many_trial_successes(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=1, reset_timeout=SOON, success_threshold=3)
    trip(b, 1)
    past()
    b.call(ok)
    b.call(ok)
    assert counters(b) == ("half-open", 0, 2)
    b.call(ok)
    assert counters(b) == ("closed", 0, 0)


def test_manual_control_notifies_even_to_the_same_state(mod: Any) -> None:
    log = Log()
    b = mod.CircuitBreaker(fail_max=5, reset_timeout=NEVER, listeners=[log])
    trip(b, 2)
    log.take()
    assert b.open() is True
    assert counters(b) == ("open", 2, 0)
    assert b._state_storage.opened_at is not None
    b.open()
    b.half_open()
    assert counters(b) == ("half-open", 2, 0)
    assert b.call(ok) == 1
    b.close()
    b.close()
    assert counters(b) == ("closed", 0, 0)
    assert [e for e in log.take() if e[1] == "state_change"] == [
        ("", "state_change", "closed", "open"),
        ("", "state_change", "open", "open"),
        ("", "state_change", "open", "half-open"),
        ("", "state_change", "half-open", "closed"),
        ("", "state_change", "closed", "closed"),
        ("", "state_change", "closed", "closed"),
    ]


@pytest.mark.parametrize("stored", [False, True], ids=["memory", "storage"])
def test_what_a_state_change_listener_sees(stored: bool) -> None:
    seen: dict[Any, list[tuple[str, ...]]] = {real: [], compat: []}
    for mod in MODULES:

        class Peek(mod.CircuitBreakerListener):  # type: ignore[misc,name-defined]
            views = seen[mod]

            def state_change(self, cb: Any, old: Any, new: Any) -> None:
                self.views.append((old.name, new.name, cb.state.name, cb.current_state))

        storage = mod.CircuitMemoryStorage(mod.STATE_CLOSED) if stored else None
        b = mod.CircuitBreaker(
            fail_max=1, reset_timeout=NEVER, listeners=[Peek()], state_storage=storage
        )
        trip(b, 1)
        b.half_open()
        b.call(ok)
    # cb.state is still the old state; so is cb.current_state, as the storage is written after.
    assert seen[real] == [
        ("closed", "open", "closed", "closed"),
        ("open", "half-open", "open", "open"),
        ("half-open", "closed", "half-open", "half-open"),
    ]
    if stored:
        assert seen[compat] == seen[real]
    else:  # the core has already moved
        assert [s[3] for s in seen[compat]] == ["open", "half-open", "closed"]
        assert [s[:3] for s in seen[compat]] == [s[:3] for s in seen[real]]


def test_state_setter_only_replaces_the_cached_state(mod: Any) -> None:
    log = Log()
    b = mod.CircuitBreaker(listeners=[log])
    b.state = mod.STATE_OPEN
    assert b.current_state == "closed"
    assert b.state.name == "closed"  # refreshed from the real state, listeners told
    assert log.take() == (
        ("", "state_change", "closed", "open"),
        ("", "state_change", "open", "closed"),
    )
    with pytest.raises(ValueError, match="Unknown state 'ajar'"):
        b.state = "ajar"


# ----- generators, calling() and the decorator -----


def test_generators_are_admitted_at_creation_and_counted_at_the_end(mod: Any) -> None:
    log = Log()
    b = mod.CircuitBreaker(fail_max=1, reset_timeout=NEVER, listeners=[log])

    @b
    def numbers(n: int, then: str) -> Iterator[int]:
        yield from range(n)
        OUTCOMES[then]()

    gen = numbers(2, "fail")
    assert log.take() == (("", "before_call", "numbers", (2, "fail"), {}),)
    assert next(gen) == 0 and next(gen) == 1
    assert b.current_state == "closed"
    assert outcome(lambda: next(gen))[0] == "CircuitBreakerError"
    assert b.current_state == "open"
    assert outcome(lambda: numbers(1, "ok"))[0] == "CircuitBreakerError"
    b.close()
    assert list(numbers(3, "ok")) == [0, 1, 2]
    assert b.current_state == "closed"


def test_closing_a_generator_early_is_a_failure(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=2, reset_timeout=NEVER)

    @b
    def numbers() -> Iterator[int]:
        yield 1
        yield 2

    gen = numbers()
    next(gen)
    gen.close()
    assert b.fail_counter == 1
    gen = numbers()
    next(gen)
    assert outcome(gen.close)[0] == "CircuitBreakerError"
    assert b.current_state == "open"


def test_generator_send_passes_values_through(mod: Any) -> None:
    b = mod.CircuitBreaker()

    def echo() -> Iterator[Any]:
        value = yield "ready"
        while value is not None:
            value = yield value * 2

    gen = b.call(echo)
    assert next(gen) == "ready"
    assert gen.send(2) == 4 and gen.send("a") == "aa"
    assert outcome(lambda: gen.send(None)) == ("StopIteration", "")


def test_calling_context_manager(mod: Any) -> None:
    log = Log()
    b = mod.CircuitBreaker(fail_max=2, reset_timeout=NEVER, exclude=[KeyError], listeners=[log])
    with b.calling():
        pass
    with pytest.raises(KeyError), b.calling():
        raise KeyError("k")
    with pytest.raises(ValueError), b.calling():
        raise ValueError("v")
    with pytest.raises(mod.CircuitBreakerError), b.calling():
        raise ValueError("v")
    with pytest.raises(mod.CircuitBreakerError), b.calling():
        pytest.fail("the block must not run while open")
    assert [e[1] for e in log.take()] == [
        "before_call",
        "success",
        "before_call",
        "success",
        "before_call",
        "failure",
        "before_call",
        "failure",
        "state_change",
    ]


def test_decorator_forms_and_methods(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=2, reset_timeout=NEVER)

    @b
    def add(x: int, y: int = 1) -> int:
        """Adds."""
        return x + y

    @b()
    def sub(x: int, y: int) -> int:
        return x - y

    class Service:
        @b
        def ping(self, v: str) -> str:
            return f"pong {v}"

    assert add(1, y=2) == 3 and sub(3, 1) == 2 and Service().ping("x") == "pong x"
    assert add.__name__ == "add" and add.__doc__ == "Adds." and add.__wrapped__ is not None


# ----- setters -----


def test_raising_fail_max_keeps_the_count(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=3, reset_timeout=NEVER)
    trip(b, 2)
    b.fail_max = 5
    assert (b.fail_max, b.fail_counter) == (5, 2)
    assert trip(b, 2) == [("ValueError", "boom")] * 2
    assert outcome(lambda: b.call(fail))[0] == "CircuitBreakerError"
    assert counters(b) == ("open", 5, 0)


def test_lowering_fail_max_below_the_count_trips_on_the_next_failure(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=5, reset_timeout=NEVER)
    trip(b, 3)
    b.fail_max = 2
    # Both keep the 3 failures (compat reconfigures its native breaker in place).
    assert b.fail_counter == 3
    assert b.current_state == "closed"
    assert outcome(lambda: b.call(fail))[0] == "CircuitBreakerError"
    assert b.current_state == "open"


def test_reset_timeout_setter_keeps_opened_at(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=1, reset_timeout=NEVER)
    trip(b, 1)
    opened_at = b._state_storage.opened_at
    past()
    b.reset_timeout = SOON  # measured from opened_at: already elapsed
    assert (b.reset_timeout, b.current_state) == (SOON, "open")
    assert b._state_storage.opened_at == opened_at
    assert b.call(ok) == 1
    assert b.current_state == "closed"
    trip(b, 1)
    b.reset_timeout = NEVER
    past()
    assert outcome(lambda: b.call(ok))[0] == "CircuitBreakerError"


def test_success_threshold_setter_in_half_open(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=1, reset_timeout=NEVER, success_threshold=5)
    b.half_open()
    b.call(ok)
    b.call(ok)
    b.success_threshold = 2  # already reached: the next success closes
    assert counters(b) == ("half-open", 0, 2)
    b.call(ok)
    assert counters(b) == ("closed", 0, 0)
    b.half_open()
    b.success_threshold = 2
    b.call(ok)
    assert counters(b) == ("half-open", 0, 1)


def test_setters_in_open_state_keep_it_open(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=2, reset_timeout=NEVER)
    trip(b, 2)
    b.fail_max = 4
    b.success_threshold = 2
    assert counters(b) == ("open", 2, 0)
    assert outcome(lambda: b.call(ok))[0] == "CircuitBreakerError"
    b.half_open()
    assert outcome(lambda: b.call(fail))[0] == "CircuitBreakerError"
    assert counters(b) == ("open", 3, 0)


# ----- listeners -----


def test_listeners_can_be_added_and_removed(mod: Any) -> None:
    first, second = Log("1"), Log("2")
    b = mod.CircuitBreaker(listeners=[first])
    b.add_listeners(second)
    assert b.listeners == (first, second)
    b.call(ok)
    assert [e[0] for e in first.events + second.events] == ["1", "1", "2", "2"]
    b.remove_listener(first)
    assert b.listeners == (second,)
    with pytest.raises(ValueError):
        b.remove_listener(first)


def test_a_raising_listener_propagates(mod: Any) -> None:
    class Angry(mod.CircuitBreakerListener):  # type: ignore[misc]
        def before_call(self, cb: Any, func: Any, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("no")

    b = mod.CircuitBreaker(listeners=[Angry()])
    called: list[int] = []
    assert outcome(lambda: b.call(called.append, 1)) == ("RuntimeError", "no")
    assert called == [] and counters(b) == ("closed", 0, 0)


def test_listener_base_class_hooks_do_nothing(mod: Any) -> None:
    listener = mod.CircuitBreakerListener()
    b = mod.CircuitBreaker(listeners=[listener], name="svc")
    assert b.name == "svc"
    b.name = "other"
    assert b.name == "other"
    trip(b, 5)
    b.half_open()
    b.call(ok)
    assert b.current_state == "closed"


# ----- storage -----


class RecordingStorage:
    """Mixin that logs every write a breaker makes to its storage."""

    writes: list[tuple[Any, ...]]

    def increment_counter(self) -> None:
        self.writes.append(("increment_counter",))
        super().increment_counter()  # type: ignore[misc]

    def reset_counter(self) -> None:
        self.writes.append(("reset_counter",))
        super().reset_counter()  # type: ignore[misc]

    def increment_success_counter(self) -> None:
        self.writes.append(("increment_success_counter",))
        super().increment_success_counter()  # type: ignore[misc]

    def reset_success_counter(self) -> None:
        self.writes.append(("reset_success_counter",))
        super().reset_success_counter()  # type: ignore[misc]


def recording_storage(mod: Any, state: str = "closed") -> Any:
    class Storage(RecordingStorage, mod.CircuitMemoryStorage):  # type: ignore[misc]
        @property
        def state(self) -> str:
            return str(self._state)

        @state.setter
        def state(self, value: str) -> None:
            self.writes.append(("state", value))
            self._state = value

        @property
        def opened_at(self) -> datetime | None:
            return self._opened_at

        @opened_at.setter
        def opened_at(self, value: datetime) -> None:
            self.writes.append(("opened_at",))
            self._opened_at = value

    storage = Storage(state)
    storage.writes = []
    return storage


def test_storage_is_written_through_in_pybreakers_order(mod: Any) -> None:
    storage = recording_storage(mod)
    log = Log(events=storage.writes)
    b = mod.CircuitBreaker(
        fail_max=2,
        reset_timeout=SOON,
        success_threshold=2,
        exclude=[KeyError],
        listeners=[log],
        state_storage=storage,
    )
    b.call(ok)
    outcome(lambda: b.call(excluded))
    trip(b, 2)
    assert (storage.state, storage.counter, storage.opened_at is not None) == ("open", 2, True)
    past()
    b.call(ok)
    assert (storage.state, storage.counter, storage.success_counter) == ("half-open", 0, 1)
    b.call(ok)
    b.open()
    b.half_open()
    b.close()
    assert (storage.state, storage.counter, storage.success_counter) == ("closed", 0, 0)
    assert counters(b) == ("closed", 0, 0)
    want: list[tuple[Any, ...]] = [
        ("", "before_call", "ok", (), {}),
        ("reset_counter",),
        ("", "success", "closed"),
        ("", "before_call", "excluded", (), {}),
        ("reset_counter",),
        ("", "success", "closed"),
        ("", "before_call", "fail", (), {}),
        ("increment_counter",),
        ("", "failure", "ValueError", 1),
        ("", "before_call", "fail", (), {}),
        ("increment_counter",),
        ("", "failure", "ValueError", 2),
        ("opened_at",),
        ("reset_success_counter",),
        ("", "state_change", "closed", "open"),
        ("state", "open"),
        ("reset_success_counter",),
        ("", "state_change", "open", "half-open"),
        ("state", "half-open"),
        ("", "before_call", "ok", (), {}),
        ("reset_counter",),
        ("increment_success_counter",),
        ("", "success", "half-open"),
        ("", "before_call", "ok", (), {}),
        ("reset_counter",),
        ("increment_success_counter",),
        ("reset_success_counter",),
        ("reset_counter",),
        ("", "state_change", "half-open", "closed"),
        ("state", "closed"),
        ("", "success", "closed"),
        ("opened_at",),
        ("reset_success_counter",),
        ("", "state_change", "closed", "open"),
        ("state", "open"),
        ("reset_success_counter",),
        ("", "state_change", "open", "half-open"),
        ("state", "half-open"),
        ("reset_success_counter",),
        ("reset_counter",),
        ("", "state_change", "half-open", "closed"),
        ("state", "closed"),
    ]
    assert storage.writes == want


def test_storage_initial_state_is_taken(mod: Any) -> None:
    storage = mod.CircuitMemoryStorage(mod.STATE_OPEN)
    storage.opened_at = datetime.now(UTC)
    b = mod.CircuitBreaker(fail_max=2, reset_timeout=NEVER, state_storage=storage)
    assert outcome(lambda: b.call(ok))[0] == "CircuitBreakerError"
    storage = mod.CircuitMemoryStorage(mod.STATE_OPEN)
    storage.opened_at = datetime.now(UTC) - timedelta(seconds=10)
    b = mod.CircuitBreaker(fail_max=2, reset_timeout=5, state_storage=storage)
    assert b.call(ok) == 1 and counters(b) == ("closed", 0, 0)
    b = mod.CircuitBreaker(reset_timeout=NEVER, state_storage=mod.CircuitMemoryStorage("open"))
    assert b.call(ok) == 1  # opened_at unknown: the next call is a trial
    storage = mod.CircuitMemoryStorage(mod.STATE_CLOSED)
    storage.increment_counter()
    b = mod.CircuitBreaker(fail_max=2, reset_timeout=NEVER, state_storage=storage)
    assert b.fail_counter == 1
    assert outcome(lambda: b.call(fail))[0] == "CircuitBreakerError"
    with pytest.raises(ValueError, match="Unknown state 'ajar'"):
        mod.CircuitBreaker(state_storage=mod.CircuitMemoryStorage("ajar"))


def test_a_shared_storage_shares_the_state(mod: Any) -> None:
    storage = mod.CircuitMemoryStorage(mod.STATE_CLOSED)
    log = Log()
    first = mod.CircuitBreaker(fail_max=1, reset_timeout=NEVER, state_storage=storage)
    second = mod.CircuitBreaker(
        fail_max=1, reset_timeout=NEVER, state_storage=storage, listeners=[log]
    )
    trip(first, 1)
    assert second.current_state == "open"
    assert outcome(lambda: second.call(ok))[0] == "CircuitBreakerError"
    assert log.take() == (("", "state_change", "closed", "open"),)
    first.close()
    assert second.call(ok) == 1
    assert log.take()[0] == ("", "state_change", "open", "closed")


# ----- random sequences, in lockstep against pybreaker -----

Op = tuple[Any, ...]
# fail_max, success_threshold, a listener from the start, a CircuitMemoryStorage
Config = tuple[int, int, bool, bool]


class Side:
    """One breaker of a module, with its decorated functions and its listeners."""

    def __init__(self, mod: Any, config: Config, timeout: float):
        fail_max, threshold, listen, stored = config
        self.events: list[tuple[Any, ...]] = []
        self.log = Log("a", self.events)
        self.extra = Log("b", self.events)
        self.storage = mod.CircuitMemoryStorage(mod.STATE_CLOSED) if stored else None
        self.b = b = mod.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=timeout,
            success_threshold=threshold,
            exclude=[KeyError, is_teapot],
            listeners=[self.log] if listen else None,
            state_storage=self.storage,
            name="side",
        )

        @b
        def decorated(kind: str) -> int:
            return OUTCOMES[kind]()

        @b
        def generate(kind: str) -> Iterator[int]:
            yield 1
            yield OUTCOMES[kind]()

        self.decorated = decorated
        self.generate = generate

    def do(self, op: Op) -> tuple[Any, ...]:
        b, kind = self.b, op[0]
        result: Any = None
        if kind == "call":
            result = outcome(lambda: b.call(OUTCOMES[op[1]]))
        elif kind == "decorated":
            result = outcome(lambda: self.decorated(op[1]))
        elif kind == "calling":
            result = outcome(lambda: self.calling(op[1]))
        elif kind == "generate":
            result = outcome(lambda: list(self.generate(op[1])))
        elif kind == "close_early":
            result = outcome(self.close_early)
        elif kind in ("open", "close", "half_open"):
            result = getattr(b, kind)()
        elif kind == "state":
            result = b.state.name
        elif kind == "fail_max" and not (b.current_state == "closed" and op[1] <= b.fail_counter):
            b.fail_max = op[1]  # (lowering it below the count is a documented difference)
        elif kind == "success_threshold":
            b.success_threshold = op[1]
        elif kind == "exclude":
            b.add_excluded_exception(TypeError)
        elif kind == "include" and TypeError in b.excluded_exceptions:
            b.remove_excluded_exception(TypeError)
        elif kind == "listen" and self.extra not in b.listeners:
            b.add_listener(self.extra)
        elif kind == "unlisten" and self.extra in b.listeners:
            b.remove_listener(self.extra)
        events = tuple(self.events)
        self.events.clear()
        stored = self.storage
        if stored is not None:
            opened = stored.opened_at is not None
            events += ((stored.state, stored.counter, stored.success_counter, opened),)
        return (result, b.current_state, b.fail_counter, b.success_counter, events)

    def calling(self, kind: str) -> None:
        with self.b.calling():
            OUTCOMES[kind]()

    def close_early(self) -> None:
        gen = self.generate("ok")
        next(gen)
        gen.close()


KINDS = st.sampled_from(sorted(OUTCOMES))
OPS = st.one_of(
    st.tuples(st.just("call"), KINDS),
    st.tuples(st.just("call"), st.sampled_from(["ok", "fail"])),
    st.tuples(st.sampled_from(["decorated", "calling", "generate"]), KINDS),
    st.tuples(
        st.sampled_from(
            "close_early open close half_open state exclude include listen unlisten".split()
        )
    ),
    st.tuples(st.sampled_from(["fail_max", "success_threshold"]), st.integers(1, 4)),
)


def lockstep(ops: list[Op], config: Config, timeout: float) -> None:
    sides = [Side(m, config, timeout) for m in MODULES]
    seen: list[tuple[Op, Any]] = []
    for op in ops:
        if timeout == SOON:
            past()
        got = [side.do(op) for side in sides]
        seen.append((op, got[0]))
        assert got[1] == got[0], f"after {seen}: compat gave {got[1]}"


CONFIGS = st.tuples(st.integers(1, 4), st.integers(1, 3), st.booleans(), st.booleans())


@settings(max_examples=400, deadline=None)
@given(st.lists(OPS, max_size=30), CONFIGS)
def test_random_sequences_match_pybreaker(ops: list[Op], config: Config) -> None:
    lockstep(ops, config, NEVER)


@settings(max_examples=40, deadline=None)
@given(st.lists(OPS, max_size=20), CONFIGS)
def test_random_sequences_with_elapsed_timeouts_match_pybreaker(
    ops: list[Op], config: Config
) -> None:
    lockstep(ops, config, SOON)


# ----- what compat does differently, on purpose -----


@pytest.mark.parametrize("listen", [False, True], ids=["fast-path", "with-listener"])
def test_two_threads_run_concurrently_through_one_breaker(listen: bool) -> None:
    b = compat.CircuitBreaker(listeners=[Log()] if listen else None)
    barrier = threading.Barrier(2, timeout=10)
    results: list[Any] = []

    def worker() -> None:
        results.append(outcome(lambda: b.call(barrier.wait)))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r[0] for r in results) == ["ok", "ok"]
    assert counters(b) == ("closed", 0, 0)


def test_pybreaker_serializes_the_same_two_threads() -> None:
    b = real.CircuitBreaker()
    barrier = threading.Barrier(2, timeout=0.2)
    results: list[Any] = []

    def worker() -> None:
        results.append(outcome(lambda: b.call(barrier.wait)))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r[0] for r in results] == ["BrokenBarrierError", "BrokenBarrierError"]


def test_half_open_refuses_a_second_call_while_the_trial_runs() -> None:
    b = compat.CircuitBreaker(fail_max=1, reset_timeout=NEVER)
    b.half_open()
    entered, release = threading.Event(), threading.Event()
    results: list[Any] = []

    def trial() -> str:
        entered.set()
        release.wait(10)
        return "done"

    t = threading.Thread(target=lambda: results.append(b.call(trial)))
    t.start()
    assert entered.wait(10)
    assert outcome(lambda: b.call(ok)) == (
        "CircuitBreakerError",
        "Trial call in progress, circuit breaker half-open",
    )
    release.set()
    t.join()
    assert results == ["done"] and b.current_state == "closed"


def test_an_outcome_admitted_before_a_state_change_moves_nothing() -> None:
    log = Log()
    b = compat.CircuitBreaker(fail_max=1, reset_timeout=NEVER, listeners=[log])
    entered, release = threading.Event(), threading.Event()
    results: list[Any] = []

    def slow_failure() -> int:
        entered.set()
        release.wait(10)
        raise ValueError("late")

    t = threading.Thread(target=lambda: results.append(outcome(lambda: b.call(slow_failure))))
    t.start()
    assert entered.wait(10)
    b.open()
    b.close()
    release.set()
    t.join()
    assert results == [("ValueError", "late")]
    assert counters(b) == ("closed", 0, 0)
    assert log.events[-1] == ("", "failure", "ValueError", 0)


def test_a_function_returning_a_generator_counts_at_return_and_at_the_end() -> None:
    def make(kind: str) -> Iterator[int]:
        def numbers() -> Iterator[int]:
            yield 1
            OUTCOMES[kind]()

        return numbers()

    for mod, failures in [(real, 2), (compat, 1)]:
        b = mod.CircuitBreaker(fail_max=5, reset_timeout=NEVER)
        for through in (functools.partial(b.call, make), b(make)):
            trip(b, 1)
            gen = through("fail")  # compat: the return is a success and resets the count
            assert outcome(functools.partial(list, gen)) == ("ValueError", "boom")
            assert b.fail_counter == failures, mod
            b.close()


def test_a_raising_exclusion_predicate_is_logged_and_the_error_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(exc: BaseException) -> bool:
        raise RuntimeError("bad predicate")

    b = compat.CircuitBreaker(fail_max=5, exclude=[broken])
    assert outcome(lambda: b.call(fail)) == ("ValueError", "boom")
    assert b.fail_counter == 1
    assert "bad predicate" in caplog.text
    pb = real.CircuitBreaker(fail_max=5, exclude=[broken])
    assert outcome(lambda: pb.call(fail)) == ("RuntimeError", "bad predicate")
    assert pb.fail_counter == 0


def test_default_storage_is_a_read_only_view() -> None:
    b = compat.CircuitBreaker(fail_max=2, reset_timeout=NEVER)
    trip(b, 1)
    view = b._state_storage
    assert (view.name, view.state, view.counter, view.success_counter) == ("memory", "closed", 1, 0)
    assert view.opened_at is None
    with pytest.raises(AttributeError):
        view.state = "open"


def test_tornado_and_redis_are_not_provided() -> None:
    b = compat.CircuitBreaker()
    assert not compat.HAS_TORNADO_SUPPORT and not compat.HAS_REDIS_SUPPORT
    with pytest.raises(NotImplementedError, match="asyncio"):
        b.call_async(ok)
    with pytest.raises(NotImplementedError, match="Tornado"):
        b(__pybreaker_call_async=True)
    with pytest.raises(ImportError, match="state_storage"):
        compat.CircuitRedisStorage("closed", None)


def test_public_names_match_pybreaker() -> None:
    assert set(compat.__all__) == set(real.__all__)
    for name in ["CircuitBreakerStorage", "CircuitBreakerState", "CircuitClosedState"]:
        assert hasattr(compat, name)
    assert {"CircuitOpenState", "CircuitHalfOpenState"} <= set(dir(compat))

    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_")}

    assert public(real.CircuitBreaker) <= public(compat.CircuitBreaker)
    assert public(real.CircuitBreakerListener) <= public(compat.CircuitBreakerListener)
    assert public(real.CircuitMemoryStorage) <= public(compat.CircuitMemoryStorage)
    for state in ("STATE_OPEN", "STATE_CLOSED", "STATE_HALF_OPEN"):
        assert getattr(compat, state) == getattr(real, state)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"fail_max": 0}, ValueError, "fail_max must be an int in 1..=16777215, got 0 (int)"),
        ({"fail_max": 2.5}, TypeError, "fail_max must be an int, got 2.5 (float)"),
        ({"fail_max": True}, TypeError, "fail_max must be an int, got True (bool)"),
        ({"reset_timeout": -1}, ValueError, "reset_timeout must be a number of seconds in"),
        ({"reset_timeout": float("nan")}, ValueError, "reset_timeout must be a number"),
        ({"reset_timeout": "60"}, TypeError, "reset_timeout must be a number of seconds"),
        ({"success_threshold": 0}, ValueError, "success_threshold must be an int in 1..=1023"),
        ({"success_threshold": 5000}, ValueError, "got 5000 (int)"),
        ({"exclude": ValueError}, TypeError, "exclude must be an iterable of exception types"),
        ({"exclude": [int]}, TypeError, "exclude must be an exception type or a predicate"),
        ({"exclude": ["ValueError"]}, TypeError, "got 'ValueError' (str)"),
        ({"listeners": [object()]}, TypeError, "listeners must be a CircuitBreakerListener"),
        ({"listeners": 3}, TypeError, "listeners must be an iterable of listeners"),
        ({"state_storage": "redis"}, TypeError, "state_storage must be a CircuitBreakerStorage"),
        ({"name": 7}, TypeError, "name must be a str or None, got 7 (int)"),
        ({"throw_new_error_on_trip": 1}, TypeError, "throw_new_error_on_trip must be a bool"),
    ],
)
def test_bad_arguments_raise_clear_errors(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        compat.CircuitBreaker(**kwargs)
    assert message in str(info.value)


def test_bad_setter_values_raise_and_keep_the_breaker() -> None:
    b = compat.CircuitBreaker(fail_max=2)
    trip(b, 1)
    with pytest.raises(ValueError, match="fail_max"):
        b.fail_max = -1
    with pytest.raises(TypeError, match="reset_timeout"):
        b.reset_timeout = None  # type: ignore[assignment]
    with pytest.raises(ValueError, match="success_threshold"):
        b.success_threshold = 0
    with pytest.raises(TypeError, match="listener must be"):
        b.add_listener(print)
    with pytest.raises(TypeError, match="exception must be"):
        b.add_excluded_exception(42)
    with pytest.raises(TypeError, match="name must be"):
        b.name = 3  # type: ignore[assignment]
    with pytest.raises(TypeError, match="decorates callables"):
        b(42)
    assert (b.fail_max, b.reset_timeout, b.success_threshold, b.fail_counter) == (2, 60, 1, 1)
