"""Retries with exponential backoff, for sync and async functions.

The delays come from the core's ``Backoff`` (the same arithmetic as a breaker's open wait);
a wait is never shorter than the ``retry_after`` of a ``CircuitOpenError`` or
``RateLimitExceeded``, and the retry gives up at once when the remaining ``timeout`` budget
cannot cover the next wait.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import math
import threading
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Optional, TypeVar, Union

from ._native import Backoff, CircuitOpenError, RateLimitExceeded

if TYPE_CHECKING:
    from typing_extensions import ParamSpec, TypeAlias

    P = ParamSpec("P")

__all__ = ["retry"]

R = TypeVar("R")

_RetryOnItem: TypeAlias = Union[type[BaseException], Callable[[BaseException], object]]
RetryOn: TypeAlias = Union[_RetryOnItem, Iterable[_RetryOnItem]]


def _bad(kind: type[Exception], name: str, value: object, what: str) -> Exception:
    return kind(f"{name} must be {what}, got {value!r} ({type(value).__name__})")


def _add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)`` on 3.11+; on older versions the same ``__notes__`` list."""
    add_note = getattr(exc, "add_note", None)
    if add_note is not None:
        add_note(note)
        return
    try:
        exc.__notes__ = [*getattr(exc, "__notes__", ()), note]  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        pass


def _matcher(retry_on: RetryOn) -> Callable[[BaseException], bool]:
    """``retry_on`` as one predicate; validates it."""
    items: list[Any]
    if isinstance(retry_on, type) or (callable(retry_on) and not isinstance(retry_on, Iterable)):
        items = [retry_on]
    elif isinstance(retry_on, Iterable) and not isinstance(retry_on, (str, bytes)):
        items = list(retry_on)
        if not items:
            raise _bad(ValueError, "retry_on", retry_on, "an exception type, a predicate or some")
    else:
        raise _bad(TypeError, "retry_on", retry_on, "exception types and predicates")
    types: list[type[BaseException]] = []
    predicates: list[Callable[[BaseException], object]] = []
    for item in items:
        if isinstance(item, type):
            if not issubclass(item, Exception):
                raise _bad(TypeError, "retry_on", item, "Exception subclasses and predicates")
            types.append(item)
        elif callable(item):
            predicates.append(item)
        else:
            raise _bad(TypeError, "retry_on", item, "an exception type or a predicate")
    type_tuple = tuple(types)

    def matches(exc: BaseException) -> bool:
        if isinstance(exc, type_tuple):
            return True
        return any(predicate(exc) for predicate in predicates)

    return matches


class _Policy:
    """The decisions shared by the sync and the async wrapper."""

    def __init__(
        self,
        attempts: int,
        backoff: Backoff,
        matches: Callable[[BaseException], bool],
        timeout: Optional[float],
        clock: Callable[[], float],
    ) -> None:
        self.attempts = attempts
        self.backoff = backoff
        self.matches = matches
        self.timeout = timeout
        self.clock = clock
        self._nonces = itertools.count()
        self._lock = threading.Lock()

    def deadline(self) -> Optional[float]:
        """When the budget of a sequence starting now runs out (None: no budget)."""
        return None if self.timeout is None else self.clock() + self.timeout

    def nonce(self) -> int:
        """A new jitter nonce for one retry sequence (0, 1, 2, ... per decorated function)."""
        with self._lock:
            return next(self._nonces) % (1 << 64)

    def wait(self, exc: Exception, attempt: int, nonce: int, deadline: Optional[float]) -> float:
        """Seconds to wait before the next call after the ``attempt``-th call failed with
        ``exc``, or -1.0 to give up (``exc`` then carries a note saying why)."""
        if not self.matches(exc):
            return -1.0
        if attempt >= self.attempts:
            _add_note(exc, f"fastbreaker.retry: gave up after {attempt} attempt(s)")
            return -1.0
        # One jitter draw per (sequence, attempt): the core hashes (seed, nonce) only.
        wait = self.backoff.delay(attempt - 1, (nonce << 32 | attempt) % (1 << 64))
        if isinstance(exc, (CircuitOpenError, RateLimitExceeded)):
            wait = max(wait, float(exc.retry_after))
            if wait == math.inf:  # time.sleep(inf) raises, asyncio.sleep(inf) never returns
                _add_note(
                    exc, f"fastbreaker.retry: gave up after {attempt} attempt(s): retry_after=inf"
                )
                return -1.0
        if deadline is not None:
            remaining = deadline - self.clock()
            if wait > remaining:
                _add_note(
                    exc,
                    f"fastbreaker.retry: gave up after {attempt} attempt(s): the next wait "
                    f"({wait:.3f} s) exceeds the remaining budget ({max(remaining, 0.0):.3f} s "
                    f"of timeout={self.timeout})",
                )
                return -1.0
        return wait


def retry(
    attempts: int = 3,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    multiplier: float = 2.0,
    jitter: float = 0.5,
    retry_on: RetryOn = Exception,
    timeout: Optional[float] = None,
    *,
    seed: Optional[int] = None,
    sleep: Optional[Callable[[float], object]] = None,
    async_sleep: Optional[Callable[[float], Awaitable[object]]] = None,
    clock: Optional[Callable[[], float]] = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator factory: call the function up to ``attempts`` times in all.

    After the n-th failed call (n = 1, 2, ...) it waits ``base_delay * multiplier**(n-1)``
    seconds, capped at ``max_delay``, minus up to ``jitter`` (a fraction, default 0.5: the
    wait falls in [d/2, d]) of it. A ``CircuitOpenError`` or ``RateLimitExceeded`` makes the
    wait at least its ``retry_after``, even above ``max_delay`` (an infinite one gives up at
    once). The jitter of each retry sequence is drawn from ``(seed, nonce)`` with a new nonce
    per sequence, so concurrent callers spread out while a run with a fixed ``seed`` repeats
    exactly.

    ``retry_on`` (default ``Exception``) is an exception type, a predicate ``exc -> bool``, or
    an iterable of them; other errors, and ``BaseException`` s that are not ``Exception`` s
    (cancellation, ``KeyboardInterrupt``), propagate at once. ``timeout`` is an overall budget
    in seconds on ``clock`` (default ``time.monotonic``), from the first call; it does not
    interrupt a running call, but when the next wait would end past it the retry gives up at
    once. Giving up re-raises the last error itself (callers' ``except`` clauses keep
    working) with a note (``add_note``) saying how many attempts were made and why it stopped.

    ``sleep`` (sync functions, default ``time.sleep``) and ``async_sleep`` (coroutine
    functions, default ``asyncio.sleep``) and ``clock`` are hooks for tests.
    """
    if callable(attempts):
        raise _bad(TypeError, "attempts", attempts, "an int >= 1 (write @retry(), not @retry)")
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        raise _bad(TypeError, "attempts", attempts, "an int >= 1")
    if attempts < 1:
        raise _bad(ValueError, "attempts", attempts, "an int >= 1")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise _bad(TypeError, "timeout", timeout, "None or a number of seconds")
        if not math.isfinite(timeout) or timeout <= 0:
            raise _bad(ValueError, "timeout", timeout, "None or a finite number of seconds > 0")
    for hook_name, hook in (("sleep", sleep), ("async_sleep", async_sleep), ("clock", clock)):
        if hook is not None and not callable(hook):
            raise _bad(TypeError, hook_name, hook, "callable or None")
    backoff = Backoff(base_delay, max_delay, multiplier, jitter, seed)
    policy = _Policy(attempts, backoff, _matcher(retry_on), timeout, clock or time.monotonic)

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise _bad(
                TypeError, "func", func, "a function or coroutine function (not a generator)"
            )
        if not callable(func):
            raise _bad(TypeError, "func", func, "callable")
        wrapper: Any
        if inspect.iscoroutinefunction(func):
            wrapper = _async_wrapper(func, policy, async_sleep)
        else:
            wrapper = _sync_wrapper(func, policy, sleep)
        return wrapper  # type: ignore[no-any-return]

    return decorate


def _sync_wrapper(
    func: Callable[P, R], policy: _Policy, sleep: Optional[Callable[[float], object]]
) -> Callable[P, R]:
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        deadline = policy.deadline()
        nonce = -1
        attempt = 0
        while True:
            attempt += 1
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                if nonce < 0:
                    nonce = policy.nonce()
                wait = policy.wait(exc, attempt, nonce, deadline)
                if wait < 0.0:
                    raise
            if sleep is None:
                time.sleep(wait)
            else:
                sleep(wait)

    return wrapper


def _async_wrapper(
    func: Callable[P, Awaitable[R]],
    policy: _Policy,
    async_sleep: Optional[Callable[[float], Awaitable[object]]],
) -> Callable[P, Awaitable[R]]:
    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        deadline = policy.deadline()
        nonce = -1
        attempt = 0
        while True:
            attempt += 1
            try:
                return await func(*args, **kwargs)
            except Exception as exc:
                if nonce < 0:
                    nonce = policy.nonce()
                wait = policy.wait(exc, attempt, nonce, deadline)
                if wait < 0.0:
                    raise
            if async_sleep is None:
                await asyncio.sleep(wait)
            else:
                await async_sleep(wait)

    return wrapper
