"""fallback_chain(): tier order, skipping open breakers, sync/async, AllTiersFailedError."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Callable

import pytest

from fastbreaker import CircuitBreaker, CircuitOpenError, FastbreakerError
from fastbreaker.fallback import AllTiersFailedError, fallback_chain


class Tier:
    """A sync tier that answers or raises, and counts its calls."""

    def __init__(self, answer: Any = None, error: BaseException | None = None) -> None:
        self.answer = answer
        self.error = error
        self.calls: list[tuple[Any, ...]] = []
        self.__qualname__ = f"Tier({answer!r})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        if self.error is not None:
            raise self.error
        return self.answer


def test_the_first_tier_that_answers_wins() -> None:
    primary, secondary = Tier("p"), Tier("s")
    chain = fallback_chain(primary, secondary)
    assert not inspect.iscoroutinefunction(chain)
    assert chain(1, k=2) == "p"
    assert primary.calls == [((1,), {"k": 2})]
    assert secondary.calls == []


def test_a_failing_tier_falls_through_with_the_same_arguments() -> None:
    primary, secondary = Tier(error=TimeoutError("slow")), Tier("s")
    assert fallback_chain(primary, secondary)("x") == "s"
    assert primary.calls == secondary.calls == [(("x",), {})]


def test_all_tiers_failing_raises_with_every_error() -> None:
    first, second = TimeoutError("slow"), ValueError("bad")

    def primary() -> None:
        raise first

    def secondary() -> None:
        raise second

    chain = fallback_chain(primary, secondary, name="search")
    with pytest.raises(AllTiersFailedError) as info:
        chain()
    err = info.value
    assert isinstance(err, FastbreakerError)
    assert err.name == "search"
    assert [(n.rsplit(".", 1)[-1], e) for n, e in err.errors] == [
        ("primary", first),
        ("secondary", second),
    ]
    assert err.exceptions == (first, second)
    assert err.__cause__ is second
    message = str(err)
    assert message.startswith("all 2 tier(s) of 'search' failed: ")
    assert "primary: TimeoutError: slow" in message
    assert "secondary: ValueError: bad" in message


def test_an_open_decorated_tier_is_skipped_without_being_called() -> None:
    breaker = CircuitBreaker("primary-api", failure_threshold=1, wait_duration=30.0)
    calls = 0

    @breaker
    def primary() -> str:
        nonlocal calls
        calls += 1
        return "p"

    chain = fallback_chain(primary, Tier("s"))
    assert chain() == "p"
    breaker.trip()
    rejected = breaker.metrics()["rejected"]
    assert chain() == "s"
    assert calls == 1
    assert breaker.metrics()["rejected"] == rejected  # never even asked the breaker

    breaker.force_open()
    with pytest.raises(AllTiersFailedError) as info:
        fallback_chain(primary)()
    ((name, error),) = info.value.errors
    assert name == "primary-api"
    assert isinstance(error, CircuitOpenError)
    assert (error.name, error.state) == ("primary-api", "forced_open")


def test_open_tier_skip_records_the_retry_after() -> None:
    breaker = CircuitBreaker("a", wait_duration=30.0)
    breaker.trip()
    with pytest.raises(AllTiersFailedError) as info:
        fallback_chain((breaker, Tier("never")))()
    error = info.value.errors[0][1]
    assert isinstance(error, CircuitOpenError)
    assert error.state == "open"
    assert 0.0 < error.retry_after <= 30.0


def test_the_breaker_fallback_of_a_skipped_tier_is_not_used() -> None:
    breaker = CircuitBreaker("with-fallback", fallback=lambda: "breaker fallback")
    chain = fallback_chain(breaker(Tier("p")), Tier("s"))
    breaker.force_open()
    assert chain() == "s"


def test_half_open_and_manual_states_are_called() -> None:
    breaker = CircuitBreaker("probing")
    primary = Tier("p")
    chain = fallback_chain((breaker, primary), Tier("s"))
    for move in (breaker.half_open, breaker.disable, breaker.metrics_only):
        move()
        assert chain() == "p"
    assert len(primary.calls) == 3


def test_a_rejection_raised_by_a_tier_falls_through() -> None:
    breaker = CircuitBreaker("full", half_open_max_calls=1)
    breaker.half_open()
    permit = breaker.acquire()  # the only probe slot is taken
    try:
        chain = fallback_chain((breaker, Tier("p")), Tier("s"))
        assert chain() == "s"
    finally:
        breaker.record(permit)


def test_pair_tiers_go_through_the_breaker() -> None:
    breaker = CircuitBreaker("pair", failure_threshold=2)
    chain = fallback_chain((breaker, Tier(error=OSError())), Tier("s"))
    assert chain() == "s"
    assert chain() == "s"
    assert breaker.metrics()["failed"] == 2
    assert breaker.state == "open"
    assert chain() == "s"
    assert breaker.metrics()["permitted"] == 2  # the third call skipped it


async def test_any_async_tier_makes_an_async_chain() -> None:
    async def primary(x: int) -> int:
        raise TimeoutError

    async def secondary(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    chain = fallback_chain(Tier(error=OSError()), primary, secondary, Tier("unused"))
    assert inspect.iscoroutinefunction(chain)
    assert await chain(1) == 2


async def test_async_chain_calls_sync_tiers_and_awaits_awaitables() -> None:
    async def later() -> str:
        return "awaited"

    assert await fallback_chain(Tier(error=OSError()), Tier("sync"), later)() == "sync"

    async def fails() -> str:
        raise OSError

    assert await fallback_chain(fails, lambda: later())() == "awaited"


async def test_async_pair_tiers_use_call_async() -> None:
    breaker = CircuitBreaker("async-pair", failure_threshold=1)

    async def primary() -> str:
        raise OSError("down")

    async def secondary() -> str:
        return "s"

    chain = fallback_chain((breaker, primary), secondary)
    assert await chain() == "s"
    assert breaker.state == "open"
    assert await chain() == "s"
    assert breaker.metrics()["permitted"] == 1


async def test_async_all_failed() -> None:
    async def primary() -> None:
        raise OSError("a")

    with pytest.raises(AllTiersFailedError) as info:
        await fallback_chain(primary, Tier(error=KeyError("b")))()
    assert [type(e) for _, e in info.value.errors] == [OSError, KeyError]


async def test_an_open_decorated_coroutine_tier_is_skipped() -> None:
    breaker = CircuitBreaker("async-decorated", fallback=lambda: "breaker fallback")
    calls = 0

    @breaker
    async def primary() -> str:
        nonlocal calls
        calls += 1
        return "p"

    async def secondary() -> str:
        return "s"

    chain = fallback_chain(primary, secondary)
    assert await chain() == "p"
    breaker.force_open()
    assert await chain() == "s", "decorated coroutine functions need a .breaker attribute"
    assert calls == 1


def test_cancellation_and_interrupts_propagate_at_once() -> None:
    secondary = Tier("s")
    with pytest.raises(KeyboardInterrupt):
        fallback_chain(Tier(error=KeyboardInterrupt()), secondary)()
    assert secondary.calls == []


async def test_async_cancellation_propagates_at_once() -> None:
    async def primary() -> None:
        raise asyncio.CancelledError

    secondary = Tier("s")
    with pytest.raises(asyncio.CancelledError):
        await fallback_chain(primary, secondary)()
    assert secondary.calls == []


def test_the_chain_is_named() -> None:
    assert fallback_chain(Tier(1), name="llm").__name__ == "llm"
    assert fallback_chain(Tier(1)).__name__ == "fallback_chain"


def test_unnamed_chain_message() -> None:
    with pytest.raises(AllTiersFailedError, match=r"^all 1 tier\(s\) failed: "):
        fallback_chain(Tier(error=OSError("x")))()


def test_bad_tiers_are_refused() -> None:
    breaker = CircuitBreaker("b")

    def gen() -> Any:
        yield 1

    with pytest.raises(ValueError, match="at least one tier"):
        fallback_chain()
    with pytest.raises(TypeError, match=r"tiers\[1\] must be a callable or a .*got 3"):
        fallback_chain(Tier(1), 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"tiers\[0\] must be .*pair"):
        fallback_chain(("b", Tier(1)))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"tiers\[0\] must be .*pair"):
        fallback_chain((breaker, 3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"tiers\[0\] must not be a generator"):
        fallback_chain(gen)
    with pytest.raises(TypeError, match=r"name must be a str or None, got 5 \(int\)"):
        fallback_chain(Tier(1), name=5)  # type: ignore[arg-type]


def test_error_args_round_trip() -> None:
    errors: list[tuple[str, BaseException]] = [("a", OSError("x"))]
    err = AllTiersFailedError(errors, "n")
    copy = AllTiersFailedError(*err.args)
    assert (copy.errors, copy.name, str(copy)) == (err.errors, err.name, str(err))


def test_a_breaker_under_other_decorators_is_found_through_wrapped() -> None:
    import functools

    breaker = CircuitBreaker("wrapped", rejection_error=lambda *a: AssertionError("called"))
    calls = 0

    def logged(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

        return wrapper

    @logged
    @breaker
    def primary() -> str:
        nonlocal calls
        calls += 1
        return "p"

    chain = fallback_chain(primary, lambda: "s")
    assert chain() == "p"
    breaker.force_open()
    assert chain() == "s"  # skipped, not refused: the refusal would raise AssertionError
    assert calls == 1 and breaker.metrics()["rejected"] == 0
