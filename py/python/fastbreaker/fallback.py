"""Tier fallback: try a primary, then each fallback in order, skipping tiers whose breaker is open.

``fallback_chain(primary, secondary, ..., name=None)`` returns one callable. A tier is

- a plain callable (sync or async),
- a callable decorated by a fastbreaker ``CircuitBreaker`` (found through its ``breaker``
  attribute, also under other decorators that set ``__wrapped__``, such as ``retry``), or
- a ``(breaker, callable)`` pair, called as ``breaker.call(f, ...)`` /
  ``breaker.call_async(f, ...)``.

Before calling a breaker tier, the chain reads its breaker: when it is ``forced_open``, or
``open`` with time left before a probe (``retry_after > 0``), the tier is skipped without
being called and a ``CircuitOpenError`` is recorded for it. Every tier that raises an
``Exception`` (a ``CircuitOpenError`` from a breaker included) is recorded and the next tier
is tried; when none succeeds, ``AllTiersFailedError`` carries every tier's error.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

from . import _native
from ._breaker import CircuitBreaker
from ._native import CircuitOpenError, FastbreakerError

__all__ = ["AllTiersFailedError", "fallback_chain"]

Tier = Union[Callable[..., Any], "tuple[CircuitBreaker, Callable[..., Any]]"]


class AllTiersFailedError(FastbreakerError):
    """Every tier of a fallback chain failed or was skipped. ``args = (errors, name)``.

    ``errors`` lists ``(tier name, exception)`` in tier order (a skipped tier has a
    ``CircuitOpenError`` it never raised); ``exceptions`` holds the exceptions alone, like an
    ``ExceptionGroup``'s. This is a plain ``FastbreakerError`` (not an ``ExceptionGroup``) so
    that ``except AllTiersFailedError`` works the same on every Python version; its
    ``__cause__`` is the last tier's error.
    """

    __module__ = "fastbreaker"

    def __init__(
        self, errors: Sequence[tuple[str, BaseException]], name: Optional[str] = None
    ) -> None:
        super().__init__(list(errors), name)

    @property
    def errors(self) -> list[tuple[str, BaseException]]:
        """``(tier name, exception)`` for every tier, in order."""
        errors: list[tuple[str, BaseException]] = self.args[0]
        return errors

    @property
    def exceptions(self) -> tuple[BaseException, ...]:
        """Every tier's exception, in order."""
        return tuple(exc for _, exc in self.errors)

    @property
    def name(self) -> Optional[str]:
        """The chain's name, if it was given one."""
        name: Optional[str] = self.args[1]
        return name

    def __str__(self) -> str:
        errors = self.errors
        what = f"all {len(errors)} tier(s)" + (f" of {self.name!r}" if self.name else "")
        details = "; ".join(f"{tier}: {type(exc).__name__}: {exc}" for tier, exc in errors)
        return f"{what} failed: {details}"


class _Tier(NamedTuple):
    name: str
    call: Callable[..., Any]
    breaker: Optional[_native.CircuitBreaker]
    is_async: bool


def _callable_name(func: Callable[..., Any]) -> str:
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    return name if isinstance(name, str) else repr(func)


def _tier(index: int, tier: object) -> _Tier:
    """Validates one tier and says how to call it."""
    label = f"tiers[{index}]"
    if isinstance(tier, tuple):
        if len(tier) != 2 or not isinstance(tier[0], CircuitBreaker) or not callable(tier[1]):
            raise TypeError(
                f"{label} must be a callable or a (CircuitBreaker, callable) pair, got {tier!r}"
            )
        breaker, func = tier
        _reject_generators(label, func)
        if inspect.iscoroutinefunction(func):
            return _Tier(breaker.name, functools.partial(breaker.call_async, func), breaker, True)
        return _Tier(breaker.name, functools.partial(breaker.call, func), breaker, False)
    if not callable(tier):
        raise TypeError(
            f"{label} must be a callable or a (CircuitBreaker, callable) pair, got {tier!r}"
        )
    _reject_generators(label, tier)
    breaker = _breaker_of(tier)
    is_async = inspect.iscoroutinefunction(tier)
    if breaker is not None:
        return _Tier(breaker.name, tier, breaker, is_async)
    return _Tier(_callable_name(tier), tier, None, is_async)


def _breaker_of(func: object) -> Optional[_native.CircuitBreaker]:
    """The breaker ``func`` goes through: its own ``breaker`` attribute, or that of a function
    it wraps (following ``__wrapped__``, as ``functools.wraps`` sets it), or None."""
    seen: set[int] = set()
    while func is not None and id(func) not in seen:
        seen.add(id(func))
        breaker = getattr(func, "breaker", None)
        if isinstance(breaker, _native.CircuitBreaker):
            return breaker
        func = getattr(func, "__wrapped__", None)
    return None


def _reject_generators(label: str, func: object) -> None:
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise TypeError(f"{label} must not be a generator function, got {func!r}")


def _skipped(breaker: _native.CircuitBreaker) -> Optional[CircuitOpenError]:
    """The error a breaker that would refuse a call now stands for, or None."""
    state = breaker.state
    if state == "forced_open":
        return CircuitOpenError(breaker.name, state, breaker.retry_after)
    if state == "open":
        retry_after = breaker.retry_after
        if retry_after > 0.0:
            return CircuitOpenError(breaker.name, state, retry_after)
    return None


def fallback_chain(*tiers: Tier, name: Optional[str] = None) -> Callable[..., Any]:
    """One callable that tries ``tiers`` in order with the same arguments.

    It returns the first tier's result that does not raise. When every tier is a plain
    function it is a plain function; when any tier is a coroutine function it is a coroutine
    function (sync tiers are then called directly, and awaitable results are awaited).
    Tiers whose breaker would refuse the call are skipped without being called, and a
    breaker's own ``fallback`` is not used for them: the chain is the fallback. Only
    ``Exception`` s move on to the next tier; cancellation and other ``BaseException`` s
    propagate at once. When no tier succeeds it raises ``AllTiersFailedError``.
    """
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {name!r} ({type(name).__name__})")
    if not tiers:
        raise ValueError("fallback_chain needs at least one tier, got none")
    resolved = tuple(_tier(i, t) for i, t in enumerate(tiers))
    chain_name = name or "fallback_chain"

    if any(t.is_async for t in resolved):

        async def async_chain(*args: Any, **kwargs: Any) -> Any:
            errors: list[tuple[str, BaseException]] = []
            for tier in resolved:
                if tier.breaker is not None:
                    skipped = _skipped(tier.breaker)
                    if skipped is not None:
                        errors.append((tier.name, skipped))
                        continue
                try:
                    result = tier.call(*args, **kwargs)
                    if inspect.isawaitable(result):
                        result = await result
                    return result
                except Exception as exc:
                    errors.append((tier.name, exc))
            raise AllTiersFailedError(errors, name) from errors[-1][1]

        chain: Callable[..., Any] = async_chain
    else:

        def sync_chain(*args: Any, **kwargs: Any) -> Any:
            errors: list[tuple[str, BaseException]] = []
            for tier in resolved:
                if tier.breaker is not None:
                    skipped = _skipped(tier.breaker)
                    if skipped is not None:
                        errors.append((tier.name, skipped))
                        continue
                try:
                    return tier.call(*args, **kwargs)
                except Exception as exc:
                    errors.append((tier.name, exc))
            raise AllTiersFailedError(errors, name) from errors[-1][1]

        chain = sync_chain
    chain.__name__ = chain.__qualname__ = chain_name
    chain.__doc__ = "Fallback chain over: " + ", ".join(t.name for t in resolved)
    return chain
