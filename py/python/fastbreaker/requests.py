"""A requests ``HTTPAdapter`` that puts a breaker, a limiter, a bulkhead and retries around
each request.

>>> import requests
>>> from fastbreaker import CircuitBreaker
>>> from fastbreaker.requests import Adapter
>>> session = requests.Session()
>>> session.mount("https://", Adapter(breaker=CircuitBreaker("api", 5, 30.0)))

``Adapter(**options, **adapter_kwargs)``: the options are those of ``fastbreaker._http.Rule``
(``breaker``, ``limiter``, ``bulkhead``, ``retry``, ``failure_statuses``,
``failure_exceptions``, ``overload_statuses``, ``max_wait``, ``respect_retry_after``,
``clock``) for the default rule, plus ``routes`` for per-host or per-URL-pattern rules; the
``HTTPAdapter`` keywords (``pool_connections``, ``pool_maxsize``, ``pool_block``) pass
through, and its own ``max_retries`` stays 0: ``retry=`` replaces it. The client's failures
by default: ``requests.ConnectionError`` and ``requests.Timeout``; its timeouts (an overload
signal for an adaptive limiter): ``requests.Timeout``. A refused request raises
``CircuitOpenError``, ``RateLimitExceeded`` (``RetryAfterPause``, ``AdaptiveLimitExceeded``)
or ``BulkheadFull`` from ``session.get(...)`` before anything is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional, Union
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

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
    "Adapter",
    "AdaptiveLimitExceeded",
    "Retry",
    "RetryAfterPause",
    "Rule",
    "parse_retry_after",
]

#: The exceptions a breaker counts as failures unless ``failure_exceptions`` says otherwise.
FAILURE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
)
#: The exceptions an adaptive limiter is told are an overload.
TIMEOUT_EXCEPTIONS: tuple[type[BaseException], ...] = (requests.Timeout,)

_ADAPTER_KEYWORDS = ("pool_connections", "pool_maxsize", "pool_block")


def _replayable(request: requests.PreparedRequest) -> bool:
    return request.body is None or isinstance(request.body, (bytes, str))


class Adapter(HTTPAdapter):
    """An ``HTTPAdapter`` that protects every request it sends (see the module's
    documentation for the options; ``router`` holds the rules)."""

    def __init__(self, **options: Unpack[RuleOptions]) -> None:
        rule_options: dict[str, Any] = dict(options)
        adapter_options = {k: rule_options.pop(k) for k in _ADAPTER_KEYWORDS if k in rule_options}
        if "max_retries" in rule_options:
            raise TypeError("max_retries is not taken: pass retry=fastbreaker.requests.Retry(...)")
        self.router: Router = build_router(rule_options, FAILURE_EXCEPTIONS, TIMEOUT_EXCEPTIONS)
        self._by_origin: dict[str, Rule] = {}
        super().__init__(**adapter_options)
        self._send = super().send  # resolved once: super() on every request costs

    def _rule_of(self, url: str) -> Rule:
        """The rule of ``url``; by host routes, cached per ``scheme://host:port`` prefix."""
        router = self.router
        if router.needs_url:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            return router.rule(parts.hostname or "", port, url)
        end = url.find("/", url.find("//") + 2)
        origin = url if end < 0 else url[:end]
        rule = self._by_origin.get(origin)
        if rule is None:
            parts = urlsplit(origin)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            rule = router.rule(parts.hostname or "", port)
            if len(self._by_origin) < 4096:
                self._by_origin[origin] = rule
        return rule

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Union[float, tuple[float, float], tuple[float, None], None] = None,
        verify: Union[bool, str] = True,
        cert: Union[bytes, str, tuple[Union[bytes, str], Union[bytes, str]], None] = None,
        proxies: Optional[Mapping[str, str]] = None,
    ) -> requests.Response:
        """Sends ``request`` through the rule of its host (retrying as the rule says)."""
        router = self.router
        if router.needs_host:
            rule = self._rule_of(request.url or "")
        else:
            rule = router.default
        send = self._send
        if rule.simple and not rule.paused_until:
            # A breaker alone, inline: acquire, send, record (the path of most requests).
            breaker: Any = rule.breaker
            permit = breaker.acquire()
            try:
                response = send(request, stream, timeout, verify, cert, proxies)
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
        method = request.method or "GET"
        attempt = 0
        nonce = -1
        while True:
            attempt += 1
            permit = rule.enter()
            started = rule.now() if rule.adaptive else 0.0
            try:
                response = send(request, stream, timeout, verify, cert, proxies)
            except Exception as exc:
                rule.exit(permit, started, 0, None, exc)
                if rule.retry is None or not _replayable(request):
                    raise
                wait, nonce = rule.retry_wait(method, attempt, 0, None, exc, nonce)
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
            wait, nonce = rule.retry_wait(method, attempt, status, retry_after, None, nonce)
            if wait < 0.0 or not _replayable(request):
                return response
            response.close()
            rule.sleep(wait)
