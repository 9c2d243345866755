"""fastbreaker.chaos: off by default, seeded injections, latency without wall time, the
library's own rejections, one log record per wrapper, and a real breaker tripping on it."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
from typing import Any, Callable, Iterator

import pytest

import fastbreaker.chaos as chaos_mod
from fastbreaker import (
    CircuitBreaker,
    CircuitOpenError,
    ManualClock,
    RateLimitExceeded,
)
from fastbreaker.chaos import ChaosError, ChaosStats, all_stats, chaos, stats_of

LOGGER = "fastbreaker.chaos"


@pytest.fixture(autouse=True)
def slept(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """No FASTBREAKER_CHAOS, the global switch undecided, and a fake sleep (records the
    seconds; never waits) in place of time.sleep."""
    monkeypatch.delenv(chaos_mod.ENV_VARIABLE, raising=False)
    monkeypatch.setattr(chaos_mod, "_GLOBAL", None)
    slept: list[float] = []
    monkeypatch.setattr(chaos_mod, "_sleep", slept.append)
    yield slept


def expected_draws(seed: int, calls: int) -> Iterator[tuple[float, float, float]]:
    """The documented draws: (rejection, latency, failure) per call from Random(seed)."""
    rng = random.Random(seed)
    for _ in range(calls):
        yield rng.random(), rng.random(), rng.random()


def chaos_records(caplog: pytest.LogCaptureFixture, needle: str = "") -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and needle in r.getMessage()]


def ok() -> str:
    return "ok"


# ----- off by default -----


def test_off_by_default_injects_and_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    f = chaos(failure_rate=1.0, rejection_rate=1.0, latency=1.0, latency_rate=1.0, seed=1)(ok)
    assert [f() for _ in range(50)] == ["ok"] * 50
    assert stats_of(f) == ChaosStats(0, 0, 0, 0, 0.0)
    assert chaos_records(caplog) == []
    assert chaos_mod.is_enabled() is False


def test_environment_variable_enables_at_first_use(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    f = chaos(failure_rate=1.0)(ok)
    monkeypatch.setenv(chaos_mod.ENV_VARIABLE, "1")
    with pytest.raises(ChaosError):
        f()
    assert chaos_mod.is_enabled() is True
    assert len(chaos_records(caplog, "FASTBREAKER_CHAOS='1'")) == 1


def test_environment_variable_off_and_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    f = chaos(failure_rate=1.0)(ok)
    monkeypatch.setenv(chaos_mod.ENV_VARIABLE, "off")
    assert f() == "ok"
    monkeypatch.setenv(chaos_mod.ENV_VARIABLE, "maybe")
    with pytest.raises(ValueError, match=r"FASTBREAKER_CHAOS .*'maybe'"):
        chaos_mod.enable(None)


def test_global_switch_and_per_wrapper_override() -> None:
    follows = chaos(failure_rate=1.0)(ok)
    never = chaos(failure_rate=1.0, enabled=False)(ok)
    always = chaos(failure_rate=1.0, enabled=True)(ok)
    assert follows() == "ok"
    with pytest.raises(ChaosError):
        always()
    chaos_mod.enable()
    with pytest.raises(ChaosError, match=r"injected failure in .*ok"):
        follows()
    assert never() == "ok"
    chaos_mod.disable()
    assert follows() == "ok"
    with pytest.raises(ChaosError):
        always()


# ----- seeded injections -----


def test_failures_at_the_rate_exactly_for_a_seed() -> None:
    calls = 1000
    f = chaos(failure_rate=0.3, seed=42, enabled=True)(ok)
    failed = 0
    for _ in range(calls):
        try:
            f()
        except ChaosError:
            failed += 1
    expected = sum(1 for _, _, x in expected_draws(42, calls) if x < 0.3)
    assert failed == expected
    assert 250 < failed < 350  # the seed's count, near the rate
    assert stats_of(f) == ChaosStats(calls, failed, 0, 0, 0.0)


def test_same_seed_same_sequence() -> None:
    def outcomes(seed: int) -> list[str]:
        f = chaos(failure_rate=0.5, rejection_rate=0.2, seed=seed, enabled=True)(ok)
        out = []
        for _ in range(200):
            try:
                out.append(f())
            except ChaosError:
                out.append("fail")
            except CircuitOpenError:
                out.append("reject")
        return out

    assert outcomes(3) == outcomes(3)
    assert outcomes(3) != outcomes(4)


def test_mixed_injections_follow_the_documented_draw_order(slept: list[float]) -> None:
    calls = 500
    f = chaos(
        failure_rate=0.2,
        latency=0.5,
        latency_rate=0.1,
        rejection_rate=0.05,
        seed=9,
        enabled=True,
    )(ok)
    for _ in range(calls):
        try:
            f()
        except (ChaosError, CircuitOpenError):
            pass
    rejections = latencies = failures = 0
    for r, lat, fail in expected_draws(9, calls):
        if r < 0.05:
            rejections += 1
            continue
        latencies += lat < 0.1
        failures += fail < 0.2
    assert stats_of(f) == ChaosStats(calls, failures, rejections, latencies, 0.5 * latencies)
    assert slept == [0.5] * latencies


def test_threads_consume_the_seeded_draws_exactly() -> None:
    threads, per_thread = 8, 250
    f = chaos(failure_rate=0.25, seed=5, enabled=True)(ok)
    failed = [0] * threads

    def work(i: int) -> None:
        for _ in range(per_thread):
            try:
                f()
            except ChaosError:
                failed[i] += 1

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    expected = sum(1 for _, _, x in expected_draws(5, threads * per_thread) if x < 0.25)
    assert sum(failed) == expected
    assert stats_of(f).calls == threads * per_thread
    assert stats_of(f).failures == expected


# ----- exceptions -----


def test_exception_class_instance_and_factory() -> None:
    by_class = chaos(failure_rate=1.0, exception=TimeoutError, enabled=True)(ok)
    with pytest.raises(TimeoutError, match="chaos: injected failure"):
        by_class()

    original = ConnectionError("reset by chaos")
    by_instance = chaos(failure_rate=1.0, exception=original, enabled=True)(ok)
    with pytest.raises(ConnectionError, match="reset by chaos") as first:
        by_instance()
    with pytest.raises(ConnectionError) as second:
        by_instance()
    assert first.value is not second.value  # a copy each time: tracebacks do not pile up

    by_factory = chaos(failure_rate=1.0, exception=lambda: OSError(5, "io"), enabled=True)(ok)
    with pytest.raises(OSError, match="io"):
        by_factory()

    bad_factory = chaos(failure_rate=1.0, exception=lambda: "nope", enabled=True)(ok)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match=r"exception factory .* must return an exception"):
        bad_factory()


def test_function_not_called_on_injected_failure_or_rejection() -> None:
    called: list[int] = []

    def record() -> None:
        called.append(1)

    for kwargs in ({"failure_rate": 1.0}, {"rejection_rate": 1.0}):
        f = chaos(enabled=True, **kwargs)(record)  # type: ignore[arg-type]
        with pytest.raises((ChaosError, CircuitOpenError)):
            f()
    assert called == []


# ----- rejections -----


def test_rejection_raises_the_library_circuit_open_error() -> None:
    f = chaos(rejection_rate=1.0, enabled=True)(ok)
    with pytest.raises(CircuitOpenError) as info:
        f()
    assert info.value.state == "open"
    assert info.value.retry_after == 0.0
    assert info.value.name == f"chaos:{__name__}.ok"
    assert stats_of(f).rejections == 1


def test_rejection_outside_a_breaker_carries_the_breaker_name() -> None:
    breaker = CircuitBreaker("payments", failure_threshold=3, clock=ManualClock())
    f = chaos(rejection_rate=1.0, enabled=True)(breaker(ok))
    with pytest.raises(CircuitOpenError) as info:
        f()
    assert info.value.name == "payments"
    assert breaker.state == "closed"  # outside: the breaker never saw it
    assert breaker.metrics()["failed"] == 0


def test_rejection_as_a_rate_limiter_refusal() -> None:
    f = chaos(rejection_rate=1.0, rejection=lambda: RateLimitExceeded(1.5, 1), enabled=True)(ok)
    with pytest.raises(RateLimitExceeded) as info:
        f()
    assert info.value.retry_after == 1.5


# ----- latency -----


def test_sync_latency_uses_the_module_sleep(slept: list[float]) -> None:
    f = chaos(latency=0.25, latency_rate=1.0, enabled=True)(ok)
    assert [f() for _ in range(3)] == ["ok"] * 3
    assert slept == [0.25, 0.25, 0.25]
    assert stats_of(f) == ChaosStats(3, 0, 0, 3, 0.75)


def test_latency_from_a_distribution(slept: list[float]) -> None:
    rng = random.Random(11)
    f = chaos(latency=lambda: rng.expovariate(10.0), latency_rate=1.0, enabled=True)(ok)
    for _ in range(5):
        f()
    model = random.Random(11)
    assert slept == [model.expovariate(10.0) for _ in range(5)]


def test_latency_function_returning_bad_seconds() -> None:
    f = chaos(latency=lambda: -1.0, latency_rate=1.0, enabled=True)(ok)
    with pytest.raises(ValueError, match=r"latency must be seconds .*-1\.0"):
        f()


async def test_async_latency_awaits_and_never_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    awaited: list[float] = []

    async def fake_async_sleep(seconds: float) -> None:
        awaited.append(seconds)

    def blocking_sleep(seconds: float) -> None:
        raise AssertionError("a coroutine must not call time.sleep")

    monkeypatch.setattr(chaos_mod, "_async_sleep", fake_async_sleep)
    monkeypatch.setattr(chaos_mod, "_sleep", blocking_sleep)

    @chaos(latency=2.0, latency_rate=1.0, enabled=True)
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    assert asyncio.iscoroutinefunction(fetch)
    assert await fetch(21) == 42
    assert await fetch(1) == 2
    assert awaited == [2.0, 2.0]
    assert stats_of(fetch).latency_seconds == 4.0


async def test_async_failures_and_rejections() -> None:
    @chaos(failure_rate=1.0, enabled=True)
    async def fails() -> None:
        raise AssertionError("not called")

    @chaos(rejection_rate=1.0, enabled=True)
    async def rejected() -> None:
        raise AssertionError("not called")

    with pytest.raises(ChaosError):
        await fails()
    with pytest.raises(CircuitOpenError):
        await rejected()


# ----- logging -----


def test_enabling_is_logged_once_per_wrapper(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)

    @chaos(failure_rate=0.5, latency=0.1, latency_rate=0.2, rejection_rate=0.1, enabled=True)
    def charge() -> str:
        return "ok"

    for _ in range(10):
        try:
            charge()
        except (ChaosError, CircuitOpenError):
            pass
    records = chaos_records(caplog)
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "charge" in message
    for part in ("failure_rate=0.5", "latency=0.1", "latency_rate=0.2", "rejection_rate=0.1"):
        assert part in message


def test_global_enable_logs_the_switch_and_each_wrapper_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    a = chaos(latency=0.0, latency_rate=1.0)(ok)
    b = chaos(latency=0.0, latency_rate=1.0)(lambda: "b")
    chaos_mod.enable()
    chaos_mod.enable()  # already on: not logged again
    for _ in range(3):
        a()
        b()
    assert len(chaos_records(caplog, "every chaos() wrapper")) == 1
    assert len(chaos_records(caplog, f"{__name__}.ok:")) == 1
    assert len(chaos_records(caplog, "<lambda>")) == 1


# ----- composing with a breaker -----


def test_breaker_outside_chaos_opens_after_three_injected_failures() -> None:
    calls: list[int] = []
    breaker = CircuitBreaker("chaotic", failure_threshold=3, clock=ManualClock())

    @breaker
    @chaos(failure_rate=1.0, enabled=True)
    def fetch() -> str:
        calls.append(1)
        return "ok"

    for _ in range(3):
        with pytest.raises(ChaosError):
            fetch()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError) as info:
        fetch()
    assert info.value.name == "chaotic"
    assert calls == []
    assert breaker.metrics()["failed"] == 3
    assert stats_of(fetch) == ChaosStats(3, 3, 0, 0, 0.0)  # the breaker kept chaos_stats


async def test_async_breaker_outside_chaos_opens() -> None:
    breaker = CircuitBreaker("chaotic-async", failure_threshold=3, clock=ManualClock())

    @breaker
    @chaos(failure_rate=1.0, enabled=True)
    async def fetch() -> str:
        return "ok"

    for _ in range(3):
        with pytest.raises(ChaosError):
            await fetch()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        await fetch()


def test_chaos_outside_breaker_hides_failures_from_it() -> None:
    breaker = CircuitBreaker("unseen", failure_threshold=3, clock=ManualClock())
    f = chaos(failure_rate=1.0, enabled=True)(breaker(ok))
    for _ in range(5):
        with pytest.raises(ChaosError):
            f()
    assert breaker.state == "closed"


# ----- stats -----


def test_all_stats_by_function_name() -> None:
    def twin() -> None:
        pass

    a = chaos(failure_rate=1.0, enabled=True)(twin)
    b = chaos(failure_rate=1.0, enabled=True)(twin)
    for f in (a, a, b):
        with pytest.raises(ChaosError):
            f()
    label = f"{__name__}.{twin.__qualname__}"
    assert all_stats()[label] == ChaosStats(3, 3, 0, 0, 0.0)


def test_stats_of_a_plain_function() -> None:
    with pytest.raises(TypeError, match="func must be decorated"):
        stats_of(ok)


# ----- validation -----


@pytest.mark.parametrize("name", ["failure_rate", "latency_rate", "rejection_rate"])
@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_rates_outside_zero_one_name_the_parameter(name: str, value: float) -> None:
    kwargs: dict[str, Any] = {name: value, "latency": 0.1}
    with pytest.raises(ValueError, match=rf"{name} must be in \[0, 1\], got {value!r}"):
        chaos(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"failure_rate": True}, TypeError, "failure_rate must be a number"),
        ({"rejection_rate": "0.5"}, TypeError, "rejection_rate must be a number"),
        ({"latency": -1.0}, ValueError, "latency must be seconds"),
        ({"latency": float("inf")}, ValueError, "latency must be seconds"),
        ({"latency": "1s"}, TypeError, "latency must be seconds"),
        ({"latency_rate": 0.5}, ValueError, "latency_rate=0.5 needs latency"),
        ({"exception": 42}, TypeError, "exception must be an exception class"),
        ({"exception": int}, TypeError, "exception must be an exception class"),
        ({"exception": None}, TypeError, "exception must be an exception class"),
        ({"rejection": "x"}, TypeError, "rejection must be an exception class"),
        ({"seed": 1.5}, TypeError, "seed must be an int"),
        ({"enabled": 1}, TypeError, "enabled must be True, False or None"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        chaos(**kwargs)


def test_generators_and_non_callables_are_refused() -> None:
    def gen() -> Iterator[int]:
        yield 1

    decorate: Callable[[Any], Any] = chaos(failure_rate=0.5)
    with pytest.raises(TypeError, match="generator functions"):
        decorate(gen)
    with pytest.raises(TypeError, match="decorates callables"):
        decorate(42)


def test_enable_refuses_non_bools() -> None:
    with pytest.raises(TypeError, match="on must be True, False or None"):
        chaos_mod.enable(1)  # type: ignore[arg-type]


def test_wrapper_keeps_the_function_metadata() -> None:
    def documented(x: int) -> int:
        """Doubles."""
        return 2 * x

    f = chaos(failure_rate=0.1)(documented)
    assert f.__name__ == "documented"
    assert f.__doc__ == "Doubles."
    assert f.__wrapped__ is documented  # type: ignore[attr-defined]
    assert f(4) == 8


# ----- fork -----


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_counts_from_zero(caplog: pytest.LogCaptureFixture) -> None:
    f = chaos(failure_rate=1.0, seed=1, enabled=True)(ok)
    for _ in range(4):
        with pytest.raises(ChaosError):
            f()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its stats, then exit without running pytest's atexit
        code = 1
        try:
            before = stats_of(f)
            try:
                f()
            except ChaosError:
                pass
            after = stats_of(f)
            os.write(write, f"{before.calls} {after.calls} {after.failures}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == "0 1 1"
    assert stats_of(f).calls == 4  # the parent's counts are its own
