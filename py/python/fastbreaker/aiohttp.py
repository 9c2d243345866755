"""An aiohttp client middleware that puts a breaker, a limiter, a bulkhead and retries around
each request (aiohttp >= 3.12, ``ClientSession(middlewares=...)``).

>>> import aiohttp
>>> from fastbreaker import CircuitBreaker
>>> from fastbreaker.aiohttp import Middleware
>>> async def main() -> None:
...     mw = Middleware(breaker=CircuitBreaker("api", 5, 30.0))
...     async with aiohttp.ClientSession(middlewares=(mw,)) as session:
...         ...

A middleware rather than a ``TraceConfig``, because it runs before the request is sent and
can refuse it, and can send it again. ``Middleware(**options)``: the options are those of
``fastbreaker._http.Rule`` (``breaker``, ``limiter``, ``bulkhead``, ``retry``,
``failure_statuses``, ``failure_exceptions``, ``overload_statuses``, ``max_wait``,
``respect_retry_after``, ``clock``) for the default rule, plus ``routes`` for per-host or
per-URL-pattern rules. The client's failures by default: ``aiohttp.ClientConnectionError``
and ``asyncio.TimeoutError``; its timeouts (an overload signal for an adaptive limiter):
``asyncio.TimeoutError`` (aiohttp's timeout errors derive from it). A refused request raises
``CircuitOpenError``, ``RateLimitExceeded`` (``RetryAfterPause``, ``AdaptiveLimitExceeded``)
or ``BulkheadFull`` before anything is sent. The latency an adaptive limiter is told is the
time to the response's headers. aiohttp itself sends an idempotent request once more when
the connection drops (``ServerDisconnectedError``, ``ClientOSError``), through the middleware
again: each send is counted, and the second one can be refused (an open breaker).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.payload import BytesPayload

from ._http import (
    IDEMPOTENT_METHODS,
    AdaptiveLimitExceeded,
    Retry,
    RetryAfterPause,
    Router,
    Rule,
    build_router,
    parse_retry_after,
)

if TYPE_CHECKING:
    from aiohttp.client_middlewares import ClientHandlerType
    from typing_extensions import Unpack

    from ._http import RuleOptions

__all__ = [
    "FAILURE_EXCEPTIONS",
    "IDEMPOTENT_METHODS",
    "TIMEOUT_EXCEPTIONS",
    "AdaptiveLimitExceeded",
    "Middleware",
    "Retry",
    "RetryAfterPause",
    "Rule",
    "parse_retry_after",
]

#: The exceptions a breaker counts as failures unless ``failure_exceptions`` says otherwise.
FAILURE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    asyncio.TimeoutError,
)
#: The exceptions an adaptive limiter is told are an overload.
TIMEOUT_EXCEPTIONS: tuple[type[BaseException], ...] = (asyncio.TimeoutError,)


def _replayable(request: aiohttp.ClientRequest) -> bool:
    body = request.body
    return isinstance(body, (bytes, BytesPayload))


class Middleware:
    """An aiohttp client middleware (see the module's documentation for the options;
    ``router`` holds the rules)."""

    __slots__ = ("router",)

    def __init__(self, **options: Unpack[RuleOptions]) -> None:
        self.router: Router = build_router(options, FAILURE_EXCEPTIONS, TIMEOUT_EXCEPTIONS)

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: ClientHandlerType
    ) -> aiohttp.ClientResponse:
        """Sends ``request`` through the rule of its host (retrying as the rule says)."""
        router = self.router
        if router.needs_host:
            url = request.url
            rule = router.rule(url.host or "", url.port, str(url) if router.needs_url else None)
        else:
            rule = router.default
        if rule.simple and not rule.paused_until:
            # A breaker alone, inline: acquire, send, record (the path of most requests).
            breaker: Any = rule.breaker
            permit = breaker.acquire()
            try:
                response = await handler(request)
            except Exception as exc:
                rule.exit(permit, 0.0, 0, None, exc)
                raise
            except BaseException:
                rule.abandon(permit)
                raise
            status = response.status
            if 0 <= status < 600 and not rule.status_class[status]:
                breaker.record(permit)
            else:
                rule.exit(permit, 0.0, status, response.headers)
            return response
        method = request.method
        attempt = 0
        nonce = -1
        while True:
            attempt += 1
            if rule.ready():
                permit = rule.admit()  # nothing to wait for: no coroutine to make
            else:
                permit = await rule.enter_async()
            started = rule.now() if rule.adaptive else 0.0
            try:
                response = await handler(request)
            except Exception as exc:
                rule.exit(permit, started, 0, None, exc)
                if rule.retry is None or not _replayable(request):
                    raise
                wait, nonce = rule.retry_wait(method, attempt, 0, None, exc, nonce)
                if wait < 0.0:
                    raise
                await rule.sleep_async(wait)
                continue
            except BaseException:
                rule.abandon(permit)
                raise
            status = response.status
            retry_after = rule.exit(permit, started, status, response.headers)
            if rule.retry is None:
                return response
            wait, nonce = rule.retry_wait(method, attempt, status, retry_after, None, nonce)
            if wait < 0.0 or not _replayable(request):
                return response
            response.release()
            await rule.sleep_async(wait)
