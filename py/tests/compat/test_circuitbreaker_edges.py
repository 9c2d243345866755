"""fastbreaker.compat.circuitbreaker beside circuitbreaker 2.1 on the less travelled paths.

``circuit(cls=...)`` with arguments over class attributes, the monitor when names repeat or
one circuit decorates several functions, generators thrown into, and what ``last_failure``
keeps after a success. Where the two differ on purpose (documented in the module), the test
says what each does.
"""

from __future__ import annotations

import gc
import re
import weakref
from collections.abc import Iterator
from functools import partial
from typing import Any, Callable

import circuitbreaker as real
import pytest

from fastbreaker.compat import circuitbreaker as compat

MODULES = [real, compat]


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


def outcome(thunk: Callable[[], Any]) -> tuple[str, ...]:
    try:
        return ("ok", repr(thunk()))
    except BaseException as exc:
        message = re.sub(r"OPEN until .*? \(", "OPEN until <t> (", str(exc))
        return (type(exc).__name__, re.sub(r"\d+ sec remaining", "<n> sec remaining", message))


def service(kind: str) -> str:
    if kind == "key":
        raise KeyError(kind)
    if kind == "os":
        raise OSError(kind)
    return kind


def test_circuit_with_cls_and_arguments_over_class_attributes() -> None:
    seen = []
    for mod in MODULES:

        def class_fallback(*args: Any) -> str:
            return "class fallback"

        class Tuned(mod.CircuitBreaker):  # type: ignore[misc,name-defined]
            FAILURE_THRESHOLD = 4
            RECOVERY_TIMEOUT = 500
            EXPECTED_EXCEPTION = KeyError
            FALLBACK_FUNCTION = staticmethod(class_fallback)

        named = mod.circuit(failure_threshold=2, name="kw", cls=Tuned)(service)
        other = mod.circuit(
            expected_exception=OSError, fallback_function=lambda kind: "given", cls=Tuned
        )(service)
        by_name = mod.CircuitBreakerMonitor.get
        steps: list[Any] = []
        for guarded, circuit in [(named, by_name("kw")), (other, by_name(service.__qualname__))]:
            assert type(circuit) is Tuned
            steps.append((circuit.name, circuit.failure_count))
            for kind in ["os", "key", "key", "key", "os", "os", "os", "os", "ok"]:
                steps.append((outcome(partial(guarded, kind)), circuit.state))
            steps.append(circuit.failure_count)
        seen.append(steps)
    assert seen[1] == seen[0]
    assert seen[0][4] == (("ok", "'class fallback'"), "open")  # 2 KeyErrors opened "kw"


def test_the_monitor_when_names_repeat() -> None:
    seen = []
    for mod in MODULES:
        monitor = mod.CircuitBreakerMonitor

        def down() -> None:
            raise OSError("down")

        def up() -> str:
            return "up"

        first = mod.CircuitBreaker(failure_threshold=1, name="db")
        second = mod.CircuitBreaker(failure_threshold=1, name="db")
        down_db, up_db = first(down), second(up)
        steps: list[Any] = [monitor.get("db") is second, len(list(monitor.get_circuits()))]
        steps += [outcome(down_db), outcome(down_db), outcome(up_db)]
        # the open circuit is not the registered one: the monitor does not see it
        steps += [[c.name for c in monitor.get_open()], monitor.all_closed()]
        shared = mod.CircuitBreaker(failure_threshold=2)  # unnamed: the first function names it
        down_shared, up_shared = shared(down), shared(up)
        steps += [shared.name, sorted(monitor.circuit_breakers)]
        for guarded in (down_shared, up_shared, down_shared, down_shared, up_shared):
            steps.append(outcome(guarded))
        steps += [(shared.state, shared.failure_count), monitor.all_closed()]
        first(up)  # decorating again registers again
        steps += [monitor.get("db") is first, [c.name for c in monitor.get_open()]]
        seen.append(steps)
    assert seen[1] == seen[0]
    assert seen[0][-1] == ["db", "test_the_monitor_when_names_repeat.<locals>.down"]


def test_throwing_into_a_decorated_generator() -> None:
    # circuitbreaker re-yields item by item, so a thrown exception is raised in its wrapper
    # and never reaches the generator; compat forwards it (documented), and the generator may
    # handle it.
    for mod, answer, failures in [(real, ("OSError", "x"), 1), (compat, ("ok", "'caught'"), 0)]:
        circuit = mod.CircuitBreaker(failure_threshold=5, expected_exception=OSError)

        @circuit  # type: ignore[untyped-decorator]
        def catcher() -> Iterator[Any]:
            while True:
                try:
                    yield 1
                except OSError:
                    yield "caught"

        gen = catcher()
        assert next(gen) == 1
        assert outcome(partial(gen.throw, OSError("x"))) == answer
        assert circuit.failure_count == failures


class Payload:
    """Something a failed call's frame refers to."""


def failing(payload: Payload) -> None:
    raise OSError("down")


def test_what_last_failure_keeps_after_a_success() -> None:
    # Both show no last failure after a success. circuitbreaker drops it then; compat keeps the
    # exception (and the frames of its traceback) until the next failure or reset(): a
    # success costs nothing in Python (documented).
    for mod, kept in [(real, False), (compat, True)]:
        circuit = mod.CircuitBreaker(failure_threshold=5, name="lf")
        payload = Payload()
        ref = weakref.ref(payload)
        with pytest.raises(OSError):
            circuit.call(failing, payload)
        circuit.call(lambda: None)
        del payload
        gc.collect()
        assert circuit.last_failure is None
        assert (ref() is not None) is kept
        circuit.reset()
        gc.collect()
        assert ref() is None
