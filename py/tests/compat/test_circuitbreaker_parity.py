"""Side by side: the same scripts through the real ``circuitbreaker`` and the compat module.

Every step compares what a user can observe: the call's result (value, fallback value or
exception type and message), ``state``, ``closed``, ``opened``, ``failure_count``,
``last_failure``, ``open_remaining`` while open, and the monitor's contents. The real
package's clock is frozen (``circuitbreaker.monotonic`` patched); "time passes" moves it past
the recovery timeout and, on the compat side, moves an open native breaker to half-open
(what the end of its wait does). One test runs both on the real clock.
"""

from __future__ import annotations

import re
import time
from types import ModuleType
from typing import Any, Callable, Iterator, Optional, Union
from unittest import mock

import circuitbreaker as real
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastbreaker.compat import circuitbreaker as compat

KINDS = ("sync", "gen", "async", "agen")
ACTIONS = (
    "ok",
    "fail",
    "other",
    "with_ok",
    "with_fail",
    "with_other",
    "call_ok",
    "call_fail",
    "reset",
    "advance",
)
RECOVERY = 1000
Outcome = tuple[str, ...]


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


# ----- the protected service, in the four shapes -----


def body(action: str) -> str:
    if action == "fail":
        raise OSError("down")
    if action == "other":
        raise KeyError("not the service's fault")
    return f"ok:{action}"


def service(action: str) -> str:
    return body(action)


def service_gen(action: str) -> Iterator[str]:
    yield "first"
    yield body(action)


async def service_async(action: str) -> str:
    return body(action)


async def service_agen(action: str) -> Any:
    yield "first"
    yield body(action)


def fallback(action: str) -> str:
    return f"fallback:{action}"


def fallback_gen(action: str) -> Iterator[str]:
    yield f"fallback:{action}"


async def fallback_async(action: str) -> str:
    return f"fallback:{action}"


async def fallback_agen(action: str) -> Any:
    yield f"fallback:{action}"


SERVICES: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "sync": (service, fallback),
    "gen": (service_gen, fallback_gen),
    "async": (service_async, fallback_async),
    "agen": (service_agen, fallback_agen),
}


def drive(coro: Any) -> Any:
    """Runs a coroutine that never waits, without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine waited")


def drive_agen(agen: Any) -> list[Any]:
    items = []
    while True:
        try:
            items.append(drive(agen.__anext__()))
        except StopAsyncIteration:
            return items


def invoke(kind: str, func: Callable[..., Any], action: str) -> Any:
    if kind == "sync":
        return func(action)
    if kind == "gen":
        return list(func(action))
    if kind == "async":
        return drive(func(action))
    return drive_agen(func(action))


def normalise(message: str) -> str:
    """The error message without the parts that depend on the clock."""
    message = re.sub(r"OPEN until .*? \(", "OPEN until <t> (", message)
    return re.sub(r"-?\d+ sec remaining", "<n> sec remaining", message)


def outcome(step: Callable[[], Any]) -> Outcome:
    try:
        return ("value", repr(step()))
    except Exception as e:
        return ("error", type(e).__name__, normalise(str(e)))


# ----- one side of the comparison -----


class Clock:
    """The real package's monotonic clock, frozen until moved."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Side:
    """A circuit of one implementation around the service of one kind."""

    def __init__(
        self, mod: ModuleType, kind: str, breaker: Any, func: Optional[Callable[..., Any]] = None
    ) -> None:
        self.mod = mod
        self.kind = kind
        self.breaker = breaker
        self.func = func if func is not None else breaker(SERVICES[kind][0])

    def act(self, action: str, clock: Clock) -> Outcome:
        b = self.breaker
        if action in ("ok", "fail", "other"):
            return outcome(lambda: invoke(self.kind, self.func, action))
        if action.startswith("with_"):

            def block() -> str:
                with b:
                    return body(action[5:])

            return outcome(block)
        if action.startswith("call_"):
            return outcome(lambda: b.call(service, action[5:]))
        if action == "reset":
            return outcome(b.reset)
        assert action == "advance"
        if self.mod is real:
            clock.now += RECOVERY + 1
        elif b.native.state == "open":
            b.native.half_open()
        return ("advanced",)

    def observe(self) -> tuple[Any, ...]:
        b = self.breaker
        m = self.mod.CircuitBreakerMonitor
        return (
            b.state,
            b.closed,
            b.opened,
            b.failure_count,
            repr(b.last_failure),
            b.name,
            str(b),
            sorted(c.name for c in m.get_circuits()),
            sorted(c.name for c in m.get_open()),
            sorted(c.name for c in m.get_closed()),
            m.all_closed(),
        )


def compare(sides: tuple[Side, Side], actions: list[str]) -> None:
    """Runs ``actions`` on both sides and asserts the same observations after each."""
    clock = Clock()
    with mock.patch.object(real, "monotonic", clock):
        ref, ours = sides
        for i, action in enumerate(actions):
            expected = ref.act(action, clock)
            got = ours.act(action, clock)
            where = f"step {i} ({action}) of {actions}"
            assert got == expected, where
            assert ours.observe() == ref.observe(), where
            if ref.breaker.opened:
                timeout = ref.breaker._recovery_timeout  # frozen clock: exactly the timeout
                assert ref.breaker.open_remaining == timeout
                assert timeout - 5 <= ours.breaker.open_remaining <= timeout, where


def pair(kind: str, **options: Any) -> tuple[Side, Side]:
    options.setdefault("recovery_timeout", RECOVERY)
    return (
        Side(real, kind, real.CircuitBreaker(**options)),
        Side(compat, kind, compat.CircuitBreaker(**options)),
    )


# ----- scripted sequences -----

SCRIPTS = {
    "opens after the threshold and stays open": ["fail"] * 3 + ["ok", "other", "ok"],
    "a success resets the count": ["fail", "fail", "ok", "fail", "fail", "ok"],
    "a non-expected exception counts as success": ["fail", "fail", "other", "fail", "fail"],
    "half-open trial success closes": ["fail"] * 3 + ["advance", "ok", "ok", "fail"],
    "half-open trial failure reopens": ["fail"] * 3
    + ["advance", "fail", "ok", "advance"]
    + ["fail", "advance", "ok"],
    "half-open non-expected closes": ["fail"] * 3 + ["advance", "other", "ok"],
    "time passing while closed changes nothing": ["fail", "advance", "fail", "ok"],
    "reset closes": ["fail"] * 3 + ["reset", "ok", "fail"],
    "with and call record but never refuse": ["with_fail"] * 3
    + ["with_ok", "with_fail", "call_fail", "call_fail", "call_fail", "call_ok", "with_other"],
    "with while open restarts the open period": ["fail"] * 3
    + ["with_fail", "ok", "advance", "with_fail", "ok", "advance", "ok"],
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("script", sorted(SCRIPTS))
@pytest.mark.parametrize("with_fallback", [False, True])
def test_scripts_match_circuitbreaker(kind: str, script: str, with_fallback: bool) -> None:
    options: dict[str, Any] = {"failure_threshold": 3, "expected_exception": OSError}
    if with_fallback:
        options["fallback_function"] = SERVICES[kind][1]
    compare(pair(kind, **options), SCRIPTS[script])


@pytest.mark.parametrize("kind", KINDS)
def test_default_settings_match(kind: str) -> None:
    # Defaults: 5 failures, every Exception expected (KeyError too), named after the function.
    sides = (
        Side(real, kind, real.CircuitBreaker()),
        Side(compat, kind, compat.CircuitBreaker()),
    )
    compare(sides, ["fail", "other", "fail", "fail", "ok"] + ["fail"] * 5 + ["ok", "with_ok"])
    assert sides[1].breaker.name == SERVICES[kind][0].__qualname__


EXPECTED: dict[str, Any] = {
    "type": OSError,
    "tuple": (ConnectionError, OSError),
    "list": [OSError],
    "predicate": lambda thrown_type, thrown: issubclass(thrown_type, OSError) and thrown.args,
}


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(KINDS),
    threshold=st.integers(1, 4),
    expected=st.sampled_from(sorted(EXPECTED)),
    with_fallback=st.booleans(),
    name=st.sampled_from([None, "payments"]),
    actions=st.lists(st.sampled_from(ACTIONS), max_size=30),
)
def test_random_sequences_match_circuitbreaker(
    kind: str,
    threshold: int,
    expected: str,
    with_fallback: bool,
    name: Optional[str],
    actions: list[str],
) -> None:
    compat.CircuitBreakerMonitor.clear()
    real.CircuitBreakerMonitor.circuit_breakers.clear()
    options: dict[str, Any] = {
        "failure_threshold": threshold,
        "expected_exception": EXPECTED[expected],
        "name": name,
    }
    if with_fallback:
        options["fallback_function"] = SERVICES[kind][1]
    compare(pair(kind, **options), actions)


def test_error_messages_match() -> None:
    clock = Clock()
    with mock.patch.object(real, "monotonic", clock):
        errors: list[Union[real.CircuitBreakerError, compat.CircuitBreakerError]] = []
        for mod in (real, compat):

            def refused() -> None:
                raise OSError("connection refused")

            query = mod.circuit(failure_threshold=2, recovery_timeout=RECOVERY, name="db")(refused)
            for _ in range(2):
                with pytest.raises(OSError):
                    query()
            with pytest.raises(mod.CircuitBreakerError) as info:
                query()
            errors.append(info.value)
    ref, ours = (str(e) for e in errors)
    assert normalise(ours) == normalise(ref)
    assert re.fullmatch(
        r'Circuit "db" OPEN until \S+ \S+ \(2 failures, (?:99[5-9]|1000) sec remaining\) '
        r"\(last_failure: OSError\('connection refused'\)\)",
        ours,
    ), ours


def test_subclass_attributes_match() -> None:
    def make(mod: ModuleType) -> Any:
        class Strict(mod.CircuitBreaker):  # type: ignore[name-defined, misc]
            FAILURE_THRESHOLD = 2
            RECOVERY_TIMEOUT = RECOVERY
            EXPECTED_EXCEPTION = OSError
            FALLBACK_FUNCTION = staticmethod(fallback)

        return Strict

    for use in ("instance", "cls"):
        sides = []
        for mod in (real, compat):
            cls = make(mod)
            if use == "instance":
                side = Side(mod, "sync", cls())
            else:
                func = mod.circuit(cls=cls)(service)
                side = Side(mod, "sync", mod.CircuitBreakerMonitor.get(service.__qualname__), func)
            assert type(side.breaker) is cls
            sides.append(side)
        script = ["other", "fail", "other", "fail", "fail", "ok", "advance", "ok"]
        compare((sides[0], sides[1]), script)


def test_bare_decorator_with_cls_matches() -> None:
    for mod in (real, compat):

        class Quick(mod.CircuitBreaker):  # type: ignore[name-defined, misc]
            FAILURE_THRESHOLD = 1

        f = mod.circuit(service, cls=Quick)
        b = mod.CircuitBreakerMonitor.get(service.__qualname__)
        assert type(b) is Quick
        with pytest.raises(OSError):
            f("fail")
        assert b.opened and b.failure_count == 1


def test_both_on_the_real_clock() -> None:
    # No patched clock: both implementations wait their own recovery timeout.
    timeout = 0.05
    sides = pair("sync", failure_threshold=2, recovery_timeout=timeout)
    started = time.monotonic()
    for side in sides:
        for _ in range(2):
            assert side.act("fail", Clock())[:2] == ("error", "OSError")
    for side in sides:
        assert side.breaker.state in ("open", "half_open")
        assert side.breaker.failure_count == 2
    deadline = started + 30
    seen: dict[int, float] = {}
    while len(seen) < 2 and time.monotonic() < deadline:
        for i, side in enumerate(sides):
            if i not in seen and side.breaker.state == "half_open":
                seen[i] = time.monotonic()
        time.sleep(0.005)
    assert len(seen) == 2, "both reach half-open"
    assert min(seen.values()) - started >= timeout  # not before the recovery timeout
    for side in sides:
        assert side.act("ok", Clock()) == ("value", "'ok:ok'")
        assert side.breaker.closed and side.breaker.failure_count == 0
