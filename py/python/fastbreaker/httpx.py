"""httpx transports that put a breaker, a limiter, a bulkhead and retries around each request.

>>> import httpx
>>> from fastbreaker import CircuitBreaker
>>> from fastbreaker.httpx import Transport
>>> client = httpx.Client(transport=Transport(breaker=CircuitBreaker("api", 5, 30.0)))

``Transport(transport=None, **options)`` wraps any ``httpx.BaseTransport``
(``httpx.HTTPTransport()`` by default) and ``AsyncTransport`` any ``httpx.AsyncBaseTransport``
(``httpx.AsyncHTTPTransport()``). The options are those of ``fastbreaker._http.Rule``
(``breaker``, ``limiter``, ``bulkhead``, ``retry``, ``failure_statuses``,
``failure_exceptions``, ``overload_statuses``, ``max_wait``, ``respect_retry_after``,
``clock``) for the default rule, plus ``routes`` for per-host or per-URL-pattern rules.
The client's failures by default: ``httpx.TimeoutException``, ``httpx.NetworkError`` and
``httpx.RemoteProtocolError``; its timeouts (an overload signal for an adaptive limiter):
``httpx.TimeoutException``. A refused request raises ``CircuitOpenError``,
``RateLimitExceeded`` (``RetryAfterPause`` while a server's ``Retry-After`` runs,
``AdaptiveLimitExceeded`` from an adaptive limiter) or ``BulkheadFull`` (from
``client.get(...)``, unwrapped) before anything is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import httpx

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
    from typing_extensions import Unpack

    from ._http import RuleOptions

__all__ = [
    "FAILURE_EXCEPTIONS",
    "IDEMPOTENT_METHODS",
    "TIMEOUT_EXCEPTIONS",
    "AdaptiveLimitExceeded",
    "AsyncTransport",
    "Retry",
    "RetryAfterPause",
    "Rule",
    "Transport",
    "parse_retry_after",
]

#: The exceptions a breaker counts as failures unless ``failure_exceptions`` says otherwise.
FAILURE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)
#: The exceptions an adaptive limiter is told are an overload.
TIMEOUT_EXCEPTIONS: tuple[type[BaseException], ...] = (httpx.TimeoutException,)


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream) or hasattr(request, "_content")


class Transport(httpx.BaseTransport):
    """An ``httpx.BaseTransport`` that protects every request it sends through ``transport``.

    See the module's documentation for the options; ``router`` holds the rules.
    """

    def __init__(
        self,
        transport: Optional[httpx.BaseTransport] = None,
        **options: Unpack[RuleOptions],
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise TypeError(
                f"transport must be an httpx.BaseTransport or None, got {transport!r} "
                f"({type(transport).__name__})"
            )
        self.transport: httpx.BaseTransport = (
            httpx.HTTPTransport() if transport is None else transport
        )
        self.router: Router = build_router(options, FAILURE_EXCEPTIONS, TIMEOUT_EXCEPTIONS)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Sends ``request`` through the rule of its host (retrying as the rule says)."""
        router = self.router
        if router.needs_host:
            url = request.url
            port = url.port or (443 if url.scheme == "https" else 80)
            rule = router.rule(url.host, port, str(url) if router.needs_url else None)
        else:
            rule = router.default
        send = self.transport.handle_request
        if rule.simple and not rule.paused_until:
            # A breaker alone, inline: acquire, send, record (the path of most requests).
            breaker: Any = rule.breaker
            permit = breaker.acquire()
            try:
                response = send(request)
            except Exception as exc:
                rule.exit(permit, 0.0, 0, None, exc)
                raise
            except BaseException:
                rule.abandon(permit)
                raise
            status = response.status_code
            if 0 <= status < 600 and not rule.status_class[status]:
                breaker.record(permit)
            else:
                rule.exit(permit, 0.0, status, response.headers)
            return response
        attempt = 0
        nonce = -1
        while True:
            attempt += 1
            permit = rule.enter()
            started = rule.now() if rule.adaptive else 0.0
            try:
                response = send(request)
            except Exception as exc:
                rule.exit(permit, started, 0, None, exc)
                if rule.retry is None or not _replayable(request):
                    raise
                wait, nonce = rule.retry_wait(request.method, attempt, 0, None, exc, nonce)
                if wait < 0.0:
                    raise
                rule.sleep(wait)
                continue
            except BaseException:
                rule.abandon(permit)
                raise
            status = response.status_code
            retry_after = rule.exit(permit, started, status, response.headers)
            if rule.retry is None:
                return response
            wait, nonce = rule.retry_wait(request.method, attempt, status, retry_after, None, nonce)
            if wait < 0.0 or not _replayable(request):
                return response
            response.close()
            rule.sleep(wait)

    def close(self) -> None:
        """Closes the wrapped transport."""
        self.transport.close()


class AsyncTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` that protects every request it sends through
    ``transport`` (``httpx.AsyncHTTPTransport()`` by default); the same options as
    :class:`Transport`, with waits awaited."""

    def __init__(
        self,
        transport: Optional[httpx.AsyncBaseTransport] = None,
        **options: Unpack[RuleOptions],
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError(
                f"transport must be an httpx.AsyncBaseTransport or None, got {transport!r} "
                f"({type(transport).__name__})"
            )
        self.transport: httpx.AsyncBaseTransport = (
            httpx.AsyncHTTPTransport() if transport is None else transport
        )
        self.router: Router = build_router(options, FAILURE_EXCEPTIONS, TIMEOUT_EXCEPTIONS)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Sends ``request`` through the rule of its host (retrying as the rule says)."""
        router = self.router
        if router.needs_host:
            url = request.url
            port = url.port or (443 if url.scheme == "https" else 80)
            rule = router.rule(url.host, port, str(url) if router.needs_url else None)
        else:
            rule = router.default
        send = self.transport.handle_async_request
        if rule.simple and not rule.paused_until:
            # A breaker alone, inline: acquire, send, record (the path of most requests).
            breaker: Any = rule.breaker
            permit = breaker.acquire()
            try:
                response = await send(request)
            except Exception as exc:
                rule.exit(permit, 0.0, 0, None, exc)
                raise
            except BaseException:
                rule.abandon(permit)
                raise
            status = response.status_code
            if 0 <= status < 600 and not rule.status_class[status]:
                breaker.record(permit)
            else:
                rule.exit(permit, 0.0, status, response.headers)
            return response
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
                response = await send(request)
            except Exception as exc:
                rule.exit(permit, started, 0, None, exc)
                if rule.retry is None or not _replayable(request):
                    raise
                wait, nonce = rule.retry_wait(request.method, attempt, 0, None, exc, nonce)
                if wait < 0.0:
                    raise
                await rule.sleep_async(wait)
                continue
            except BaseException:
                rule.abandon(permit)
                raise
            status = response.status_code
            retry_after = rule.exit(permit, started, status, response.headers)
            if rule.retry is None:
                return response
            wait, nonce = rule.retry_wait(request.method, attempt, status, retry_after, None, nonce)
            if wait < 0.0 or not _replayable(request):
                return response
            await response.aclose()
            await rule.sleep_async(wait)

    async def aclose(self) -> None:
        """Closes the wrapped transport."""
        await self.transport.aclose()
