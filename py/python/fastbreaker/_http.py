"""What the HTTP client integrations share (``fastbreaker.httpx``, ``.requests``, ``.aiohttp``).

A :class:`Rule` composes, for the requests it covers, a circuit breaker, a limiter (a
``fastbreaker.RateLimiter`` or any object with the adaptive API: ``try_acquire()``,
``record(outcome, latency=, retry_after=)``, ``retry_after()``, found by duck typing), a
bulkhead and a :class:`Retry` policy. A :class:`Router` picks the rule of a request by host
(``"api.example.com"``, ``"*.example.com"``, ``"example.com:8443"``) or by a compiled regular
expression searched in the full URL, first match first, else the default rule.

Each client adapter runs the same steps around each attempt:

1. :meth:`Rule.enter` before sending: a ``Retry-After`` pause still running, the limiter, the
   breaker and the bulkhead, in that order; a refusal raises ``RateLimitExceeded``,
   ``CircuitOpenError`` or ``BulkheadFull`` and gives back what the earlier steps took. A wait
   up to ``max_wait`` seconds is returned to the adapter, which sleeps (or awaits) it.
2. :meth:`Rule.exit` with the status and headers, or the exception: the breaker counts a
   failure for a status in ``failure_statuses`` (5xx by default) or an exception in
   ``failure_exceptions`` (connection errors and timeouts of the client by default), a
   success for other statuses and ignores other exceptions; an adaptive limiter is told
   ``"overload"`` (a status in ``overload_statuses``, 429 and 503 by default, or a timeout,
   with the ``Retry-After`` if any), ``"success"`` with the latency (a 1xx/2xx/3xx) or
   ``"ignore"`` (anything else); a ``Retry-After`` on an overload status pauses every request
   of the rule until it has passed.
3. :meth:`Rule.retry_wait`: whether to send again and after how long (the core's ``Backoff``,
   never less than the ``Retry-After``), for idempotent methods only unless asked.
"""

from __future__ import annotations

import inspect
import itertools
import math
import re
import threading
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Optional,
    Protocol,
    Union,
    runtime_checkable,
)

from ._native import Backoff, BulkheadFull, CircuitOpenError, ManualClock, RateLimitExceeded

if TYPE_CHECKING:
    from typing_extensions import TypeAlias, TypedDict

    from ._breaker import CircuitBreaker
    from ._limiters import Bulkhead, RateLimiter

__all__ = [
    "IDEMPOTENT_METHODS",
    "AdaptiveLimit",
    "AdaptiveLimitExceeded",
    "Retry",
    "RetryAfterPause",
    "Router",
    "Rule",
    "parse_retry_after",
]

#: The methods RFC 9110 calls idempotent: retried by default; others only when asked.
IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

#: The longest ``Retry-After`` accepted, in seconds (a year); longer values are clamped.
MAX_RETRY_AFTER = 365.0 * 86400.0

_DIGITS = re.compile(r"[0-9]+(\.[0-9]+)?")


@runtime_checkable
class AdaptiveLimit(Protocol):
    """The adaptive limiter's API (``fastbreaker.AdaptiveLimiter``), as the integrations use it.

    Any object with these three methods is driven as an adaptive limiter: ``try_acquire()``
    before each attempt (False: refused), then exactly one ``record()`` per admitted attempt.
    """

    def try_acquire(self) -> bool:
        """True: admitted, and ``record`` must be called once for it."""

    def record(
        self,
        outcome: str = "success",
        *,
        latency: Optional[float] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        """Counts the outcome of an admitted attempt: success, overload or ignore."""

    def retry_after(self) -> float:
        """Seconds until ``try_acquire`` can succeed (0.0: now, or unknown)."""


def is_adaptive(limiter: object) -> bool:
    """Whether ``limiter`` has the adaptive API (a ``record`` method); a ``RateLimiter`` has not."""
    return callable(getattr(limiter, "record", None)) and callable(
        getattr(limiter, "try_acquire", None)
    )


def parse_retry_after(
    value: Optional[str], *, date: Optional[str] = None, now: Optional[float] = None
) -> Optional[float]:
    """The seconds a ``Retry-After`` header value asks to wait, or None if absent or invalid.

    ``value`` is delta-seconds (``"120"``; a decimal such as ``"1.5"`` is accepted too) or an
    HTTP-date (IMF-fixdate ``"Sun, 06 Nov 1994 08:49:37 GMT"``, the obsolete RFC 850 and
    asctime forms). A date is measured against the response's ``Date`` header when ``date``
    is given and valid (so that a skewed local clock does not matter; both have a resolution
    of one second), else against ``now`` (Unix seconds, default ``time.time()``). A date in
    the past gives 0.0; every result is clamped to ``MAX_RETRY_AFTER``.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DIGITS.fullmatch(text):
        seconds = float(text)
        return min(seconds, MAX_RETRY_AFTER) if math.isfinite(seconds) else MAX_RETRY_AFTER
    when = _http_date(text)
    if when is None:
        return None
    base = _http_date(date) if date is not None else None
    reference = base if base is not None else (time.time() if now is None else now)
    return min(max(when - reference, 0.0), MAX_RETRY_AFTER)


def _http_date(text: str) -> Optional[float]:
    """An HTTP-date as Unix seconds (a date without a zone is UTC), or None."""
    try:
        parsed = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return (parsed - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds()
    except OverflowError:
        return None


class RetryAfterPause(RateLimitExceeded):
    """A request refused locally because a server's ``Retry-After`` has not passed yet.

    A ``RateLimitExceeded`` (``retry_after``: the seconds left of the pause), so code that
    handles the limiter's refusals handles this one too.
    """

    def __str__(self) -> str:
        return (
            f"paused by the server's Retry-After: requests may be sent again in "
            f"{self.retry_after:.3f} s"
        )


class AdaptiveLimitExceeded(RateLimitExceeded):
    """A request refused locally by an adaptive limiter (a ``RateLimitExceeded``;
    ``retry_after``: the limiter's estimate, 0.0 when it has none)."""

    def __str__(self) -> str:
        return f"adaptive limit reached: retry after {self.retry_after:.3f} s"


def _bad(kind: type[Exception], name: str, value: object, what: str) -> Exception:
    return kind(f"{name} must be {what}, got {value!r} ({type(value).__name__})")


def _seconds(name: str, value: object, *, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(TypeError, name, value, "a number of seconds")
    seconds = float(value)
    if math.isnan(seconds) or seconds < 0.0 or (not allow_inf and math.isinf(seconds)):
        limit = "in 0..=inf" if allow_inf else "finite and >= 0"
        raise _bad(ValueError, name, value, f"a number of seconds {limit}")
    return seconds


def _statuses(name: str, value: object) -> Callable[[int], bool]:
    """A status set (iterable of ints in 100..=599) or a predicate, as a predicate."""
    if callable(value):
        return value
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise _bad(TypeError, name, value, "an iterable of status codes or a predicate")
    codes: set[int] = set()
    for code in value:
        if isinstance(code, bool) or not isinstance(code, int):
            raise _bad(TypeError, name, code, "status codes (int)")
        if not 100 <= code <= 599:
            raise _bad(ValueError, name, code, "status codes in 100..=599")
        codes.add(code)
    return frozenset(codes).__contains__


class HeaderGetter(Protocol):
    """Response headers: a case-insensitive ``get`` (httpx, requests and aiohttp have one)."""

    def get(self, key: str, /) -> Optional[str]:
        """The value of header ``key``, or None."""


ExceptionMatch: TypeAlias = Union[
    type[BaseException], Iterable[type[BaseException]], Callable[[BaseException], bool]
]


def _exceptions(name: str, value: object) -> Callable[[BaseException], bool]:
    """Exception types or a predicate, as a predicate."""
    if isinstance(value, type):
        if not issubclass(value, BaseException):
            raise _bad(TypeError, name, value, "exception types or a predicate")
        exc_type = value
        return lambda exc: isinstance(exc, exc_type)
    if callable(value):
        return value
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise _bad(TypeError, name, value, "exception types or a predicate")
    types = tuple(value)
    for item in types:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise _bad(TypeError, name, item, "an exception type")
    return lambda exc: isinstance(exc, types)


class Retry:
    """When and how long to wait before sending a request again.

    Up to ``attempts`` sends in all (1: no retry). After the n-th failed attempt the wait is
    the core's ``Backoff`` (``base_delay * multiplier**(n-1)`` capped at ``max_delay``, minus
    up to ``jitter`` of it, drawn from ``seed`` and a per-request nonce), and never less than
    a ``Retry-After`` the response carried. An attempt failed when its status is in
    ``statuses`` (429, 502, 503, 504 by default) or it raised an exception ``exceptions``
    matches (None: the client's connection errors and timeouts). A ``Retry-After`` above
    ``max_retry_after`` seconds gives up at once and returns the response. Only ``methods``
    (None: any) are retried, and of those a method that is not idempotent (POST, PATCH:
    one that timed out may have been applied) only with ``retry_non_idempotent=True``. A
    request whose body cannot be replayed (a stream or generator) is not retried. Each
    attempt goes through the rule again: one that is refused locally (the breaker opened
    meanwhile, a limit) raises that refusal.
    ``sleep`` / ``async_sleep`` replace ``time.sleep`` / ``asyncio.sleep`` for every wait of
    the rule, the ``max_wait`` ones included (tests pass ``ManualClock.advance`` and a
    coroutine around it).
    """

    __slots__ = (
        "_lock",
        "_nonces",
        "async_sleep",
        "attempts",
        "backoff",
        "exceptions",
        "max_retry_after",
        "methods",
        "retry_non_idempotent",
        "sleep",
        "status_matches",
    )

    def __init__(
        self,
        attempts: int = 3,
        base_delay: float = 0.1,
        max_delay: float = 10.0,
        multiplier: float = 2.0,
        jitter: float = 0.5,
        *,
        statuses: Union[Iterable[int], Callable[[int], bool]] = (429, 502, 503, 504),
        exceptions: Optional[ExceptionMatch] = None,
        methods: Optional[Iterable[str]] = None,
        retry_non_idempotent: bool = False,
        max_retry_after: float = 60.0,
        seed: Optional[int] = None,
        sleep: Optional[Callable[[float], object]] = None,
        async_sleep: Optional[Callable[[float], Any]] = None,
    ) -> None:
        if isinstance(attempts, bool) or not isinstance(attempts, int):
            raise _bad(TypeError, "attempts", attempts, "an int >= 1")
        if attempts < 1:
            raise _bad(ValueError, "attempts", attempts, "an int >= 1")
        self.attempts = attempts
        self.backoff = Backoff(base_delay, max_delay, multiplier, jitter, seed)
        self.status_matches = _statuses("statuses", statuses)
        self.exceptions: Optional[Callable[[BaseException], bool]] = (
            None if exceptions is None else _exceptions("exceptions", exceptions)
        )
        if methods is not None and (isinstance(methods, str) or not isinstance(methods, Iterable)):
            raise _bad(TypeError, "methods", methods, "None or an iterable of method names")
        self.methods: Optional[frozenset[str]] = (
            None if methods is None else frozenset(str(m).upper() for m in methods)
        )
        self.retry_non_idempotent = bool(retry_non_idempotent)
        self.max_retry_after = _seconds("max_retry_after", max_retry_after, allow_inf=True)
        for hook_name, hook in (("sleep", sleep), ("async_sleep", async_sleep)):
            if hook is not None and not callable(hook):
                raise _bad(TypeError, hook_name, hook, "callable or None")
        self.sleep = sleep
        self.async_sleep = async_sleep
        self._nonces = itertools.count()
        self._lock = threading.Lock()

    def allows(self, method: str) -> bool:
        """Whether requests with ``method`` may be sent again."""
        method = method.upper()
        if self.methods is not None and method not in self.methods:
            return False
        return method in IDEMPOTENT_METHODS or self.retry_non_idempotent

    def nonce(self) -> int:
        """A new jitter nonce for one request's retries."""
        with self._lock:
            return next(self._nonces) % (1 << 32)

    def __repr__(self) -> str:
        b = self.backoff
        return (
            f"Retry(attempts={self.attempts}, base_delay={b.base_delay}, "
            f"max_delay={b.max_delay}, multiplier={b.multiplier}, jitter={b.jitter}, "
            f"retry_non_idempotent={self.retry_non_idempotent})"
        )


if TYPE_CHECKING:

    class RuleOptions(TypedDict, total=False):
        """The keywords of :class:`Rule`, as the client adapters take them."""

        breaker: Optional[CircuitBreaker]
        limiter: Union[RateLimiter, AdaptiveLimit, None]
        bulkhead: Optional[Bulkhead]
        retry: Union[Retry, int, None]
        failure_statuses: Union[Iterable[int], Callable[[int], bool]]
        failure_exceptions: Optional[ExceptionMatch]
        overload_statuses: Union[Iterable[int], Callable[[int], bool]]
        max_wait: float
        respect_retry_after: bool
        clock: Optional[ManualClock]
        routes: Optional[RoutesArg]

    # Keys: a host str or a compiled re.Pattern (Mapping is invariant in its key type).
    RoutesArg: TypeAlias = Union[
        Mapping[Any, Union["Rule", Mapping[str, Any]]],
        Iterable[tuple[Any, Union["Rule", Mapping[str, Any]]]],
    ]


class Rule:
    """The protection of one group of requests: breaker, limiter, bulkhead and retry.

    ``breaker``: a ``CircuitBreaker`` counting ``failure_statuses`` (default 500..=599, or a
    predicate on the status, asked once for each status 0..=599 when the rule is built: it
    must be a pure function) and ``failure_exceptions`` (default: the client's connection
    errors and timeouts) as failures. ``limiter``: a ``RateLimiter`` (one token an attempt)
    or an adaptive limiter (duck typed: it has ``record``), told about ``overload_statuses``
    (429 and 503 by default, or a pure predicate) and timeouts. ``bulkhead``: a ``Bulkhead``
    held during each attempt. ``retry``: a :class:`Retry` (an int ``n`` is ``Retry(attempts=n)``).
    ``max_wait``: how many seconds an attempt may wait for the limiter or a ``Retry-After``
    pause before it is refused with ``RateLimitExceeded`` (default 0: refuse at once).
    ``respect_retry_after``: a ``Retry-After`` on an overload status pauses the rule's
    requests until it passes (default True). ``clock``: a ``ManualClock`` to read instead of
    ``time.monotonic`` (give the same one to the breaker and limiters).
    """

    __slots__ = (
        "_default_failure_exceptions",
        "_pause_lock",
        "_timeout_exceptions",
        "adaptive",
        "breaker",
        "bulkhead",
        "clock",
        "failure_exceptions",
        "failure_status",
        "limiter",
        "max_wait",
        "now",
        "overload_status",
        "paused_until",
        "respect_retry_after",
        "retry",
        "simple",
        "status_class",
    )

    def __init__(
        self,
        *,
        breaker: Optional[CircuitBreaker] = None,
        limiter: Union[RateLimiter, AdaptiveLimit, None] = None,
        bulkhead: Optional[Bulkhead] = None,
        retry: Union[Retry, int, None] = None,
        failure_statuses: Union[Iterable[int], Callable[[int], bool]] = range(500, 600),
        failure_exceptions: Optional[ExceptionMatch] = None,
        overload_statuses: Union[Iterable[int], Callable[[int], bool]] = (429, 503),
        max_wait: float = 0.0,
        respect_retry_after: bool = True,
        clock: Optional[ManualClock] = None,
    ) -> None:
        from ._native import Bulkhead as NativeBulkhead
        from ._native import CircuitBreaker as NativeBreaker
        from ._native import RateLimiter as NativeLimiter

        if breaker is not None and not isinstance(breaker, NativeBreaker):
            raise _bad(TypeError, "breaker", breaker, "a fastbreaker.CircuitBreaker or None")
        if bulkhead is not None and not isinstance(bulkhead, NativeBulkhead):
            raise _bad(TypeError, "bulkhead", bulkhead, "a fastbreaker.Bulkhead or None")
        adaptive = False
        if limiter is not None and not isinstance(limiter, NativeLimiter):
            if not is_adaptive(limiter) or not callable(getattr(limiter, "retry_after", None)):
                raise _bad(
                    TypeError,
                    "limiter",
                    limiter,
                    "a fastbreaker.RateLimiter, an object with try_acquire(), record() and "
                    "retry_after() (an adaptive limiter), or None",
                )
            adaptive = True
        if isinstance(retry, bool):
            raise _bad(TypeError, "retry", retry, "a Retry, an int >= 1 or None")
        if isinstance(retry, int):
            retry = Retry(attempts=retry)
        elif retry is not None and not isinstance(retry, Retry):
            raise _bad(TypeError, "retry", retry, "a Retry, an int >= 1 or None")
        if clock is not None and not isinstance(clock, ManualClock):
            raise _bad(TypeError, "clock", clock, "a fastbreaker.ManualClock or None")
        self.breaker = breaker
        self.limiter: Any = limiter
        self.adaptive = adaptive
        self.bulkhead = bulkhead
        self.retry: Optional[Retry] = retry
        self.failure_status = _statuses("failure_statuses", failure_statuses)
        self.failure_exceptions: Optional[Callable[[BaseException], bool]] = (
            None
            if failure_exceptions is None
            else _exceptions("failure_exceptions", failure_exceptions)
        )
        self.overload_status = _statuses("overload_statuses", overload_statuses)
        # One lookup per response instead of two predicate calls: for each status in
        # 0..=599, bit 0 failure, bit 1 overload (a predicate is asked once per status here).
        self.status_class = bytes(
            (1 if self.failure_status(code) else 0) | (2 if self.overload_status(code) else 0)
            for code in range(600)
        )
        self.max_wait = _seconds("max_wait", max_wait)
        # A breaker and nothing else: the adapters' inline path (see their send methods).
        self.simple = breaker is not None and limiter is None and bulkhead is None and retry is None
        self.respect_retry_after = bool(respect_retry_after)
        self.clock = clock
        self.now: Callable[[], float] = time.monotonic if clock is None else clock.now
        # When (on the rule's clock) a Retry-After pause ends; 0.0: never paused.
        self.paused_until = 0.0
        self._pause_lock = threading.Lock()
        self._default_failure_exceptions: tuple[type[BaseException], ...] = ()
        self._timeout_exceptions: tuple[type[BaseException], ...] = ()

    def bind(
        self,
        failure_exceptions: tuple[type[BaseException], ...],
        timeout_exceptions: tuple[type[BaseException], ...],
    ) -> Rule:
        """Sets the client's default failure and timeout exceptions (the adapters call it)."""
        self._default_failure_exceptions = failure_exceptions
        self._timeout_exceptions = timeout_exceptions
        return self

    @property
    def paused_for(self) -> float:
        """Seconds left of the pause a ``Retry-After`` started (0.0: not paused)."""
        return max(self.paused_until - self.now(), 0.0)

    def pause(self, seconds: float) -> None:
        """Pauses the rule's requests for ``seconds`` from now (a longer pause running wins)."""
        until = self.now() + seconds
        with self._pause_lock:
            if until > self.paused_until:
                self.paused_until = until

    # ----- before an attempt -----

    def reserve(self, budget: float) -> float:
        """Takes the limiter's leave for one attempt, or says how long to wait for it.

        Returns 0.0 when the attempt may go on (a ``RateLimiter`` token is then taken, an
        adaptive limiter has admitted it), or the seconds to sleep before calling ``reserve``
        again (never more than ``budget``); raises ``RateLimitExceeded`` when the wait is
        longer than ``budget``.
        """
        paused = self.paused_until
        if paused:
            left = paused - self.now()
            if left > 0.0:
                if left > budget:
                    raise RetryAfterPause(left, 1)
                return left
            with self._pause_lock:  # over: back to the fast path (unless a new one began)
                if self.paused_until == paused:
                    self.paused_until = 0.0
        limiter = self.limiter
        if limiter is None:
            return 0.0
        if not self.adaptive:
            if budget <= 0.0:
                if limiter.try_acquire():
                    return 0.0
                raise RateLimitExceeded(limiter.retry_after(), 1)
            wait = float(limiter.reserve(1, budget))  # raises RateLimitExceeded past budget
            if wait > 0.0:
                return -wait  # taken: sleep, then go on without asking again
            return 0.0
        if limiter.try_acquire():
            return 0.0
        wait = float(limiter.retry_after())
        if wait > budget or budget <= 0.0:
            raise AdaptiveLimitExceeded(wait, 1)
        # A concurrency limit does not know when a permit comes back: poll every 1 ms.
        return min(wait, budget) if wait > 0.0 else min(0.001, budget)

    def admit(self) -> Any:
        """After ``reserve`` returned 0.0 (or a negative wait that was slept): the breaker and
        the bulkhead. Returns the breaker's permit (None without a breaker). On a refusal,
        gives the limiter's leave back and raises."""
        permit = None
        breaker = self.breaker
        if breaker is not None:
            try:
                permit = breaker.acquire()
            except CircuitOpenError:
                if self.limiter is not None:
                    self._unreserve()
                raise
        bulkhead = self.bulkhead
        if bulkhead is not None and not bulkhead.try_acquire():
            if permit is not None:
                breaker.record(permit, "ignored")  # type: ignore[union-attr]
            if self.limiter is not None:
                self._unreserve()
            raise BulkheadFull(bulkhead.max_concurrent)
        return permit

    def _unreserve(self) -> None:
        limiter = self.limiter
        if limiter is None:
            return
        if self.adaptive:
            limiter.record("ignore")
        else:
            limiter.refund(1)

    # ----- after an attempt -----

    def is_failure(self, exc: BaseException) -> bool:
        """Whether the breaker counts ``exc`` as a failure."""
        match = self.failure_exceptions
        if match is None:
            return isinstance(exc, self._default_failure_exceptions)
        return bool(match(exc))

    def exit(
        self,
        permit: Any,
        started: float,
        status: int,
        headers: Optional[HeaderGetter] = None,
        exc: Optional[BaseException] = None,
    ) -> Optional[float]:
        """Counts an attempt :meth:`enter` admitted (``permit``: what it returned;
        ``started``: ``now()`` right after it, read only for an adaptive limiter's latency):
        its ``status`` and response ``headers`` (anything with a case-insensitive ``get``),
        or ``exc``, the error it raised. Returns the ``Retry-After`` in seconds when an
        overload status carried one, else None."""
        seconds: Optional[float] = None
        if exc is None:
            if 0 <= status < 600:
                kind = self.status_class[status]
            else:
                kind = int(self.failure_status(status)) | (2 if self.overload_status(status) else 0)
            overload = kind > 1
            if overload and headers is not None:
                value = headers.get("retry-after")
                if value is not None:
                    seconds = parse_retry_after(value, date=headers.get("date"))
            if permit is not None:
                if kind & 1:
                    self.breaker.record(permit, "failure")  # type: ignore[union-attr]
                else:
                    self.breaker.record(permit)  # type: ignore[union-attr]
        else:
            overload = isinstance(exc, self._timeout_exceptions)
            if permit is not None:
                outcome = "failure" if self.is_failure(exc) else "ignored"
                self.breaker.record(permit, outcome)  # type: ignore[union-attr]
        if self.bulkhead is not None:
            self.bulkhead.release()
        if self.adaptive:
            if overload:
                self.limiter.record("overload", retry_after=seconds)
            elif exc is None and status < 400:
                self.limiter.record("success", latency=max(self.now() - started, 0.0))
            else:
                self.limiter.record("ignore")
        if seconds is not None and seconds > 0.0 and self.respect_retry_after:
            self.pause(seconds)
        return seconds

    def abandon(self, permit: Any) -> None:
        """Gives back what an admitted attempt holds without counting it (cancellation)."""
        if permit is not None:
            self.breaker.record(permit, "ignored")  # type: ignore[union-attr]
        if self.bulkhead is not None:
            self.bulkhead.release()
        if self.adaptive:
            self.limiter.record("ignore")

    def retry_wait(
        self,
        method: str,
        attempt: int,
        status: int,
        retry_after: Optional[float],
        exc: Optional[BaseException] = None,
        nonce: int = -1,
    ) -> tuple[float, int]:
        """``(seconds, nonce)``: how long to wait before sending again after the
        ``attempt``-th attempt ended with ``status`` (or ``exc``), -1.0 not to retry; pass
        the nonce back for the next attempt of the same request (-1 draws one)."""
        policy = self.retry
        if policy is None or attempt >= policy.attempts or not policy.allows(method):
            return -1.0, nonce
        if exc is None:
            if not policy.status_matches(status):
                return -1.0, nonce
        else:
            match = policy.exceptions
            if match is None:
                if not isinstance(exc, self._default_failure_exceptions):
                    return -1.0, nonce
            elif not match(exc):
                return -1.0, nonce
        if retry_after is not None and retry_after > policy.max_retry_after:
            return -1.0, nonce
        if nonce < 0:
            nonce = policy.nonce()
        wait = policy.backoff.delay(attempt - 1, (nonce << 32 | attempt) % (1 << 64))
        if retry_after is not None:
            wait = max(wait, retry_after)
        if self.respect_retry_after:
            wait = max(wait, self.paused_for)
        return wait, nonce

    # ----- the waits -----

    def _sleep_hook(self) -> Callable[[float], object]:
        policy = self.retry
        if policy is not None and policy.sleep is not None:
            return policy.sleep
        return time.sleep

    def _async_sleep_hook(self) -> Callable[[float], Awaitable[object]]:
        policy = self.retry
        if policy is not None and policy.async_sleep is not None:
            return policy.async_sleep
        import asyncio

        return asyncio.sleep

    def ready(self) -> bool:
        """True when an attempt may go on at once: no ``Retry-After`` pause, and the limiter
        (if any) admitted it (its leave is then taken). False: call :meth:`enter` or
        :meth:`enter_async`, which wait or refuse."""
        limiter = self.limiter
        return not self.paused_until and (limiter is None or limiter.try_acquire())

    def enter(self) -> Any:
        """Everything before sending one attempt, sleeping up to ``max_wait`` in all (with
        the ``Retry``'s ``sleep`` hook when it has one); raises the refusals. Returns the
        breaker's permit (None without a breaker), for :meth:`exit` or :meth:`abandon`."""
        if not self.ready():
            budget = self.max_wait
            sleep: Optional[Callable[[float], object]] = None
            while True:
                wait = self.reserve(budget)
                if wait == 0.0:
                    break
                if sleep is None:
                    sleep = self._sleep_hook()
                try:
                    sleep(abs(wait))
                except BaseException:
                    if wait < 0.0:
                        self._unreserve()
                    raise
                if wait < 0.0:
                    break
                budget = max(budget - max(wait, 0.001), 0.0)
        # admit(), inlined: this is the path of every request.
        permit = None
        breaker = self.breaker
        if breaker is not None:
            try:
                permit = breaker.acquire()
            except CircuitOpenError:
                if self.limiter is not None:
                    self._unreserve()
                raise
        bulkhead = self.bulkhead
        if bulkhead is not None and not bulkhead.try_acquire():
            if permit is not None:
                breaker.record(permit, "ignored")  # type: ignore[union-attr]
            if self.limiter is not None:
                self._unreserve()
            raise BulkheadFull(bulkhead.max_concurrent)
        return permit

    async def enter_async(self) -> Any:
        """:meth:`enter` for coroutines, after :meth:`ready` said False: awaits the waits
        (``Retry.async_sleep`` hook). The adapters call ``admit()`` when ``ready()``."""
        budget = self.max_wait
        sleep: Optional[Callable[[float], Awaitable[object]]] = None
        while True:
            wait = self.reserve(budget)
            if wait == 0.0:
                break
            if sleep is None:
                sleep = self._async_sleep_hook()
            try:
                await sleep(abs(wait))
            except BaseException:
                if wait < 0.0:
                    self._unreserve()
                raise
            if wait < 0.0:
                break
            budget = max(budget - max(wait, 0.001), 0.0)
        return self.admit()

    def sleep(self, seconds: float) -> None:
        """Sleeps between retries (the ``Retry``'s hook, else ``time.sleep``)."""
        self._sleep_hook()(seconds)

    async def sleep_async(self, seconds: float) -> None:
        """Awaits between retries (the ``Retry``'s hook, else ``asyncio.sleep``)."""
        await self._async_sleep_hook()(seconds)


RouteKey: TypeAlias = Union[str, "re.Pattern[str]"]


class Router:
    """Finds the :class:`Rule` of a request: by host or by URL pattern, else the default.

    ``routes`` maps (or lists pairs of) keys to rules (a :class:`Rule`, or a dict of its
    keywords, which the default's ``clock`` completes). A str key is a host
    (``"api.example.com"``, case-insensitive), a host and port (``"example.com:8443"``) or
    every subdomain of a domain (``"*.example.com"``, not the domain itself); a compiled
    regular expression is searched in the full URL. The first key that matches wins.
    """

    __slots__ = ("_by_host", "_cache", "_lock", "_routes", "default", "needs_host", "needs_url")

    def __init__(self, default: Rule, routes: Optional[RoutesArg] = None) -> None:
        self.default = default
        pairs: list[tuple[RouteKey, Rule]] = []
        if routes is not None:
            items = routes.items() if isinstance(routes, Mapping) else routes
            for item in items:
                try:
                    key, value = item
                except (TypeError, ValueError):
                    raise _bad(TypeError, "routes", item, "(host or pattern, rule) pairs") from None
                if isinstance(value, Mapping):
                    options = dict(value)
                    options.setdefault("clock", default.clock)
                    value = Rule(**options)
                elif not isinstance(value, Rule):
                    raise _bad(TypeError, f"routes[{key!r}]", value, "a Rule or a dict of options")
                if isinstance(key, str):
                    if not key or key.strip() != key:
                        raise _bad(ValueError, "routes", key, "a host, host:port or *.domain")
                    key = key.lower()
                elif not isinstance(key, re.Pattern):
                    raise _bad(TypeError, "routes", key, "a host string or a compiled re.Pattern")
                pairs.append((key, value))
        self._routes = tuple(pairs)
        self.needs_host = bool(pairs)
        self.needs_url = any(not isinstance(k, str) for k, _ in pairs)
        self._by_host = not self.needs_url
        self._cache: dict[tuple[str, Optional[int]], Rule] = {}
        self._lock = threading.Lock()

    @property
    def rules(self) -> list[Rule]:
        """Every rule: the routes' in order, then the default."""
        return [rule for _, rule in self._routes] + [self.default]

    def bind(
        self,
        failure_exceptions: tuple[type[BaseException], ...],
        timeout_exceptions: tuple[type[BaseException], ...],
    ) -> Router:
        """Gives every rule the client's default failure and timeout exceptions."""
        for rule in self.rules:
            rule.bind(failure_exceptions, timeout_exceptions)
        return self

    def rule(self, host: str, port: Optional[int], url: Optional[str] = None) -> Rule:
        """The rule of a request to ``host``:``port`` (the scheme's default port when the
        URL has none; ``url``: the full URL, needed only when a route is a pattern, see
        ``needs_url``)."""
        if not self._routes:
            return self.default
        if self._by_host:
            key = (host, port)
            found = self._cache.get(key)
            if found is None:
                found = self._match(host.lower(), port, None)
                with self._lock:
                    if len(self._cache) < 4096:
                        self._cache[key] = found
            return found
        return self._match(host.lower(), port, url)

    def _match(self, host: str, port: Optional[int], url: Optional[str]) -> Rule:
        for key, rule in self._routes:
            if isinstance(key, str):
                if key.startswith("*."):
                    if host.endswith(key[1:]):
                        return rule
                elif ":" in key and not key.startswith("["):
                    name, _, want = key.rpartition(":")
                    if host == name and str(port) == want:
                        return rule
                elif host == key or f"[{host}]" == key:
                    return rule
            elif url is not None and key.search(url):
                return rule
        return self.default


_RULE_KEYWORDS = frozenset(inspect.signature(Rule).parameters)


def build_router(
    options: Mapping[str, Any],
    failure_exceptions: tuple[type[BaseException], ...],
    timeout_exceptions: tuple[type[BaseException], ...],
) -> Router:
    """The router of an adapter's keywords: ``routes`` plus the default rule's keywords."""
    opts = dict(options)
    routes = opts.pop("routes", None)
    unknown = set(opts) - _RULE_KEYWORDS
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    return Router(Rule(**opts), routes).bind(failure_exceptions, timeout_exceptions)
