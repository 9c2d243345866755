"""The Python face of the native circuit breaker: decorators, async and context managers."""

from __future__ import annotations

import functools
import inspect
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Generator, TypeVar

from . import _native
from ._native import CircuitOpenError, Permit

if TYPE_CHECKING:
    from typing_extensions import ParamSpec

    P = ParamSpec("P")

R = TypeVar("R")

# Permits of the `with` / `async with` blocks open in this context (thread or task), as an
# immutable stack, so that tasks that copy the context never share it.
_PERMITS: ContextVar[tuple[tuple[object, Permit], ...]] = ContextVar(
    "fastbreaker_permits", default=()
)


class Listener:
    """Base class for breaker listeners; override the hooks you need.

    Hooks run after the change is committed, outside any lock, in the thread that made it.
    A hook that raises is logged (logger ``fastbreaker``) and never reaches the caller.
    A breaker looks the hooks up once, when the listener is added: a hook the object lacks
    costs nothing, and methods attached to the object later are not called.
    """

    def on_state_change(self, name: str, old: str, new: str) -> None:
        """The breaker ``name`` went from state ``old`` to state ``new``."""

    def on_failure(self, name: str, exc: BaseException) -> None:
        """A call through ``name`` failed with ``exc`` (excluded exceptions do not count)."""

    def on_rejection(self, name: str, exc: CircuitOpenError) -> None:
        """A call through ``name`` was refused; ``exc`` is the error it raises."""


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class CircuitBreaker(_native.CircuitBreaker):
    """A lock-free circuit breaker.

    ``CircuitBreaker(name, failure_threshold=..., wait_duration=..., *, ...)``; every option
    of the core is a keyword (see the package README); an option not given takes the core's
    default (``fastbreaker.LIMITS``, in the core's units), and ``options()`` reads them all
    back. Durations are float seconds; each has an exact twin in integer nanoseconds
    (``wait_duration_ns``, ``max_wait_duration_ns``, ``slow_call_duration_ns``,
    ``bucket_duration_ns`` for a time window instead of ``window_seconds``; giving both forms
    of one is a TypeError), as ``retry_after_ns`` is of ``retry_after`` and
    ``record(..., duration_ns=)`` of ``duration``: float seconds cannot hold every nanosecond
    past 2^53 ns, and the longest wait is 2^54 ns. Use it as a
    decorator (plain functions, coroutine functions, generators, async generators), with
    ``call`` / ``call_async``, as a ``with`` / ``async with`` block, or in two steps:
    ``acquire()`` returns a ``Permit`` and ``record(permit, outcome)`` counts it, once.
    ``clock=ManualClock()`` makes its time explicit (tests, simulations).
    """

    __slots__ = ()

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorates ``func`` so that every call goes through the breaker."""
        wrapper: Any
        if inspect.isasyncgenfunction(func):
            wrapper = self._wrap_async_generator(func)
        elif inspect.iscoroutinefunction(func):
            wrapper = self._wrap_coroutine(func)
        elif inspect.isgeneratorfunction(func):
            wrapper = self._wrap_generator(func)
        elif callable(func):
            wrapper = self._guard(func)
            functools.update_wrapper(wrapper, func)
        else:
            raise TypeError(f"CircuitBreaker decorates callables, got {func!r}")
        return wrapper  # type: ignore[no-any-return]

    def _wrap_coroutine(self, func: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        acquire = self.acquire
        record = self.record
        fallback = self.fallback
        note_fallback = self._note_fallback

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                permit = acquire()
            except CircuitOpenError:
                if fallback is None:
                    raise
                note_fallback()
                return await _maybe_await(fallback(*args, **kwargs))
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                record(permit, exc)
                raise
            record(permit)
            return result

        wrapper.breaker = self  # type: ignore[attr-defined]
        return wrapper

    def _wrap_generator(self, func: Callable[..., Generator[Any, Any, Any]]) -> Callable[..., Any]:
        acquire = self.acquire
        record = self.record
        fallback = self.fallback
        note_fallback = self._note_fallback

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                permit = acquire()
            except CircuitOpenError:
                if fallback is None:
                    raise
                note_fallback()
                replacement: Any = fallback(*args, **kwargs)
                return (yield from replacement)
            try:
                result = yield from func(*args, **kwargs)
            except BaseException as exc:
                record(permit, exc)
                raise
            record(permit)
            return result

        wrapper.breaker = self  # type: ignore[attr-defined]
        return wrapper

    def _wrap_async_generator(self, func: Callable[..., AsyncIterator[Any]]) -> Callable[..., Any]:
        acquire = self.acquire
        record = self.record
        fallback = self.fallback
        note_fallback = self._note_fallback

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                permit = acquire()
            except CircuitOpenError:
                if fallback is None:
                    raise
                note_fallback()
                async for item in fallback(*args, **kwargs):
                    yield item
                return
            try:
                async for item in func(*args, **kwargs):
                    yield item
            except BaseException as exc:
                record(permit, exc)
                raise
            record(permit)

        wrapper.breaker = self  # type: ignore[attr-defined]
        return wrapper

    @classmethod
    def from_env(cls, name: str, **kwargs: Any) -> CircuitBreaker:
        """A breaker configured from ``FASTBREAKER_<NAME>_<OPTION>``, ``FASTBREAKER_<OPTION>``,
        ``kwargs`` and the ``FASTBREAKER_ENV`` profile, in that order (see docs/operations.md)."""
        from .env import breaker_from_env

        return breaker_from_env(name, cls=cls, **kwargs)

    async def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Awaits ``func(*args, **kwargs)`` through the breaker."""
        try:
            permit = self.acquire()
        except CircuitOpenError:
            fallback = self.fallback
            if fallback is None:
                raise
            self._note_fallback()
            return await _maybe_await(fallback(*args, **kwargs))  # type: ignore[no-any-return]
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            self.record(permit, exc)
            raise
        self.record(permit)
        return result

    # ----- with / async with -----

    def _push(self) -> None:
        permit = self.acquire()
        _PERMITS.set((*_PERMITS.get(), (self, permit)))

    def _pop(self, exc: BaseException | None) -> None:
        stack = _PERMITS.get()
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][0] is self:
                permit = stack[i][1]
                _PERMITS.set(stack[:i] + stack[i + 1 :])
                self.record(permit, exc)
                return

    def __enter__(self) -> CircuitBreaker:
        self._push()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pop(exc)

    async def __aenter__(self) -> CircuitBreaker:
        self._push()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pop(exc)
