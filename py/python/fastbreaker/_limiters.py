"""Rate limiter and bulkhead: blocking, async and decorator forms over the native core."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from . import _native

if TYPE_CHECKING:
    from typing_extensions import ParamSpec

    P = ParamSpec("P")

R = TypeVar("R")


class RateLimiter(_native.RateLimiter):
    """A lock-free GCRA token bucket: ``rate`` tokens every ``per`` seconds, ``burst`` at once.

    ``try_acquire`` never waits. ``acquire`` / ``acquire_async`` wait in line (fair: each
    caller reserves its tokens in arrival order, then sleeps for its own reservation); with
    ``timeout`` they raise ``RateLimitExceeded`` at once, taking nothing, when the wait would
    be longer. ``with``, ``async with`` and the decorator wait with no timeout. ``n`` above
    the burst can never be granted: every method raises ``BurstExceeded`` (a ValueError) for
    it. With ``clock=ManualClock(...)`` the limiter reads that clock; ``acquire`` then still
    sleeps for real, so tests use ``try_acquire`` and ``retry_after``. ``per_ns=`` gives the
    period in integer nanoseconds instead of ``per`` (not both), and ``retry_after_ns`` and
    ``reserve_ns`` read exact nanoseconds: float seconds cannot hold every nanosecond past
    2^53 ns.
    """

    __slots__ = ()

    @classmethod
    def from_env(cls, name: str, **kwargs: Any) -> RateLimiter:
        """A limiter configured from ``FASTBREAKER_<NAME>_<OPTION>``, ``FASTBREAKER_<OPTION>``
        and ``kwargs``, in that order (see docs/operations.md); its name is ``name``."""
        from .env import limiter_from_env

        return limiter_from_env(name, cls=cls, **kwargs)

    def acquire(self, n: int = 1, timeout: float | None = None) -> None:
        """Takes ``n`` tokens, sleeping until they are due."""
        wait = self.reserve(n, timeout)
        if wait > 0.0:
            try:
                time.sleep(wait)
            except BaseException:
                self.refund(n)
                raise

    async def acquire_async(self, n: int = 1, timeout: float | None = None) -> None:
        """Takes ``n`` tokens, awaiting until they are due; cancellation refunds them."""
        wait = self.reserve(n, timeout)
        if wait > 0.0:
            try:
                await asyncio.sleep(wait)
            except BaseException:
                self.refund(n)
                raise

    def __enter__(self) -> RateLimiter:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def __aenter__(self) -> RateLimiter:
        await self.acquire_async()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorates ``func``: each call first takes one token, waiting for it if needed."""
        if not callable(func):
            raise TypeError(f"RateLimiter decorates callables, got {func!r}")
        wrapper: Any
        if inspect.iscoroutinefunction(func):
            acquire_async = self.acquire_async

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                await acquire_async()
                return await func(*args, **kwargs)

            wrapper = async_wrapper
        else:
            acquire = self.acquire

            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                acquire()
                return func(*args, **kwargs)

            wrapper = sync_wrapper
        return wrapper  # type: ignore[no-any-return]


class Bulkhead(_native.Bulkhead):
    """At most ``max_concurrent`` calls in flight; the rest fail fast with ``BulkheadFull``."""

    __slots__ = ()

    def __enter__(self) -> Bulkhead:
        self._enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    async def __aenter__(self) -> Bulkhead:
        self._enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorates ``func``: each call holds a slot while it runs, or raises BulkheadFull."""
        if not callable(func):
            raise TypeError(f"Bulkhead decorates callables, got {func!r}")
        enter = self._enter
        release = self.release
        wrapper: Any
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                enter()
                try:
                    return await func(*args, **kwargs)
                finally:
                    release()

            wrapper = async_wrapper
        else:

            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                enter()
                try:
                    return func(*args, **kwargs)
                finally:
                    release()

            wrapper = sync_wrapper
        return wrapper  # type: ignore[no-any-return]
