"""fastbreaker.compat.pybreaker beside pybreaker 1.4 on the less travelled paths.

Generators closed, thrown into or dropped (before and after they start), ``call()`` on a
generator function, ``calling()`` nested, and listeners and storages that raise. Where the two
differ on purpose (documented in the module), the test says what each does.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from functools import partial
from typing import Any, Callable

import pybreaker as real
import pytest

import fastbreaker.compat.pybreaker as compat

NEVER = 1000.0


@pytest.fixture(params=[real, compat], ids=["pybreaker", "compat"])
def mod(request: pytest.FixtureRequest) -> Any:
    return request.param


def ok() -> int:
    return 1


def fail() -> int:
    raise ValueError("boom")


def outcome(thunk: Callable[[], Any]) -> tuple[str, ...]:
    try:
        return ("ok", repr(thunk()))
    except BaseException as exc:
        return (type(exc).__name__, str(exc))


def counters(b: Any) -> tuple[str, int, int]:
    return (b.current_state, b.fail_counter, b.success_counter)


def numbers() -> Iterator[int]:
    yield 1
    yield 2


def failing_numbers() -> Iterator[int]:
    yield 1
    raise ValueError("boom")


def catcher() -> Iterator[Any]:
    while True:
        try:
            yield 1
        except ValueError:
            yield "caught"


# ----- generators -----


@pytest.mark.parametrize("how", ["drop", "close", "throw", "send"])
def test_a_trial_generator_left_before_it_starts_counts_nothing(mod: Any, how: str) -> None:
    b = mod.CircuitBreaker(fail_max=1, reset_timeout=NEVER)
    b.half_open()
    gen = b.call(numbers)
    if how == "drop":
        del gen
        gc.collect()
    elif how == "close":
        gen.close()
    elif how == "throw":
        assert outcome(lambda: gen.throw(KeyError("k"))) == ("KeyError", "'k'")
    else:
        assert outcome(lambda: gen.send(5)) == (
            "TypeError",
            "can't send non-None value to a just-started generator",
        )
    assert counters(b) == ("half-open", 0, 0)
    assert b.call(ok) == 1  # the next call is the trial (compat: the slot was handed back)
    assert counters(b) == ("closed", 0, 0)


def test_a_generator_left_before_it_starts_tells_no_listener(mod: Any) -> None:
    events: list[str] = []

    class Log(mod.CircuitBreakerListener):  # type: ignore[misc]
        def success(self, cb: Any) -> None:
            events.append("success")

        def failure(self, cb: Any, exc: BaseException) -> None:
            events.append("failure")

    b = mod.CircuitBreaker(fail_max=1, reset_timeout=NEVER, listeners=[Log()])
    b.call(numbers).close()
    assert events == [] and counters(b) == ("closed", 0, 0)


def test_call_on_a_generator_function_counts_only_the_end(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=3, reset_timeout=NEVER)
    assert outcome(lambda: b.call(fail)) == ("ValueError", "boom")
    gen = b.call(failing_numbers)
    assert b.fail_counter == 1  # creating the generator is no success
    assert outcome(lambda: list(gen)) == ("ValueError", "boom")
    assert b.fail_counter == 2
    assert list(b.call(numbers)) == [1, 2]
    assert b.fail_counter == 0


def test_throwing_into_a_started_generator(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=5, reset_timeout=NEVER, exclude=[KeyError])
    seen: list[Any] = []
    for make, error in [
        (catcher, ValueError("v")),  # caught and answered: the wrapper still ends (pybreaker)
        (numbers, ValueError("v")),
        (numbers, KeyError("k")),  # excluded: a success
        (numbers, ValueError("v")),
    ]:
        gen = b.call(make)
        seen.append(next(gen))
        seen.append(outcome(partial(gen.throw, error)))
        seen.append(outcome(partial(next, gen)))
        seen.append(b.fail_counter)
    assert seen == [
        *(1, ("StopIteration", ""), ("StopIteration", ""), 1),
        *(1, ("ValueError", "v"), ("StopIteration", ""), 2),
        *(1, ("KeyError", "'k'"), ("StopIteration", ""), 0),
        *(1, ("ValueError", "v"), ("StopIteration", ""), 1),
    ]


def test_a_decorated_generator_closed_early_or_dropped_is_a_failure(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=3, reset_timeout=NEVER)
    decorated = b(numbers)
    gen = decorated()
    next(gen)
    gen.close()
    gen = decorated()
    next(gen)
    del gen
    gc.collect()
    assert counters(b) == ("closed", 2, 0)


# ----- calling() -----


def test_nested_calling_counts_each_block(mod: Any) -> None:
    b = mod.CircuitBreaker(fail_max=3, reset_timeout=NEVER)

    def nested(inner_fails: bool, outer_fails: bool) -> None:
        with b.calling():
            with b.calling():
                if inner_fails:
                    fail()
            if outer_fails:
                fail()

    seen = []
    for inner, outer in [(False, False), (True, False), (False, True), (False, False)]:
        seen.append((outcome(partial(nested, inner, outer)), counters(b)))
    assert seen == [
        (("ok", "None"), ("closed", 0, 0)),
        (("ValueError", "boom"), ("closed", 2, 0)),  # the inner failure fails the outer too
        (("ValueError", "boom"), ("closed", 1, 0)),
        (("ok", "None"), ("closed", 0, 0)),
    ]


def test_nested_calling_that_trips_inside() -> None:
    # The outer block was admitted before the inner one opened the circuit: pybreaker counts
    # its failure (and opens again); compat's outcome is stale and moves nothing.
    for mod, fails in [(real, 2), (compat, 1)]:
        b = mod.CircuitBreaker(fail_max=1, reset_timeout=NEVER)
        with pytest.raises(mod.CircuitBreakerError), b.calling(), b.calling():
            fail()
        assert counters(b) == ("open", fails, 0)


# ----- listeners and storages that raise -----


def test_a_raising_state_change_listener() -> None:
    # pybreaker's state lives in its storage, written after the listeners: a listener that
    # raises vetoes the state change. compat's native breaker has already moved.
    for mod, after_trip in [(real, ("closed", 2, 0)), (compat, ("open", 2, 0))]:

        class Veto(mod.CircuitBreakerListener):  # type: ignore[misc,name-defined]
            def state_change(self, cb: Any, old: Any, new: Any) -> None:
                raise RuntimeError("veto")

        b = mod.CircuitBreaker(fail_max=2, reset_timeout=NEVER, listeners=[Veto()])
        assert outcome(partial(b.call, fail)) == ("ValueError", "boom")
        assert outcome(partial(b.call, fail)) == ("RuntimeError", "veto")
        assert counters(b) == after_trip
        if mod is compat:
            assert b.state.name == "open"


def test_a_raising_failure_listener() -> None:
    # pybreaker calls the listener before it trips, so a raising one keeps it closed.
    for mod, after_trip in [(real, ("closed", 2, 0)), (compat, ("open", 2, 0))]:

        class Broken(mod.CircuitBreakerListener):  # type: ignore[misc,name-defined]
            def failure(self, cb: Any, exc: BaseException) -> None:
                raise RuntimeError("listener")

        b = mod.CircuitBreaker(fail_max=2, reset_timeout=NEVER, listeners=[Broken()])
        assert [outcome(partial(b.call, fail)) for _ in range(2)] == [
            ("RuntimeError", "listener")
        ] * 2
        assert counters(b) == after_trip


def test_a_raising_success_listener(mod: Any) -> None:
    class Broken(mod.CircuitBreakerListener):  # type: ignore[misc]
        def success(self, cb: Any) -> None:
            raise RuntimeError("listener")

    b = mod.CircuitBreaker(fail_max=1, reset_timeout=NEVER, listeners=[Broken()])
    b.half_open()
    assert outcome(lambda: b.call(ok)) == ("RuntimeError", "listener")
    assert counters(b) == ("closed", 0, 0)  # the trial's success was counted first


class FlakyStorage:
    """A storage mixin whose state setter raises while ``down``."""

    down = False
    _state: str

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        if self.down:
            raise OSError("storage down")
        self._state = value


def test_a_storage_that_cannot_write_the_state() -> None:
    for mod in (real, compat):

        class Storage(FlakyStorage, mod.CircuitMemoryStorage):  # type: ignore[misc,name-defined]
            pass

        storage = Storage(mod.STATE_CLOSED)
        b = mod.CircuitBreaker(fail_max=1, reset_timeout=NEVER, state_storage=storage)
        storage.down = True
        assert outcome(partial(b.call, fail)) == ("OSError", "storage down")
        assert storage.state == "closed"
        storage.down = False
        if mod is real:  # the trip did not happen: its state is what the storage holds
            assert b.call(ok) == 1
            assert counters(b) == ("closed", 0, 0)
        else:  # the native breaker opened; the state is written before the next call
            assert outcome(partial(b.call, ok))[0] == "CircuitBreakerError"
            assert (storage.state, b.current_state, b.state.name) == ("open", "open", "open")


def test_a_storage_that_stays_down_does_not_stop_calls(caplog: pytest.LogCaptureFixture) -> None:
    class Storage(FlakyStorage, compat.CircuitMemoryStorage):
        pass

    storage = Storage(compat.STATE_CLOSED)
    b = compat.CircuitBreaker(fail_max=1, reset_timeout=NEVER, state_storage=storage)
    b.half_open()
    storage.down = True
    assert outcome(lambda: b.call(ok)) == ("OSError", "storage down")  # closing: unwritten
    assert b.call(ok) == 1  # the retried write fails again: logged, and the call goes on
    assert "state_storage raised writing the state" in caplog.text
    storage.down = False
    assert b.call(ok) == 1
    assert (storage.state, b.current_state) == ("closed", "closed")
